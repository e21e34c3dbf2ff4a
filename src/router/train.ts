/**
 * Train the router's classifier on labelled feature vectors (MEDIATOR.md §4).
 *
 * 1. A stratified, seeded split sets `holdout` of each class aside; it is only
 *    used for the reported accuracy and confusion matrix.
 * 2. Of the rest, `validation` of each class drives early stopping; the
 *    remainder is the fitting set, whose per-feature mean and std become the
 *    classifier's standardisation.
 * 3. AdamW on mean cross-entropy over shuffled minibatches; after each epoch
 *    the validation loss is measured and the best weights so far are kept;
 *    training stops after `patience` epochs without an improvement of at
 *    least `minDelta`.
 *
 * Everything random (splits, initialisation, shuffles) comes from one
 * generator seeded with `seed`, so equal inputs and options give bit-identical
 * weights.
 */
import { createRng } from "../merge/prng.ts";
import { AdamW, allocGradients, allocScratch, batchGradients, crossEntropy } from "./backprop.ts";
import {
  allocActivations,
  CLASSIFIER_KINDS,
  type ClassifierKind,
  type ClassifierParams,
  createClassifier,
  forwardStandardized,
  standardize,
} from "./classifier.ts";
import { accuracyOf, argmax, confusionMatrix } from "./metrics.ts";
import { shuffleInPlace, stratifiedSplit } from "./split.ts";

/** Training options; every field has a default (`DEFAULT_TRAIN_OPTIONS`). */
export interface TrainOptions {
  /** Classifier family (default "mlp"). */
  kind: ClassifierKind;
  /** Hidden units of the mlp (default 64; ignored by logreg). */
  hiddenSize: number;
  /** Maximum passes over the fitting set (default 200). */
  epochs: number;
  /** AdamW learning rate (default 0.003). */
  learningRate: number;
  /** Decoupled weight decay on weights, not biases (default 0.01). */
  weightDecay: number;
  /** Examples per update (default 32). */
  batchSize: number;
  /** Seed of every random choice (default 0). */
  seed: number;
  /** Share of each class held out for the reported accuracy, in [0, 1) (default 0.2). */
  holdout: number;
  /** Share of the rest used for early stopping, in [0, 1) (default 0.15). */
  validation: number;
  /** Epochs without a better validation loss before stopping (default 20). */
  patience: number;
  /** Decrease of the validation loss that counts as better (default 1e-4). */
  minDelta: number;
  /** Called after each epoch (progress output). */
  onEpoch?: (epoch: number, trainLoss: number, validationLoss: number) => void;
}

/** The defaults of `TrainOptions`. */
export const DEFAULT_TRAIN_OPTIONS: Readonly<TrainOptions> = Object.freeze({
  kind: "mlp",
  hiddenSize: 64,
  epochs: 200,
  learningRate: 0.003,
  weightDecay: 0.01,
  batchSize: 32,
  seed: 0,
  holdout: 0.2,
  validation: 0.15,
  patience: 20,
  minDelta: 1e-4,
});

/** What training did and how well the result classifies held-out examples. */
export interface TrainingReport {
  /** Classifier family. */
  kind: ClassifierKind;
  /** Hidden units (0 for logreg). */
  hiddenSize: number;
  /** Feature count. */
  inputSize: number;
  /** Class (expert) count. */
  numClasses: number;
  /** Examples per class in the whole set. */
  classCounts: number[];
  /** Sizes of the fitting, validation and held-out parts. */
  examples: { train: number; validation: number; holdout: number };
  /** Epochs run, and the epoch (1-based) whose weights were kept. */
  epochs: number;
  /** Epoch (1-based) whose weights were kept. */
  bestEpoch: number;
  /** Mean cross-entropy of the kept weights on the fitting part. */
  trainLoss: number;
  /** Mean cross-entropy of the kept weights on the validation part; null without one. */
  validationLoss: number | null;
  /** Accuracy of the kept weights on the fitting part. */
  trainAccuracy: number;
  /** Accuracy on the held-out part; null when `holdout` is 0. */
  holdoutAccuracy: number | null;
  /** Held-out confusion matrix [true][predicted]; null when `holdout` is 0. */
  confusion: number[][] | null;
  /** Seed used. */
  seed: number;
  /** AdamW learning rate used. */
  learningRate: number;
  /** Weight decay used. */
  weightDecay: number;
  /** Minibatch size used. */
  batchSize: number;
}

