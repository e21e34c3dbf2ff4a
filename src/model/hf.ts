/**
 * Load a Hugging Face checkpoint folder (config.json, safetensors, tokenizer
 * files) from any storage onto a backend, with its tokenizer.
 */
export { type HfCheckpoint, openHfCheckpoint, readJson } from "./checkpoint.ts";
import type { Backend } from "../backends/backend.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { openHfCheckpoint } from "./checkpoint.ts";
import type { ModelConfig } from "./config.ts";
import { Transformer } from "./forward.ts";
import { loadModelWeights } from "./weights.ts";

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
