/**
 * The reference backend: plain TypeScript, clear over fast. Every op runs
 * eagerly in f32 (16-bit weights are widened once at upload). It is the oracle
 * for the WASM and WebGPU kernels and stays in the project for that purpose.
 */
import type {
  AttentionArgs,
  Backend,
  BackendInfo,
  KvCache,
  MatmulOptions,
  SparseMatrixData,
  SparseWeight,
  Tensor,
  Weight,
} from "./backend.ts";
import { kvWriteRotated } from "./kv_write_rope.ts";
import { matmulPreparedInput } from "./matmul_input.ts";
import {
  bf16ToF32,
  decodeToF32,
  type DType,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
} from "../tensor/dtype.ts";

class RefTensor implements Tensor {
  constructor(public data: Float32Array) {}
  get size(): number {
    return this.data.length;
  }
}

class RefWeight implements Weight {
  constructor(
    public readonly rows: number,
    public readonly cols: number,
    public readonly dtype: DType,
    /** [rows * cols] values, widened to f32. */
    public data: Float32Array,
  ) {}
}

class RefSparse implements SparseWeight {
  constructor(
    public readonly rows: number,
    public readonly cols: number,
    public readonly rowPtr: Uint32Array,
    public readonly colIdx: Uint32Array,
    /** Values widened to f32. */
    public readonly values: Float32Array,
  ) {}
  get nnz(): number {
    return this.values.length;
  }
}

class RefKvCache implements KvCache {
  /** keys[layer]: [maxSeq, numKvHeads * headDim]; values likewise. */
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  constructor(
    public readonly numLayers: number,
    public readonly maxSeq: number,
    public readonly numKvHeads: number,
    public readonly headDim: number,
  ) {
    const n = maxSeq * numKvHeads * headDim;
    this.keys = Array.from({ length: numLayers }, () => new Float32Array(n));
    this.values = Array.from({ length: numLayers }, () => new Float32Array(n));
  }
}

function t(x: Tensor): Float32Array {
  if (!(x instanceof RefTensor)) {
    throw new TypeError("Cannot use tensor: it belongs to another backend");
  }
  return x.data;
}

function w(x: Weight): RefWeight {
  if (!(x instanceof RefWeight)) {
    throw new TypeError("Cannot use weight: it belongs to another backend");
  }
  return x;
}

/** Round a value to the nearest bf16/f16 the way a 16-bit weight store would. */
function roundTo(dtype: DType, v: number): number {
  if (dtype === "bf16") return bf16ToF32(f32ToBf16(v));
  if (dtype === "f16") return f16ToF32(f32ToF16(v));
  return v;
}

/** The plain TypeScript oracle backend. */
export class ReferenceBackend implements Backend {
  /** Name and device. */
  readonly info: BackendInfo = { name: "reference", device: "plain TypeScript, f32" };

