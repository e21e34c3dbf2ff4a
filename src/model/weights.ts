/**
 * Model weights on a backend, loaded tensor by tensor from any `TensorSource`
 * (a safetensors checkpoint, or a Mediator bundle's dense weights). Names follow
 * the Hugging Face Llama/Qwen2/Mistral layout.
 */
import type { Backend, Tensor, Weight } from "../backends/backend.ts";
import { BundleFormatError } from "../errors.ts";
import { decodeToF32, type DType } from "../tensor/dtype.ts";
import type { ModelConfig } from "./config.ts";

/** Where tensors come from: shape/dtype lookup plus raw little-endian bytes. */
export interface TensorSource {
  /** dtype and shape of a tensor; throws when it is absent. */
  info(name: string): { dtype: DType; shape: number[] };
  /** Whether the tensor exists. */
  has(name: string): boolean;
  /** Raw bytes of the tensor. */
  read(name: string): Promise<Uint8Array>;
}

/** The projections of one block, by their short names. */
export const PROJECTIONS = ["q", "k", "v", "o", "gate", "up", "down"] as const;
/** A projection of a transformer block. */
export type Projection = typeof PROJECTIONS[number];

/** Weights of one transformer block. */
export interface LayerWeights {
  inputNorm: Tensor;
  postNorm: Tensor;
  /** Projection matrices [out, in]. */
  linear: Record<Projection, Weight>;
  /** q/k/v biases (Qwen2), absent for Llama/Mistral. */
  bias: Partial<Record<"q" | "k" | "v", Tensor>>;
}

/** All weights of a model. */
export interface ModelWeights {
  embed: Weight;
  layers: LayerWeights[];
  finalNorm: Tensor;
  /** The output projection; the same object as `embed` when embeddings are tied. */
  lmHead: Weight;
}

/** Hugging Face tensor name of a block tensor. */
export function layerTensorName(
  layer: number,
  part: Projection | "inputNorm" | "postNorm",
): string {
  const p = `model.layers.${layer}.`;
  switch (part) {
    case "inputNorm":
      return p + "input_layernorm.weight";
    case "postNorm":
      return p + "post_attention_layernorm.weight";
    case "gate":
    case "up":
    case "down":
      return `${p}mlp.${part}_proj.weight`;
    default:
      return `${p}self_attn.${part}_proj.weight`;
  }
}

/** Hugging Face name of a q/k/v bias. */
export function biasTensorName(layer: number, proj: "q" | "k" | "v"): string {
  return `model.layers.${layer}.self_attn.${proj}_proj.bias`;
}

function expectShape(src: TensorSource, name: string, shape: number[]): DType {
  if (!src.has(name)) {
    throw new BundleFormatError(
      `Cannot load model: tensor '${name}' is missing from the checkpoint`,
    );
  }
  const info = src.info(name);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new BundleFormatError(
      `Cannot load model: tensor '${name}' has shape [${info.shape}] but config.json implies [${shape}]`,
    );
  }
  return info.dtype;
}

/** Upload a matrix after checking its shape against the config. */
export async function loadMatrix(
  backend: Backend,
  src: TensorSource,
  name: string,
  rows: number,
  cols: number,
): Promise<Weight> {
  const dtype = expectShape(src, name, [rows, cols]);
  return backend.uploadWeight(await src.read(name), dtype, rows, cols);
}

/** Upload a vector (norm weight or bias) as an f32 tensor. */
export async function loadVector(
  backend: Backend,
  src: TensorSource,
  name: string,
  n: number,
): Promise<Tensor> {
  const dtype = expectShape(src, name, [n]);
  const t = backend.alloc(n);
  backend.write(t, decodeToF32(await src.read(name), dtype));
  return t;
}

/** Shape [rows, cols] of each projection for a config. */
export function projectionShape(c: ModelConfig, proj: Projection): [number, number] {
  const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  switch (proj) {
    case "q":
      return [q, c.hiddenSize];
    case "k":
    case "v":
      return [kv, c.hiddenSize];
    case "o":
      return [c.hiddenSize, q];
    case "gate":
    case "up":
      return [c.intermediateSize, c.hiddenSize];
    case "down":
      return [c.hiddenSize, c.intermediateSize];
  }
}

/** Load one block. */
export async function loadLayer(
  backend: Backend,
  c: ModelConfig,
  src: TensorSource,
  layer: number,
): Promise<LayerWeights> {
  const linear = {} as Record<Projection, Weight>;
  for (const proj of PROJECTIONS) {
    const [rows, cols] = projectionShape(c, proj);
    linear[proj] = await loadMatrix(backend, src, layerTensorName(layer, proj), rows, cols);
  }
  const bias: LayerWeights["bias"] = {};
  if (c.attentionBias) {
    for (const proj of ["q", "k", "v"] as const) {
      bias[proj] = await loadVector(
        backend,
        src,
        biasTensorName(layer, proj),
        projectionShape(c, proj)[0],
      );
    }
  }
  return {
    inputNorm: await loadVector(backend, src, layerTensorName(layer, "inputNorm"), c.hiddenSize),
    postNorm: await loadVector(backend, src, layerTensorName(layer, "postNorm"), c.hiddenSize),
    linear,
    bias,
  };
}

/** Load every weight of a model onto `backend`, tensor by tensor. */
export async function loadModelWeights(
  backend: Backend,
  c: ModelConfig,
  src: TensorSource,
): Promise<ModelWeights> {
  const embed = await loadMatrix(
    backend,
    src,
    "model.embed_tokens.weight",
    c.vocabSize,
    c.hiddenSize,
  );
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.numLayers; i++) layers.push(await loadLayer(backend, c, src, i));
  const finalNorm = await loadVector(backend, src, "model.norm.weight", c.hiddenSize);
  const tied = c.tieWordEmbeddings || !src.has("lm_head.weight");
  const lmHead = tied
    ? embed
    : await loadMatrix(backend, src, "lm_head.weight", c.vocabSize, c.hiddenSize);
  return { embed, layers, finalNorm, lmHead };
}

/** Free every resource of a loaded model. */
export function freeModelWeights(backend: Backend, w: ModelWeights): void {
  for (const l of w.layers) {
    backend.free(l.inputNorm);
    backend.free(l.postNorm);
    for (const p of PROJECTIONS) backend.free(l.linear[p]);
    for (const b of Object.values(l.bias)) if (b) backend.free(b);
  }
  backend.free(w.finalNorm);
  if (w.lmHead !== w.embed) backend.free(w.lmHead);
  backend.free(w.embed);
}
