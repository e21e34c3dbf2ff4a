/**
 * Pass 2 of a merge: stream the tensors again and write the outputs.
 * - `writeDenseWeights`: model.safetensors with averaged units merged by the
 *   static method and routed units replaced by their dense expert; returns the
 *   per-tensor entries (offset, length, sha256) for the manifest.
 * - `writeSparseExperts`: for each routed unit and expert, the sparse tensors
 *   at the chosen density, encoded and appended to experts/<name>.bin as one
 *   contiguous block.
 * The static baselines use `writeDenseWeights` alone, with no routed unit.
 */
import type { BundleWriter } from "../bundle/writer.ts";
import { sha256Hex } from "../bundle/hash.ts";
import type { ExpertEntry, SparseBlockEntry } from "../bundle/manifest.ts";
import { readSafetensorsHeader } from "../safetensors/checkpoint.ts";
import { SafetensorsFileWriter } from "../safetensors/write.ts";
import { LocalStorage } from "../storage/local.ts";
import { encodeFromF32 } from "../tensor/dtype.ts";
import { type DensityMode, type ProgressFn, roundToDtype, unitResiduals } from "./analyze.ts";
import { type MergeInputs, readTensorSet } from "./inputs.ts";
import { getMergeMethod } from "./methods.ts";
import { rngForTensor } from "./prng.ts";
import {
  decodeSparse,
  encodeSparse,
  readSparseHeader,
  type SparseValueFormat,
} from "./sparse_codec.ts";
import { UnitResiduals } from "./sparse.ts";
import { bf16ToF32, f16ToF32 } from "../tensor/dtype.ts";
import type { SparseMatrixData } from "../backends/backend.ts";
import { unitOfTensor } from "./units.ts";
import { denseExpert, taskVector } from "./vectors.ts";

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

/**
 * Write `model.safetensors` into the writer's folder. Units in `routed` get
 * the dense expert D = B + mean tau; the others get `method`.
 */
export async function writeDenseWeights(
  inputs: MergeInputs,
  writer: BundleWriter,
  method: MethodChoice,
  routed: ReadonlySet<string>,
  onProgress?: ProgressFn,
): Promise<DenseTensorEntry[]> {
  const m = getMergeMethod(method.name);
  m.resolve(method.params);
  const ckpt = inputs.base.hf.checkpoint;
  const specs = inputs.tensorNames.map((name) => {
    const i = ckpt.info(name);
    return { name, dtype: i.dtype, shape: i.shape };
  });
  const path = "model.safetensors";
  const out = await SafetensorsFileWriter.create(writer.fullPath(path), specs, {
    format: "pt",
  });
  const hashes = new Map<string, string>();
  try {
    for (const name of inputs.tensorNames) {
      const info = ckpt.info(name);
      const { base, experts } = await readTensorSet(inputs, name);
      const taus = experts.map((e) => taskVector(e, base));
      const merged = routed.has(unitOfTensor(name))
        ? denseExpert(base, taus)
        : m.apply(base, taus, method.params, rngForTensor(method.seed, name));
      const bytes = encodeFromF32(roundToDtype(merged, info.dtype), info.dtype);
      hashes.set(name, sha256Hex(bytes));
      await out.write(name, bytes);
      onProgress?.({ phase: "write", tensor: name, bytes: info.length * (experts.length + 1) });
    }
    await out.close();
  } catch (e) {
    await out.close().catch(() => {});
    throw e;
  }
  await writer.recordWritten(path);
  // Offsets come from reading back the header we just wrote.
  const header = await readSafetensorsHeader(new LocalStorage(writer.tempDir), path);
  return header.tensors.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    offset: t.offset,
    length: t.length,
    sha256: hashes.get(t.name)!,
  }));
}

/** Write experts/<name>.bin for every expert: one block per routed unit. */
export async function writeSparseExperts(
  inputs: MergeInputs,
  writer: BundleWriter,
  routedUnits: readonly { unit: string; tensors: string[]; density: number[] }[],
  valueFormat: SparseValueFormat,
  onProgress?: ProgressFn,
): Promise<ExpertEntry[]> {
  const files = await Promise.all(
    inputs.experts.map((e) => writer.openFile(`experts/${e.name}.bin`)),
  );
  const entries: ExpertEntry[] = inputs.experts.map((e, t) => ({
    name: e.name,
    file: files[t].path,
    blocks: [],
  }));
  try {
    for (const ru of routedUnits) {
      const residuals = await unitResiduals(inputs, ru.tensors, (name) =>
        onProgress?.({
          phase: "experts",
          tensor: name,
          bytes: inputs.base.hf.checkpoint.info(name).length * (inputs.experts.length + 1),
        }));
      for (let t = 0; t < inputs.experts.length; t++) {
        const r = UnitResiduals.from(ru.unit, residuals[t], valueFormat === "f16" ? "f16" : "bf16");
        const cut = r.cut(ru.density[t]);
        const parts: Uint8Array[] = [];
        const tensors: SparseBlockEntry["tensors"] = [];
        let offset = 0, total = 0, lost = 0;
        r.tensors.forEach((rt, i) => {
          const enc = encodeSparse(r.extract(cut, i), undefined, valueFormat);
          const h = readSparseHeader(enc);
          // Exact reconstruction error of what is stored: decode and compare.
          const e = storedError(rt.residual, decodeSparse(enc));
          total += e.total;
          lost += e.lost;
          tensors.push({
            name: rt.name,
            shape: [rt.rows, rt.cols],
            offset,
            length: enc.byteLength,
            nnz: cut.tensors[i].nnz,
            density: cut.tensors[i].nnz / (rt.rows * rt.cols),
            encoding: h.encoding,
          });
          parts.push(enc);
          offset += enc.byteLength;
        });
        const block = new Uint8Array(offset);
        let o = 0;
        for (const p of parts) {
          block.set(p, o);
          o += p.byteLength;
        }
        const at = await files[t].append(block);
        entries[t].blocks.push({
          unit: ru.unit,
          offset: at,
          length: block.byteLength,
          sha256: sha256Hex(block),
          error: total > 0 ? Math.sqrt(lost / total) : 0,
          density: ru.density[t],
          tensors,
        });
      }
    }
  } finally {
    for (const f of files) writer.closeFile(f);
  }
  return entries;
}

/** The mode and ladder used when the user fixes a density. */
export function describeDensity(d: DensityMode): Record<string, unknown> {
  return d.mode === "fixed"
    ? { mode: "fixed", density: d.density }
    : { mode: "adaptive", max_error: d.maxError, ladder: d.ladder };
}

/** ||r||^2 and ||r - S||^2 of a residual tensor and its stored sparse approximation. */
export function storedError(
  residual: Float32Array,
  s: SparseMatrixData,
): { total: number; lost: number } {
  const toF32 = s.valueDtype === "bf16" ? bf16ToF32 : f16ToF32;
  let total = 0;
  for (let i = 0; i < residual.length; i++) total += residual[i] * residual[i];
  let lost = total;
  for (let r = 0; r < s.rows; r++) {
    for (let j = s.rowPtr[r]; j < s.rowPtr[r + 1]; j++) {
      const x = residual[r * s.cols + s.colIdx[j]];
      const d = x - toF32(s.values[j]);
      lost += d * d - x * x;
    }
  }
  return { total, lost: Math.max(0, lost) };
}
