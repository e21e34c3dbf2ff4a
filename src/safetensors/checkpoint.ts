/**
 * A Hugging Face safetensors checkpoint (one file or sharded with an index),
 * opened through `ByteStorage`: only headers are read up front; tensor bytes
 * are fetched by byte range when asked for.
 */
import { BundleFormatError, StorageError } from "../errors.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { checkRelativePath } from "../storage/storage.ts";
import { decodeToF32 } from "../tensor/dtype.ts";
import { parseSafetensorsHeader, readHeaderLength, type SafetensorsHeader } from "./header.ts";
import type { TensorInfo } from "./header.ts";
import { INDEX_FILE_NAME, parseShardIndex, SINGLE_FILE_NAME } from "./index.ts";

/** Bytes fetched by the first read of a header; most headers fit, saving a round trip. */
const FIRST_READ_BYTES = 64 * 1024;

function join(dir: string, path: string): string {
  return dir === "" ? path : `${dir}/${path}`;
}

async function sizeOrMissing(storage: ByteStorage, path: string): Promise<number | null> {
  try {
    return await storage.size(path);
  } catch (e) {
    if (e instanceof StorageError && e.status === 404) return null;
    throw e;
  }
}

/**
 * Read and validate the header of the safetensors file at `path`, fetching
 * only the header bytes (one range read for headers under 64 KiB).
 *
 * @param size the file's size when already known
 */
export async function readSafetensorsHeader(
  storage: ByteStorage,
  path: string,
  size?: number,
): Promise<SafetensorsHeader> {
  const fileSize = size ?? await storage.size(path);
  let bytes = await storage.read(path, 0, Math.min(fileSize, FIRST_READ_BYTES));
  const n = readHeaderLength(bytes, path, fileSize);
  if (bytes.byteLength < 8 + n) bytes = await storage.read(path, 0, 8 + n);
  return parseSafetensorsHeader(bytes, path, fileSize);
}

/** Lazily read tensors of a checkpoint folder. */
export class Checkpoint {
  /** Where the files are read from. */
  readonly storage: ByteStorage;
  /** Every tensor by name. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** `__metadata__` of the file (of the shards, first value wins when they differ). */
  readonly metadata: Record<string, string>;
  /** Folder of the checkpoint within the storage ("" = root). */
  readonly dir: string;

  private constructor(
    storage: ByteStorage,
    dir: string,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.storage = storage;
    this.dir = dir;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /**
   * Open the checkpoint in folder `dir` of `storage`: `model.safetensors` when
   * it exists, else `model.safetensors.index.json` and the shards it names.
   * Reads headers only.
   *
   * @throws BundleFormatError when neither file exists or any file is malformed
   */
  static async open(storage: ByteStorage, dir = ""): Promise<Checkpoint> {
    const folder = dir.replace(/\/+$/, "");
    if (folder !== "") checkRelativePath(folder, "checkpoint folder");
    const where = `${storage.location}${folder === "" ? "" : `/${folder}`}`;

    const singlePath = join(folder, SINGLE_FILE_NAME);
    const singleSize = await sizeOrMissing(storage, singlePath);
    if (singleSize !== null) {
      const header = await readSafetensorsHeader(storage, singlePath, singleSize);
      const tensors = new Map(header.tensors.map((t) => [t.name, t]));
      return new Checkpoint(storage, folder, tensors, header.metadata);
    }

    const indexPath = join(folder, INDEX_FILE_NAME);
    if (!(await storage.exists(indexPath))) {
      throw new BundleFormatError(
        `Cannot open checkpoint in ${where}: neither ${SINGLE_FILE_NAME} nor ` +
          `${INDEX_FILE_NAME} exists; point at a folder holding a Hugging Face checkpoint`,
      );
    }
    return await Checkpoint.#openSharded(storage, folder, indexPath, where);
  }

  static async #openSharded(
    storage: ByteStorage,
    folder: string,
    indexPath: string,
    where: string,
  ): Promise<Checkpoint> {
    const index = parseShardIndex(await storage.readAll(indexPath), indexPath);
    // Settle every shard read before reporting a failure: no read is left in flight.
    const settled = await Promise.allSettled(index.shards.map(async (shard) => {
      const path = join(folder, shard);
      const size = await sizeOrMissing(storage, path);
      if (size === null) {
        const holders = [...index.weightMap].filter(([, s]) => s === shard).map(([n]) => n);
        throw new BundleFormatError(
          `Cannot open checkpoint in ${where}: shard ${shard}, listed in ${INDEX_FILE_NAME} ` +
            `for ${holders.length} tensor(s) such as '${holders[0]}', is missing; ` +
            `copy every shard of the checkpoint`,
        );
      }
      return await readSafetensorsHeader(storage, path, size);
    }));
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const headers = settled.map((r) =>
      (r as PromiseFulfilledResult<Awaited<ReturnType<typeof readSafetensorsHeader>>>).value
    );

    const byFile = new Map<string, Map<string, TensorInfo>>();
    const metadata: Record<string, string> = {};
    for (const [i, header] of headers.entries()) {
      byFile.set(index.shards[i], new Map(header.tensors.map((t) => [t.name, t])));
      for (const [k, v] of Object.entries(header.metadata)) if (!(k in metadata)) metadata[k] = v;
    }
    const tensors = new Map<string, TensorInfo>();
    for (const [name, shard] of index.weightMap) {
      const info = byFile.get(shard)?.get(name);
      if (!info) {
        throw new BundleFormatError(
          `Cannot open checkpoint in ${where}: ${INDEX_FILE_NAME} places tensor '${name}' in ` +
            `${shard}, but that shard's header does not list it; the index and shards do ` +
            `not belong together`,
        );
      }
      tensors.set(name, info);
    }
    return new Checkpoint(storage, folder, tensors, metadata);
  }

  /**
   * Where tensor `name` lives.
   *
   * @throws BundleFormatError naming the tensor when the checkpoint lacks it
   */
  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) {
      const where = `${this.storage.location}${this.dir === "" ? "" : `/${this.dir}`}`;
      throw new BundleFormatError(
        `Cannot find tensor '${name}' in the checkpoint at ${where}: it holds ` +
          `${this.tensors.size} tensors but not this one; check the architecture and the names`,
      );
    }
    return info;
  }

  /** Whether the checkpoint holds tensor `name`. */
  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** Raw little-endian bytes of tensor `name`, read by byte range. */
  async read(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    if (info.length === 0) return new Uint8Array(0);
    return await this.storage.read(info.file, info.offset, info.length);
  }

  /** Tensor `name` decoded to f32. */
  async readF32(name: string): Promise<Float32Array> {
    const info = this.info(name);
    return decodeToF32(await this.read(name), info.dtype);
  }
}
