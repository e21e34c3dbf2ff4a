/**
 * Parse and validate the header of a safetensors file.
 *
 * Layout: bytes [0, 8) hold N, a little-endian u64; bytes [8, 8 + N) hold a
 * UTF-8 JSON object mapping tensor names to `{dtype, shape, data_offsets}`
 * (plus an optional `__metadata__` string map); the data area starts at 8 + N
 * and `data_offsets` are relative to it.
 */
import { BundleFormatError } from "../errors.ts";
import { type DType, dtypeBytes } from "../tensor/dtype.ts";

/** Largest header accepted, in bytes (the limit of the reference implementation). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Safetensors dtype names understood here, mapped to project dtypes. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, DType>> = {
  BF16: "bf16",
  F16: "f16",
  F32: "f32",
};

/** The safetensors name of a project dtype ("bf16" -> "BF16"). */
export function safetensorsDtypeName(dtype: DType): string {
  for (const [name, d] of Object.entries(SAFETENSORS_DTYPES)) if (d === dtype) return name;
  throw new TypeError(`Cannot name dtype '${dtype}': it has no safetensors equivalent`);
}

/** Where one tensor lives and how to interpret its bytes. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Relative path of the file within the storage. */
  file: string;
  /** Absolute byte offset of the data in that file. */
  offset: number;
  /** Number of bytes. */
  length: number;
}

/** A parsed header. */
export interface SafetensorsHeader {
  /** Tensors in file order (ascending offset). */
  tensors: TensorInfo[];
  /** The `__metadata__` map ({} when absent). */
  metadata: Record<string, string>;
  /** Absolute offset of the data area (8 + header length). */
  dataStart: number;
}

/**
 * Validate the 8-byte length prefix of `file` and return the header length N.
 * `prefix` holds at least the first 8 bytes of the file.
 */
export function readHeaderLength(prefix: Uint8Array, file: string, fileSize: number): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new BundleFormatError(
      `Cannot read safetensors file ${file}: it is ${fileSize} bytes, too short for the ` +
        `8-byte header length; the file is truncated or not a safetensors file`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new BundleFormatError(
      `Cannot read safetensors file ${file}: its header length ${n} exceeds the limit of ` +
        `${MAX_HEADER_BYTES} bytes; the file is corrupt or not a safetensors file`,
    );
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new BundleFormatError(
      `Cannot read safetensors file ${file}: its header length ${len} runs past the end of ` +
        `the file (${fileSize} bytes); the file is truncated or not a safetensors file`,
    );
  }
  return len;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (!isRecord(value)) {
    throw new BundleFormatError(
      `Cannot read safetensors file ${file}: '__metadata__' must be an object of strings, ` +
        `got ${JSON.stringify(value)}`,
    );
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw new BundleFormatError(
        `Cannot read safetensors file ${file}: '__metadata__' must map strings to strings, ` +
          `but key '${k}' holds ${JSON.stringify(v)}`,
      );
    }
    out[k] = v;
  }
  return out;
}

/** Entry of one tensor, before the file-wide checks. */
interface RawEntry {
  info: TensorInfo;
  begin: number;
  end: number;
}

function parseEntry(name: string, value: unknown, file: string, dataStart: number): RawEntry {
  const where = `Cannot read tensor '${name}' in ${file}`;
  if (!isRecord(value)) {
    throw new BundleFormatError(
      `${where}: its header entry must be an object with dtype, shape and data_offsets`,
    );
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") {
    throw new BundleFormatError(`${where}: 'dtype' must be a string, got ${JSON.stringify(dtype)}`);
  }
  const dt = Object.hasOwn(SAFETENSORS_DTYPES, dtype) ? SAFETENSORS_DTYPES[dtype] : undefined;
  if (dt === undefined) {
    throw new BundleFormatError(
      `${where}: dtype '${dtype}' is not supported; supported dtypes are ` +
        `${Object.keys(SAFETENSORS_DTYPES).join(", ")} (convert the checkpoint to one of them)`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new BundleFormatError(
      `${where}: 'shape' must be a list of non-negative integers, got ${JSON.stringify(shape)}`,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw new BundleFormatError(
      `${where}: 'data_offsets' must be [begin, end] with non-negative integers, got ` +
        JSON.stringify(offsets),
    );
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) {
    throw new BundleFormatError(`${where}: data_offsets [${begin}, ${end}] begin after they end`);
  }
  let bytes = dtypeBytes(dt);
  for (const d of shape as number[]) bytes *= d;
  if (!Number.isSafeInteger(bytes) || bytes !== end - begin) {
    throw new BundleFormatError(
      `${where}: shape [${shape.join(", ")}] of ${dtype} needs ${bytes} bytes but ` +
        `data_offsets [${begin}, ${end}] span ${end - begin}; the header is corrupt`,
    );
  }
  return {
    info: {
      name,
      dtype: dt,
      shape: shape as number[],
      file,
      offset: dataStart + begin,
      length: end - begin,
    },
    begin,
    end,
  };
}

/**
 * Parse and validate a safetensors header.
 *
 * @param bytes the start of the file: at least its first 8 + N bytes (more is fine)
 * @param file the file's relative path, used in `TensorInfo.file` and in messages
 * @param fileSize the file's total size, to check that every tensor lies inside it
 * @throws BundleFormatError naming the file (and tensor) when anything is malformed
 */
export function parseSafetensorsHeader(
  bytes: Uint8Array,
  file: string,
  fileSize: number,
): SafetensorsHeader {
  const n = readHeaderLength(bytes, file, fileSize);
  if (bytes.byteLength < 8 + n) {
    throw new RangeError(
      `Cannot parse the header of ${file}: got ${bytes.byteLength} bytes, need the first ${8 + n}`,
    );
  }
  let json: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
    json = JSON.parse(text);
  } catch (e) {
    throw new BundleFormatError(
      `Cannot read safetensors file ${file}: its header is not valid UTF-8 JSON ` +
        `(${(e as Error).message}); the file is corrupt or not a safetensors file`,
    );
  }
  if (!isRecord(json)) {
    throw new BundleFormatError(
      `Cannot read safetensors file ${file}: its header must be a JSON object, got ` +
        (Array.isArray(json) ? "an array" : JSON.stringify(json)),
    );
  }
  const dataStart = 8 + n;
  let metadata: Record<string, string> = {};
  const entries: RawEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") metadata = parseMetadata(value, file);
    else entries.push(parseEntry(name, value, file, dataStart));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkLayout(entries, file, fileSize - dataStart);
  return { tensors: entries.map((e) => e.info), metadata, dataStart };
}

/** No two tensors overlap and every tensor ends inside the data area. */
function checkLayout(sorted: RawEntry[], file: string, dataBytes: number): void {
  let prev: RawEntry | undefined;
  let last: RawEntry | undefined;
  for (const e of sorted) {
    if (!last || e.end > last.end) last = e;
    if (e.end === e.begin) continue;
    if (prev && e.begin < prev.end) {
      throw new BundleFormatError(
        `Cannot read safetensors file ${file}: tensors '${prev.info.name}' ` +
          `[${prev.begin}, ${prev.end}) and '${e.info.name}' [${e.begin}, ${e.end}) overlap; ` +
          `the header is corrupt`,
      );
    }
    prev = e;
  }
  if (last && last.end > dataBytes) {
    throw new BundleFormatError(
      `Cannot read tensor '${last.info.name}' in ${file}: it ends at byte ${last.end} of the ` +
        `data area, which holds only ${dataBytes} bytes; the file is truncated (copy it again)`,
    );
  }
}
