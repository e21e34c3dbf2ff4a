/**
 * The matrix and attention ops of the WebGPU backend: kernel choice, chunk loops and grid
 * sizes. Each op records one or more dispatches (one per weight or sparse row chunk).
 */
import type {
  AttentionArgs,
  Backend,
  MatmulDelta,
  MatmulOptions,
  SparseWeight,
  Tensor,
  Weight,
} from "./backend.ts";
import { UnsupportedOpError } from "../errors.ts";
import { checkMatmulInput, matmulPreparedInput } from "./matmul_input.ts";
import type { CommandRecorder } from "./webgpu_recorder.ts";
import { splitGrid } from "./webgpu_recorder.ts";
import { count, need, WebGpuOpsBase } from "./webgpu_ops_base.ts";
import { alignedSize, type GpuSparse, type GpuTensor, type GpuWeight } from "./webgpu_resources.ts";
import type { RopeTables } from "./webgpu_rope_table.ts";

const DTYPE_CODE = { f32: 0, bf16: 1, f16: 2 } as const;
/** Activation rows per GEMV workgroup pass (the kernels' MAX_TM). */
const TM_MAX = 4;
/** Up to this many activation rows, matmul streams the weight with the GEMV kernel. */
const GEMV_MAX_ROWS = 8;
const ATTENTION_MAX_HEAD_DIM = 256;
/** Sparse deltas a GEMV launch can add itself (the kernel's S0 and S1). */
const MAX_FUSED_DELTAS = 2;

/** A delta added inside the GEMV launch, with its uploaded matrix. */
interface FusedDelta {
  delta: MatmulDelta;
  st: GpuSparse;
}

/** The validated operands of one `matmul`. */
interface MatmulIo {
  o: GpuTensor;
  xt: GpuTensor;
  wt: GpuWeight;
  b: GpuTensor | null;
  m: number;
  accumulate: boolean;
}

/** Workgroups attention aims for before it splits the keys of a (head, row) pair. */
const ATTENTION_TARGET_GROUPS = 512;
/** Keys each attention workgroup visits per step (the kernel's WG). */
const ATTENTION_BLOCK = 64;

/**
 * How attention splits the keys: `splits` workgroups of `chunk` keys per (head, row) pair so
 * that `pairs` pairs with up to `maxLen` keys fill about ATTENTION_TARGET_GROUPS workgroups.
 */
export function attentionSplits(pairs: number, maxLen: number): { splits: number; chunk: number } {
  const blocks = Math.ceil(maxLen / ATTENTION_BLOCK);
  const wanted = Math.min(blocks, Math.ceil(ATTENTION_TARGET_GROUPS / pairs));
  if (wanted <= 1) return { splits: 1, chunk: maxLen };
  const chunk = Math.ceil(blocks / wanted) * ATTENTION_BLOCK;
  return { splits: Math.ceil(maxLen / chunk), chunk };
}

/** GEMV launches with short rows aim for at most this many threads (rows x threads per row). */
const GEMV_THREADS_TARGET = 131072;

/**
 * Threads per weight row for the GEMV kernel, from the row length in vec4 words and the
 * number of rows. Long rows get up to 256 threads; short rows (under 128 words) start at 32
 * and, in tall matrices, drop to as few as 8 while the launch still has more than
 * GEMV_THREADS_TARGET threads: each thread then loads more words and the reduction is
 * shorter (measured on an H200: lm_head 151936 x 896 bf16 at m = 1 takes 0.31 ms with 8
 * threads per row and 0.50 ms with 32).
 */
export function defaultGemvThreadsPerRow(strideVec4: number, rows: number): number {
  let tpr = 32;
  while (tpr < 256 && tpr * 4 <= strideVec4) tpr *= 2;
  if (tpr === 32) { while (tpr > 8 && rows * tpr > GEMV_THREADS_TARGET) tpr /= 2; }
  return tpr;
}

/** Weight words per GEMV thread per iteration: 2 for 16 or fewer threads per row, else 1. */
export function defaultGemvUnroll(threadsPerRow: number): number {
  return threadsPerRow <= 16 ? 2 : 1;
}

/** Threads per sparse row for the delta kernel, from the mean non-zeros per row. */
export function defaultSparseThreadsPerRow(meanNnz: number): number {
  let tpr = 8;
  while (tpr < 64 && tpr * 4 <= meanNnz) tpr *= 2;
  return tpr;
}

