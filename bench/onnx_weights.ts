/**
 * A random-weight checkpoint in memory, by Hugging Face tensor name: bf16 values from a
 * per-tensor seeded generator, regenerated on every read (nothing is held, so a 0.5B model
 * costs only the copy being loaded). It serves both the Mediator loaders (`TensorSource`:
 * raw bf16 bytes) and the ONNX builder (`readF32`: the same values widened exactly), so every
 * runtime in a comparison computes with the same weights.
 */
import type { ModelConfig } from "../src/model/config.ts";
import {
  biasTensorName,
  layerTensorName,
  PROJECTIONS,
  projectionShape,
  type TensorSource,
} from "../src/model/weights.ts";
import type { DType } from "../src/tensor/dtype.ts";
import type { F32WeightSource } from "./onnx_model.ts";

interface Spec {
  shape: number[];
  /** Values are uniform in [center - spread, center + spread]. */
  center: number;
  spread: number;
  seed: number;
}

function hashName(name: string, seed: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h || 1;
}

/** Seeded random bf16 weights of a model configuration, under Hugging Face names. */
export class RandomCheckpoint implements TensorSource, F32WeightSource {
  #specs = new Map<string, Spec>();

  /**
   * @param config the model shape
   * @param seed changes every tensor
   */
  constructor(readonly config: ModelConfig, readonly seed = 1) {
    const c = config,
      add = (name: string, shape: number[], center: number, spread: number) =>
        this.#specs.set(name, { shape, center, spread, seed: hashName(name, seed) });
    add("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize], 0, 0.5);
    for (let l = 0; l < c.numLayers; l++) {
      for (const p of PROJECTIONS) {
        const [rows, cols] = projectionShape(c, p);
        add(layerTensorName(l, p), [rows, cols], 0, 1.7 / Math.sqrt(cols));
      }
      if (c.attentionBias) {
        for (const p of ["q", "k", "v"] as const) {
          add(biasTensorName(l, p), [projectionShape(c, p)[0]], 0, 0.1);
        }
      }
      add(layerTensorName(l, "inputNorm"), [c.hiddenSize], 1, 0.2);
      add(layerTensorName(l, "postNorm"), [c.hiddenSize], 1, 0.2);
    }
    add("model.norm.weight", [c.hiddenSize], 1, 0.2);
    if (!c.tieWordEmbeddings) add("lm_head.weight", [c.vocabSize, c.hiddenSize], 0, 0.5);
  }

  /** Every tensor name. */
  names(): string[] {
    return [...this.#specs.keys()];
  }

  #spec(name: string): Spec {
    const s = this.#specs.get(name);
    if (!s) {
      throw new RangeError(
        `Cannot read tensor '${name}': the random checkpoint has no such tensor`,
      );
    }
    return s;
  }

  /** @inheritdoc */
  has(name: string): boolean {
    return this.#specs.has(name);
  }

  /** @inheritdoc */
  info(name: string): { dtype: DType; shape: number[] } {
    return { dtype: "bf16", shape: [...this.#spec(name).shape] };
  }

  /** The tensor's bf16 bits. */
  bits(name: string): Uint16Array {
    const s = this.#spec(name);
    const n = s.shape.reduce((a, b) => a * b, 1);
    const out = new Uint16Array(n);
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    let x = s.seed;
    const scale = (2 * s.spread) / 4294967296;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      f[0] = s.center - s.spread + (x >>> 0) * scale;
      const b = u[0];
      out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16; // round to nearest even
    }
    return out;
  }

  /** @inheritdoc */
  read(name: string): Promise<Uint8Array> {
    const b = this.bits(name);
    return Promise.resolve(new Uint8Array(b.buffer));
  }

  /** The same values as `read`, widened to f32 (exactly). */
  readF32(name: string): Promise<Float32Array> {
    const b = this.bits(name);
    const u = new Uint32Array(b.length);
    for (let i = 0; i < b.length; i++) u[i] = b[i] << 16;
    return Promise.resolve(new Float32Array(u.buffer));
  }
}
