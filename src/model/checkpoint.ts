/**
 * Open a Hugging Face checkpoint's config.json and safetensors index from any
 * storage, without reading weights or the tokenizer.
 */
import { BundleFormatError } from "../errors.ts";
import { Checkpoint } from "../safetensors/checkpoint.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { type ModelConfig, parseHfConfig } from "./config.ts";

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
