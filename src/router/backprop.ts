/**
 * Cross-entropy gradients of the classifier over a minibatch, and the AdamW
 * optimiser (Loshchilov and Hutter, 2019: Adam with decoupled weight decay,
 * applied to weights but not biases). Gradients accumulate in f64.
 *
 * Per minibatch of B examples (layer l maps in_l features to out_l):
 *   act[l][b] [in_l]   input of layer l (act[0][b] = the standardised example)
 *   pre[l][b] [out_l]  output of layer l before GELU (the logits for the last)
 *   delta[l][b] [out_l] d loss / d pre[l][b]
 */
import { type ClassifierParams, denseForwardBatch, gelu, geluGrad } from "./classifier.ts";

/** Gradient buffers, one pair per dense layer. */
export interface Gradients {
  /** d loss / d weight of each layer, [outSize * inSize]. */
  weight: Float64Array[];
  /** d loss / d bias of each layer, [outSize]. */
  bias: Float64Array[];
}

/** Zeroed gradient buffers shaped like `params`. */
export function allocGradients(params: ClassifierParams): Gradients {
  return {
    weight: params.layers.map((l) => new Float64Array(l.weight.length)),
    bias: params.layers.map((l) => new Float64Array(l.bias.length)),
  };
}

/** -log softmax(logits)[label], computed stably; writes softmax(logits) into `p`. */
export function crossEntropy(logits: Float32Array, label: number, p: Float64Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp(logits[i] - max);
    sum += p[i];
  }
  for (let i = 0; i < logits.length; i++) p[i] /= sum;
  return -(logits[label] - max - Math.log(sum));
}

/** Reusable per-example buffers for minibatches of up to `capacity` examples. */
export interface BackpropScratch {
  /** Largest minibatch the buffers hold. */
  capacity: number;
  /** act[l][b]: input of layer l for example b. */
  act: Float32Array[][];
  /** pre[l][b]: output of layer l before GELU for example b. */
  pre: Float32Array[][];
  /** delta[l][b]: d loss / d pre[l][b]. */
  delta: Float64Array[][];
  /** Softmax of one example's logits. */
  probs: Float64Array;
}

/** Scratch buffers for `batchGradients` with minibatches of up to `capacity` examples. */
export function allocScratch(params: ClassifierParams, capacity: number): BackpropScratch {
  const per = <T>(make: () => T) => Array.from({ length: capacity }, make);
  return {
    capacity,
    // act[0][b] is pointed at the example itself; deeper layers get buffers.
    act: params.layers.map((l, i) => per(() => new Float32Array(i === 0 ? 0 : l.inSize))),
    pre: params.layers.map((l) => per(() => new Float32Array(l.outSize))),
    delta: params.layers.map((l) => per(() => new Float64Array(l.outSize))),
    probs: new Float64Array(params.numClasses),
  };
}

/** gw[o, i] += sum_b d[b][o] * a[b][i], four examples per pass over gw. */
function accumulateOuter(
  gw: Float64Array,
  d: readonly Float64Array[],
  a: readonly Float32Array[],
  count: number,
  inSize: number,
  outSize: number,
): void {
  let b = 0;
  for (; b + 4 <= count; b += 4) {
    const a0 = a[b], a1 = a[b + 1], a2 = a[b + 2], a3 = a[b + 3];
    for (let o = 0; o < outSize; o++) {
      const d0 = d[b][o], d1 = d[b + 1][o], d2 = d[b + 2][o], d3 = d[b + 3][o];
      const row = o * inSize;
      for (let i = 0; i < inSize; i++) {
        gw[row + i] += d0 * a0[i] + d1 * a1[i] + d2 * a2[i] + d3 * a3[i];
      }
    }
  }
  for (; b < count; b++) {
    const ab = a[b];
    for (let o = 0; o < outSize; o++) {
      const dv = d[b][o], row = o * inSize;
      for (let i = 0; i < inSize; i++) gw[row + i] += dv * ab[i];
    }
  }
}

/**
 * Mean cross-entropy of the examples `batch` (indices into `inputs`, which are
 * standardised) and its gradient, written into `grads` (overwritten).
 */
