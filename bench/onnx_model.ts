/**
 * The Llama-family decoder (Llama, Qwen2, Mistral) as an ONNX graph built in code, so that
 * onnxruntime-web can run the same model as the Mediator backends. Standard ops only
 * (opset 17): Gather, Pow/ReduceMean/Add/Sqrt/Div/Mul (RMSNorm), MatMul (+ Add for the
 * q/k/v bias), Reshape/Transpose, Slice/Concat/Mul/Add (rotary embedding from cos/sin
 * inputs), Concat (KV cache), Unsqueeze/Expand (GQA), Softmax, Sigmoid, Gemm (tied lm_head).
 * Batch 1, `S` new tokens after `P` cached positions:
 *
 *   inputs   input_ids int64 [S]; cos, sin f32 [S, headDim] (HF layout: the half-dim table
 *            repeated twice); attention_mask f32 [S, P + S] (0 = visible, large negative =
 *            masked); past.{l}.key / past.{l}.value f32 [kvHeads, P, headDim]
 *   outputs  logits f32 [1, vocab] (last new token only); present.{l}.key/value
 *            f32 [kvHeads, P + S, headDim]
 *
 * Weights are f32 initializers; linear weights are stored transposed ([in, out], MatMul's
 * layout). A tied lm_head reuses the embedding table through Gemm(transB = 1).
 */
import type { ModelConfig } from "../src/model/config.ts";
import { biasTensorName, layerTensorName, projectionShape } from "../src/model/weights.ts";
import { ONNX_FLOAT, ONNX_INT64, OnnxGraph, type OnnxModelBytes } from "./onnx_graph.ts";

/** Where f32 weights come from, by Hugging Face tensor name (a Checkpoint fits). */
export interface F32WeightSource {
  has(name: string): boolean;
  readF32(name: string): Promise<Float32Array>;
}

/** Options of `buildOnnxDecoder`. */
export interface OnnxDecoderOptions {
  /** Initializers of at least this many bytes go to external data (default: all inline). */
  externalMinBytes?: number;
}

/** Opset of the generated model. */
export const ONNX_DECODER_OPSET = 17;

/** Names of the per-layer cache inputs and outputs. */
export function kvNames(layer: number): {
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
} {
  return {
    pastKey: `past.${layer}.key`,
    pastValue: `past.${layer}.value`,
    presentKey: `present.${layer}.key`,
    presentValue: `present.${layer}.value`,
  };
}

/** [rows, cols] row-major -> [cols, rows] row-major, in cache-friendly blocks. */
export function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  if (w.length !== rows * cols) {
    throw new RangeError(`Cannot transpose: ${w.length} values for shape [${rows}, ${cols}]`);
  }
  const out = new Float32Array(rows * cols);
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        const src = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = w[src + c];
      }
    }
  }
  return out;
}

/** Graph pieces shared by every layer. */
class DecoderBuilder {
  readonly g: OnnxGraph;
  readonly c: ModelConfig;
  readonly half: number;
  readonly eps: string;
  readonly two: string;
  readonly negOne: string;

  constructor(c: ModelConfig, opts: OnnxDecoderOptions) {
    this.c = c;
    this.g = new OnnxGraph(opts.externalMinBytes ?? Infinity);
    this.half = c.headDim / 2;
    this.eps = this.g.floats("eps", [], [c.rmsNormEps]);
    this.two = this.g.floats("two", [], [2]);
    this.negOne = this.g.floats("neg_one", [], [-1]);
  }

  /** RMSNorm over the last axis of x [S, H] with weight `w`. */
  rmsNorm(x: string, w: string): string {
    const g = this.g;
    const ms = g.node("ReduceMean", [g.node("Pow", [x, this.two])], { axes: [1], keepdims: 1 });
    const rms = g.node("Sqrt", [g.node("Add", [ms, this.eps])]);
    return g.node("Mul", [g.node("Div", [x, rms]), w]);
  }

  /** x [heads, S, D] rotated by the cos/sin tables (rotate-half convention). */
  rope(x: string): string {
    const g = this.g, d = this.c.headDim;
    const axis = g.ints("axis2", [2]);
    const x1 = g.node("Slice", [x, g.ints("s0", [0]), g.ints("e_half", [this.half]), axis]);
    const x2 = g.node("Slice", [x, g.ints("s_half", [this.half]), g.ints("e_d", [d]), axis]);
    const rotated = g.node("Concat", [g.node("Mul", [x2, this.negOne]), x1], { axis: 2 });
    return g.node("Add", [g.node("Mul", [x, "cos"]), g.node("Mul", [rotated, "sin"])]);
  }

  /** x [S, heads * D] -> [heads, S, D]. */
  heads(x: string, n: number): string {
    const g = this.g;
    const r = g.node("Reshape", [x, g.ints("shape", [-1, n, this.c.headDim])]);
    return g.node("Transpose", [r], { perm: [1, 0, 2] });
  }

  /** kv [kvHeads, T, D] repeated to [heads, T, D] (head h reads kv head h / group). */
  repeatKv(kv: string): string {
    const g = this.g, c = this.c, group = c.numHeads / c.numKvHeads;
    if (group === 1) return kv;
    const u = g.node("Unsqueeze", [kv, g.ints("axes", [1])]);
    const e = g.node("Expand", [u, g.ints("expand", [1, group, 1, 1])]);
    return g.node("Reshape", [e, g.ints("shape", [c.numHeads, -1, c.headDim])]);
  }
}

/** An f32 vector initializer (norm weight or bias) under its checkpoint name. */
async function vector(g: OnnxGraph, src: F32WeightSource, name: string, n: number) {
  return g.init(name, [n], await src.readF32(name));
}

