/**
 * Pass 1 of a Mediator merge, streamed one tensor name at a time (the base's
 * tensor and each expert's; peak memory about (T + 3) x the largest tensor):
 * measure conflict per unit, and for units that may be routed profile each
 * expert's residual against the dense expert (`MagnitudeProfile`) to choose
 * its sparse density and estimate its bytes.
 */
import type { DType } from "../tensor/dtype.ts";
import { decodeToF32, encodeFromF32 } from "../tensor/dtype.ts";
import { ConflictAccumulator, type UnitConflict } from "./conflict.ts";
import type { MergeInputs } from "./inputs.ts";
import { MagnitudeProfile } from "./magnitude_profile.ts";
import { smallerEncodedSize, type SparseValueFormat, varintBytes } from "./sparse_codec.ts";
import { groupTensorsByUnit, parseUnit, unitOfTensor } from "./units.ts";
import { denseExpert } from "./vectors.ts";

/** How sparse densities are chosen. */
export type DensityMode =
  | { mode: "adaptive"; maxError: number; ladder: readonly number[] }
  | { mode: "fixed"; density: number };

/** The sparse profile of one (unit, expert). */
export interface ExpertProfile {
  expert: string;
  density: number;
  /** Estimated relative error at `density` (the written error is measured exactly). */
  error: number;
  /** Whether the adaptive error target was met. */
  met: boolean;
  /** Estimated encoded bytes at `density`. */
  bytes: number;
  /** Magnitude threshold that keeps about `density` of the unit. */
  threshold: number;
  /** Estimated error and bytes at every ladder density. */
  curve: { density: number; error: number; bytes: number }[];
}

/** Everything pass 1 learns about one unit. */
export interface UnitAnalysis {
  unit: string;
  tensors: string[];
  routable: boolean;
  conflict: UnitConflict;
  /** Per expert, for routable units. */
  profiles: ExpertProfile[];
}

/** Progress callback: one call per tensor processed. */
export type ProgressFn = (event: { phase: string; tensor: string; bytes: number }) => void;

/** Round values to what a `dtype` store keeps. */
export function roundToDtype(values: Float32Array, dtype: DType): Float32Array {
  return dtype === "f32" ? values : decodeToF32(encodeFromF32(values, dtype), dtype);
}

/** Whether a tensor takes part in sparse experts: the matrices of a block. */
export function isSparseTensor(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && parseUnit(unitOfTensor(name)).kind === "layer";
}

/** One tensor of the base and every expert, with task vectors and the stored dense expert. */
export interface TensorSet {
  base: Float32Array;
  /** tau_t = E_t - B. */
  taus: Float32Array[];
  /** D = B + mean tau, rounded to the tensor's dtype as stored. */
  dense: Float32Array;
}

/** Read one tensor of every model and derive task vectors and the dense expert. */
export async function readTensorSet(inputs: MergeInputs, name: string): Promise<TensorSet> {
  const info = inputs.base.hf.checkpoint.info(name);
  const base = await inputs.base.hf.checkpoint.readF32(name);
  const taus: Float32Array[] = [];
  for (const m of inputs.experts) {
    const e = await m.hf.checkpoint.readF32(name);
    for (let i = 0; i < e.length; i++) e[i] -= base[i]; // tau in place: no extra copy
    taus.push(e);
  }
  return { base, taus, dense: roundToDtype(denseExpert(base, taus), info.dtype) };
}

/** r = E_t - D = (B + tau_t) - D, into `out`. */
export function residualInto(out: Float32Array, s: TensorSet, t: number): Float32Array {
  const { base, taus, dense } = s;
  for (let i = 0; i < out.length; i++) out[i] = base[i] + taus[t][i] - dense[i];
  return out;
}

/**
 * Estimated encoded bytes of a unit's sparse tensors at `density`, assuming the
 * kept values spread evenly over its tensors and rows.
 */
export function estimateUnitBytes(
  shapes: readonly [number, number][],
  density: number,
  format: SparseValueFormat,
): number {
  let bytes = 0;
  for (const [rows, cols] of shapes) {
    const perRow = Math.round(density * cols);
    const gap = perRow > 0 ? cols / perRow : cols;
    const indices = rows * (varintBytes(perRow) + perRow * varintBytes(Math.floor(gap)));
    bytes += smallerEncodedSize(rows, cols, rows * perRow, indices, format);
  }
  return bytes;
}

/** Pass 1 over every unit. */
export async function analyzeUnits(
  inputs: MergeInputs,
  opts: {
    conflictDensity: number;
    density: DensityMode;
    valueFormat: SparseValueFormat;
    ladder: readonly number[];
    onProgress?: ProgressFn;
  },
): Promise<UnitAnalysis[]> {
  const out: UnitAnalysis[] = [];
  const T = inputs.experts.length;
  for (const [unit, tensors] of groupTensorsByUnit(inputs.tensorNames)) {
    const acc = new ConflictAccumulator(unit, T, { density: opts.conflictDensity });
    const routable = parseUnit(unit).kind === "layer";
    const profiles = inputs.experts.map(() => new MagnitudeProfile());
    const shapes: [number, number][] = [];
    for (const name of tensors) {
      const info = inputs.base.hf.checkpoint.info(name);
      const set = await readTensorSet(inputs, name);
      acc.add(set.taus, name);
      if (routable && isSparseTensor(name, info.shape)) {
        shapes.push([info.shape[0], info.shape[1]]);
        const r = new Float32Array(set.base.length);
        profiles.forEach((p, t) => p.add(residualInto(r, set, t)));
      }
      opts.onProgress?.({ phase: "analyze", tensor: name, bytes: info.length * (T + 1) });
    }
    out.push({
      unit,
      tensors,
      routable,
      conflict: acc.result(),
      profiles: routable
        ? profiles.map((p, t) => profileExpert(inputs.experts[t].name, p, shapes, opts))
        : [],
    });
  }
  return out;
}

function profileExpert(
  expert: string,
  p: MagnitudeProfile,
  shapes: [number, number][],
  opts: { density: DensityMode; valueFormat: SparseValueFormat; ladder: readonly number[] },
): ExpertProfile {
  const bytesAt = (d: number) => estimateUnitBytes(shapes, d, opts.valueFormat);
  const curve = opts.ladder.map((d) => ({ density: d, error: p.errorAt(d), bytes: bytesAt(d) }));
  const pick = opts.density.mode === "fixed"
    ? { density: opts.density.density, error: p.errorAt(opts.density.density), met: true }
    : p.chooseDensity(opts.density.ladder, opts.density.maxError);
  return {
    expert,
    ...pick,
    bytes: bytesAt(pick.density),
    threshold: p.thresholdAt(pick.density),
    curve,
  };
}