export function batchGradients(
  params: ClassifierParams,
  inputs: readonly Float32Array[],
  labels: readonly number[],
  batch: readonly number[],
  grads: Gradients,
  scratch: BackpropScratch,
): number {
  const B = batch.length, L = params.layers.length;
  if (B === 0 || B > scratch.capacity) {
    throw new RangeError(
      `Cannot compute gradients: batch of ${B} for scratch of ${scratch.capacity} examples`,
    );
  }
  const { act, pre, delta, probs } = scratch;
  batch.forEach((n, b) => act[0][b] = inputs[n]);
  for (let l = 0; l < L; l++) {
    denseForwardBatch(params.layers[l], act[l], pre[l], B);
    if (l + 1 < L) {
      for (let b = 0; b < B; b++) {
        const p = pre[l][b], a = act[l + 1][b];
        for (let i = 0; i < p.length; i++) a[i] = gelu(p[i]);
      }
    }
  }
  let loss = 0;
  batch.forEach((n, b) => {
    loss += crossEntropy(pre[L - 1][b], labels[n], probs);
    const top = delta[L - 1][b];
    for (let c = 0; c < top.length; c++) top[c] = probs[c] / B;
    top[labels[n]] -= 1 / B;
  });
  for (let l = L - 1; l >= 0; l--) {
    const { inSize, outSize, weight } = params.layers[l];
    const gw = grads.weight[l], gb = grads.bias[l];
    gw.fill(0);
    gb.fill(0);
    for (let b = 0; b < B; b++) for (let o = 0; o < outSize; o++) gb[o] += delta[l][b][o];
    accumulateOuter(gw, delta[l], act[l], B, inSize, outSize);
    if (l === 0) break;
    // Back through layer l's weights and the GELU that produced its input.
    for (let b = 0; b < B; b++) {
      const d = delta[l][b], below = delta[l - 1][b], p = pre[l - 1][b];
      below.fill(0);
      for (let o = 0; o < outSize; o++) {
        const dv = d[o], row = o * inSize;
        for (let i = 0; i < inSize; i++) below[i] += dv * weight[row + i];
      }
      for (let i = 0; i < inSize; i++) below[i] *= geluGrad(p[i]);
    }
  }
  return loss / B;
}

/** AdamW hyper-parameters. */
export interface AdamOptions {
  /** Step size. */
  learningRate: number;
  /** Decoupled weight decay per step, scaled by the learning rate. */
  weightDecay: number;
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999). */
  beta2?: number;
  /** Added to the root of the second moment (default 1e-8). */
  epsilon?: number;
}

/** AdamW state for one classifier. */
export class AdamW {
  #m: Gradients;
  #v: Gradients;
  #t = 0;

  /** The classifier updated in place. */
  readonly params: ClassifierParams;
  /** Hyper-parameters. */
  readonly opts: AdamOptions;

  /**
   * Zeroed moments for `params`.
   * @param params the classifier it updates in place
   * @param opts learning rate, decoupled weight decay and Adam constants
   */
  constructor(params: ClassifierParams, opts: AdamOptions) {
    this.params = params;
    this.opts = opts;
    this.#m = allocGradients(params);
    this.#v = allocGradients(params);
  }

  /** One update from `grads`. */
  step(grads: Gradients): void {
    const { learningRate: lr, weightDecay: wd } = this.opts;
    const b1 = this.opts.beta1 ?? 0.9, b2 = this.opts.beta2 ?? 0.999;
    const eps = this.opts.epsilon ?? 1e-8;
    this.#t++;
    const c1 = 1 - b1 ** this.#t, c2 = 1 - b2 ** this.#t;
    const update = (
      w: Float32Array,
      g: Float64Array,
      m: Float64Array,
      v: Float64Array,
      decay: number,
    ) => {
      for (let i = 0; i < w.length; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * ((m[i] / c1) / (Math.sqrt(v[i] / c2) + eps) + decay * w[i]);
      }
    };
    this.params.layers.forEach((layer, l) => {
      update(layer.weight, grads.weight[l], this.#m.weight[l], this.#v.weight[l], wd);
      update(layer.bias, grads.bias[l], this.#m.bias[l], this.#v.bias[l], 0);
    });
  }
}
