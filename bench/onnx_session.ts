/**
 * Runs the ONNX decoder of onnx_model.ts with onnxruntime-web: builds the rotary tables and
 * causal mask for each step, feeds the past keys/values and keeps the present ones for the
 * next step. Works with either onnxruntime-web entry point (wasm, or webgpu), passed in.
 */
import type * as OrtModule from "onnxruntime-web";
import type { ModelConfig } from "../src/model/config.ts";
import { kvNames } from "./onnx_model.ts";
import type { OnnxModelBytes } from "./onnx_graph.ts";

/** The onnxruntime-web module (either entry point). */
export type Ort = typeof OrtModule;

/** Value of masked attention positions (softmax weight exactly 0). */
const MASKED = -1e9;

/** Per-sequence decoder state: the cached keys/values of every layer. */
export interface OnnxDecoderState {
  /** Positions already cached. */
  length: number;
  past: Map<string, OrtModule.Tensor>;
}

/** Options of `OnnxDecoder.create`. */
export interface OnnxDecoderSessionOptions {
  executionProviders?: string[];
  /** Keep present keys/values on the device between steps (webgpu). */
  kvOnDevice?: boolean;
}

/** rows [S, headDim] of cos and sin for positions start..start+S-1 (HF rotate-half layout). */
export function ropeTables(
  c: ModelConfig,
  start: number,
  count: number,
): { cos: Float32Array; sin: Float32Array } {
  const d = c.headDim, half = d / 2;
  const cos = new Float32Array(count * d), sin = new Float32Array(count * d);
  for (let s = 0; s < count; s++) {
    for (let i = 0; i < half; i++) {
      const invFreq = Math.fround(1 / Math.pow(c.ropeTheta, (2 * i) / d));
      const angle = Math.fround((start + s) * invFreq);
      cos[s * d + i] = cos[s * d + i + half] = Math.cos(angle);
      sin[s * d + i] = sin[s * d + i + half] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** Prompt ids of the decode benchmarks (the same formula as bench/decode.ts). */
export function benchPromptIds(vocab: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + 11) % vocab);
}

/** Token id fed at decode step `t` of the benchmarks (as bench/decode.ts, batch 1). */
export function benchDecodeId(t: number, vocab: number): number {
  return (t * 31) % vocab;
}

/** Additive causal mask [count, start + count]: row s sees positions <= start + s. */
export function causalMask(start: number, count: number): Float32Array {
  const t = start + count;
  const m = new Float32Array(count * t);
  for (let s = 0; s < count; s++) m.fill(MASKED, s * t + start + s + 1, (s + 1) * t);
  return m;
}

/** An onnxruntime-web session of the decoder. */
export class OnnxDecoder {
  private constructor(
    readonly ort: Ort,
    readonly session: OrtModule.InferenceSession,
    readonly config: ModelConfig,
    readonly kvOnDevice: boolean,
  ) {}

  /** Creates a session (graph optimizations on) from the model bytes. */
  static async create(
    ort: Ort,
    bytes: OnnxModelBytes,
    config: ModelConfig,
    opts: OnnxDecoderSessionOptions = {},
  ): Promise<OnnxDecoder> {
    const location: Record<string, "gpu-buffer"> = {};
    if (opts.kvOnDevice) {
      for (let l = 0; l < config.numLayers; l++) {
        const n = kvNames(l);
        location[n.presentKey] = location[n.presentValue] = "gpu-buffer";
      }
    }
    const session = await ort.InferenceSession.create(bytes.model, {
      executionProviders: opts.executionProviders ?? ["wasm"],
      graphOptimizationLevel: "all",
      externalData: bytes.externalData.map((f) => ({ path: f.path, data: f.data })),
      ...(opts.kvOnDevice ? { preferredOutputLocation: location } : {}),
    });
    return new OnnxDecoder(ort, session, config, opts.kvOnDevice ?? false);
  }

  /** A state with an empty cache. */
  newState(): OnnxDecoderState {
    const c = this.config, past = new Map<string, OrtModule.Tensor>();
    for (let l = 0; l < c.numLayers; l++) {
      const n = kvNames(l);
      for (const name of [n.pastKey, n.pastValue]) {
        past.set(
          name,
          new this.ort.Tensor("float32", new Float32Array(0), [c.numKvHeads, 0, c.headDim]),
        );
      }
    }
    return { length: 0, past };
  }

  /** Runs `ids` after the cached positions of `state`; returns the last token's logits. */
  async step(ids: ArrayLike<number>, state: OnnxDecoderState): Promise<Float32Array> {
    if (ids.length === 0) throw new RangeError("Cannot run a decoder step: no token ids");
    const c = this.config, T = this.ort.Tensor, n = ids.length;
    const { cos, sin } = ropeTables(c, state.length, n);
    const feeds: Record<string, OrtModule.Tensor> = {
      input_ids: new T("int64", BigInt64Array.from(Array.from(ids, (i) => BigInt(i))), [n]),
      cos: new T("float32", cos, [n, c.headDim]),
      sin: new T("float32", sin, [n, c.headDim]),
      attention_mask: new T("float32", causalMask(state.length, n), [n, state.length + n]),
    };
    for (const [name, t] of state.past) feeds[name] = t;
    const out = await this.session.run(feeds);
    for (let l = 0; l < c.numLayers; l++) {
      const k = kvNames(l);
      for (const [past, present] of [[k.pastKey, k.presentKey], [k.pastValue, k.presentValue]]) {
        const old = state.past.get(past);
        if (this.kvOnDevice && old && old.location === "gpu-buffer") old.dispose();
        state.past.set(past, out[present]);
      }
    }
    state.length += n;
    const logits = out.logits;
    const data = logits.location === "cpu"
      ? logits.data as Float32Array
      : await logits.getData(true) as Float32Array;
    return data.slice(0, c.vocabSize);
  }

  /** Frees device-resident cache tensors of `state`. */
  disposeState(state: OnnxDecoderState): void {
    for (const t of state.past.values()) if (t.location === "gpu-buffer") t.dispose();
    state.past.clear();
  }

  /** Releases the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
