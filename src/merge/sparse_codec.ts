/**
 * Byte encoding of one sparse matrix [rows, cols] (a sparse expert tensor),
 * in whichever of two layouts is smaller. All integers little-endian.
 *
 * Layout, version 1:
 *
 *   offset  size         field
 *   0       4            magic "MSPX"
 *   4       1            version = 1
 *   5       1            encoding: 0 = bitmap, 1 = delta indices
 *   6       1            value dtype: 0 = bf16, 1 = f16
 *   7       1            reserved, 0
 *   8       4            rows (u32)
 *   12      4            cols (u32)
 *   16      4            nnz (u32), number of stored values
 *   20      4            indexBytes (u32), length of the index section
 *   24      indexBytes   index section (below)
 *   ...     0-3          zero padding to a multiple of 4 bytes
 *   ...     2 * nnz      values, u16 bit patterns, row-major order
 *
 * Index section, encoding 0 (bitmap): ceil(rows * cols / 8) bytes; element
 * e = row * cols + col is bit (e mod 8) of byte floor(e / 8), least
 * significant bit first; unused trailing bits are 0.
 *
 * Index section, encoding 1 (delta indices): for each row in order, the row's
 * non-zero count, then its columns as gaps: the first column itself, each next
 * one as (col - previous col - 1). Every number is an unsigned LEB128 varint
 * (7 bits per byte, low bits first, high bit set on all but the last byte,
 * at most 5 bytes).
 *
 * The bitmap costs 1 / (8 * density) bytes per non-zero; delta indices cost
 * about 1 byte per non-zero while gaps stay below 128, so indices win at low
 * densities (below about 1/8) and the bitmap above.
 */
import type { SparseMatrixData } from "../backends/backend.ts";
import { BundleFormatError } from "../errors.ts";

/** Magic bytes of an encoded sparse matrix. */
export const SPARSE_MAGIC = "MSPX";
/** Layout version written by `encodeSparse`. */
export const SPARSE_VERSION = 1;
/** Size of the fixed header in bytes. */
export const SPARSE_HEADER_BYTES = 24;

/** The two index layouts. */
export type SparseEncoding = "bitmap" | "indices";

/** What the header of an encoded matrix says. */
export interface SparseHeader {
  readonly encoding: SparseEncoding;
  readonly valueDtype: "bf16" | "f16";
  readonly rows: number;
  readonly cols: number;
  readonly nnz: number;
  readonly indexBytes: number;
  /** Total encoded length in bytes. */
  readonly bytes: number;
  /** bytes / nnz (Infinity when nnz is 0). */
  readonly bytesPerNonZero: number;
}

const pad4 = (n: number) => (n + 3) & ~3;

