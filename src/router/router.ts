/**
 * The Mediator router: a trained classifier over prompt features plus the
 * uncertainty-based selection rule (MEDIATOR.md §4-5). One decision per
 * request: `select(features)` returns the experts, their weights, the
 * uncertainty u and the rule that fired.
 */
import {
  CLASSIFIER_KINDS,
  classifierLogits,
  type ClassifierParams,
  layerShapes,
} from "./classifier.ts";
import {
  type Route,
  selectFromProbabilities,
  type SelectionOptions,
  softmax,
  validateSelection,
} from "./select.ts";
import { trainClassifier, type TrainingReport, type TrainOptions } from "./train.ts";

/** Everything a router carries besides its classifier. */
export interface RouterSettings {
  /** Expert (task) names, one per class, in class order. */
  expertNames: string[];
  /** Features are taken after this many layers of the averaged model. */
  routerLayer: number;
  /** Default selection options (each may be overridden per request). */
  selection?: Partial<SelectionOptions>;
  /** How the classifier was trained, when known. */
  report?: TrainingReport;
}

/** Check that a classifier's arrays have the sizes its header claims. */
export function checkClassifierShapes(p: ClassifierParams): void {
  if (!(CLASSIFIER_KINDS as readonly string[]).includes(p.kind)) {
    throw new RangeError(`Cannot build the router: unknown classifier kind '${p.kind}'`);
  }
  for (const [field, v] of [["inputSize", p.inputSize], ["numClasses", p.numClasses]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`Cannot build the router: ${field} must be an integer >= 1, got ${v}`);
    }
  }
  if (p.kind === "mlp" && !(Number.isInteger(p.hiddenSize) && p.hiddenSize >= 1)) {
    throw new RangeError(
      `Cannot build the router: hiddenSize of an mlp must be an integer >= 1, got ${p.hiddenSize}`,
    );
  }
  if (p.mean.length !== p.inputSize || p.std.length !== p.inputSize) {
    throw new RangeError(
      `Cannot build the router: standardisation has ${p.mean.length}/${p.std.length} values for ${p.inputSize} features`,
    );
  }
  const shapes = layerShapes(p.kind, p.inputSize, p.hiddenSize, p.numClasses);
  if (p.layers.length !== shapes.length) {
    throw new RangeError(
      `Cannot build the router: a ${p.kind} has ${shapes.length} layers, got ${p.layers.length}`,
    );
  }
  p.layers.forEach((l, i) => {
    const [inSize, outSize] = shapes[i];
    if (
      l.inSize !== inSize || l.outSize !== outSize || l.weight.length !== inSize * outSize ||
      l.bias.length !== outSize
    ) {
      throw new RangeError(
        `Cannot build the router: layer ${i} must be [${outSize}, ${inSize}] with ${outSize} biases`,
      );
    }
  });
}

/** A trained router with its selection defaults. */
export class Router {
  /** The classifier. */
  readonly params: ClassifierParams;
  /** Expert names in class order. */
  readonly expertNames: readonly string[];
  /** Layer after which features are pooled. */
  readonly routerLayer: number;
  /** Default selection options (validated, complete). */
  readonly selection: Readonly<SelectionOptions>;
  /** Training report, when known. */
  readonly report?: TrainingReport;

  /**
   * A router from a classifier and its settings; RangeError when they disagree.
   * @param params the classifier (shapes checked)
   * @param settings expert names (one per class), router layer, selection defaults, report
   */
  constructor(params: ClassifierParams, settings: RouterSettings) {
    checkClassifierShapes(params);
    this.params = params;
    const names = settings.expertNames;
    if (names.length !== params.numClasses) {
      throw new RangeError(
        `Cannot build the router: ${names.length} expert names for ${params.numClasses} classes`,
      );
    }
    names.forEach((n, i) => {
      if (typeof n !== "string" || n.length === 0) {
        throw new RangeError(`Cannot build the router: expert name ${i} is empty`);
      }
      if (names.indexOf(n) !== i) {
        throw new RangeError(`Cannot build the router: expert name '${n}' appears twice`);
      }
    });
    if (!Number.isInteger(settings.routerLayer) || settings.routerLayer < 0) {
      throw new RangeError(
        `Cannot build the router: router_layer must be an integer >= 0, got ${settings.routerLayer}`,
      );
    }
    this.expertNames = Object.freeze([...names]);
    this.routerLayer = settings.routerLayer;
    this.selection = Object.freeze(validateSelection(settings.selection));
    this.report = settings.report;
  }

  /**
   * Train a router on labelled features (labels index `expertNames`).
   * Training options are those of `trainClassifier`.
   */
  static train(
    features: readonly Float32Array[],
    labels: readonly number[],
    settings: Omit<RouterSettings, "report">,
    options: Partial<TrainOptions> = {},
  ): Router {
    const { params, report } = trainClassifier(
      features,
      labels,
      settings.expertNames.length,
      options,
    );
    return new Router(params, { ...settings, report });
  }

  /** Number of experts T. */
  get numExperts(): number {
    return this.params.numClasses;
  }

  /** Feature count the router expects (the model's hidden size). */
  get inputSize(): number {
    return this.params.inputSize;
  }

  /** Index of an expert by name; RangeError listing the names when unknown. */
  expertIndex(name: string): number {
    const i = this.expertNames.indexOf(name);
    if (i < 0) {
      throw new RangeError(
        `Cannot find expert '${name}': the router knows ${this.expertNames.join(", ")}`,
      );
    }
    return i;
  }

  /** Raw classifier logits [T] for one feature vector. */
  logits(features: ArrayLike<number>): Float32Array {
    return classifierLogits(this.params, features);
  }

  /** softmax(logits / temperature); temperature defaults to the router's. */
  probabilities(features: ArrayLike<number>, temperature = this.selection.temperature): number[] {
    validateSelection({ temperature });
    return softmax(this.logits(features), temperature);
  }

  /**
   * The route for one request. Defined fields of `opts` override the router's
   * selection defaults (undefined fields keep them; `minConfidence: 0` turns
   * the dense fallback off).
   */
  select(features: ArrayLike<number>, opts: Partial<SelectionOptions> = {}): Route {
    const o = validateSelection({ ...this.selection, ...definedOnly(opts) });
    return selectFromProbabilities(softmax(this.logits(features), o.temperature), o);
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
