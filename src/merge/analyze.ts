/**
 * Pass 1 of a Mediator merge: for every unit, stream its tensors (base + T
 * experts, one tensor name at a time), measure conflict, and for units that may
 * be routed profile each expert's residual against the dense expert to choose
 * its sparse density and size. Peak memory is about (T + 2) x the largest unit,
 * since a unit's residuals are needed together for its density choice.
 */
import type { DType } from "../tensor/dtype.ts";
import { decodeToF32, encodeFromF32 } from "../tensor/dtype.ts";
import { ConflictAccumulator, type UnitConflict } from "./conflict.ts";
import { type MergeInputs, readTensorSet } from "./inputs.ts";
import { type ResidualTensor, UnitResiduals } from "./sparse.ts";
import type { SparseValueFormat } from "./sparse_codec.ts";
import { groupTensorsByUnit, parseUnit, unitOfTensor } from "./units.ts";
import { denseExpert, residual, taskVector } from "./vectors.ts";

/** How sparse densities are chosen. */
export type DensityMode =
  | { mode: "adaptive"; maxError: number; ladder: readonly number[] }
  | { mode: "fixed"; density: number };

/** The sparse profile of one (unit, expert). */
export interface ExpertProfile {
  expert: string;
  density: number;
  error: number;
  /** Whether the adaptive error target was met. */
  met: boolean;
  /** Encoded bytes at `density`. */
  bytes: number;
  /** err at every ladder density. */
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

/** Build the residual tensors of each expert for one unit and its dense expert. */
export async function unitResiduals(
  inputs: MergeInputs,
  tensors: readonly string[],
  onTensor?: (name: string, base: Float32Array, taus: Float32Array[], dense: Float32Array) => void,
): Promise<ResidualTensor[][]> {
  const perExpert: ResidualTensor[][] = inputs.experts.map(() => []);
  for (const name of tensors) {
    const info = inputs.base.hf.checkpoint.info(name);
    const { base, experts } = await readTensorSet(inputs, name);
    const taus = experts.map((e) => taskVector(e, base));
    const dense = roundToDtype(denseExpert(base, taus), info.dtype);
    onTensor?.(name, base, taus, dense);
    if (!isSparseTensor(name, info.shape)) continue;
    experts.forEach((e, t) => {
      perExpert[t].push({
        name,
        rows: info.shape[0],
        cols: info.shape[1],
        residual: residual(e, dense),
      });
    });
  }
  return perExpert;
}

/** Choose density and size for each expert of a unit from its residuals. */
export function profileUnit(
  unit: string,
  expertNames: readonly string[],
  residuals: ResidualTensor[][],
  density: DensityMode,
  valueFormat: SparseValueFormat,
  ladder: readonly number[],
): ExpertProfile[] {
  return residuals.map((tensors, t) => {
    // q8 decodes to bf16; its extra rounding is measured exactly when written.
    const r = UnitResiduals.from(unit, tensors, valueFormat === "f16" ? "f16" : "bf16");
    const bytesAt = (d: number) => r.cutBytes(r.cut(d), valueFormat).reduce((a, b) => a + b, 0);
    const curveErr = r.errorCurve(ladder);
    const curve = ladder.map((d, i) => ({
      density: d,
      error: curveErr[i],
      bytes: bytesAt(d),
    }));
    let pick: { density: number; error: number; met: boolean };
    if (density.mode === "fixed") {
      pick = { density: density.density, error: r.errorAt(density.density), met: true };
    } else {
      const c = r.chooseDensity({ ladder: density.ladder, maxError: density.maxError });
      pick = { density: c.density, error: c.error, met: c.met };
    }
    const bytes = bytesAt(pick.density);
    return { expert: expertNames[t], ...pick, bytes, curve };
  });
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
  const names = inputs.experts.map((e) => e.name);
  for (const [unit, tensors] of groupTensorsByUnit(inputs.tensorNames)) {
    const acc = new ConflictAccumulator(unit, inputs.experts.length, {
      density: opts.conflictDensity,
    });
    const routable = parseUnit(unit).kind === "layer";
    const residuals = await unitResiduals(inputs, tensors, (name, _base, taus) => {
      acc.add(taus, name);
      opts.onProgress?.({
        phase: "analyze",
        tensor: name,
        bytes: inputs.base.hf.checkpoint.info(name).length * (names.length + 1),
      });
    });
    const profiles = routable
      ? profileUnit(unit, names, residuals, opts.density, opts.valueFormat, opts.ladder)
      : [];
    out.push({ unit, tensors, routable, conflict: acc.result(), profiles });
  }
  return out;
}
