/**
 * The training report as it appears in a router header and in merge reports:
 * snake_case keys, `null` for what was not measured. `parseReport` checks
 * every field so a corrupt header is caught when the bundle is opened.
 */
import { CLASSIFIER_KINDS } from "./classifier.ts";
import type { TrainingReport } from "./train.ts";

/** The report with snake_case keys (JSON-ready). */
export function reportToJson(r: TrainingReport): Record<string, unknown> {
  return {
    kind: r.kind,
    hidden_size: r.hiddenSize,
    input_size: r.inputSize,
    num_classes: r.numClasses,
    class_counts: r.classCounts,
    examples: { ...r.examples },
    epochs: r.epochs,
    best_epoch: r.bestEpoch,
    train_loss: r.trainLoss,
    validation_loss: r.validationLoss,
    train_accuracy: r.trainAccuracy,
    holdout_accuracy: r.holdoutAccuracy,
    confusion: r.confusion,
    seed: r.seed,
    learning_rate: r.learningRate,
    weight_decay: r.weightDecay,
    batch_size: r.batchSize,
  };
}

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;

/**
 * Parse a report written by `reportToJson`. `fail(why)` builds the error
 * thrown for a malformed field.
 */
export function parseReport(json: unknown, fail: (why: string) => Error): TrainingReport {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw fail("expected a JSON object");
  }
  const r = json as Record<string, unknown>;
  const get = <T>(key: string, ok: (v: unknown) => boolean, want: string): T => {
    if (!ok(r[key])) throw fail(`'${key}' must be ${want}, got ${JSON.stringify(r[key])}`);
    return r[key] as T;
  };
  const orNull = (ok: (v: unknown) => boolean) => (v: unknown) => v === null || ok(v);
  const T = get<number>("num_classes", isCount, "a count");
  const counts = (v: unknown) => Array.isArray(v) && v.length === T && v.every(isCount);
  const matrix = (v: unknown) => Array.isArray(v) && v.length === T && v.every(counts);
  const ex = get<Record<string, unknown>>(
    "examples",
    (v) =>
      typeof v === "object" && v !== null &&
      ["train", "validation", "holdout"].every((k) => isCount((v as Record<string, unknown>)[k])),
    "{train, validation, holdout} counts",
  );
  return {
    kind: get("kind", (v) => (CLASSIFIER_KINDS as readonly unknown[]).includes(v), "mlp or logreg"),
    hiddenSize: get("hidden_size", isCount, "a count"),
    inputSize: get("input_size", isCount, "a count"),
    numClasses: T,
    classCounts: get("class_counts", counts, `${T} counts`),
    examples: {
      train: ex.train as number,
      validation: ex.validation as number,
      holdout: ex.holdout as number,
    },
    epochs: get("epochs", isCount, "a count"),
    bestEpoch: get("best_epoch", isCount, "a count"),
    trainLoss: get("train_loss", isNum, "a number"),
    validationLoss: get("validation_loss", orNull(isNum), "a number or null"),
    trainAccuracy: get("train_accuracy", isNum, "a number"),
    holdoutAccuracy: get("holdout_accuracy", orNull(isNum), "a number or null"),
    confusion: get("confusion", orNull(matrix), `a ${T}x${T} matrix of counts or null`),
    seed: get("seed", Number.isSafeInteger, "an integer"),
    learningRate: get("learning_rate", isNum, "a number"),
    weightDecay: get("weight_decay", isNum, "a number"),
    batchSize: get("batch_size", isCount, "a count"),
  };
}