/** The matrix and attention ops, on top of the shared plumbing. */
export abstract class WebGpuOps extends WebGpuOpsBase {
  #gemvThreadsPerRow?: number;
  #gemvUnroll?: number;
  #scratchBuffer: GPUBuffer | null = null;

  /**
   * @param device the device
   * @param recorder recorder of that device
   * @param ropeTables rope tables of that device
   * @param gemvThreadsPerRow fixed GEMV threads per row (default: by shape)
   * @param gemvUnroll fixed weight words each GEMV thread loads per iteration: 1, 2 or 4
   *   (default: by threads per row)
   */
  constructor(
    device: GPUDevice,
    recorder: CommandRecorder,
    ropeTables: RopeTables,
    gemvThreadsPerRow?: number,
    gemvUnroll?: number,
  ) {
    super(device, recorder, ropeTables);
    if (gemvThreadsPerRow !== undefined) {
      const t = gemvThreadsPerRow;
      if (!Number.isInteger(t) || t < 1 || t > 256 || (t & (t - 1)) !== 0) {
        throw new RangeError(`Cannot use gemvThreadsPerRow ${t}: need a power of two in 1..256`);
      }
    }
    this.#gemvThreadsPerRow = gemvThreadsPerRow;
    if (gemvUnroll !== undefined && gemvUnroll !== 1 && gemvUnroll !== 2 && gemvUnroll !== 4) {
      throw new RangeError(`Cannot use gemvUnroll ${gemvUnroll}: need 1, 2 or 4`);
    }
    this.#gemvUnroll = gemvUnroll;
  }

  /** Destroys buffers owned by the ops themselves. */
  protected override destroyOpBuffers(): void {
    super.destroyOpBuffers();
    this.#scratchBuffer?.destroy();
    this.#scratchBuffer = null;
  }

