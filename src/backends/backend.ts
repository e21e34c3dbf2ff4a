/**
 * The one Backend interface. The forward pass (src/model/forward.ts) is written
 * once against it; `reference.ts` (plain TypeScript, the oracle), `wasm.ts`
 * (SIMD WebAssembly) and `webgpu.ts` (WGSL) implement it.
 *
 * Execution model: op methods *enqueue* work and return immediately; `read`
 * waits for everything enqueued before it and returns the values. A backend
 * may run ops eagerly (reference, wasm) or record them into one GPU submission
 * (webgpu). All activations are f32. Matrices use the Hugging Face Linear
 * layout: a weight of shape [rows, cols] maps an input of `cols` features to
 * an output of `rows` features (y = x W^T).
 *
 * Row windows: `rowOffset` / `m` select rows [rowOffset, rowOffset + m) of a
 * row-major activation tensor, so one batched tensor can hold several
 * sequences (continuous batching) and per-sequence ops (attention, sparse
 * deltas of a route) touch only their rows.
 */
import type { DType } from "../tensor/dtype.ts";

/** An f32 activation buffer owned by a backend. */
export interface Tensor {
  /** Number of f32 elements. */
  readonly size: number;
}

/** A dense weight matrix [rows, cols], row-major, stored in `dtype`. */
export interface Weight {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: DType;
}

/** A sparse matrix [rows, cols] held by a backend (CSR with 16-bit values). */
export interface SparseWeight {
  readonly rows: number;
  readonly cols: number;
  readonly nnz: number;
}

/** Host-side CSR matrix handed to `uploadSparse`. */
export interface SparseMatrixData {
  rows: number;
  cols: number;
  /** rows + 1 offsets into colIdx/values. */
  rowPtr: Uint32Array;
  /** Column of each non-zero, ascending within a row. */
  colIdx: Uint32Array;
  /** Value bits of each non-zero, in `valueDtype` (bf16 or f16). */
  values: Uint16Array;
  valueDtype: "bf16" | "f16";
}

/**
 * A sparse delta that `matmul` adds on a row window:
 * rows [rowOffset, rowOffset + m) of out += scale * x @ sparse^T.
 */
export interface MatmulDelta {
  readonly sparse: SparseWeight;
  readonly scale: number;
  readonly rowOffset: number;
  readonly m: number;
}

/** Options of `matmul`. */
export interface MatmulOptions {
  /** Added to every row: bias[w.rows]. */
  bias?: Tensor;
  /** Sparse deltas added on their row windows after the product. */
  deltas?: readonly MatmulDelta[];
  /** Add the result to `out` instead of overwriting it (a residual connection). */
  accumulate?: boolean;
  /**
   * Multiply the input by silu(gate) first (gate shaped like the input): the gated MLP's
   * down projection of silu(gate) * up. The deltas see the same gated input.
   */
  gate?: Tensor;
  /**
   * RMS-normalize each input row and scale it by gamma first, as `rmsNorm` does (the
   * pre-norm of the attention and MLP blocks); x must have exactly w.cols columns. The
   * deltas see the same normalized input. Not together with `gate`.
   */
  norm?: { gamma: Tensor; eps: number };
}

/** Per-sequence key/value cache for all layers. */
export interface KvCache {
  readonly numLayers: number;
  readonly maxSeq: number;
  readonly numKvHeads: number;
  readonly headDim: number;
}

/** What a backend can do and what it runs on. */
export interface BackendInfo {
  /** Short name: "reference" | "wasm-simd" | "webgpu". */
  name: string;
  /** Device detail, e.g. adapter name or thread count. */
  device: string;
}

/** Options of `attention`. */
export interface AttentionArgs {
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (GQA: numHeads is a multiple). */
  numKvHeads: number;
  headDim: number;
  /** The cache of this sequence. */
  cache: KvCache;
  layer: number;
  /** First row of this sequence in q/out. */
  rowOffset: number;
  /** Number of new tokens (rows). */
  m: number;
  /** Position of the first new token; the cache holds positions [0, startPos + m). */
  startPos: number;
}

