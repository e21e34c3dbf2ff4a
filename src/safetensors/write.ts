/**
 * Write safetensors files: all at once in memory (`encodeSafetensors`) or
 * tensor by tensor to a local file (`SafetensorsFileWriter`). Both lay out
 * the file as the reference implementation does: `__metadata__` first in the
 * header, tensors contiguous in the order given, header padded with spaces to
 * a multiple of 8 bytes so the data area starts aligned.
 */
import { type DType, dtypeBytes } from "../tensor/dtype.ts";
import { safetensorsDtypeName } from "./header.ts";

/** Name, dtype and shape of a tensor to write. */
export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** A tensor with its raw little-endian bytes. */
export interface TensorToWrite extends TensorSpec {
  data: Uint8Array;
}

/** A laid-out file: the bytes before the data area and each tensor's byte length. */
interface Layout {
  /** 8-byte length + padded JSON header. */
  head: Uint8Array;
  /** Byte length of each tensor, in spec order. */
  lengths: number[];
}

function specBytes(spec: TensorSpec): number {
  if (!Array.isArray(spec.shape) || !spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new TypeError(
      `Cannot write tensor '${spec.name}': shape must be a list of non-negative integers, got ` +
        JSON.stringify(spec.shape),
    );
  }
  return spec.shape.reduce((a, d) => a * d, dtypeBytes(spec.dtype));
}

/** Validate specs and build the header. */
function layout(specs: TensorSpec[], metadata?: Record<string, string>): Layout {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`Cannot write metadata '${k}': values must be strings`);
      }
    }
    header.__metadata__ = metadata;
  }
  const lengths: number[] = [];
  let offset = 0;
  for (const spec of specs) {
    if (typeof spec.name !== "string" || spec.name === "" || spec.name === "__metadata__") {
      throw new TypeError(`Cannot write tensor '${spec.name}': the name is empty or reserved`);
    }
    if (Object.hasOwn(header, spec.name)) {
      throw new TypeError(`Cannot write tensor '${spec.name}': the name appears twice`);
    }
    const length = specBytes(spec);
    header[spec.name] = {
      dtype: safetensorsDtypeName(spec.dtype),
      shape: spec.shape,
      data_offsets: [offset, offset + length],
    };
    lengths.push(length);
    offset += length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { head, lengths };
}

function checkData(name: string, data: Uint8Array, expected: number): void {
  if (!(data instanceof Uint8Array)) {
    throw new TypeError(`Cannot write tensor '${name}': data must be a Uint8Array`);
  }
  if (data.byteLength !== expected) {
    throw new RangeError(
      `Cannot write tensor '${name}': got ${data.byteLength} bytes but its dtype and shape ` +
        `need ${expected}`,
    );
  }
}

/**
 * Encode tensors (in the given order) into the bytes of one safetensors file.
 *
 * @throws TypeError / RangeError for duplicate names, bad shapes or data of the wrong size
 */
export function encodeSafetensors(
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
): Uint8Array {
  const { head, lengths } = layout(tensors, metadata);
  const total = lengths.reduce((a, b) => a + b, head.byteLength);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let at = head.byteLength;
  tensors.forEach((t, i) => {
    checkData(t.name, t.data, lengths[i]);
    out.set(t.data, at);
    at += lengths[i];
  });
  return out;
}

async function writeFully(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) done += await file.write(bytes.subarray(done));
}

/**
 * Streams one safetensors file to disk, tensor by tensor, without holding
 * them all: the header is written from the specs at `create`, then each
 * `write` appends one tensor's bytes in spec order. The file is written to
 * `path + ".tmp"` and renamed to `path` by a complete `close`, so a failed
 * run never leaves a valid-looking partial file.
 */
export class SafetensorsFileWriter {
  /** Final path of the file. */
  readonly path: string;
  readonly #specs: TensorSpec[];
  readonly #lengths: number[];
  #file: Deno.FsFile | null;
  #next = 0;

  private constructor(path: string, specs: TensorSpec[], lengths: number[], file: Deno.FsFile) {
    this.path = path;
    this.#specs = specs;
    this.#lengths = lengths;
    this.#file = file;
  }

  /**
   * Create the file and write its header.
   *
   * @param specs every tensor the file will hold, in the order they will be written
   */
  static async create(
    path: string,
    specs: TensorSpec[],
    metadata?: Record<string, string>,
  ): Promise<SafetensorsFileWriter> {
    const copy = specs.map((s) => ({ name: s.name, dtype: s.dtype, shape: [...s.shape] }));
    const { head, lengths } = layout(copy, metadata);
    const file = await Deno.open(`${path}.tmp`, { write: true, create: true, truncate: true });
    try {
      await writeFully(file, head);
    } catch (e) {
      file.close();
      throw e;
    }
    return new SafetensorsFileWriter(path, copy, lengths, file);
  }

  /** Names of the tensors still to be written, in order. */
  get pending(): string[] {
    return this.#specs.slice(this.#next).map((s) => s.name);
  }

  /**
   * Append the bytes of tensor `name`, which must be the next one in spec order.
   *
   * @throws TypeError when out of order or closed; RangeError when the size is wrong
   */
  async write(name: string, data: Uint8Array): Promise<void> {
    const file = this.#file;
    if (!file) throw new TypeError(`Cannot write tensor '${name}' to ${this.path}: it is closed`);
    const spec = this.#specs[this.#next];
    if (!spec || spec.name !== name) {
      throw new TypeError(
        `Cannot write tensor '${name}' to ${this.path}: ` +
          (spec
            ? `tensor '${spec.name}' comes next; write tensors in the order given to create()`
            : `all ${this.#specs.length} tensors are already written`),
      );
    }
    checkData(name, data, this.#lengths[this.#next]);
    await writeFully(file, data);
    this.#next++;
  }

  /**
   * Finish the file. When every tensor was written the file is moved to its
   * final path; otherwise the partial file is removed and this throws.
   */
  async close(): Promise<void> {
    const file = this.#file;
    if (!file) return;
    this.#file = null;
    file.close();
    if (this.#next < this.#specs.length) {
      await Deno.remove(`${this.path}.tmp`).catch(() => {});
      throw new TypeError(
        `Cannot finish ${this.path}: ${this.#specs.length - this.#next} tensor(s) were never ` +
          `written, starting with '${this.#specs[this.#next].name}'; the file was discarded`,
      );
    }
    await Deno.rename(`${this.path}.tmp`, this.path);
  }
}
