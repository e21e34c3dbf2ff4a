/**
 * The Mediator router: features, training, uncertainty-based selection and
 * serialisation (MEDIATOR.md §4-5).
 */
export {
  CLASSIFIER_KINDS,
  type ClassifierKind,
  classifierLogits,
  type ClassifierParams,
  type DenseLayer,
} from "./classifier.ts";
export {
  expertNameFromPath,
  parseRouterJsonl,
  readRouterDataset,
  readRouterPrompts,
  type RouterDataFile,
  type RouterDataset,
} from "./data.ts";
export { DEFAULT_FEATURE_BATCH, routerFeatures } from "./features.ts";
export { accuracyOf, confusionMatrix, formatConfusion } from "./metrics.ts";
export { parseReport, reportToJson } from "./report_json.ts";
export { Router, type RouterSettings } from "./router.ts";
export {
  DEFAULT_SELECTION,
  normalizedEntropy,
  type Route,
  type RouteMode,
  selectFromLogits,
  selectFromProbabilities,
  type SelectionOptions,
  softmax,
  validateSelection,
} from "./select.ts";
export { decodeRouter, encodeRouter, ROUTER_FORMAT_VERSION } from "./serialize.ts";
export {
  DEFAULT_TRAIN_OPTIONS,
  trainClassifier,
  type TrainingReport,
  type TrainOptions,
  type TrainResult,
} from "./train.ts";
