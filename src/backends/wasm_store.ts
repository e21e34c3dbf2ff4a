/**
 * Resource side of the WASM SIMD backend: the arena in the shared memory, tensors,
 * weights, sparse matrices and KV caches (create, write, read, copy, free), plus the
 * helpers the ops use to validate handles and to split kernels between threads.
 */
import type {
  BackendInfo,
  KvCache,
  SparseMatrixData,
  SparseWeight,
  Tensor,
  Weight,
} from "./backend.ts";
import { type DType, dtypeBytes, f16ToF32 } from "../tensor/dtype.ts";
import { WasmArena } from "./wasm_arena.ts";
import { type KernelExports, type KernelName, WASM_PAGE_BYTES } from "./wasm_module.ts";
import type { WasmThreadPool } from "./wasm_pool.ts";
import {
  type AnyWasmResource,
  WasmKvCache,
  WasmSparse,
  WasmTensor,
  WasmWeight,
} from "./wasm_resources.ts";
import { splitGroups, toSell4, validateCsr } from "./wasm_sparse.ts";
import { need, needInt } from "./wasm_checks.ts";

/** Chunks per thread of a parallel kernel call (see WasmStore's #chunks). */
const CHUNKS_PER_THREAD = 4;

/** Resources and thread dispatch of the WASM backend; `WasmBackend` adds the ops. */
export class WasmStore {
  /** Name and device (thread count). */
  readonly info: BackendInfo;
  /** The shared memory holding every resource. */
  readonly memory: WebAssembly.Memory;
  /** Kernel exports of the main thread's instance. */
  protected readonly kernels: KernelExports;
  /** Main thread + workers. */
  protected readonly pool: WasmThreadPool;
  readonly #arena: WasmArena;
  readonly #parallelMinBytes: number;
  readonly #live = new Set<AnyWasmResource>();
  #scratchPtr = -1;
  #scratchBytes = 0;
  #disposed = false;

  /** Use `createWasmBackend`. */
  constructor(
    memory: WebAssembly.Memory,
    kernels: KernelExports,
    pool: WasmThreadPool,
    maxPages: number,
    parallelMinBytes: number,
  ) {
    this.memory = memory;
    this.kernels = kernels;
    this.pool = pool;
    this.#arena = new WasmArena(memory, kernels.heapBase(), maxPages * WASM_PAGE_BYTES);
    this.#parallelMinBytes = parallelMinBytes;
    const t = pool.threads;
    this.info = { name: "wasm-simd", device: `wasm-simd x${t} thread${t === 1 ? "" : "s"}` };
  }