async function linear(
  b: DecoderBuilder,
  src: F32WeightSource,
  x: string,
  layer: number,
  proj: "q" | "k" | "v" | "o" | "gate" | "up" | "down",
): Promise<string> {
  const [rows, cols] = projectionShape(b.c, proj);
  const name = layerTensorName(layer, proj);
  const w = b.g.init(name, [cols, rows], transpose(await src.readF32(name), rows, cols));
  let y = b.g.node("MatMul", [x, w]);
  if (b.c.attentionBias && (proj === "q" || proj === "k" || proj === "v")) {
    const bn = biasTensorName(layer, proj);
    y = b.g.node("Add", [y, await vector(b.g, src, bn, rows)]);
  }
  return y;
}

async function decoderLayer(
  b: DecoderBuilder,
  src: F32WeightSource,
  x: string,
  l: number,
): Promise<string> {
  const g = b.g, c = b.c, names = kvNames(l);
  const norm1 = await vector(g, src, layerTensorName(l, "inputNorm"), c.hiddenSize);
  const h = b.rmsNorm(x, norm1);
  const q = b.rope(b.heads(await linear(b, src, h, l, "q"), c.numHeads));
  const k = b.rope(b.heads(await linear(b, src, h, l, "k"), c.numKvHeads));
  const v = b.heads(await linear(b, src, h, l, "v"), c.numKvHeads);
  g.node("Concat", [names.pastKey, k], { axis: 1 }, [names.presentKey]);
  g.node("Concat", [names.pastValue, v], { axis: 1 }, [names.presentValue]);
  const qs = g.node("Mul", [q, g.floats("scale", [], [1 / Math.sqrt(c.headDim)])]);
  const kt = g.node("Transpose", [b.repeatKv(names.presentKey)], { perm: [0, 2, 1] });
  const scores = g.node("Add", [g.node("MatMul", [qs, kt]), "attention_mask"]);
  const probs = g.node("Softmax", [scores], { axis: 2 });
  const ctx = g.node("MatMul", [probs, b.repeatKv(names.presentValue)]);
  const merged = g.node("Reshape", [
    g.node("Transpose", [ctx], { perm: [1, 0, 2] }),
    g.ints("shape", [-1, c.numHeads * c.headDim]),
  ]);
  const x1 = g.node("Add", [x, await linear(b, src, merged, l, "o")]);
  const norm2 = await vector(g, src, layerTensorName(l, "postNorm"), c.hiddenSize);
  const h2 = b.rmsNorm(x1, norm2);
  const gate = await linear(b, src, h2, l, "gate");
  const act = g.node("Mul", [
    g.node("Mul", [gate, g.node("Sigmoid", [gate])]),
    await linear(b, src, h2, l, "up"),
  ]);
  return g.node("Add", [x1, await linear(b, src, act, l, "down")]);
}

/**
 * Builds the decoder of `c` as an ONNX model with weights from `src` (Hugging Face names
 * and layouts). Reads each tensor once; transposed copies of the linear weights are held
 * until the model is serialized.
 */
export async function buildOnnxDecoder(
  c: ModelConfig,
  src: F32WeightSource,
  opts: OnnxDecoderOptions = {},
): Promise<OnnxModelBytes> {
  if (c.headDim % 2 !== 0 || c.numHeads % c.numKvHeads !== 0) {
    throw new RangeError(
      `Cannot build the ONNX decoder: headDim ${c.headDim} must be even and heads ` +
        `${c.numHeads} a multiple of KV heads ${c.numKvHeads}`,
    );
  }
  const b = new DecoderBuilder(c, opts);
  const g = b.g;
  g.input("input_ids", ONNX_INT64, ["S"]);
  g.input("cos", ONNX_FLOAT, ["S", c.headDim]);
  g.input("sin", ONNX_FLOAT, ["S", c.headDim]);
  g.input("attention_mask", ONNX_FLOAT, ["S", "T"]);
  for (let l = 0; l < c.numLayers; l++) {
    const n = kvNames(l);
    g.input(n.pastKey, ONNX_FLOAT, [c.numKvHeads, "P", c.headDim]);
    g.input(n.pastValue, ONNX_FLOAT, [c.numKvHeads, "P", c.headDim]);
  }
  const embedName = "model.embed_tokens.weight";
  const embed = g.init(embedName, [c.vocabSize, c.hiddenSize], await src.readF32(embedName));
  let x = g.node("Gather", [embed, "input_ids"], { axis: 0 });
  for (let l = 0; l < c.numLayers; l++) x = await decoderLayer(b, src, x, l);
  const last = g.node("Slice", [
    x,
    g.ints("s_last", [-1]),
    g.ints("e_last", [2 ** 31 - 1]),
    g.ints("axis0", [0]),
  ]);
  const final = b.rmsNorm(last, await vector(g, src, "model.norm.weight", c.hiddenSize));
  if (c.tieWordEmbeddings || !src.has("lm_head.weight")) {
    g.node("Gemm", [final, embed], { transB: 1 }, ["logits"]);
  } else {
    const head = transpose(await src.readF32("lm_head.weight"), c.vocabSize, c.hiddenSize);
    g.node("MatMul", [final, g.init("lm_head.weight", [c.hiddenSize, c.vocabSize], head)], {}, [
      "logits",
    ]);
  }
  g.output("logits", ONNX_FLOAT, [1, c.vocabSize]);
  for (let l = 0; l < c.numLayers; l++) {
    const n = kvNames(l);
    g.output(n.presentKey, ONNX_FLOAT, [c.numKvHeads, "T", c.headDim]);
    g.output(n.presentValue, ONNX_FLOAT, [c.numKvHeads, "T", c.headDim]);
  }
  return g.finish(`${c.modelType}_decoder`, ONNX_DECODER_OPSET);
}
