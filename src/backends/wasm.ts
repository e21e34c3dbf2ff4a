/**
 * The WASM SIMD backend: kernels from kernels/wasm (AssemblyScript, one module with SIMD and
 * relaxed SIMD) on one shared, growable WebAssembly memory, run eagerly on the main thread
 * plus optional Deno Workers (rows of each op split between threads). Weights are uploaded
 * once into an arena in that memory (see wasm_store.ts); bf16 stays bf16 and is widened in
 * registers.
 */
import type {
  AttentionArgs,
  Backend,
  KvCache,
  MatmulOptions,
  SparseWeight,
  Tensor,
  Weight,
} from "./backend.ts";
import {
  compileKernels,
  createSharedMemory,
  instantiateKernels,
  MAX_WASM_PAGES,
  WASM_PAGE_BYTES,
} from "./wasm_module.ts";
import { kvWriteRotated } from "./kv_write_rope.ts";
import { matmulPreparedInput } from "./matmul_input.ts";
import { WasmThreadPool } from "./wasm_pool.ts";
import { WasmStore } from "./wasm_store.ts";
import { MAX_U16_COLS, scatterAddRoundF16 } from "./wasm_sparse.ts";
import { ropeTable } from "./wasm_rope.ts";
import { checkKvArgs, need, needInt } from "./wasm_checks.ts";

/** Bytes per staged x row of the decode sparse kernel (rows live at 0 and 65536). */
const STAGE_ROW_BYTES = MAX_U16_COLS * 4;

/** Options of `createWasmBackend`. */
export interface WasmBackendOptions {
  /** Threads incl. the main thread (default: navigator.hardwareConcurrency). */
  threads?: number;
  /** Ops touching fewer bytes run on the main thread only (default 128 KiB). */
  parallelMinBytes?: number;
  /** Memory limit in MiB (default and maximum 4096). */
  maxMemoryMiB?: number;
}

/** Creates a WASM SIMD backend (compiles the kernels once per process, starts workers). */
export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  const threads = opts.threads ?? navigator.hardwareConcurrency ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
    throw new RangeError(`Cannot create the wasm backend: threads = ${threads}, expected 1-64`);
  }
  const maxMiB = opts.maxMemoryMiB ?? 4096;
  if (!(maxMiB >= 1 && maxMiB <= 4096)) {
    throw new RangeError(
      `Cannot create the wasm backend: maxMemoryMiB = ${maxMiB}, expected 1-4096`,
    );
  }
  const maxPages = Math.min(MAX_WASM_PAGES, Math.floor((maxMiB * 1048576) / WASM_PAGE_BYTES));
  const module = await compileKernels();
  const memory = createSharedMemory(Math.min(16, maxPages), maxPages);
  const kernels = instantiateKernels(module, memory);
  const pool = await WasmThreadPool.create(module, memory, kernels, threads);
  return new WasmBackend(memory, kernels, pool, maxPages, opts.parallelMinBytes ?? 128 * 1024);
}

/** Backend running the WASM SIMD kernels; see `createWasmBackend`. */
/** Backend running the WASM SIMD kernels; see `createWasmBackend`. */
export class WasmBackend extends WasmStore implements Backend {
  /** @inheritdoc */
  embed(out: Tensor, table: Weight, ids: Int32Array): void {
    const o = this.tensor(out, "embed");
    const t = this.weight(table, "embed");
    need(
      o.size >= ids.length * t.cols,
      () => `Cannot run embed: out has ${o.size} elements, needs ${ids.length} x ${t.cols}`,
    );
    for (let i = 0; i < ids.length; i++) {
      need(
        ids[i] >= 0 && ids[i] < t.rows,
        () =>
          `Cannot run embed: token id ${ids[i]} (ids[${i}]) is outside the table's ${t.rows} rows`,
      );
    }
    const idsPtr = this.scratch(ids.length * 4);
    new Int32Array(this.memory.buffer, idsPtr, ids.length).set(ids);
    const bf16 = t.storage === "bf16" ? 1 : 0;
    this.run("embedRows", [o.ptr, t.ptr, idsPtr, t.cols, bf16], ids.length, 1, t.cols * 6);
  }

