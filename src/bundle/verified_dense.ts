/** Dense weights of a bundle, each tensor read verified against the manifest's sha256. */
import { BundleFormatError } from "../errors.ts";
import type { TensorSource } from "../model/weights.ts";
import type { Checkpoint } from "../safetensors/checkpoint.ts";
import type { ByteStorage } from "../storage/storage.ts";
import type { BundleManifest } from "./manifest.ts";
import { readVerified } from "./reader.ts";

/** Checkpoint reads verified against the manifest's per-tensor sha256. */
export class VerifiedDense implements TensorSource {
  readonly #hashes: Map<string, { sha256: string; offset: number; length: number }>;
  constructor(readonly ckpt: Checkpoint, readonly storage: ByteStorage, manifest: BundleManifest) {
    this.#hashes = new Map(manifest.dense.tensors.map((t) => [t.name, t]));
  }
  info(name: string) {
    return this.ckpt.info(name);
  }
  has(name: string) {
    return this.ckpt.has(name);
  }
  read(name: string): Promise<Uint8Array> {
    const h = this.#hashes.get(name);
    const i = this.ckpt.info(name);
    if (!h || h.offset !== i.offset || h.length !== i.length) {
      throw new BundleFormatError(
        `Cannot load dense tensor '${name}': model.safetensors and manifest.json disagree about it; the bundle is corrupt`,
      );
    }
    return readVerified(
      this.storage,
      i.file,
      i.offset,
      i.length,
      h.sha256,
      `dense tensor '${name}'`,
    );
  }
}
