/**
 * Pass 2 of a merge, streamed one tensor name at a time: write
 * `model.safetensors` (averaged units merged by the static method, routed
 * units replaced by their dense expert) and, for routed units, each expert's
 * sparse tensors (residual values at or above the unit's threshold), encoded
 * and appended to experts/<name>.bin. Units are processed in order, so the
 * tensors of one (unit, expert) form one contiguous block. Static baselines
 * run the same pass with no routed unit.
 */
import type { ExpertEntry, SparseBlockEntry } from "../bundle/manifest.ts";
import { sha256Hex, Sha256Stream } from "../bundle/hash.ts";
import type { AppendFile, BundleWriter } from "../bundle/writer.ts";
import { readSafetensorsHeader } from "../safetensors/checkpoint.ts";
import { SafetensorsFileWriter } from "../safetensors/write.ts";
import { LocalStorage } from "../storage/local.ts";
import { encodeFromF32 } from "../tensor/dtype.ts";
import {
  type DensityMode,
  isSparseTensor,
  type ProgressFn,
  readTensorSet,
  residualInto,
  roundToDtype,
} from "./analyze.ts";
import type { MergeInputs } from "./inputs.ts";
import { getMergeMethod } from "./methods.ts";
import { rngForTensor } from "./prng.ts";
import {
  decodeSparse,
  encodeSparse,
  readSparseHeader,
  type SparseValueFormat,
} from "./sparse_codec.ts";
import { sparsifyTensor, storedError } from "./sparse.ts";
import { unitOfTensor } from "./units.ts";

/** Manifest entry of a dense tensor. */
export interface DenseTensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;
  length: number;
  sha256: string;
}

/** Static method settings for averaged units. */
export interface MethodChoice {
  name: string;
  params: Record<string, unknown>;
  seed: number;
}

/** A routed unit: each expert's density and magnitude threshold. */
export interface RoutedUnit {
  unit: string;
  density: number[];
  threshold: number[];
}

/** What pass 2 wrote. */
export interface BuildResult {
  dense: DenseTensorEntry[];
  experts: ExpertEntry[];
}

/** A block being appended: its offset, running hash and exact error sums. */
interface OpenBlock {
  entry: SparseBlockEntry;
  hash: Sha256Stream;
  total: number;
  lost: number;
}

/** Write the dense weights and (for `routed` units) the sparse experts. */
export async function writeMergedModel(
  inputs: MergeInputs,
  writer: BundleWriter,
  method: MethodChoice,
  routed: ReadonlyMap<string, RoutedUnit>,
  valueFormat: SparseValueFormat,
  onProgress?: ProgressFn,
): Promise<BuildResult> {
  const m = getMergeMethod(method.name);
  m.resolve(method.params);
  const ckpt = inputs.base.hf.checkpoint;
  const T = inputs.experts.length;
  const specs = inputs.tensorNames.map((name) => {
    const i = ckpt.info(name);
    return { name, dtype: i.dtype, shape: i.shape };
  });
  const path = "model.safetensors";
  const dense = await SafetensorsFileWriter.create(writer.fullPath(path), specs, { format: "pt" });
  const files: AppendFile[] = [];
  const experts: ExpertEntry[] = [];
  if (routed.size > 0) {
    for (const e of inputs.experts) {
      const f = await writer.openFile(`experts/${e.name}.bin`);
      files.push(f);
      experts.push({ name: e.name, file: f.path, blocks: [] });
    }
  }
  const hashes = new Map<string, string>();
  let open: OpenBlock[] = [];
  const closeBlocks = () => {
    for (const b of open) {
      b.entry.sha256 = b.hash.digest();
      b.entry.error = b.total > 0 ? Math.sqrt(b.lost / b.total) : 0;
    }
    open = [];
  };
  try {
    let unitNow = "";
    for (const name of inputs.tensorNames) {
      const info = ckpt.info(name);
      const unit = unitOfTensor(name);
      const set = await readTensorSet(inputs, name);
      const ru = routed.get(unit);
      const merged = ru ? set.dense : roundToDtype(
        m.apply(set.base, set.taus, method.params, rngForTensor(method.seed, name)),
        info.dtype,
      );
      const bytes = encodeFromF32(merged, info.dtype);
      hashes.set(name, sha256Hex(bytes));
      await dense.write(name, bytes);
      if (ru && isSparseTensor(name, info.shape)) {
        if (unit !== unitNow) {
          closeBlocks();
          unitNow = unit;
          open = experts.map((e, t) => {
            const entry: SparseBlockEntry = {
              unit,
              offset: files[t].size,
              length: 0,
              sha256: "",
              error: 0,
              density: 0,
              tensors: [],
            };
            e.blocks.push(entry);
            return { entry, hash: new Sha256Stream(), total: 0, lost: 0 };
          });
        }
        const r = new Float32Array(set.base.length);
        for (let t = 0; t < T; t++) {
          residualInto(r, set, t);
          const sparse = sparsifyTensor(
            r,
            info.shape[0],
            info.shape[1],
            ru.threshold[t],
            valueFormat,
          );
          const enc = encodeSparse(sparse, undefined, valueFormat);
          const err = storedError(r, decodeSparse(enc));
          const b = open[t];
          b.total += err.total;
          b.lost += err.lost;
          b.entry.tensors.push({
            name,
            shape: [info.shape[0], info.shape[1]],
            offset: b.entry.length,
            length: enc.byteLength,
            nnz: sparse.values.length,
            density: sparse.values.length / r.length,
            encoding: readSparseHeader(enc).encoding,
          });
          b.entry.length += enc.byteLength;
          b.hash.update(enc);
          await files[t].append(enc);
        }
      }
      onProgress?.({ phase: "write", tensor: name, bytes: info.length * (T + 1) });
    }
    closeBlocks();
    await dense.close();
  } catch (e) {
    await dense.close().catch(() => {});
    throw e;
  } finally {
    for (const f of files) writer.closeFile(f);
  }
  for (const e of experts) {
    for (const b of e.blocks) {
      const n = b.tensors.reduce((s, t) => s + t.shape[0] * t.shape[1], 0);
      b.density = b.tensors.reduce((s, t) => s + t.nnz, 0) / Math.max(1, n);
    }
  }
  await writer.recordWritten(path);
  const header = await readSafetensorsHeader(new LocalStorage(writer.tempDir), path);
  return {
    dense: header.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      offset: t.offset,
      length: t.length,
      sha256: hashes.get(t.name)!,
    })),
    experts,
  };
}

/** The density settings as recorded in the manifest. */
export function describeDensity(d: DensityMode): Record<string, unknown> {
  return d.mode === "fixed"
    ? { mode: "fixed", density: d.density }
    : { mode: "adaptive", max_error: d.maxError, ladder: d.ladder };
}
