/**
 * Handles of the WASM backend's resources. Each owns one block of the arena (`ptr`) and
 * remembers its backend, so a handle from another backend or a freed handle is refused.
 */
import type { KvCache, SparseWeight, Tensor, Weight } from "./backend.ts";
import type { DType } from "../tensor/dtype.ts";

/** Common state of every handle. */
abstract class WasmResource {
  /** Arena block; -1 after `free`. */
  ptr: number;
  /** The backend that made it. */
  readonly owner: object;

  constructor(owner: object, ptr: number) {
    this.owner = owner;
    this.ptr = ptr;
  }

  /** What the handle is, for error messages. */
  abstract describe(): string;
}

/** An f32 activation tensor of `size` elements at `ptr`. */
export class WasmTensor extends WasmResource implements Tensor {
  readonly size: number;

  constructor(owner: object, ptr: number, size: number) {
    super(owner, ptr);
    this.size = size;
  }

  describe(): string {
    return `tensor of ${this.size} elements`;
  }
}

/**
 * A dense weight [rows, cols]. `storage` is how it sits in memory: bf16 stays bf16, f32
 * stays f32, f16 is widened to f32 on upload (exact) because the kernels read bf16/f32.
 */
export class WasmWeight extends WasmResource implements Weight {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: DType;
  readonly storage: "bf16" | "f32";

  constructor(owner: object, ptr: number, rows: number, cols: number, dtype: DType) {
    super(owner, ptr);
    this.rows = rows;
    this.cols = cols;
    this.dtype = dtype;
    this.storage = dtype === "bf16" ? "bf16" : "f32";
  }

  /** Bytes of the stored matrix. */
  get bytes(): number {
    return this.rows * this.cols * (this.storage === "bf16" ? 2 : 4);
  }

  describe(): string {
    return `${this.dtype} weight [${this.rows}, ${this.cols}]`;
  }
}

/** A sparse matrix in the SELL-4 layout (see wasm_sparse.ts); sub-arrays of one block. */
export class WasmSparse extends WasmResource implements SparseWeight {
  readonly rows: number;
  readonly cols: number;
  readonly nnz: number;
  readonly groups: number;
  /** Column blocks: groupPtr holds blocks * groups + 1 slot indices. */
  readonly blocks: number;
  readonly groupRowsPtr: number;
  readonly groupPtrPtr: number;
  /** Interleaved slots (4 byte offsets, then 4 values each). */
  readonly slotsPtr: number;
  /** 1 when offsets are u32 (else u16). */
  readonly wideIdx: number;
  /** 1 when values are f32 (else bf16). */
  readonly f32Vals: number;
  /** Per-thread group ranges [start0, end0, start1, end1, ...]. */
  readonly ranges: number[];
  /** Slots incl. padding (work estimate). */
  readonly slots: number;

  constructor(owner: object, ptr: number, fields: Omit<WasmSparse, "ptr" | "owner" | "describe">) {
    super(owner, ptr);
    this.rows = fields.rows;
    this.cols = fields.cols;
    this.nnz = fields.nnz;
    this.groups = fields.groups;
    this.blocks = fields.blocks;
    this.groupRowsPtr = fields.groupRowsPtr;
    this.groupPtrPtr = fields.groupPtrPtr;
    this.slotsPtr = fields.slotsPtr;
    this.wideIdx = fields.wideIdx;
    this.f32Vals = fields.f32Vals;
    this.ranges = fields.ranges;
    this.slots = fields.slots;
  }

  describe(): string {
    return `sparse matrix [${this.rows}, ${this.cols}] with ${this.nnz} non-zeros`;
  }
}

/**
 * A KV cache: per layer, K then V, each [numKvHeads, maxSeq, headDim] f32.
 */
export class WasmKvCache extends WasmResource implements KvCache {
  readonly numLayers: number;
  readonly maxSeq: number;
  readonly numKvHeads: number;
  readonly headDim: number;

  constructor(
    owner: object,
    ptr: number,
    numLayers: number,
    maxSeq: number,
    numKvHeads: number,
    headDim: number,
  ) {
    super(owner, ptr);
    this.numLayers = numLayers;
    this.maxSeq = maxSeq;
    this.numKvHeads = numKvHeads;
    this.headDim = headDim;
  }

  /** Bytes of K (or V) of one layer. */
  get halfLayerBytes(): number {
    return this.numKvHeads * this.maxSeq * this.headDim * 4;
  }

  /** Address of layer `layer`'s K block; V follows at + halfLayerBytes. */
  keys(layer: number): number {
    return this.ptr + layer * 2 * this.halfLayerBytes;
  }

  describe(): string {
    return `KV cache (${this.numLayers} layers, ${this.maxSeq} positions)`;
  }
}

/** Any handle of the WASM backend. */
export type AnyWasmResource = WasmTensor | WasmWeight | WasmSparse | WasmKvCache;
