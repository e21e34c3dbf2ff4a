/**
 * Open a Hugging Face checkpoint folder (config.json, safetensors, tokenizer
 * files) from any storage and load it onto a backend.
 */
import type { Backend } from "../backends/backend.ts";
import { BundleFormatError } from "../errors.ts";
import { Checkpoint } from "../safetensors/checkpoint.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { type ModelConfig, parseHfConfig } from "./config.ts";
import { Transformer } from "./forward.ts";
import { loadModelWeights } from "./weights.ts";

/** A checkpoint opened but not yet loaded onto a backend. */
export interface HfCheckpoint {
  config: ModelConfig;
  /** The raw config.json object. */
  rawConfig: Record<string, unknown>;
  checkpoint: Checkpoint;
  storage: ByteStorage;
}

/** Read and parse a JSON file from storage, naming it in errors. */
export async function readJson(storage: ByteStorage, path: string): Promise<unknown> {
  const bytes = await storage.readAll(path);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new BundleFormatError(
      `Cannot parse ${path} in ${storage.location}: ${(e as Error).message}`,
    );
  }
}

/** Open config.json and the safetensors index of a checkpoint (no weights read). */
export async function openHfCheckpoint(storage: ByteStorage): Promise<HfCheckpoint> {
  const rawConfig = await readJson(storage, "config.json") as Record<string, unknown>;
  const config = parseHfConfig(rawConfig, `${storage.location}/config.json`);
  const checkpoint = await Checkpoint.open(storage);
  return { config, rawConfig, checkpoint, storage };
}

/** A model loaded on a backend, with its tokenizer. */
export interface LoadedModel {
  config: ModelConfig;
  model: Transformer;
  tokenizer: TextTokenizer;
}

/** Open a checkpoint and load its weights and tokenizer. */
export async function loadHfModel(storage: ByteStorage, backend: Backend): Promise<LoadedModel> {
  const hf = await openHfCheckpoint(storage);
  const tokenizer = await TextTokenizer.load(storage);
  const weights = await loadModelWeights(backend, hf.config, hf.checkpoint);
  return { config: hf.config, model: new Transformer(backend, hf.config, weights), tokenizer };
}
