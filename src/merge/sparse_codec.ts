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
 *   6       1            value format: 0 = bf16, 1 = f16, 2 = q8 (decodes to bf16)
 *   7       1            reserved, 0
 *   8       4            rows (u32)
 *   12      4            cols (u32)
 *   16      4            nnz (u32), number of stored values
 *   20      4            indexBytes (u32), length of the index section
 *   24      indexBytes   index section (below)
 *   ...     0-3          zero padding to a multiple of 4 bytes
 *   ...     2 * nnz      values (bf16, f16): u16 bit patterns, row-major order
 *           4*rows + nnz values (q8): one f32 scale per row, then one i8 per
 *                        value, row-major; value = i8 * scale of its row
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
 * q8 stores values as 8-bit integers with a per-row absmax scale: half the
 * bytes of bf16, with a rounding error of at most scale / 2 per value (under
 * 0.4% of the row's largest value), decoded to bf16 for the kernels.
 *
 * The bitmap costs 1 / (8 * density) bytes per non-zero; delta indices cost
 * about 1 byte per non-zero while gaps stay below 128, so indices win at low
 * densities (below about 1/8) and the bitmap above.
 */
import type { SparseMatrixData } from "../backends/backend.ts";
import { BundleFormatError } from "../errors.ts";
import { bf16ToF32, f16ToF32, f32ToBf16 } from "../tensor/dtype.ts";

/** Magic bytes of an encoded sparse matrix. */
export const SPARSE_MAGIC = "MSPX";
/** Layout version written by `encodeSparse`. */
export const SPARSE_VERSION = 1;
/** Size of the fixed header in bytes. */
export const SPARSE_HEADER_BYTES = 24;

/** The two index layouts. */
export type SparseEncoding = "bitmap" | "indices";

/** How values are stored: 16-bit floats, or 8-bit integers with a per-row scale. */
export type SparseValueFormat = "bf16" | "f16" | "q8" | "q4";

const FORMAT_CODES: Record<SparseValueFormat, number> = { bf16: 0, f16: 1, q8: 2, q4: 3 };
const FORMATS: SparseValueFormat[] = ["bf16", "f16", "q8", "q4"];

/** Bytes of the value section for `nnz` values over `rows` rows. */
export function valueSectionBytes(format: SparseValueFormat, rows: number, nnz: number): number {
  if (format === "q8") return 4 * rows + nnz;
  if (format === "q4") return 4 * rows + Math.ceil(nnz / 2);
  return 2 * nnz;
}

/** What the header of an encoded matrix says. */
export interface SparseHeader {
  readonly encoding: SparseEncoding;
  readonly valueDtype: "bf16" | "f16";
  /** Stored value format (q8 decodes to bf16). */
  readonly valueFormat: SparseValueFormat;
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
  format: SparseValueFormat = "bf16",
): number {
  const bitmap = Math.ceil((rows * cols) / 8);
  return SPARSE_HEADER_BYTES + pad4(Math.min(bitmap, indexSectionBytes)) +
    valueSectionBytes(format, rows, nnz);
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
export function sparseEncodedSizes(
  data: SparseMatrixData,
  format: SparseValueFormat = data.valueDtype,
): Record<SparseEncoding, number> {
  const valueBytes = valueSectionBytes(format, data.rows, data.colIdx.length);
  const lengths = indexSectionLengths(data);
  return {
    bitmap: SPARSE_HEADER_BYTES + pad4(lengths.bitmap) + valueBytes,
    indices: SPARSE_HEADER_BYTES + pad4(lengths.indices) + valueBytes,
  };
}

/**
 * Encode a CSR matrix in the smaller layout (the bitmap on a tie), or in
 * `force` when given, with values in `format` (default: the data's own
 * 16-bit type). Throws RangeError on an inconsistent CSR.
 */
export function encodeSparse(
  data: SparseMatrixData,
  force?: SparseEncoding,
  format: SparseValueFormat = data.valueDtype,
): Uint8Array {
  checkCsr(data);
  const { rows, cols, rowPtr, colIdx, values } = data;
  const nnz = colIdx.length;
  const lengths = indexSectionLengths(data);
  const encoding = force ?? (lengths.bitmap <= lengths.indices ? "bitmap" : "indices");
  const indexBytes = lengths[encoding];
  const out = new Uint8Array(
    SPARSE_HEADER_BYTES + pad4(indexBytes) + valueSectionBytes(format, rows, nnz),
  );
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = SPARSE_MAGIC.charCodeAt(i);
  out[4] = SPARSE_VERSION;
  out[5] = encoding === "bitmap" ? 0 : 1;
  out[6] = FORMAT_CODES[format];
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
  if (format === "q8" || format === "q4") {
    writeQuantized(data, view, v, format === "q8" ? 127 : 7);
    return out;
  }
  if (format !== data.valueDtype) {
    throw new RangeError(
      `Cannot encode ${data.valueDtype} values as ${format}; use q8 or ${data.valueDtype}`,
    );
  }
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
  if (bytes[6] > 3) fail(`unknown value format ${bytes[6]}`);
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
  const valueFormat = FORMATS[bytes[6]];
  const expected = SPARSE_HEADER_BYTES + pad4(indexBytes) +
    valueSectionBytes(valueFormat, rows, nnz);
  if (bytes.length < expected) fail(`${bytes.length} bytes, expected ${expected} (truncated)`);
  if (bytes.length > expected) fail(`${bytes.length} bytes, expected ${expected} (trailing bytes)`);
  return {
    encoding,
    valueDtype: valueFormat === "f16" ? "f16" : "bf16",
    valueFormat,
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
  const values = h.valueFormat === "q8" || h.valueFormat === "q4"
    ? readQuantized(view, pad4(end), rowPtr, h.valueFormat === "q8" ? 127 : 7)
    : Uint16Array.from({ length: nnz }, (_, j) => view.getUint16(pad4(end) + 2 * j, true));
  return { rows, cols, rowPtr, colIdx, values, valueDtype: h.valueDtype };
}

/**
 * Quantize each row's values to integers in [-levels, levels] with
 * scale = max |v| / levels (f32): i8 per value for q8 (levels 127), two
 * 4-bit two's-complement values per byte for q4 (levels 7, low nibble first).
 */
function writeQuantized(data: SparseMatrixData, view: DataView, at: number, levels: number): void {
  const toF32 = data.valueDtype === "bf16" ? bf16ToF32 : f16ToF32;
  const { rows, rowPtr, values } = data;
  const q = at + 4 * rows;
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let j = rowPtr[r]; j < rowPtr[r + 1]; j++) max = Math.max(max, Math.abs(toF32(values[j])));
    const scale = Math.fround(max / levels);
    view.setFloat32(at + 4 * r, scale, true);
    for (let j = rowPtr[r]; j < rowPtr[r + 1]; j++) {
      const v = scale > 0 ? Math.round(toF32(values[j]) / scale) : 0;
      if (levels === 127) view.setInt8(q + j, v);
      else {
        const byte = q + (j >> 1);
        const nib = v & 0xf;
        view.setUint8(byte, view.getUint8(byte) | (j & 1 ? nib << 4 : nib));
      }
    }
  }
}

/** Dequantize q8/q4 values back to bf16 bit patterns. */
function readQuantized(
  view: DataView,
  at: number,
  rowPtr: Uint32Array,
  levels: number,
): Uint16Array {
  const rows = rowPtr.length - 1;
  const out = new Uint16Array(rowPtr[rows]);
  const q = at + 4 * rows;
  for (let r = 0; r < rows; r++) {
    const scale = view.getFloat32(at + 4 * r, true);
    for (let j = rowPtr[r]; j < rowPtr[r + 1]; j++) {
      let v: number;
      if (levels === 127) v = view.getInt8(q + j);
      else {
        const nib = (view.getUint8(q + (j >> 1)) >> (j & 1 ? 4 : 0)) & 0xf;
        v = nib >= 8 ? nib - 16 : nib;
      }
      out[j] = f32ToBf16(v * scale);
    }
  }
  return out;
}