/** A trained classifier and its report. */
export interface TrainResult {
  /** The kept (best-validation) classifier. */
  params: ClassifierParams;
  /** How training went and the held-out scores. */
  report: TrainingReport;
}

function checkOptions(o: TrainOptions): void {
  const bad = (field: string, want: string, got: unknown) =>
    new RangeError(`Cannot train the router: ${field} must be ${want}, got ${got}`);
  if (!(CLASSIFIER_KINDS as readonly string[]).includes(o.kind)) {
    throw bad("kind", `one of ${CLASSIFIER_KINDS.join(", ")}`, JSON.stringify(o.kind));
  }
  const posInt = (field: keyof TrainOptions) => {
    const v = o[field];
    if (!Number.isInteger(v) || (v as number) < 1) throw bad(field, "an integer >= 1", v);
  };
  posInt("hiddenSize");
  posInt("epochs");
  posInt("batchSize");
  posInt("patience");
  if (!Number.isSafeInteger(o.seed)) throw bad("seed", "an integer", o.seed);
  if (!(o.learningRate > 0 && Number.isFinite(o.learningRate))) {
    throw bad("learningRate", "a finite number > 0", o.learningRate);
  }
  if (!(o.weightDecay >= 0 && Number.isFinite(o.weightDecay))) {
    throw bad("weightDecay", "a finite number >= 0", o.weightDecay);
  }
  if (!(o.minDelta >= 0 && Number.isFinite(o.minDelta))) {
    throw bad("minDelta", "a finite number >= 0", o.minDelta);
  }
  if (!(o.holdout >= 0 && o.holdout < 1)) throw bad("holdout", "in [0, 1)", o.holdout);
  if (!(o.validation >= 0 && o.validation < 1)) throw bad("validation", "in [0, 1)", o.validation);
}

function checkData(
  features: readonly Float32Array[],
  labels: readonly number[],
  T: number,
): number {
  if (!Number.isInteger(T) || T < 1) {
    throw new RangeError(`Cannot train the router: numClasses must be an integer >= 1, got ${T}`);
  }
  if (features.length === 0) throw new RangeError("Cannot train the router: no examples");
  if (features.length !== labels.length) {
    throw new RangeError(
      `Cannot train the router: ${features.length} feature vectors but ${labels.length} labels`,
    );
  }
  const D = features[0].length;
  if (D === 0) throw new RangeError("Cannot train the router: feature vectors are empty");
  const counts = new Array<number>(T).fill(0);
  features.forEach((f, n) => {
    if (f.length !== D) {
      throw new RangeError(
        `Cannot train the router: example ${n} has ${f.length} features, example 0 has ${D}`,
      );
    }
    for (let d = 0; d < D; d++) {
      if (!Number.isFinite(f[d])) {
        throw new RangeError(`Cannot train the router: feature ${d} of example ${n} is ${f[d]}`);
      }
    }
    const y = labels[n];
    if (!Number.isInteger(y) || y < 0 || y >= T) {
      throw new RangeError(
        `Cannot train the router: label ${y} of example ${n} is not in 0..${T - 1}`,
      );
    }
    counts[y]++;
  });
  const missing = counts.findIndex((c) => c === 0);
  if (missing >= 0) {
    throw new RangeError(
      `Cannot train the router: class ${missing} has no examples; give every expert labelled prompts`,
    );
  }
  return D;
}

/** Per-feature mean and std over `indices`; a constant feature gets std 1. */
function featureStats(
  features: readonly Float32Array[],
  indices: readonly number[],
  D: number,
): { mean: Float32Array; std: Float32Array } {
  const sum = new Float64Array(D), sq = new Float64Array(D);
  for (const n of indices) {
    const f = features[n];
    for (let d = 0; d < D; d++) {
      sum[d] += f[d];
      sq[d] += f[d] * f[d];
    }
  }
  const mean = new Float32Array(D), std = new Float32Array(D);
  for (let d = 0; d < D; d++) {
    const m = sum[d] / indices.length;
    const s = Math.sqrt(Math.max(0, sq[d] / indices.length - m * m));
    mean[d] = m;
    std[d] = s > 1e-6 * (Math.abs(m) + 1) ? s : 1;
  }
  return { mean, std };
}

