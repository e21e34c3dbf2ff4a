/**
 * Random-weight models at real shapes for benchmarks: weights are tiles of a
 * seeded pool of bf16 values (speed does not depend on the values, and
 * tiling keeps setup fast at 0.5B parameters), uploaded through the Backend
 * interface like a real checkpoint.
 */
import type { Backend, SparseMatrixData } from "../src/backends/backend.ts";
import type { ModelConfig } from "../src/model/config.ts";
import type { LinearDelta, RouteDeltas } from "../src/model/forward.ts";
import {
  type LayerWeights,
  type ModelWeights,
  type Projection,
  PROJECTIONS,
  projectionShape,
} from "../src/model/weights.ts";
import { f32ToBf16 } from "../src/tensor/dtype.ts";

/** Qwen2.5-0.5B's configuration (24 layers, hidden 896, intermediate 4864, vocab 151936). */
export const QWEN25_05B: ModelConfig = {
  modelType: "qwen2",
  hiddenSize: 896,
  numLayers: 24,
  numHeads: 14,
  numKvHeads: 2,
  headDim: 64,
  intermediateSize: 4864,
  vocabSize: 151936,
  rmsNormEps: 1e-6,
  ropeTheta: 1000000,
  maxPositionEmbeddings: 32768,
  tieWordEmbeddings: true,
  attentionBias: true,
  bosTokenId: null,
  eosTokenIds: [151643],
};

/** Seeded xorshift32. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0) / 4294967296;
  };
}

const POOL = 1 << 20;

/** A pool of random bf16 bytes with values in [-scale, scale]. */
function pool(seed: number, scale: number): Uint16Array {
  const r = xorshift(seed);
  const out = new Uint16Array(POOL + 4096);
  for (let i = 0; i < out.length; i++) out[i] = f32ToBf16((r() * 2 - 1) * scale);
  return out;
}

/** `n` bf16 values tiled from the pool starting at a seed-dependent offset. */
function tile(p: Uint16Array, n: number, seed: number): Uint8Array {
  const out = new Uint16Array(n);
  let o = 0, start = (seed * 2654435761) % 4096;
  while (o < n) {
    const k = Math.min(POOL, n - o);
    out.set(p.subarray(start, start + k), o);
    o += k;
    start = (start + 977) % 4096;
  }
  return new Uint8Array(out.buffer);
}

/** Upload a random-weight model of config `c` onto `backend` (bf16 matrices). */
export function randomModelWeights(backend: Backend, c: ModelConfig, seed = 1): ModelWeights {
  const w = pool(seed, 0.05);
  let k = 0;
  const mat = (rows: number, cols: number) =>
    backend.uploadWeight(tile(w, rows * cols, k++), "bf16", rows, cols);
  const vec = (n: number, value: number) => {
    const t = backend.alloc(n);
    backend.write(t, new Float32Array(n).fill(value));
    return t;
  };
  const embed = mat(c.vocabSize, c.hiddenSize);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const linear = {} as Record<Projection, ReturnType<typeof mat>>;
    for (const p of PROJECTIONS) linear[p] = mat(...projectionShape(c, p));
    const bias: LayerWeights["bias"] = {};
    if (c.attentionBias) {
      for (const p of ["q", "k", "v"] as const) bias[p] = vec(projectionShape(c, p)[0], 0.01);
    }
    layers.push({ inputNorm: vec(c.hiddenSize, 1), postNorm: vec(c.hiddenSize, 1), linear, bias });
  }
  const lmHead = c.tieWordEmbeddings ? embed : mat(c.vocabSize, c.hiddenSize);
  return { embed, layers, finalNorm: vec(c.hiddenSize, 1), lmHead };
}

/** Bytes of weights read once per decode step (matrices of all layers + lm_head). */
export function weightBytesPerToken(c: ModelConfig): number {
  let n = 0;
  for (const p of PROJECTIONS) {
    const [r, k] = projectionShape(c, p);
    n += r * k;
  }
  return (n * c.numLayers + c.vocabSize * c.hiddenSize) * 2;
}

/** A random CSR matrix of `density` with bf16 values. */
export function randomSparse(
  rows: number,
  cols: number,
  density: number,
  seed: number,
): SparseMatrixData {
  const r = xorshift(seed);
  const perRow = Math.max(0, Math.round(cols * density));
  const rowPtr = new Uint32Array(rows + 1);
  const colIdx = new Uint32Array(rows * perRow);
  const values = new Uint16Array(rows * perRow);
  const stride = cols / Math.max(1, perRow);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < perRow; j++) {
      // One column in each of perRow disjoint slots: strictly ascending.
      const lo = Math.floor(j * stride), hi = Math.max(lo + 1, Math.floor((j + 1) * stride));
      const c = Math.min(cols - 1, lo + Math.floor(r() * (hi - lo)));
      colIdx[i * perRow + j] = c;
      values[i * perRow + j] = f32ToBf16((r() * 2 - 1) * 0.01);
    }
    rowPtr[i + 1] = (i + 1) * perRow;
  }
  return { rows, cols, rowPtr, colIdx, values, valueDtype: "bf16" };
}

/** Route deltas of `experts` random sparse experts on layers `layers`, weights split evenly. */
export function randomRouteDeltas(
  backend: Backend,
  c: ModelConfig,
  layers: readonly number[],
  experts: number,
  density: number,
): RouteDeltas & { bytes: number } {
  const map = new Map<string, LinearDelta[]>();
  let bytes = 0;
  let seed = 100;
  for (const l of layers) {
    for (const p of PROJECTIONS) {
      const [rows, cols] = projectionShape(c, p);
      const list: LinearDelta[] = [];
      for (let e = 0; e < experts; e++) {
        const s = randomSparse(rows, cols, density, seed++);
        bytes += s.values.byteLength + s.colIdx.byteLength + s.rowPtr.byteLength;
        list.push({ sparse: backend.uploadSparse(s), scale: 1 / experts });
      }
      map.set(`${l}.${p}`, list);
    }
  }
  return { get: (l, p) => map.get(`${l}.${p}`), bytes };
}
