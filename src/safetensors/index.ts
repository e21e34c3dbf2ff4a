/**
 * Parse `model.safetensors.index.json`, the map of a sharded checkpoint:
 * `{"metadata": {...}, "weight_map": {"tensor name": "shard file", ...}}`.
 */
import { BundleFormatError } from "../errors.ts";
import { checkRelativePath } from "../storage/storage.ts";

/** Name of the single-file checkpoint. */
export const SINGLE_FILE_NAME = "model.safetensors";
/** Name of the index of a sharded checkpoint. */
export const INDEX_FILE_NAME = "model.safetensors.index.json";

/** The parsed index: shard files (relative to the index's folder) and who holds what. */
export interface ShardIndex {
  /** Tensor name -> shard file, as written in the index. */
  weightMap: Map<string, string>;
  /** Shard files in first-seen order, each listed once. */
  shards: string[];
}

/**
 * Parse and validate an index file.
 *
 * @param bytes the index file's contents
 * @param indexPath the index's path, for messages
 * @throws BundleFormatError naming the index (and tensor or shard) when malformed
 */
export function parseShardIndex(bytes: Uint8Array, indexPath: string): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new BundleFormatError(
      `Cannot read checkpoint index ${indexPath}: it is not valid UTF-8 JSON ` +
        `(${(e as Error).message}); copy the file again`,
    );
  }
  const map = typeof json === "object" && json !== null && !Array.isArray(json)
    ? (json as Record<string, unknown>).weight_map
    : undefined;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new BundleFormatError(
      `Cannot read checkpoint index ${indexPath}: it needs a 'weight_map' object mapping ` +
        `tensor names to shard files`,
    );
  }
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  const seen = new Set<string>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== "string") {
      throw new BundleFormatError(
        `Cannot read checkpoint index ${indexPath}: the shard of tensor '${name}' must be a ` +
          `file name, got ${JSON.stringify(shard)}`,
      );
    }
    try {
      checkRelativePath(shard, `shard file of tensor '${name}'`);
    } catch (e) {
      const msg = (e as Error).message;
      const reason = msg.slice(msg.indexOf(": ") + 2);
      throw new BundleFormatError(
        `Cannot read checkpoint index ${indexPath}: shard path '${shard}' of tensor '${name}' ` +
          `is not allowed (${reason}); shard files must lie inside the checkpoint folder`,
      );
    }
    weightMap.set(name, shard);
    if (!seen.has(shard)) {
      seen.add(shard);
      shards.push(shard);
    }
  }
  if (weightMap.size === 0) {
    throw new BundleFormatError(
      `Cannot read checkpoint index ${indexPath}: its 'weight_map' lists no tensors`,
    );
  }
  return { weightMap, shards };
}
