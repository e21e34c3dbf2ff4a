/**
 * The router's classifier: feature standardisation followed by a stack of
 * dense layers with GELU between them.
 *
 *   z = (x - mean) / std                       x, z [D]
 *   mlp:    logits = W2 gelu(W1 z + b1) + b2   W1 [H, D], W2 [T, H]
 *   logreg: logits = W1 z + b1                 W1 [T, D]
 *
 * GELU is the tanh approximation (Hendrycks and Gimpel, 2016).
 */
import type { Rng } from "../merge/prng.ts";

/** Classifier families the router supports. */
export const CLASSIFIER_KINDS = ["mlp", "logreg"] as const;
/** A classifier family: one hidden GELU layer, or logistic regression. */
export type ClassifierKind = typeof CLASSIFIER_KINDS[number];

/** One dense layer: out = weight [outSize, inSize] @ in + bias [outSize]. */
export interface DenseLayer {
  /** Input features. */
  inSize: number;
  /** Output features. */
  outSize: number;
  /** Row-major [outSize, inSize]. */
  weight: Float32Array;
  /** [outSize]. */
  bias: Float32Array;
}

/** A trained (or freshly initialised) classifier. */
export interface ClassifierParams {
  /** Classifier family. */
  kind: ClassifierKind;
  /** Feature count D. */
  inputSize: number;
  /** Hidden units H (0 for logreg). */
  hiddenSize: number;
  /** Class (expert) count T. */
  numClasses: number;
  /** Per-feature mean subtracted before the first layer [D]. */
  mean: Float32Array;
  /** Per-feature scale divided out before the first layer [D], all > 0. */
  std: Float32Array;
  /** Dense layers, input to output; GELU between consecutive layers. */
  layers: DenseLayer[];
}

/** Layer sizes [in, out] of each dense layer for a classifier shape. */
export function layerShapes(
  kind: ClassifierKind,
  inputSize: number,
  hiddenSize: number,
  numClasses: number,
): [number, number][] {
  return kind === "mlp"
    ? [[inputSize, hiddenSize], [hiddenSize, numClasses]]
    : [[inputSize, numClasses]];
}

/**
 * A classifier with Glorot-uniform weights drawn from `rng` (zero biases) and
 * identity standardisation. Logistic regression starts at zero (it is convex).
 */
export function createClassifier(
  kind: ClassifierKind,
  inputSize: number,
  hiddenSize: number,
  numClasses: number,
  rng: Rng,
): ClassifierParams {
  const layers = layerShapes(kind, inputSize, hiddenSize, numClasses).map(([inSize, outSize]) => {
    const weight = new Float32Array(inSize * outSize);
    if (kind === "mlp") {
      const a = Math.sqrt(6 / (inSize + outSize));
      for (let i = 0; i < weight.length; i++) weight[i] = (rng.next() * 2 - 1) * a;
    }
    return { inSize, outSize, weight, bias: new Float32Array(outSize) };
  });
  return {
    kind,
    inputSize,
    hiddenSize: kind === "mlp" ? hiddenSize : 0,
    numClasses,
    mean: new Float32Array(inputSize),
    std: new Float32Array(inputSize).fill(1),
    layers,
  };
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation. */
export function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)));
}

/** Derivative of `gelu` at x. */
export function geluGrad(x: number): number {
  const t = Math.tanh(GELU_C * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x);
}

/** z = (x - mean) / std into `out` (allocated when absent). */
export function standardize(
  params: ClassifierParams,
  x: ArrayLike<number>,
  out = new Float32Array(params.inputSize),
): Float32Array {
  const { mean, std } = params;
  for (let d = 0; d < params.inputSize; d++) out[d] = (x[d] - mean[d]) / std[d];
  return out;
}

/** out = W in + b for one dense layer. */
export function denseForward(layer: DenseLayer, input: Float32Array, out: Float32Array): void {
  const { inSize, outSize, weight, bias } = layer;
  for (let o = 0; o < outSize; o++) {
    let s = bias[o];
    const row = o * inSize;
    for (let i = 0; i < inSize; i++) s += weight[row + i] * input[i];
    out[o] = s;
  }
}

/**
 * outs[n] = W inputs[n] + b for every n, four inputs per pass over W (each
 * weight is loaded once for four dot products; results equal `denseForward`
 * up to summation order).
 */
export function denseForwardBatch(
  layer: DenseLayer,
  inputs: readonly Float32Array[],
  outs: readonly Float32Array[],
  count = inputs.length,
): void {
  const { inSize, outSize, weight, bias } = layer;
  let n = 0;
  for (; n + 4 <= count; n += 4) {
    const x0 = inputs[n], x1 = inputs[n + 1], x2 = inputs[n + 2], x3 = inputs[n + 3];
    for (let o = 0; o < outSize; o++) {
      const row = o * inSize;
      let s0 = bias[o], s1 = bias[o], s2 = bias[o], s3 = bias[o];
      for (let i = 0; i < inSize; i++) {
        const w = weight[row + i];
        s0 += w * x0[i];
        s1 += w * x1[i];
        s2 += w * x2[i];
        s3 += w * x3[i];
      }
      outs[n][o] = s0;
      outs[n + 1][o] = s1;
      outs[n + 2][o] = s2;
      outs[n + 3][o] = s3;
    }
  }
  for (; n < count; n++) denseForward(layer, inputs[n], outs[n]);
}

/**
 * Forward pass on standardised input `z`. `pre[l]` receives layer l's output
 * before the activation, `act[l]` the input of layer l (act[0] = z); the
 * logits are `pre[last]`. Buffers come from `allocActivations`.
 */
export function forwardStandardized(
  params: ClassifierParams,
  z: Float32Array,
  act: Float32Array[],
  pre: Float32Array[],
): Float32Array {
  const L = params.layers.length;
  act[0] = z;
  for (let l = 0; l < L; l++) {
    denseForward(params.layers[l], act[l], pre[l]);
    if (l + 1 < L) {
      const p = pre[l], a = act[l + 1];
      for (let i = 0; i < p.length; i++) a[i] = gelu(p[i]);
    }
  }
  return pre[L - 1];
}

/** Activation buffers for `forwardStandardized`. */
export function allocActivations(
  params: ClassifierParams,
): { act: Float32Array[]; pre: Float32Array[] } {
  const act = params.layers.map((l) => new Float32Array(l.inSize));
  const pre = params.layers.map((l) => new Float32Array(l.outSize));
  return { act, pre };
}

/** Logits [T] for one raw (unstandardised) feature vector [D]. */
export function classifierLogits(
  params: ClassifierParams,
  features: ArrayLike<number>,
): Float32Array {
  if (features.length !== params.inputSize) {
    throw new RangeError(
      `Cannot run the router: expected ${params.inputSize} features, got ${features.length}`,
    );
  }
  const { act, pre } = allocActivations(params);
  return forwardStandardized(params, standardize(params, features), act, pre).slice();
}