/** Bytes of `v` as an unsigned LEB128 varint (v < 2^32). */
export function varintBytes(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/**
 * Encoded size of the smaller layout for a [rows, cols] matrix of `nnz` values
 * whose delta-index section would be `indexSectionBytes` long.
 */
export function smallerEncodedSize(
  rows: number,
  cols: number,
  nnz: number,
  indexSectionBytes: number,
): number {
  const bitmap = Math.ceil((rows * cols) / 8);
  return SPARSE_HEADER_BYTES + pad4(Math.min(bitmap, indexSectionBytes)) + 2 * nnz;
}

/** Length of the delta-index section for `data`. */
function indexSectionBytes(data: SparseMatrixData): number {
  let bytes = 0;
  for (let r = 0; r < data.rows; r++) {
    const start = data.rowPtr[r];
    const end = data.rowPtr[r + 1];
    bytes += varintBytes(end - start);
    let prev = -1;
    for (let j = start; j < end; j++) {
      bytes += varintBytes(data.colIdx[j] - prev - 1);
      prev = data.colIdx[j];
    }
  }
  return bytes;
}

function checkCsr(data: SparseMatrixData): void {
  const { rows, cols, rowPtr, colIdx, values } = data;
  if (!(Number.isInteger(rows) && rows >= 0 && rows <= 0xffffffff)) {
    throw new RangeError(`Cannot encode sparse matrix: rows ${rows} must be a u32`);
  }
  if (!(Number.isInteger(cols) && cols >= 0 && cols <= 0xffffffff)) {
    throw new RangeError(`Cannot encode sparse matrix: cols ${cols} must be a u32`);
  }
  if (rowPtr.length !== rows + 1 || rowPtr[0] !== 0 || rowPtr[rows] !== colIdx.length) {
    throw new RangeError(
      `Cannot encode sparse matrix: rowPtr must have rows + 1 = ${rows + 1} entries from 0 to nnz`,
    );
  }
  if (values.length !== colIdx.length) {
    throw new RangeError(
      `Cannot encode sparse matrix: ${values.length} values for ${colIdx.length} column indices`,
    );
  }
  for (let r = 0; r < rows; r++) {
    let prev = -1;
    if (rowPtr[r + 1] < rowPtr[r]) {
      throw new RangeError(`Cannot encode sparse matrix: rowPtr decreases at row ${r}`);
    }
    for (let j = rowPtr[r]; j < rowPtr[r + 1]; j++) {
      const c = colIdx[j];
      if (c <= prev || c >= cols) {
        throw new RangeError(
          `Cannot encode sparse matrix: row ${r} has column ${c} out of order or >= ${cols}`,
        );
      }
      prev = c;
    }
  }
}

/** Length of the index section of each layout, before padding. */
function indexSectionLengths(data: SparseMatrixData): Record<SparseEncoding, number> {
  return { bitmap: Math.ceil((data.rows * data.cols) / 8), indices: indexSectionBytes(data) };
}

/** Encoded size in bytes under each layout (header, padding and values included). */
export function sparseEncodedSizes(data: SparseMatrixData): Record<SparseEncoding, number> {
  const valueBytes = 2 * data.colIdx.length;
  const lengths = indexSectionLengths(data);
  return {
    bitmap: SPARSE_HEADER_BYTES + pad4(lengths.bitmap) + valueBytes,
    indices: SPARSE_HEADER_BYTES + pad4(lengths.indices) + valueBytes,
  };
}

/**
 * Encode a CSR matrix in the smaller layout (the bitmap on a tie), or in
 * `force` when given. Throws RangeError on an inconsistent CSR.
 */
export function encodeSparse(data: SparseMatrixData, force?: SparseEncoding): Uint8Array {
  checkCsr(data);
  const { rows, cols, rowPtr, colIdx, values } = data;
  const nnz = colIdx.length;
  const lengths = indexSectionLengths(data);
  const encoding = force ?? (lengths.bitmap <= lengths.indices ? "bitmap" : "indices");
  const indexBytes = lengths[encoding];
  const out = new Uint8Array(SPARSE_HEADER_BYTES + pad4(indexBytes) + 2 * nnz);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = SPARSE_MAGIC.charCodeAt(i);
  out[4] = SPARSE_VERSION;
  out[5] = encoding === "bitmap" ? 0 : 1;
  out[6] = data.valueDtype === "bf16" ? 0 : 1;
  view.setUint32(8, rows, true);
  view.setUint32(12, cols, true);
  view.setUint32(16, nnz, true);
  view.setUint32(20, indexBytes, true);
  let p = SPARSE_HEADER_BYTES;
  if (encoding === "bitmap") {
    for (let r = 0; r < rows; r++) {
      for (let j = rowPtr[r]; j < rowPtr[r + 1]; j++) {
        const e = r * cols + colIdx[j];
        out[p + Math.floor(e / 8)] |= 1 << (e % 8);
      }
    }
  } else {
    const put = (v: number) => {
      while (v >= 0x80) {
        out[p++] = (v & 0x7f) | 0x80;
        v = Math.floor(v / 128);
      }
      out[p++] = v;
    };
    for (let r = 0; r < rows; r++) {
      put(rowPtr[r + 1] - rowPtr[r]);
      let prev = -1;
      for (let j = rowPtr[r]; j < rowPtr[r + 1]; j++) {
        put(colIdx[j] - prev - 1);
        prev = colIdx[j];
      }
    }
  }
  let v = SPARSE_HEADER_BYTES + pad4(indexBytes);
  for (let j = 0; j < nnz; j++, v += 2) view.setUint16(v, values[j], true);
  return out;
}

/** Read and check the header of an encoded matrix; `what` names it in messages. */
export function readSparseHeader(bytes: Uint8Array, what = "sparse matrix"): SparseHeader {
  const fail = (why: string): never => {
    throw new BundleFormatError(
      `Cannot decode ${what}: ${why}; the bundle is corrupt or was written by another version, rebuild it`,
    );
  };
  if (bytes.length < SPARSE_HEADER_BYTES) {
    fail(
      `${bytes.length} bytes is shorter than the ${SPARSE_HEADER_BYTES}-byte header (truncated)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]);
  if (magic !== SPARSE_MAGIC) fail(`magic is '${magic}', expected '${SPARSE_MAGIC}'`);
  if (bytes[4] !== SPARSE_VERSION) fail(`layout version ${bytes[4]} is not ${SPARSE_VERSION}`);
  if (bytes[5] > 1) fail(`unknown encoding ${bytes[5]}`);
  if (bytes[6] > 1) fail(`unknown value dtype ${bytes[6]}`);
  if (bytes[7] !== 0) fail(`reserved byte is ${bytes[7]}, expected 0`);
  const rows = view.getUint32(8, true);
  const cols = view.getUint32(12, true);
  const nnz = view.getUint32(16, true);
  const indexBytes = view.getUint32(20, true);
  const encoding: SparseEncoding = bytes[5] === 0 ? "bitmap" : "indices";
  if (nnz > rows * cols) fail(`nnz ${nnz} exceeds rows * cols = ${rows * cols}`);
  if (encoding === "bitmap" && indexBytes !== Math.ceil((rows * cols) / 8)) {
    fail(`bitmap section is ${indexBytes} bytes, expected ${Math.ceil((rows * cols) / 8)}`);
  }
  const expected = SPARSE_HEADER_BYTES + pad4(indexBytes) + 2 * nnz;
  if (bytes.length < expected) fail(`${bytes.length} bytes, expected ${expected} (truncated)`);
  if (bytes.length > expected) fail(`${bytes.length} bytes, expected ${expected} (trailing bytes)`);
  return {
    encoding,
    valueDtype: bytes[6] === 0 ? "bf16" : "f16",
    rows,
    cols,
    nnz,
    indexBytes,
    bytes: expected,
    bytesPerNonZero: nnz > 0 ? expected / nnz : Infinity,
  };
}

/**
 * Decode an encoded matrix to CSR. Throws BundleFormatError when the bytes are
 * truncated, padded, or their counts disagree; `what` names it in messages.
 */
export function decodeSparse(bytes: Uint8Array, what = "sparse matrix"): SparseMatrixData {
  const h = readSparseHeader(bytes, what);
  const fail = (why: string): never => {
    throw new BundleFormatError(`Cannot decode ${what}: ${why}; the bundle is corrupt, rebuild it`);
  };
  const { rows, cols, nnz } = h;
  const rowPtr = new Uint32Array(rows + 1);
  const colIdx = new Uint32Array(nnz);
  const start = SPARSE_HEADER_BYTES;
  const end = start + h.indexBytes;
  let count = 0;
  if (h.encoding === "bitmap") {
    // Elements come out in row-major order; count per row, then prefix-sum.
    const total = rows * cols;
    for (let b = start; b < end; b++) {
      const byte = bytes[b];
      if (byte === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if (!(byte & (1 << bit))) continue;
        const e = (b - start) * 8 + bit;
        if (e >= total) fail("bitmap has bits set past the last element");
        if (count >= nnz) fail(`bitmap marks more than nnz = ${nnz} elements`);
        const r = Math.floor(e / cols);
        colIdx[count++] = e - r * cols;
        rowPtr[r + 1]++;
      }
    }
    if (count !== nnz) fail(`bitmap marks ${count} elements but nnz is ${nnz}`);
    for (let r = 0; r < rows; r++) rowPtr[r + 1] += rowPtr[r];
  } else {
    let p = start;
    const get = (): number => {
      let v = 0;
      for (let shift = 0, i = 0; i < 5; i++, shift += 7) {
        if (p >= end) fail("index section ends inside a number");
        const b = bytes[p++];
        v += (b & 0x7f) * 2 ** shift;
        if (!(b & 0x80)) return v;
      }
      return fail("a number in the index section is longer than 5 bytes");
    };
    for (let r = 0; r < rows; r++) {
      const n = get();
      if (count + n > nnz) fail(`row ${r} brings the count past nnz = ${nnz}`);
      let c = -1;
      for (let j = 0; j < n; j++) {
        c += get() + 1;
        if (c >= cols) fail(`row ${r} has column ${c} >= cols = ${cols}`);
        colIdx[count++] = c;
      }
      rowPtr[r + 1] = count;
    }
    if (count !== nnz) fail(`rows hold ${count} values but nnz is ${nnz}`);
    if (p !== end) fail(`index section has ${end - p} unread bytes`);
  }
  for (let p = end; p < pad4(end); p++) if (bytes[p] !== 0) fail("padding bytes are not zero");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = new Uint16Array(nnz);
  for (let j = 0, v = pad4(end); j < nnz; j++, v += 2) values[j] = view.getUint16(v, true);
  return { rows, cols, rowPtr, colIdx, values, valueDtype: h.valueDtype };
}