/** The operations the forward pass and the Mediator delta path need. */
export interface Backend {
  readonly info: BackendInfo;

  /** New zero-filled f32 tensor of `size` elements. */
  alloc(size: number): Tensor;
  /** Copy `data` into `t` starting at element `offset`. */
  write(t: Tensor, data: Float32Array, offset?: number): void;
  /** Wait for enqueued work; return elements [offset, offset + length) of `t`. */
  read(t: Tensor, offset?: number, length?: number): Promise<Float32Array>;
  /** Upload a dense weight from raw little-endian bytes of `dtype`. */
  uploadWeight(bytes: Uint8Array, dtype: DType, rows: number, cols: number): Weight;
  /** Upload a sparse matrix. */
  uploadSparse(data: SparseMatrixData): SparseWeight;
  /** A new weight with the same contents as `w` (for the materialize path). */
  cloneWeight(w: Weight): Weight;
  /** New KV cache (zeroed) for one sequence. */
  allocKvCache(numLayers: number, maxSeq: number, numKvHeads: number, headDim: number): KvCache;
  /** Release a resource; using it afterwards is an error. */
  free(r: Tensor | Weight | SparseWeight | KvCache): void;
  /** Release every resource of the backend. */
  dispose(): void;

  /** out[i, :] = table[ids[i], :] for i < ids.length. */
  embed(out: Tensor, table: Weight, ids: Int32Array): void;
  /**
   * out[m, w.rows] = x[m, w.cols] @ w^T (+ bias[w.rows]) (+ out when `accumulate`), then each
   * delta on its rows (the same as `sparseMatmulAdd` per delta; a backend may fuse them).
   */
  matmul(out: Tensor, x: Tensor, w: Weight, m: number, opts?: MatmulOptions): void;
  /**
   * Rows [rowOffset, rowOffset+m): out += scale * x @ s^T (the Mediator `delta` path).
   * out has s.rows columns, x has s.cols columns.
   */
  sparseMatmulAdd(
    out: Tensor,
    x: Tensor,
    s: SparseWeight,
    scale: number,
    rowOffset: number,
    m: number,
  ): void;
  /** w += scale * s, in place (the Mediator `materialize` path). */
  scatterAdd(w: Weight, s: SparseWeight, scale: number): void;
  /** out[i] = x[i] / rms(x[i]) * gamma, row-wise over `m` rows of gamma.size columns. */
  rmsNorm(out: Tensor, x: Tensor, gamma: Tensor, m: number, eps: number): void;
  /**
   * Rotary embedding in place on x[m, numHeads * headDim], Hugging Face
   * rotate-half convention, row i at position positions[i].
   */
  rope(
    x: Tensor,
    m: number,
    numHeads: number,
    headDim: number,
    positions: Int32Array,
    theta: number,
  ): void;
  /**
   * Store k/v rows [rowOffset, rowOffset+m) into the cache at positions startPos... With
   * `ropeTheta`, the keys are stored rotated (rotate-half RoPE at positions startPos + i, as
   * `rope` would rotate them); k itself is left unchanged.
   */
  kvWrite(
    cache: KvCache,
    layer: number,
    k: Tensor,
    v: Tensor,
    rowOffset: number,
    m: number,
    startPos: number,
    ropeTheta?: number,
  ): void;
  /** Causal attention of q rows over the cache, written to the same rows of out. */
  attention(out: Tensor, q: Tensor, args: AttentionArgs): void;
  /** out[i] = silu(gate[i]) * up[i] for i < n. */
  siluMul(out: Tensor, gate: Tensor, up: Tensor, n: number): void;
  /** out[i] = a[i] + b[i] for i < n (out may alias a). */
  add(out: Tensor, a: Tensor, b: Tensor, n: number): void;
  /** dst[dstOffset + i] = src[srcOffset + i] for i < n (gathers rows, e.g. last positions). */
  copy(dst: Tensor, dstOffset: number, src: Tensor, srcOffset: number, n: number): void;
}