/** Mean loss and predictions of `params` on the standardised examples `indices`. */
function evaluate(
  params: ClassifierParams,
  inputs: readonly Float32Array[],
  labels: readonly number[],
  indices: readonly number[],
): { loss: number; predicted: number[] } {
  const { act, pre } = allocActivations(params);
  const probs = new Float64Array(params.numClasses);
  let loss = 0;
  const predicted = indices.map((n) => {
    const logits = forwardStandardized(params, inputs[n], act, pre);
    loss += crossEntropy(logits, labels[n], probs);
    return argmax(logits);
  });
  return { loss: indices.length ? loss / indices.length : NaN, predicted };
}

function copyParams(p: ClassifierParams): ClassifierParams {
  return {
    ...p,
    layers: p.layers.map((l) => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() })),
  };
}

/**
 * Train a classifier mapping `features[n]` to `labels[n]` (0..numClasses-1).
 * Throws RangeError on inconsistent data or options (naming the field).
 */
export function trainClassifier(
  features: readonly Float32Array[],
  labels: readonly number[],
  numClasses: number,
  options: Partial<TrainOptions> = {},
): TrainResult {
  const o: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, ...options };
  checkOptions(o);
  const D = checkData(features, labels, numClasses);
  const rng = createRng(o.seed);

  const { keep, held } = stratifiedSplit(labels, o.holdout, rng);
  const { keep: fit, held: val } = stratifiedSplit(labels, o.validation, rng, keep);
  const params = createClassifier(o.kind, D, o.hiddenSize, numClasses, rng);
  Object.assign(params, featureStats(features, fit, D));
  const inputs = features.map((f) => standardize(params, f));

  const grads = allocGradients(params), scratch = allocScratch(params, o.batchSize);
  const adam = new AdamW(params, o);
  const monitor = val.length > 0 ? val : fit;
  const order = [...fit];
  let best = { loss: Infinity, epoch: 0, params: copyParams(params) };
  let epoch = 0;
  while (epoch < o.epochs && epoch - best.epoch < o.patience) {
    epoch++;
    shuffleInPlace(order, rng);
    let trainLoss = 0;
    for (let s = 0; s < order.length; s += o.batchSize) {
      const batch = order.slice(s, s + o.batchSize);
      trainLoss += batchGradients(params, inputs, labels, batch, grads, scratch) * batch.length;
      adam.step(grads);
    }
    const { loss } = evaluate(params, inputs, labels, monitor);
    o.onEpoch?.(epoch, trainLoss / order.length, loss);
    if (loss < best.loss - o.minDelta) best = { loss, epoch, params: copyParams(params) };
  }

  const kept = best.params;
  const train = evaluate(kept, inputs, labels, fit);
  const trainConfusion = confusionMatrix(fit.map((n) => labels[n]), train.predicted, numClasses);
  const holdout = held.length > 0 ? evaluate(kept, inputs, labels, held) : null;
  const confusion = holdout
    ? confusionMatrix(held.map((n) => labels[n]), holdout.predicted, numClasses)
    : null;
  const classCounts = new Array<number>(numClasses).fill(0);
  for (const y of labels) classCounts[y]++;
  return {
    params: kept,
    report: {
      kind: o.kind,
      hiddenSize: kept.hiddenSize,
      inputSize: D,
      numClasses,
      classCounts,
      examples: { train: fit.length, validation: val.length, holdout: held.length },
      epochs: epoch,
      bestEpoch: best.epoch,
      trainLoss: train.loss,
      validationLoss: val.length > 0 ? best.loss : null,
      trainAccuracy: accuracyOf(trainConfusion),
      holdoutAccuracy: confusion ? accuracyOf(confusion) : null,
      confusion,
      seed: o.seed,
      learningRate: o.learningRate,
      weightDecay: o.weightDecay,
      batchSize: o.batchSize,
    },
  };
}