  /** @inheritdoc */
  matmul(out: Tensor, x: Tensor, w: Weight, m: number, opts: MatmulOptions = {}): void {
    if (opts.gate || opts.norm) {
      matmulPreparedInput(this, out, x, w, m, opts);
      return;
    }
    const { bias, deltas = [], accumulate = false } = opts;
    const o = this.tensor(out, "matmul");
    const xt = this.tensor(x, "matmul");
    const wt = this.weight(w, "matmul");
    needInt("matmul", "m", m, 0);
    need(
      xt.size >= m * wt.cols,
      () => `Cannot run matmul: x has ${xt.size} elements, needs m * cols = ${m} x ${wt.cols}`,
    );
    need(
      o.size >= m * wt.rows,
      () => `Cannot run matmul: out has ${o.size} elements, needs m * rows = ${m} x ${wt.rows}`,
    );
    const b = bias ? this.tensor(bias, "matmul") : undefined;
    need(
      !b || b.size >= wt.rows,
      () => `Cannot run matmul: bias has ${b?.size} elements, needs ${wt.rows}`,
    );
    for (const d of deltas) {
      const sp = this.sparse(d.sparse, "matmul");
      need(
        sp.rows === wt.rows && sp.cols === wt.cols,
        () =>
          `Cannot add a sparse delta [${sp.rows}, ${sp.cols}] to a matmul of [${wt.rows}, ${wt.cols}]`,
      );
    }
    if (m > 0 && wt.rows > 0) {
      // Accumulate: the product goes to a scratch tensor, then one add (the kernels overwrite).
      const dst = accumulate ? this.alloc(m * wt.rows) : out;
      try {
        const rowBytes = wt.cols * (wt.storage === "bf16" ? 2 : 4);
        const kernel = wt.storage === "bf16" ? "gemmBf16" : "gemmF32";
        const args = [
          wt.ptr,
          xt.ptr,
          this.tensor(dst, "matmul").ptr,
          b?.ptr ?? 0,
          m,
          wt.rows,
          wt.cols,
        ];
        this.run(kernel, args, wt.rows, 4, rowBytes);
        if (accumulate) this.add(out, out, dst, m * wt.rows);
      } finally {
        if (accumulate) this.free(dst);
      }
    }
    for (const d of deltas) this.sparseMatmulAdd(out, x, d.sparse, d.scale, d.rowOffset, d.m);
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
    const o = this.tensor(out, "sparseMatmulAdd");
    const xt = this.tensor(x, "sparseMatmulAdd");
    const sp = this.sparse(s, "sparseMatmulAdd");
    needInt("sparseMatmulAdd", "rowOffset", rowOffset, 0);
    needInt("sparseMatmulAdd", "m", m, 0);
    const end = rowOffset + m;
    need(
      xt.size >= end * sp.cols,
      () =>
        `Cannot run sparseMatmulAdd: x has ${xt.size} elements, needs rows up to ${end} x ${sp.cols}`,
    );
    need(
      o.size >= end * sp.rows,
      () =>
        `Cannot run sparseMatmulAdd: out has ${o.size} elements, needs rows up to ${end} x ${sp.rows}`,
    );
    if (m === 0 || sp.groups === 0) return;
    // Decode (m <= 2): stage x rows at addresses 0 and 65536 so gathers need no add.
    const staged = sp.wideIdx === 0 && m <= 2 ? 1 : 0;
    const xRow = xt.ptr + rowOffset * sp.cols * 4;
    if (staged) {
      const u8 = new Uint8Array(this.memory.buffer);
      for (let i = 0; i < m; i++) {
        const from = xRow + i * sp.cols * 4;
        u8.copyWithin(i * STAGE_ROW_BYTES, from, from + sp.cols * 4);
      }
    }
    const args = [
      sp.groupRowsPtr,
      sp.groupPtrPtr,
      sp.slotsPtr,
      xRow,
      o.ptr + rowOffset * sp.rows * 4,
      scale,
      m,
      sp.rows,
      sp.cols,
      sp.wideIdx,
      sp.f32Vals,
      staged,
      sp.groups,
      sp.blocks,
    ];
    this.runRanges("spmmSell4", args, sp.ranges, sp.slots * 16 * m);
  }

  /** @inheritdoc */
  scatterAdd(w: Weight, s: SparseWeight, scale: number): void {
    const wt = this.weight(w, "scatterAdd");
    const sp = this.sparse(s, "scatterAdd");
    need(
      wt.rows === sp.rows && wt.cols === sp.cols,
      () =>
        `Cannot run scatterAdd: weight [${wt.rows}, ${wt.cols}] and sparse matrix ` +
        `[${sp.rows}, ${sp.cols}] differ in shape`,
    );
    if (sp.groups === 0) return;
    if (wt.dtype === "f16") {
      scatterAddRoundF16(this.memory.buffer, sp, wt.ptr, scale);
      return;
    }
    const args = [
      sp.groupRowsPtr,
      sp.groupPtrPtr,
      sp.slotsPtr,
      wt.ptr,
      wt.cols,
      scale,
      sp.wideIdx,
      sp.f32Vals,
      wt.storage === "f32" ? 1 : 0,
      sp.groups,
      sp.blocks,
    ];
    this.runRanges("scatterAddSell4", args, sp.ranges, sp.slots * 64);
  }

