/**
 * GPU-side resources of the WebGPU backend and their uploads: activation tensors, dense
 * weights split into row chunks that each fit one storage binding, CSR sparse matrices
 * (likewise chunked) and per-layer KV cache buffers.
 *
 * Weight layout: row-major; f32 rows are `cols` u32 words; 16-bit rows are packed two values
 * per u32 and padded to a whole word (`ceil(cols / 2)` words), so no word spans two rows.
 * Sparse layout: with cols <= 65536 each non-zero is one u32 `col | bits << 16` ("packed");
 * wider matrices keep a u32 column array plus values packed two per u32 ("wide").
 */
import type { KvCache, SparseMatrixData, SparseWeight, Tensor, Weight } from "./backend.ts";
import type { DType } from "../tensor/dtype.ts";
import { UnsupportedOpError } from "../errors.ts";

/** Buffer sizes are rounded up to this many bytes (vec4 bindings need whole vec4s). */
export const BUFFER_ALIGN = 16;

/** `n` rounded up to a multiple of BUFFER_ALIGN (at least BUFFER_ALIGN). */
export function alignedSize(n: number): number {
  return Math.max(BUFFER_ALIGN, Math.ceil(n / BUFFER_ALIGN) * BUFFER_ALIGN);
}

/** Creates a storage buffer holding `bytes` (zero-padded to `alignedSize`). */
export function bufferWithData(
  device: GPUDevice,
  bytes: Uint8Array,
  label: string,
  extraUsage = 0,
): GPUBuffer {
  const buffer = device.createBuffer({
    size: alignedSize(bytes.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST |
      extraUsage,
    mappedAtCreation: true,
    label,
  });
  new Uint8Array(buffer.getMappedRange()).set(bytes);
  buffer.unmap();
  return buffer;
}

/** Marks a resource as released; later use throws. */
abstract class GpuResource {
  #freed = false;
  /** Throws when the resource was freed. */
  check(what: string): void {
    if (this.#freed) throw new TypeError(`Cannot use ${what}: it was freed`);
  }
  /** Marks the resource freed; returns false when it already was. */
  markFreed(): boolean {
    if (this.#freed) return false;
    this.#freed = true;
    return true;
  }
}

/** An f32 activation tensor in one storage buffer. */
export class GpuTensor extends GpuResource implements Tensor {
  /**
   * @param size number of f32 elements
   * @param buffer the storage buffer (at least alignedSize(4 * size) bytes)
   */
  constructor(readonly size: number, readonly buffer: GPUBuffer) {
    super();
  }
}

/** Rows [rowStart, rowStart + rows) of a matrix in their own buffer(s). */
export interface WeightChunk {
  rowStart: number;
  rows: number;
  buffer: GPUBuffer;
}

/** A dense weight [rows, cols] split into row chunks. */
export class GpuWeight extends GpuResource implements Weight {
  /**
   * @param rows output features
   * @param cols input features
   * @param dtype storage type
   * @param strideWords u32 words per row
   * @param chunks row chunks covering [0, rows)
   */
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly dtype: DType,
    readonly strideWords: number,
    readonly chunks: readonly WeightChunk[],
  ) {
    super();
  }
}

/**
 * Row chunk of a CSR matrix in one buffer of u32 words: row_ptr (rows + 1 offsets, rebased
 * so that the chunk's first entry is 0), then one entry per non-zero (col | value bits << 16,
 * or in the wide format the column alone), then in the wide format the values packed 2 per
 * word. Kernels find entries at word rows + 1 and values at rows + 1 + row_ptr[rows].
 */
export interface SparseChunk {
  rowStart: number;
  rows: number;
  buffer: GPUBuffer;
}

/** A CSR sparse matrix [rows, cols] with 16-bit values, split into row chunks. */
export class GpuSparse extends GpuResource implements SparseWeight {
  /**
   * @param rows rows of the matrix
   * @param cols columns of the matrix
   * @param nnz number of non-zeros
   * @param valueDtype type of the 16-bit values
   * @param wide true for the column-array format (cols > 65536)
   * @param chunks row chunks covering [0, rows)
   */
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly nnz: number,
    readonly valueDtype: "bf16" | "f16",
    readonly wide: boolean,
    readonly chunks: readonly SparseChunk[],
  ) {
    super();
  }
}

/** Per-sequence KV cache: one K and one V buffer [maxSeq, numKvHeads * headDim] per layer. */
export class GpuKvCache extends GpuResource implements KvCache {
  /**
   * @param numLayers layers
   * @param maxSeq positions per layer
   * @param numKvHeads key/value heads
   * @param headDim dimension of a head
   * @param keys K buffer of each layer
   * @param values V buffer of each layer
   */
  constructor(
    readonly numLayers: number,
    readonly maxSeq: number,
    readonly numKvHeads: number,
    readonly headDim: number,
    readonly keys: readonly GPUBuffer[],
    readonly values: readonly GPUBuffer[],
  ) {
    super();
  }
}

/** u32 words per row of a weight with `cols` columns of `dtype`. */
export function weightStrideWords(dtype: DType, cols: number): number {
  return dtype === "f32" ? cols : Math.ceil(cols / 2);
}

/**
 * Uploads raw little-endian weight bytes as row chunks of at most `maxChunkBytes` each.
 * @throws UnsupportedOpError when a single row exceeds `maxChunkBytes`
 */
export function uploadWeightChunks(
  device: GPUDevice,
  bytes: Uint8Array,
  dtype: DType,
  rows: number,
  cols: number,
  maxChunkBytes: number,
): { strideWords: number; chunks: WeightChunk[] } {
  const strideWords = weightStrideWords(dtype, cols);
  const rowBytes = strideWords * 4;
  const rowsPerChunk = Math.floor(maxChunkBytes / rowBytes);
  if (rowsPerChunk < 1) {
    throw new UnsupportedOpError(
      `Cannot upload weight [${rows}, ${cols}] ${dtype}: one row (${rowBytes} bytes) exceeds ` +
        `the storage binding limit of ${maxChunkBytes} bytes; use a GPU with larger limits`,
    );
  }
  const srcRowBytes = dtype === "f32" ? cols * 4 : cols * 2;
  const chunks: WeightChunk[] = [];
  for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - r0);
    let data: Uint8Array;
    if (srcRowBytes === rowBytes) {
      data = bytes.subarray(r0 * rowBytes, (r0 + n) * rowBytes);
    } else {
      data = new Uint8Array(n * rowBytes); // odd 16-bit cols: pad each row to a whole word
      for (let r = 0; r < n; r++) {
        const src = (r0 + r) * srcRowBytes;
        data.set(bytes.subarray(src, src + srcRowBytes), r * rowBytes);
      }
    }
    chunks.push({ rowStart: r0, rows: n, buffer: bufferWithData(device, data, "weight") });
  }
  return { strideWords, chunks };
}