  /** Calls `each(tm, mBase, blocks)` for the full TM_MAX-row blocks of m, then the rest. */
  #rowBlocks(m: number, each: (tm: number, mBase: number, blocks: number) => void): void {
    const full = Math.floor(m / TM_MAX);
    if (full > 0) each(TM_MAX, 0, full);
    if (m % TM_MAX > 0) each(m % TM_MAX, full * TM_MAX, 1);
  }

  /** out[i, :] = table[ids[i], :] for i < ids.length. */
  embed(out: Tensor, table: Weight, ids: Int32Array): void {
    this.recorder.boundary();
    const o = this.tensor(out, "embed output");
    const w = this.weight(table, "embedding table");
    const m = ids.length;
    need(o, m * w.cols, "embed output");
    for (let i = 0; i < m; i++) {
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= w.rows) {
        throw new RangeError(
          `Cannot embed token id ${ids[i]} at ${i}: the table has ${w.rows} rows`,
        );
      }
    }
    if (m === 0) return;
    const idSlice = this.recorder.hostSlice(ids.byteLength);
    idSlice.bytes.set(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
    for (const c of w.chunks) {
      this.recorder.dispatch({
        kernel: "embed",
        constants: { DTYPE: DTYPE_CODE[w.dtype] },
        params: { cols: w.cols, stride_w: w.strideWords, m, row_base: c.rowStart, rows: c.rows },
        resources: [c.buffer, idSlice, o.buffer],
        grid: this.linearGrid(Math.ceil((m * w.cols) / 256)),
      });
    }
  }

  /**
   * out[m, w.rows] = x[m, w.cols] @ w^T (+ bias[w.rows]) (+ out when accumulating), then each
   * delta on its rows. On the GEMV path (decode) one launch does it all: the accumulation, the
   * silu gate or the RMS norm of the input, and up to two deltas whose matrices are one chunk
   * like the weight; further deltas (and all deltas of the GEMM path) run as `sparseMatmulAdd`
   * launches, and a gate or norm that cannot fuse is applied through a temporary input.
   */
  matmul(out: Tensor, x: Tensor, w: Weight, m: number, opts: MatmulOptions = {}): void {
    const { deltas = [] } = opts;
    this.recorder.boundary();
    checkMatmulInput(opts);
    const o = this.tensor(out, "matmul output");
    const xt = this.tensor(x, "matmul input");
    const wt = this.weight(w, "matmul weight");
    const b = opts.bias ? this.tensor(opts.bias, "matmul bias") : null;
    const g = opts.gate ? this.tensor(opts.gate, "matmul gate") : null;
    const gamma = opts.norm ? this.tensor(opts.norm.gamma, "matmul norm gamma") : null;
    count(m, "m");
    need(xt, m * wt.cols, "matmul input");
    need(o, m * wt.rows, "matmul output");
    if (b) need(b, wt.rows, "matmul bias");
    if (g) need(g, m * wt.cols, "matmul gate");
    if (gamma) need(gamma, wt.cols, "matmul norm gamma");
    if ([xt, b, g, gamma].some((t) => t?.buffer === o.buffer)) {
      throw new RangeError(
        "Cannot run matmul: the output must not alias the input, bias, gate or norm weights",
      );
    }
    const sparse = deltas.map((d) => this.#checkDelta(o, xt, d, wt.rows, wt.cols));
    if (m === 0) return;
    const gemv = m <= GEMV_MAX_ROWS && wt.cols % (wt.dtype === "f32" ? 4 : 8) === 0;
    // Up to two deltas ride along in the GEMV launch when their matrices are single chunks
    // like w; any others run as separate launches.
    const fused: FusedDelta[] = [];
    if (gemv && wt.chunks.length === 1) {
      sparse.forEach((st, i) => {
        if (fused.length < MAX_FUSED_DELTAS && st.chunks.length === 1 && st.nnz > 0) {
          fused.push({ delta: deltas[i], st });
        }
      });
    }
    const rest = deltas.filter((d) => !fused.some((f) => f.delta === d));
    if ((g || gamma) && (!gemv || rest.length > 0)) {
      // Gate and norm fuse only into a GEMV launch that runs every delta itself; otherwise the
      // input is prepared first (this class is the base of the concrete backend).
      matmulPreparedInput(this as unknown as Backend, out, x, w, m, opts);
      return;
    }
    const io = { o, xt, wt, b, m, accumulate: opts.accumulate ?? false };
    if (gemv) this.#gemv(io, fused, g, gamma, opts.norm?.eps ?? 0);
    else this.#gemm(io);
    for (const d of rest) this.sparseMatmulAdd(out, x, d.sparse, d.scale, d.rowOffset, d.m);
  }

  /** The GEMV launches of `matmul` (decode): one per weight chunk and block of TM rows. */
  #gemv(
    io: MatmulIo,
    [f0, f1]: readonly FusedDelta[],
    g: GpuTensor | null,
    gamma: GpuTensor | null,
    eps: number,
  ): void {
    const { o, xt, wt, b, m } = io;
    const strideV = wt.cols / (wt.dtype === "f32" ? 4 : 8);
    for (const c of wt.chunks) {
      const tpr = this.#gemvThreadsPerRow ?? defaultGemvThreadsPerRow(strideV, c.rows);
      const unroll = this.#gemvUnroll ?? defaultGemvUnroll(tpr);
      const groups = Math.ceil(c.rows / (256 / tpr));
      this.#rowBlocks(m, (tm, mBase, blocks) => {
        const [gx, gy] = splitGrid(groups, this.maxPerDim);
        this.recorder.dispatch({
          kernel: "matmul_gemv",
          constants: {
            DTYPE: DTYPE_CODE[wt.dtype],
            THREADS_PER_ROW: tpr,
            TM: tm,
            UNROLL: unroll,
            ACCUMULATE: io.accumulate,
            GATED: g !== null,
            NORM: gamma !== null,
            S0: f0 ? DTYPE_CODE[f0.st.valueDtype] : 0,
            S0_WIDE: f0 ? f0.st.wide : false,
            S1: f1 ? DTYPE_CODE[f1.st.valueDtype] : 0,
            S1_WIDE: f1 ? f1.st.wide : false,
          },
          params: {
            rows: c.rows,
            cols: wt.cols,
            stride_v: strideV,
            m_base: mBase,
            out_stride: wt.rows,
            row_base: c.rowStart,
            has_bias: b ? 1 : 0,
            s0_row_offset: f0 ? f0.delta.rowOffset : 0,
            s0_m: f0 ? f0.delta.m : 0,
            s0_scale: f0 ? f0.delta.scale : 0,
            s1_row_offset: f1 ? f1.delta.rowOffset : 0,
            s1_m: f1 ? f1.delta.m : 0,
            s1_scale: f1 ? f1.delta.scale : 0,
            norm_eps: eps,
          },
          resources: [
            c.buffer,
            xt.buffer,
            o.buffer,
            b ? b.buffer : this.unusedBuffer,
            f0 ? f0.st.chunks[0].buffer : this.unusedBuffer,
            f1 ? f1.st.chunks[0].buffer : this.unusedBuffer,
            g ? g.buffer : this.unusedBuffer,
            gamma ? gamma.buffer : this.unusedBuffer,
          ],
          grid: [gx, gy, blocks],
        });
      });
    }
  }

  /** The GEMM launches of `matmul` (prefill, or columns the GEMV cannot take): one per chunk. */
  #gemm(io: MatmulIo): void {
    const { o, xt, wt, b, m } = io;
    for (const c of wt.chunks) {
      this.recorder.dispatch({
        kernel: "matmul_gemm",
        constants: { DTYPE: DTYPE_CODE[wt.dtype], ACCUMULATE: io.accumulate },
        params: {
          rows: c.rows,
          cols: wt.cols,
          stride_w: wt.strideWords,
          m,
          out_stride: wt.rows,
          row_base: c.rowStart,
          has_bias: b ? 1 : 0,
        },
        resources: [c.buffer, xt.buffer, o.buffer, b ? b.buffer : this.unusedBuffer],
        grid: [Math.ceil(c.rows / 64), Math.ceil(m / 64), 1],
      });
    }
  }

  /** Validates a delta of `matmul` (or `sparseMatmulAdd`) and returns its sparse matrix. */
  #checkDelta(o: GpuTensor, xt: GpuTensor, d: MatmulDelta, rows: number, cols: number): GpuSparse {
    const st = this.sparse(d.sparse, "sparse delta matrix");
    count(d.rowOffset, "rowOffset");
    count(d.m, "m");
    if (st.rows !== rows || st.cols !== cols) {
      throw new RangeError(
        `Cannot add a sparse delta [${st.rows}, ${st.cols}] to a matmul of [${rows}, ${cols}]`,
      );
    }
    need(xt, (d.rowOffset + d.m) * st.cols, "sparse delta input");
    need(o, (d.rowOffset + d.m) * st.rows, "sparse delta output");
    if (o.buffer === xt.buffer) {
      throw new RangeError("Cannot run the sparse delta: the output must not alias the input");
    }
    return st;
  }

  /** Rows [rowOffset, rowOffset + m): out += scale * x @ s^T. */
  sparseMatmulAdd(
    out: Tensor,
    x: Tensor,
    s: SparseWeight,
    scale: number,
    rowOffset: number,
    m: number,
  ): void {
    this.recorder.boundary();
    const o = this.tensor(out, "sparse delta output");
    const xt = this.tensor(x, "sparse delta input");
    const st = this.sparse(s, "sparse delta matrix");
    this.#checkDelta(o, xt, { sparse: s, scale, rowOffset, m }, st.rows, st.cols);
    if (m === 0 || st.nnz === 0) return;
    const tpr = defaultSparseThreadsPerRow(st.nnz / st.rows);
    for (const c of st.chunks) {
      const groups = Math.ceil(c.rows / (256 / tpr));
      this.#rowBlocks(m, (tm, mBase, blocks) => {
        const [gx, gy] = splitGrid(groups, this.maxPerDim);
        this.recorder.dispatch({
          kernel: "sparse_matmul_add",
          constants: {
            VALUE_DTYPE: DTYPE_CODE[st.valueDtype],
            WIDE: st.wide,
            THREADS_PER_ROW: tpr,
            TM: tm,
          },
          params: {
            rows: c.rows,
            row_base: c.rowStart,
            out_stride: st.rows,
            x_stride: st.cols,
            row_offset: rowOffset,
            m_base: mBase,
            scale,
          },
          resources: [c.buffer, xt.buffer, o.buffer],
          grid: [gx, gy, blocks],
        });
      });
    }
  }

  /** w += scale * s in place, rounding each updated element to w's dtype. */
  scatterAdd(w: Weight, s: SparseWeight, scale: number): void {
    this.recorder.boundary();
    const wt = this.weight(w, "scatter-add target");
    const st = this.sparse(s, "scatter-add matrix");
    if (wt.rows !== st.rows || wt.cols !== st.cols) {
      throw new RangeError(
        `Cannot scatter-add a sparse [${st.rows}, ${st.cols}] into a weight [${wt.rows}, ${wt.cols}]`,
      );
    }
    if (st.nnz === 0) return;
    for (const wc of wt.chunks) {
      for (const sc of st.chunks) {
        const r0 = Math.max(wc.rowStart, sc.rowStart);
        const r1 = Math.min(wc.rowStart + wc.rows, sc.rowStart + sc.rows);
        if (r1 <= r0) continue;
        this.recorder.dispatch({
          kernel: "scatter_add",
          constants: {
            W_DTYPE: DTYPE_CODE[wt.dtype],
            VALUE_DTYPE: DTYPE_CODE[st.valueDtype],
            WIDE: st.wide,
          },
          params: {
            rows: r1 - r0,
            sparse_row0: r0 - sc.rowStart,
            w_row0: r0 - wc.rowStart,
            stride_w: wt.strideWords,
            scale,
            chunk_rows: sc.rows,
          },
          resources: [sc.buffer, wc.buffer],
          grid: this.linearGrid(r1 - r0),
        });
      }
    }
  }

  /** Causal grouped-query attention of q rows over the cache, written to the rows of out. */
  attention(out: Tensor, q: Tensor, args: AttentionArgs): void {
    this.recorder.boundary();
    const { numHeads, numKvHeads, headDim, layer, rowOffset, m, startPos } = args;
    const c = this.kvCache(args.cache, layer, startPos, m);
    const o = this.tensor(out, "attention output");
    const qt = this.tensor(q, "attention query");
    count(rowOffset, "rowOffset");
    if (numKvHeads !== c.numKvHeads || headDim !== c.headDim) {
      throw new RangeError(
        `Cannot run attention: ${numKvHeads} kv heads of ${headDim} do not match the cache ` +
          `(${c.numKvHeads} of ${c.headDim})`,
      );
    }
    if (!Number.isInteger(numHeads) || numHeads < 1 || numHeads % numKvHeads !== 0) {
      throw new RangeError(
        `Cannot run attention: numHeads ${numHeads} is not a multiple of numKvHeads ${numKvHeads}`,
      );
    }
    if (headDim > ATTENTION_MAX_HEAD_DIM) {
      throw new UnsupportedOpError(
        `Cannot run attention with head dim ${headDim} on WebGPU: the kernel supports up to ` +
          `${ATTENTION_MAX_HEAD_DIM}; use the wasm backend`,
      );
    }
    need(qt, (rowOffset + m) * numHeads * headDim, "attention query");
    need(o, (rowOffset + m) * numHeads * headDim, "attention output");
    const scale = 1 / Math.sqrt(headDim);
    for (let done = 0; done < m; done += this.maxPerDim) {
      const rows = Math.min(this.maxPerDim, m - done);
      const params = {
        num_heads: numHeads,
        num_kv_heads: numKvHeads,
        head_dim: headDim,
        row_offset: rowOffset + done,
        m: rows,
        start_pos: startPos + done,
        scale,
      };
      const kv = [qt.buffer, c.keys[layer], c.values[layer]];
      const { splits, chunk } = attentionSplits(numHeads * rows, startPos + done + rows);
      if (splits === 1) {
        this.recorder.dispatch({
          kernel: "attention",
          constants: { PARTIAL: false },
          params: { ...params, chunk: 0, splits: 1 },
          resources: [...kv, o.buffer],
          grid: [numHeads, rows, 1],
        });
        continue;
      }
      // Few (head, row) pairs and many keys: split the keys over workgroups, then merge.
      const partials = this.#scratch(rows * numHeads * splits * (headDim + 2) * 4);
      this.recorder.dispatch({
        kernel: "attention",
        constants: { PARTIAL: true },
        params: { ...params, chunk, splits },
        resources: [...kv, partials],
        grid: [numHeads, rows, splits],
      });
      this.recorder.dispatch({
        kernel: "attention_combine",
        params: { num_heads: numHeads, head_dim: headDim, row_offset: rowOffset + done, splits },
        resources: [partials, o.buffer],
        grid: [numHeads, rows, 1],
      });
    }
  }

  /** A scratch buffer of at least `bytes` (grown, never shrunk; reused by later ops). */
  #scratch(bytes: number): GPUBuffer {
    if (!this.#scratchBuffer || this.#scratchBuffer.size < bytes) {
      if (this.#scratchBuffer) this.recorder.release(this.#scratchBuffer);
      this.#scratchBuffer = this.device.createBuffer({
        size: Math.max(alignedSize(bytes), 64 * 1024),
        usage: GPUBufferUsage.STORAGE,
        label: "attention partials",
      });
    }
    return this.#scratchBuffer;
  }
}