  /** @inheritdoc */
  alloc(size: number): Tensor {
    if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(
        `Cannot allocate tensor: size must be a non-negative integer, got ${size}`,
      );
    }
    return new RefTensor(new Float32Array(size));
  }

  /** @inheritdoc */
  write(x: Tensor, data: Float32Array, offset = 0): void {
    t(x).set(data, offset);
  }

  /** @inheritdoc */
  read(x: Tensor, offset = 0, length?: number): Promise<Float32Array> {
    const d = t(x);
    return Promise.resolve(d.slice(offset, offset + (length ?? d.length - offset)));
  }

  /** @inheritdoc */
  uploadWeight(bytes: Uint8Array, dtype: DType, rows: number, cols: number): Weight {
    const data = decodeToF32(bytes, dtype);
    if (data.length !== rows * cols) {
      throw new RangeError(
        `Cannot upload weight: ${data.length} values for shape [${rows}, ${cols}] (${dtype})`,
      );
    }
    return new RefWeight(rows, cols, dtype, data);
  }

  /** @inheritdoc */
  uploadSparse(s: SparseMatrixData): SparseWeight {
    const n = s.values.length;
    if (s.rowPtr.length !== s.rows + 1 || s.rowPtr[s.rows] !== n || s.colIdx.length !== n) {
      throw new RangeError("Cannot upload sparse matrix: rowPtr/colIdx/values lengths disagree");
    }
    const conv = s.valueDtype === "bf16" ? bf16ToF32 : f16ToF32;
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (s.colIdx[i] >= s.cols) {
        throw new RangeError(`Cannot upload sparse matrix: column ${s.colIdx[i]} >= ${s.cols}`);
      }
      values[i] = conv(s.values[i]);
    }
    return new RefSparse(s.rows, s.cols, s.rowPtr.slice(), s.colIdx.slice(), values);
  }

  /** @inheritdoc */
  cloneWeight(x: Weight): Weight {
    const r = w(x);
    return new RefWeight(r.rows, r.cols, r.dtype, r.data.slice());
  }

  /** @inheritdoc */
  allocKvCache(numLayers: number, maxSeq: number, numKvHeads: number, headDim: number): KvCache {
    return new RefKvCache(numLayers, maxSeq, numKvHeads, headDim);
  }

  /** @inheritdoc */
  free(_r: Tensor | Weight | SparseWeight | KvCache): void {
    // Garbage collected.
  }

  /** @inheritdoc */
  dispose(): void {}

  /** @inheritdoc */
  embed(out: Tensor, table: Weight, ids: Int32Array): void {
    const o = t(out), tb = w(table);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < 0 || id >= tb.rows) {
        throw new RangeError(`Cannot embed token id ${id}: vocabulary has ${tb.rows} entries`);
      }
      o.set(tb.data.subarray(id * tb.cols, (id + 1) * tb.cols), i * tb.cols);
    }
  }

  /** @inheritdoc */
  matmul(out: Tensor, x: Tensor, weight: Weight, m: number, opts: MatmulOptions = {}): void {
    if (opts.gate || opts.norm) {
      matmulPreparedInput(this, out, x, weight, m, opts);
      return;
    }
    const o = t(out), xi = t(x), wt = w(weight), b = opts.bias ? t(opts.bias) : undefined;
    const { rows, cols } = wt;
    for (let i = 0; i < m; i++) {
      const xo = i * cols;
      for (let r = 0; r < rows; r++) {
        let acc = 0;
        const wo = r * cols;
        for (let c = 0; c < cols; c++) acc += xi[xo + c] * wt.data[wo + c];
        o[i * rows + r] = (opts.accumulate ? o[i * rows + r] : 0) + acc + (b ? b[r] : 0);
      }
    }
    for (const d of opts.deltas ?? []) {
      this.sparseMatmulAdd(out, x, d.sparse, d.scale, d.rowOffset, d.m);
    }
  }

  /** @inheritdoc */
  sparseMatmulAdd(
    out: Tensor,
    x: Tensor,
    s: SparseWeight,
    scale: number,
    rowOffset: number,
    m: number,
  ): void {
    if (!(s instanceof RefSparse)) {
      throw new TypeError("Cannot use sparse weight of another backend");
    }
    const o = t(out), xi = t(x);
    for (let i = rowOffset; i < rowOffset + m; i++) {
      for (let r = 0; r < s.rows; r++) {
        let acc = 0;
        for (let k = s.rowPtr[r]; k < s.rowPtr[r + 1]; k++) {
          acc += s.values[k] * xi[i * s.cols + s.colIdx[k]];
        }
        o[i * s.rows + r] += scale * acc;
      }
    }
  }

  /** @inheritdoc */
  scatterAdd(weight: Weight, s: SparseWeight, scale: number): void {
    if (!(s instanceof RefSparse)) {
      throw new TypeError("Cannot use sparse weight of another backend");
    }
    const wt = w(weight);
    if (wt.rows !== s.rows || wt.cols !== s.cols) {
      throw new RangeError(
        `Cannot scatter-add [${s.rows}, ${s.cols}] into weight [${wt.rows}, ${wt.cols}]`,
      );
    }
    for (let r = 0; r < s.rows; r++) {
      for (let k = s.rowPtr[r]; k < s.rowPtr[r + 1]; k++) {
        const i = r * s.cols + s.colIdx[k];
        // The stored weight keeps its dtype: round like a 16-bit store would.
        wt.data[i] = roundTo(wt.dtype, wt.data[i] + scale * s.values[k]);
      }
    }
  }

  /** @inheritdoc */
  rmsNorm(out: Tensor, x: Tensor, gamma: Tensor, m: number, eps: number): void {
    const o = t(out), xi = t(x), g = t(gamma);
    const n = g.length;
    for (let i = 0; i < m; i++) {
      let ss = 0;
      for (let c = 0; c < n; c++) ss += xi[i * n + c] * xi[i * n + c];
      const inv = 1 / Math.sqrt(ss / n + eps);
      for (let c = 0; c < n; c++) o[i * n + c] = xi[i * n + c] * inv * g[c];
    }
  }

  /** @inheritdoc */
  rope(
    x: Tensor,
    m: number,
    numHeads: number,
    headDim: number,
    positions: Int32Array,
    theta: number,
  ): void {
    const d = t(x);
    const half = headDim / 2;
    for (let i = 0; i < m; i++) {
      const pos = positions[i];
      for (let h = 0; h < numHeads; h++) {
        const base = (i * numHeads + h) * headDim;
        for (let j = 0; j < half; j++) {
          // Match transformers: inv_freq computed in f32, angle = pos * inv_freq in f32.
          const invFreq = Math.fround(1 / Math.pow(theta, (2 * j) / headDim));
          const angle = Math.fround(pos * invFreq);
          const cos = Math.cos(angle), sin = Math.sin(angle);
          const a = d[base + j], b = d[base + j + half];
          d[base + j] = a * cos - b * sin;
          d[base + j + half] = b * cos + a * sin;
        }
      }
    }
  }

  /** @inheritdoc */
  kvWrite(
    cache: KvCache,
    layer: number,
    k: Tensor,
    v: Tensor,
    rowOffset: number,
    m: number,
    startPos: number,
    ropeTheta?: number,
  ): void {
    if (ropeTheta !== undefined) {
      kvWriteRotated(this, cache, layer, k, v, rowOffset, m, startPos, ropeTheta);
      return;
    }
    if (!(cache instanceof RefKvCache)) {
      throw new TypeError("Cannot use KV cache of another backend");
    }
    if (startPos + m > cache.maxSeq) {
      throw new RangeError(
        `Cannot write KV cache: positions up to ${
          startPos + m
        } exceed its capacity ${cache.maxSeq}`,
      );
    }
    const width = cache.numKvHeads * cache.headDim;
    const ks = t(k), vs = t(v);
    cache.keys[layer].set(
      ks.subarray(rowOffset * width, (rowOffset + m) * width),
      startPos * width,
    );
    cache.values[layer].set(
      vs.subarray(rowOffset * width, (rowOffset + m) * width),
      startPos * width,
    );
  }

  /** @inheritdoc */
  attention(out: Tensor, q: Tensor, a: AttentionArgs): void {
    const cache = a.cache;
    if (!(cache instanceof RefKvCache)) {
      throw new TypeError("Cannot use KV cache of another backend");
    }
    const o = t(out), qs = t(q);
    const { numHeads, numKvHeads, headDim } = a;
    const group = numHeads / numKvHeads;
    const keys = cache.keys[a.layer], values = cache.values[a.layer];
    const kvWidth = numKvHeads * headDim;
    const scale = 1 / Math.sqrt(headDim);
    const scores = new Float32Array(a.startPos + a.m);
    for (let i = 0; i < a.m; i++) {
      const row = a.rowOffset + i;
      const last = a.startPos + i; // attends to positions 0..last
      for (let h = 0; h < numHeads; h++) {
        const kvh = Math.floor(h / group);
        const qo = (row * numHeads + h) * headDim;
        let max = -Infinity;
        for (let p = 0; p <= last; p++) {
          let s = 0;
          const ko = p * kvWidth + kvh * headDim;
          for (let d = 0; d < headDim; d++) s += qs[qo + d] * keys[ko + d];
          scores[p] = s * scale;
          if (scores[p] > max) max = scores[p];
        }
        let sum = 0;
        for (let p = 0; p <= last; p++) {
          scores[p] = Math.exp(scores[p] - max);
          sum += scores[p];
        }
        for (let d = 0; d < headDim; d++) {
          let acc = 0;
          for (let p = 0; p <= last; p++) {
            acc += scores[p] * values[p * kvWidth + kvh * headDim + d];
          }
          o[qo + d] = acc / sum;
        }
      }
    }
  }

  /** @inheritdoc */
  siluMul(out: Tensor, gate: Tensor, up: Tensor, n: number): void {
    const o = t(out), g = t(gate), u = t(up);
    for (let i = 0; i < n; i++) o[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  }

  /** @inheritdoc */
  add(out: Tensor, a: Tensor, b: Tensor, n: number): void {
    const o = t(out), x = t(a), y = t(b);
    for (let i = 0; i < n; i++) o[i] = x[i] + y[i];
  }

  /** @inheritdoc */
  copy(dst: Tensor, dstOffset: number, src: Tensor, srcOffset: number, n: number): void {
    t(dst).set(t(src).subarray(srcOffset, srcOffset + n), dstOffset);
  }
}

/** A new reference backend. */
export function createReferenceBackend(): ReferenceBackend {
  return new ReferenceBackend();
}
