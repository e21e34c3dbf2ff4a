/**
 * Opening and validating the models of a merge, before any weight is read:
 * same architecture, same tensor names and shapes, float dtypes, and the
 * same tokenizer across the base and every expert. Errors name the model and
 * the field or tensor that differs.
 */
import { IncompatibleModelsError } from "../errors.ts";
import type { ModelConfig } from "../model/config.ts";
import { type HfCheckpoint, openHfCheckpoint } from "../model/hf.ts";
import { sha256Hex } from "../bundle/hash.ts";
import { openStorage } from "../storage/open.ts";
import { unitOfTensor } from "./units.ts";

/** A model taking part in a merge. */
export interface MergeModel {
  /** "base" or the expert's name. */
  name: string;
  /** Where it was opened from. */
  location: string;
  hf: HfCheckpoint;
}

/** The validated inputs of a merge. */
export interface MergeInputs {
  base: MergeModel;
  experts: MergeModel[];
  config: ModelConfig;
  /** Tensor names in checkpoint order. */
  tensorNames: string[];
  /** Bytes of one model as stored (sum of its tensors). */
  modelBytes: number;
}

const CONFIG_FIELDS: (keyof ModelConfig)[] = [
  "modelType",
  "hiddenSize",
  "numLayers",
  "numHeads",
  "numKvHeads",
  "headDim",
  "intermediateSize",
  "vocabSize",
  "tieWordEmbeddings",
  "attentionBias",
];

/** Expert names become file names and API model ids: keep them simple. */
export function checkExpertName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    throw new TypeError(
      `Cannot use expert name '${name}': use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit`,
    );
  }
  return name;
}

async function tokenizerFingerprint(m: MergeModel): Promise<string> {
  const s = m.hf.storage;
  if (!(await s.exists("tokenizer.json"))) {
    throw new IncompatibleModelsError(
      `Cannot merge: model '${m.name}' (${m.location}) has no tokenizer.json; every model needs its tokenizer`,
    );
  }
  const json = JSON.parse(new TextDecoder().decode(await s.readAll("tokenizer.json")));
  // Vocabulary, merges and special tokens decide the ids; formatting does not.
  return sha256Hex(new TextEncoder().encode(JSON.stringify([json.model, json.added_tokens])));
}

/** Open base and experts and check that they can be merged. */
export async function openMergeInputs(
  baseDir: string,
  experts: { name: string; dir: string }[],
): Promise<MergeInputs> {
  if (experts.length < 2) {
    throw new TypeError(
      `Cannot merge: ${experts.length} expert(s) given; give at least two with --expert NAME=DIR`,
    );
  }
  const seen = new Set<string>();
  for (const e of experts) {
    checkExpertName(e.name);
    if (seen.has(e.name)) {
      throw new TypeError(`Cannot merge: expert name '${e.name}' is given twice`);
    }
    seen.add(e.name);
  }
  const open = async (name: string, dir: string): Promise<MergeModel> => {
    try {
      return { name, location: dir, hf: await openHfCheckpoint(openStorage(dir)) };
    } catch (e) {
      throw new IncompatibleModelsError(
        `Cannot open model '${name}' at ${dir}: ${(e as Error).message}`,
      );
    }
  };
  const base = await open("base", baseDir);
  // Settle every open before reporting a failure: no read is left in flight.
  const opened = await Promise.allSettled(experts.map((e) => open(e.name, e.dir)));
  const failed = opened.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  const models = opened.map((r) => (r as PromiseFulfilledResult<MergeModel>).value);

  const c = base.hf.config;
  for (const m of models) {
    for (const f of CONFIG_FIELDS) {
      if (m.hf.config[f] !== c[f]) {
        throw new IncompatibleModelsError(
          `Cannot merge: expert '${m.name}' has ${f} = ${m.hf.config[f]} but the base has ${
            c[f]
          }; experts must be fine-tunes of the base`,
        );
      }
    }
  }
  const tensorNames = [...base.hf.checkpoint.tensors.keys()];
  let modelBytes = 0;
  for (const name of tensorNames) {
    unitOfTensor(name); // rejects names outside the Llama layout early
    const b = base.hf.checkpoint.info(name);
    modelBytes += b.length;
    for (const m of models) {
      if (!m.hf.checkpoint.has(name)) {
        throw new IncompatibleModelsError(
          `Cannot merge: expert '${m.name}' has no tensor '${name}', which the base has`,
        );
      }
      const t = m.hf.checkpoint.info(name);
      if (t.shape.join("x") !== b.shape.join("x")) {
        throw new IncompatibleModelsError(
          `Cannot merge: tensor '${name}' is [${t.shape}] in expert '${m.name}' but [${b.shape}] in the base`,
        );
      }
    }
  }
  for (const m of models) {
    for (const name of m.hf.checkpoint.tensors.keys()) {
      if (!base.hf.checkpoint.has(name)) {
        throw new IncompatibleModelsError(
          `Cannot merge: expert '${m.name}' has tensor '${name}', which the base lacks`,
        );
      }
    }
  }
  const baseTok = await tokenizerFingerprint(base);
  for (const m of models) {
    if (await tokenizerFingerprint(m) !== baseTok) {
      throw new IncompatibleModelsError(
        `Cannot merge: expert '${m.name}' has a different tokenizer (vocabulary or merges) than the base`,
      );
    }
  }
  return { base, experts: models, config: c, tensorNames, modelBytes };
}