  /**
   * Chunks a parallel op is cut into: CHUNKS_PER_THREAD per thread, claimed dynamically
   * (wasm_pool.ts), so a worker the OS does not schedule holds back only a small share.
   */
  get #chunks(): number {
    return this.threads === 1 ? 1 : this.threads * CHUNKS_PER_THREAD;
  }

  /** Threads taking part in each op (main thread included). */
  get threads(): number {
    return this.pool.threads;
  }

  /** Bytes held by live resources and scratch. */
  get liveBytes(): number {
    return this.#arena.liveBytes;
  }

  /** @inheritdoc */
  alloc(size: number): Tensor {
    needInt("alloc", "size", size, 0);
    const ptr = this.#allocBytes(size * 4);
    new Uint8Array(this.memory.buffer, ptr, size * 4).fill(0);
    return this.#track(new WasmTensor(this, ptr, size));
  }

  /** @inheritdoc */
  write(t: Tensor, data: Float32Array, offset = 0): void {
    const tensor = this.tensor(t, "write");
    need(
      offset >= 0 && offset + data.length <= tensor.size,
      () =>
        `Cannot write ${data.length} values at offset ${offset}: the ${tensor.describe()} is too small`,
    );
    new Float32Array(this.memory.buffer, tensor.ptr + offset * 4, data.length).set(data);
  }

  /** @inheritdoc */
  read(t: Tensor, offset = 0, length?: number): Promise<Float32Array> {
    try {
      const tensor = this.tensor(t, "read");
      const n = length ?? tensor.size - offset;
      need(
        offset >= 0 && n >= 0 && offset + n <= tensor.size,
        () => `Cannot read ${n} values at offset ${offset}: the ${tensor.describe()} is too small`,
      );
      return Promise.resolve(
        new Float32Array(this.memory.buffer, tensor.ptr + offset * 4, n).slice(),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** @inheritdoc */
  uploadWeight(bytes: Uint8Array, dtype: DType, rows: number, cols: number): Weight {
    needInt("uploadWeight", "rows", rows, 0);
    needInt("uploadWeight", "cols", cols, 0);
    if (dtype !== "bf16" && dtype !== "f32" && dtype !== "f16") {
      throw new TypeError(`Cannot upload weight: dtype "${dtype}" is not bf16, f16 or f32`);
    }
    const expected = rows * cols * dtypeBytes(dtype);
    need(
      bytes.byteLength === expected,
      () =>
        `Cannot upload ${dtype} weight [${rows}, ${cols}]: got ${bytes.byteLength} bytes, ` +
        `expected ${expected}`,
    );
    const w = new WasmWeight(this, -1, rows, cols, dtype);
    w.ptr = this.#allocBytes(w.bytes + 16);
    if (dtype === "f16") {
      const src = new Uint16Array(bytes.slice().buffer);
      const dst = new Float32Array(this.memory.buffer, w.ptr, rows * cols);
      for (let i = 0; i < src.length; i++) dst[i] = f16ToF32(src[i]);
    } else {
      new Uint8Array(this.memory.buffer, w.ptr, bytes.byteLength).set(bytes);
    }
    return this.#track(w);
  }

  /** @inheritdoc */
  uploadSparse(data: SparseMatrixData): SparseWeight {
    validateCsr(data);
    const sell = toSell4(data);
    const rowsBytes = sell.groupRows.byteLength;
    const ptrBytes = Math.ceil(sell.groupPtr.byteLength / 16) * 16;
    const ptr = this.#allocBytes(rowsBytes + ptrBytes + sell.slots.byteLength);
    const u8 = new Uint8Array(this.memory.buffer);
    u8.set(new Uint8Array(sell.groupRows.buffer), ptr);
    u8.set(new Uint8Array(sell.groupPtr.buffer), ptr + rowsBytes);
    u8.set(sell.slots, ptr + rowsBytes + ptrBytes);
    return this.#track(
      new WasmSparse(this, ptr, {
        rows: sell.rows,
        cols: sell.cols,
        nnz: sell.nnz,
        groups: sell.groups,
        blocks: sell.blocks,
        groupRowsPtr: ptr,
        groupPtrPtr: ptr + rowsBytes,
        slotsPtr: ptr + rowsBytes + ptrBytes,
        wideIdx: sell.wideIdx,
        f32Vals: sell.f32Vals,
        ranges: splitGroups(sell.groupPtr, sell.groups, sell.blocks, this.#chunks),
        slots: sell.slotCount,
      }),
    );
  }

  /** @inheritdoc */
  cloneWeight(w: Weight): Weight {
    const src = this.weight(w, "cloneWeight");
    const copy = new WasmWeight(this, -1, src.rows, src.cols, src.dtype);
    copy.ptr = this.#allocBytes(src.bytes + 16);
    new Uint8Array(this.memory.buffer).copyWithin(copy.ptr, src.ptr, src.ptr + src.bytes);
    return this.#track(copy);
  }

  /** @inheritdoc */
  allocKvCache(numLayers: number, maxSeq: number, numKvHeads: number, headDim: number): KvCache {
    needInt("allocKvCache", "numLayers", numLayers, 1);
    needInt("allocKvCache", "maxSeq", maxSeq, 1);
    needInt("allocKvCache", "numKvHeads", numKvHeads, 1);
    needInt("allocKvCache", "headDim", headDim, 1);
    const bytes = numLayers * 2 * numKvHeads * maxSeq * headDim * 4;
    const ptr = this.#allocBytes(bytes);
    new Uint8Array(this.memory.buffer, ptr, bytes).fill(0);
    return this.#track(new WasmKvCache(this, ptr, numLayers, maxSeq, numKvHeads, headDim));
  }

  /** @inheritdoc */
  free(r: Tensor | Weight | SparseWeight | KvCache): void {
    const res = this.#own(r, "free");
    this.#arena.free(res.ptr);
    res.ptr = -1;
    this.#live.delete(res);
  }

  /** @inheritdoc */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.pool.dispose();
    for (const res of this.#live) res.ptr = -1;
    this.#live.clear();
  }

  /** @inheritdoc */
  copy(dst: Tensor, dstOffset: number, src: Tensor, srcOffset: number, n: number): void {
    const d = this.tensor(dst, "copy");
    const s = this.tensor(src, "copy");
    needInt("copy", "n", n, 0);
    needInt("copy", "dstOffset", dstOffset, 0);
    needInt("copy", "srcOffset", srcOffset, 0);
    need(
      dstOffset + n <= d.size && srcOffset + n <= s.size,
      () =>
        `Cannot run copy: ${n} elements from offset ${srcOffset} of a ${s.describe()} to offset ` +
        `${dstOffset} of a ${d.describe()} run past an end`,
    );
    const f32 = new Float32Array(this.memory.buffer);
    const from = s.ptr / 4 + srcOffset;
    f32.copyWithin(d.ptr / 4 + dstOffset, from, from + n);
  }

  /**
   * Runs a kernel over `total` units split evenly between threads in multiples of
   * `align`, when the op touches enough bytes (`bytesPerUnit`) to pay for waking workers.
   */
  protected run(
    kernel: KernelName,
    args: number[],
    total: number,
    align: number,
    bytesPerUnit: number,
  ): void {
    const t = total * bytesPerUnit >= this.#parallelMinBytes ? this.#chunks : 1;
    const ranges = new Array<number>(2 * t).fill(0);
    const per = Math.ceil(total / t / align) * align;
    for (let i = 0; i < t; i++) {
      ranges[2 * i] = Math.min(total, i * per);
      ranges[2 * i + 1] = Math.min(total, (i + 1) * per);
    }
    this.pool.run(kernel, args, ranges);
  }

  /** Runs a kernel with precomputed per-thread ranges, or all on the main thread if small. */
  protected runRanges(
    kernel: KernelName,
    args: number[],
    ranges: number[],
    bytes: number,
  ): void {
    if (bytes >= this.#parallelMinBytes || this.threads === 1) {
      this.pool.run(kernel, args, ranges);
    } else {
      this.pool.run(kernel, args, [0, ranges[ranges.length - 1]]);
    }
  }

  /** Arena bytes for a new resource (refused after dispose). */
  #allocBytes(bytes: number): number {
    if (this.#disposed) throw new Error("Cannot allocate: the wasm backend was disposed");
    return this.#arena.alloc(bytes);
  }

  /** A scratch block of at least `bytes`, valid until the next op. */
  protected scratch(bytes: number): number {
    if (bytes > this.#scratchBytes) {
      if (this.#scratchPtr >= 0) this.#arena.free(this.#scratchPtr);
      this.#scratchBytes = Math.max(4096, 2 ** Math.ceil(Math.log2(bytes)));
      this.#scratchPtr = this.#arena.alloc(this.#scratchBytes);
    }
    return this.#scratchPtr;
  }

  #track<T extends AnyWasmResource>(r: T): T {
    this.#live.add(r);
    return r;
  }

  /** The handle as a live resource of this backend. */
  #own(r: unknown, op: string): AnyWasmResource {
    if (this.#disposed) throw new Error(`Cannot run ${op}: the wasm backend was disposed`);
    const res = r as AnyWasmResource;
    if (
      !(res instanceof WasmTensor || res instanceof WasmWeight || res instanceof WasmSparse ||
        res instanceof WasmKvCache) || res.owner !== this
    ) {
      throw new TypeError(`Cannot run ${op}: the resource was not created by this wasm backend`);
    }
    if (res.ptr < 0) throw new Error(`Cannot run ${op}: the ${res.describe()} was freed`);
    return res;
  }

  /** This backend's live tensor behind `t`, or a TypeError / Error naming `op`. */
  protected tensor(t: Tensor, op: string): WasmTensor {
    const r = this.#own(t, op);
    if (!(r instanceof WasmTensor)) throw new TypeError(`Cannot run ${op}: expected a tensor`);
    return r;
  }

  /** This backend's live dense weight behind `w`, or a TypeError / Error naming `op`. */
  protected weight(w: Weight, op: string): WasmWeight {
    const r = this.#own(w, op);
    if (!(r instanceof WasmWeight)) throw new TypeError(`Cannot run ${op}: expected a weight`);
    return r;
  }

  /** This backend's live sparse matrix behind `s`, or a TypeError / Error naming `op`. */
  protected sparse(s: SparseWeight, op: string): WasmSparse {
    const r = this.#own(s, op);
    if (!(r instanceof WasmSparse)) {
      throw new TypeError(`Cannot run ${op}: expected a sparse weight`);
    }
    return r;
  }

  /** This backend's live KV cache behind `c`, or a TypeError / Error naming `op`. */
  protected cache(c: KvCache, op: string): WasmKvCache {
    const r = this.#own(c, op);
    if (!(r instanceof WasmKvCache)) throw new TypeError(`Cannot run ${op}: expected a KV cache`);
    return r;
  }
}
