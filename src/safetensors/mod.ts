/**
 * Safetensors checkpoints: parse and validate headers, read tensors lazily
 * by byte range through `ByteStorage`, and write files.
 *
 * @module
 */
export {
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readHeaderLength,
  SAFETENSORS_DTYPES,
  safetensorsDtypeName,
  type SafetensorsHeader,
  type TensorInfo,
} from "./header.ts";
export { INDEX_FILE_NAME, parseShardIndex, type ShardIndex, SINGLE_FILE_NAME } from "./index.ts";
export { Checkpoint, readSafetensorsHeader } from "./checkpoint.ts";
export {
  encodeSafetensors,
  SafetensorsFileWriter,
  type TensorSpec,
  type TensorToWrite,
} from "./write.ts";