/**
 * Checks a host CSR matrix: offsets, lengths, column range, strictly ascending columns.
 * @throws RangeError naming the first inconsistency
 */
export function validateSparse(data: SparseMatrixData): void {
  const { rows, cols, rowPtr, colIdx, values } = data;
  const where = `sparse matrix [${rows}, ${cols}]`;
  if (rowPtr.length !== rows + 1) {
    throw new RangeError(
      `Cannot upload ${where}: rowPtr has ${rowPtr.length} entries, not rows + 1`,
    );
  }
  const nnz = rowPtr[rows];
  if (rowPtr[0] !== 0 || colIdx.length !== nnz || values.length !== nnz) {
    throw new RangeError(
      `Cannot upload ${where}: rowPtr must start at 0 and end at colIdx.length = values.length ` +
        `(got ${rowPtr[0]}..${nnz}, ${colIdx.length} columns, ${values.length} values)`,
    );
  }
  for (let r = 0; r < rows; r++) {
    const start = rowPtr[r];
    const end = rowPtr[r + 1];
    if (end < start) throw new RangeError(`Cannot upload ${where}: rowPtr decreases at row ${r}`);
    for (let e = start; e < end; e++) {
      const c = colIdx[e];
      if (c >= cols || (e > start && c <= colIdx[e - 1])) {
        throw new RangeError(
          `Cannot upload ${where}: row ${r} column ${c} is out of range or not strictly ` +
            "ascending; sort and deduplicate the columns of each row",
        );
      }
    }
  }
}

/** Uploads a validated CSR matrix as row chunks of at most `maxChunkBytes` each. */
export function uploadSparseChunks(
  device: GPUDevice,
  data: SparseMatrixData,
  maxChunkBytes: number,
): { wide: boolean; chunks: SparseChunk[] } {
  const { rows, cols, rowPtr, colIdx, values } = data;
  const wide = cols > 65536;
  const maxWords = Math.floor(maxChunkBytes / 4);
  const chunks: SparseChunk[] = [];
  let r0 = 0;
  do {
    let r1 = r0;
    const fits = (r: number) => {
      const nnz = rowPtr[r] - rowPtr[r0];
      return r - r0 + 1 + nnz + (wide ? Math.ceil(nnz / 2) : 0) <= maxWords;
    };
    while (r1 < rows && fits(r1 + 1)) r1++;
    if (r1 === r0 && r0 < rows) {
      throw new UnsupportedOpError(
        `Cannot upload sparse matrix [${rows}, ${cols}]: row ${r0} has more non-zeros than ` +
          `one storage binding holds (${maxChunkBytes} bytes); use a GPU with larger limits`,
      );
    }
    const e0 = rowPtr[r0];
    const e1 = rowPtr[r1];
    const n = r1 - r0, nnz = e1 - e0;
    const words = new Uint32Array(n + 1 + nnz + (wide ? Math.ceil(nnz / 2) : 0));
    for (let r = r0; r <= r1; r++) words[r - r0] = rowPtr[r] - e0;
    const entries = words.subarray(n + 1, n + 1 + nnz);
    if (wide) {
      entries.set(colIdx.subarray(e0, e1));
      const vals = new Uint16Array(words.buffer, (n + 1 + nnz) * 4, Math.ceil(nnz / 2) * 2);
      vals.set(values.subarray(e0, e1));
    } else {
      for (let e = e0; e < e1; e++) entries[e - e0] = (colIdx[e] | (values[e] << 16)) >>> 0;
    }
    const bytes = new Uint8Array(words.buffer);
    chunks.push({ rowStart: r0, rows: n, buffer: bufferWithData(device, bytes, "sparse chunk") });
    r0 = r1;
  } while (r0 < rows);
  return { wide, chunks };
}