  /** @inheritdoc */
  rmsNorm(out: Tensor, x: Tensor, gamma: Tensor, m: number, eps: number): void {
    const o = this.tensor(out, "rmsNorm");
    const xt = this.tensor(x, "rmsNorm");
    const g = this.tensor(gamma, "rmsNorm");
    needInt("rmsNorm", "m", m, 0);
    const n = m * g.size;
    need(
      xt.size >= n && o.size >= n,
      () =>
        `Cannot run rmsNorm: x (${xt.size}) and out (${o.size}) need m * cols = ${m} x ${g.size}`,
    );
    this.run("rmsNorm", [o.ptr, xt.ptr, g.ptr, g.size, eps], m, 1, g.size * 8);
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
    const xt = this.tensor(x, "rope");
    needInt("rope", "m", m, 0);
    needInt("rope", "numHeads", numHeads, 1);
    needInt("rope", "headDim", headDim, 2);
    need(headDim % 2 === 0, () => `Cannot run rope: headDim ${headDim} is odd`);
    need(
      positions.length >= m,
      () => `Cannot run rope: positions has ${positions.length} entries, needs m = ${m}`,
    );
    need(
      xt.size >= m * numHeads * headDim,
      () => `Cannot run rope: x has ${xt.size} elements, needs ${m} x ${numHeads} x ${headDim}`,
    );
    const table = ropeTable(positions, m, headDim, theta);
    const tablePtr = this.scratch(table.byteLength);
    new Float32Array(this.memory.buffer, tablePtr, table.length).set(table);
    this.run(
      "ropeRotateHalf",
      [xt.ptr, tablePtr, m, numHeads, headDim],
      m,
      1,
      numHeads * headDim * 8,
    );
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
    const c = this.cache(cache, "kvWrite");
    const kt = this.tensor(k, "kvWrite");
    const vt = this.tensor(v, "kvWrite");
    checkKvArgs("kvWrite", c, layer, rowOffset, m, startPos);
    const width = c.numKvHeads * c.headDim;
    need(
      kt.size >= (rowOffset + m) * width && vt.size >= (rowOffset + m) * width,
      () =>
        `Cannot run kvWrite: k (${kt.size}) and v (${vt.size}) need ${
          rowOffset + m
        } rows of ${width}`,
    );
    const kBase = c.keys(layer);
    const args = [
      kBase,
      kBase + c.halfLayerBytes,
      kt.ptr + rowOffset * width * 4,
      vt.ptr + rowOffset * width * 4,
      c.numKvHeads,
      c.headDim,
      c.maxSeq,
      startPos,
    ];
    this.run("kvWrite", args, m, 1, width * 16);
  }

  /** @inheritdoc */
  attention(out: Tensor, q: Tensor, a: AttentionArgs): void {
    const o = this.tensor(out, "attention");
    const qt = this.tensor(q, "attention");
    const c = this.cache(a.cache, "attention");
    needInt("attention", "numHeads", a.numHeads, 1);
    needInt("attention", "numKvHeads", a.numKvHeads, 1);
    need(
      a.numKvHeads === c.numKvHeads && a.headDim === c.headDim,
      () =>
        `Cannot run attention: args give ${a.numKvHeads} kv heads of ${a.headDim}, the cache holds ` +
        `${c.numKvHeads} of ${c.headDim}`,
    );
    need(
      a.numHeads % a.numKvHeads === 0,
      () =>
        `Cannot run attention: numHeads ${a.numHeads} is not a multiple of numKvHeads ${a.numKvHeads}`,
    );
    checkKvArgs("attention", c, a.layer, a.rowOffset, a.m, a.startPos);
    const width = a.numHeads * a.headDim;
    const rowsEnd = (a.rowOffset + a.m) * width;
    need(
      qt.size >= rowsEnd && o.size >= rowsEnd,
      () =>
        `Cannot run attention: q (${qt.size}) and out (${o.size}) need ${a.rowOffset + a.m} rows ` +
        `of ${width}`,
    );
    if (a.m === 0) return;
    const scratch = this.scratch(this.threads * c.maxSeq * 4);
    const kBase = c.keys(a.layer);
    const args = [
      o.ptr + a.rowOffset * width * 4,
      qt.ptr + a.rowOffset * width * 4,
      kBase,
      kBase + c.halfLayerBytes,
      scratch,
      a.numHeads,
      a.numKvHeads,
      a.headDim,
      c.maxSeq,
      a.startPos,
      1 / Math.sqrt(a.headDim),
    ];
    const avgLen = a.startPos + (a.m + 1) / 2;
    this.run("attention", args, a.m * a.numHeads, 1, avgLen * a.headDim * 8);
  }

  /** @inheritdoc */
  siluMul(out: Tensor, gate: Tensor, up: Tensor, n: number): void {
    const o = this.tensor(out, "siluMul");
    const g = this.tensor(gate, "siluMul");
    const u = this.tensor(up, "siluMul");
    needInt("siluMul", "n", n, 0);
    need(
      o.size >= n && g.size >= n && u.size >= n,
      () => `Cannot run siluMul: out (${o.size}), gate (${g.size}) and up (${u.size}) need ${n}`,
    );
    this.run("siluMul", [o.ptr, g.ptr, u.ptr], n, 16, 48);
  }

  /** @inheritdoc */
  add(out: Tensor, a: Tensor, b: Tensor, n: number): void {
    const o = this.tensor(out, "add");
    const at = this.tensor(a, "add");
    const bt = this.tensor(b, "add");
    needInt("add", "n", n, 0);
    need(
      o.size >= n && at.size >= n && bt.size >= n,
      () => `Cannot run add: out (${o.size}), a (${at.size}) and b (${bt.size}) need ${n}`,
    );
    this.run("addVec", [o.ptr, at.ptr, bt.ptr], n, 16, 12);
  }
}
