/**
 * Sparse experts of a routed unit (MEDIATOR.md section 3). For expert t and
 * unit l, the residual r = E_t - D_l (D_l the dense expert, as stored) is
 * approximated by S_t,l = its top-rho values by magnitude over the WHOLE unit,
 * stored as bf16 (or f16). The relative reconstruction error
 *
 *   err(rho) = ||r - S|| / ||r||
 *
 * counts both the dropped values and the rounding of the kept ones. Building
 * blocks, used per (unit, expert):
 *
 * 1. `UnitResiduals.from(unit, tensors)`: sorts the unit's |r| once;
 *    `errorCurve(densities)` then gives err at any densities in O(n).
 * 2. `chooseDensity({ ladder, maxError })`: the smallest ladder density whose
 *    error is at most `maxError` (ours: default 0.5, i.e. the sparse expert
 *    removes at least 75% of the residual's energy).
 * 3. `cut(density)` then `extract(cut, i)`: the CSR of tensor i at the unit's
 *    magnitude threshold; `cutBytes(cut)` gives the exact encoded size.
 *
 * Ties at the threshold are kept in tensor order, then index order, so a cut
 * keeps exactly min(round(rho * n), non-zeros) values. Zero residuals are
 * never stored. With f16 values, a residual beyond 65504 overflows and its
 * error is Infinity; use bf16 for such models.
 */
import type { SparseMatrixData } from "../backends/backend.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../tensor/dtype.ts";
import { smallerEncodedSize, type SparseValueFormat, varintBytes } from "./sparse_codec.ts";
import { sortedMagnitudes, topKCount } from "./topk.ts";

/** Default density ladder of the adaptive choice. */
export const DEFAULT_DENSITY_LADDER: readonly number[] = [
  0.01,
  0.02,
  0.05,
  0.1,
  0.2,
  0.3,
  0.5,
  0.7,
  1,
];
/** Default largest relative reconstruction error of the adaptive choice. */
export const DEFAULT_MAX_ERROR = 0.5;

/** Storage type of sparse values. */
export type SparseValueDtype = "bf16" | "f16";

/** One tensor of a unit's residual: r = E_t - D, flattened [rows, cols]. */
export interface ResidualTensor {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  readonly residual: Float32Array;
}

/** Where one tensor is cut. */
export interface TensorCut {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
  /** Values stored for this tensor. */
  readonly nnz: number;
  /** Values with |r| == threshold kept here (first ones by index). */
  readonly keepAtThreshold: number;
}

/** A unit-level cut at one density. */
export interface UnitCut {
  readonly unit: string;
  readonly density: number;
  /** Values stored in the unit: min(round(density * n), non-zeros). */
  readonly kept: number;
  /** |r| of the smallest kept value (Infinity when nothing is kept). */
  readonly threshold: number;
  /** err(density). */
  readonly error: number;
  readonly valueDtype: SparseValueDtype;
  readonly tensors: readonly TensorCut[];
}

/** Outcome of the adaptive density choice. */
export interface DensityChoice {
  readonly density: number;
  readonly error: number;
  /** Whether the error is within `maxError` (false: the ladder's last density). */
  readonly met: boolean;
  /** err at every ladder density, in ladder order. */
  readonly curve: readonly { density: number; error: number }[];
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** |x| rounded to bf16, for a non-negative finite x (round to nearest even). */
function roundBf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  u32[0] = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;
  return f32[0];
}

const roundF16 = (x: number) => f16ToF32(f32ToF16(x));

/** The residuals of one (unit, expert), sorted once for cheap error queries. */
export class UnitResiduals {
  readonly unit: string;
  readonly valueDtype: SparseValueDtype;
  readonly tensors: readonly ResidualTensor[];
  /** Elements of the unit. */
  readonly size: number;
  /** Non-zero residual values. */
  readonly nonZero: number;
  /** ||r|| over the unit. */
  readonly norm: number;
  /** |r| of every element, ascending. */
  #sorted: Float32Array;

  private constructor(
    unit: string,
    tensors: readonly ResidualTensor[],
    valueDtype: SparseValueDtype,
    sorted: Float32Array,
  ) {
    this.unit = unit;
    this.tensors = tensors;
    this.valueDtype = valueDtype;
    this.size = sorted.length;
    this.#sorted = sorted;
    let zeros = 0;
    while (zeros < sorted.length && sorted[zeros] === 0) zeros++;
    this.nonZero = sorted.length - zeros;
    let sum = 0;
    for (let i = 0; i < sorted.length; i++) sum += sorted[i] * sorted[i];
    this.norm = Math.sqrt(sum);
  }

  /** Sort the magnitudes of a unit's residual tensors (held by reference). */
  static from(
    unit: string,
    tensors: readonly ResidualTensor[],
    valueDtype: SparseValueDtype = "bf16",
  ): UnitResiduals {
    for (const t of tensors) {
      if (
        !(Number.isInteger(t.rows) && Number.isInteger(t.cols) &&
          t.rows * t.cols === t.residual.length)
      ) {
        throw new RangeError(
          `Cannot profile residual '${t.name}' of unit '${unit}': shape [${t.rows}, ${t.cols}] ` +
            `does not match its ${t.residual.length} values`,
        );
      }
      const r = t.residual;
      for (let i = 0; i < r.length; i++) {
        if (!Number.isFinite(r[i])) {
          throw new RangeError(
            `Cannot profile residual '${t.name}' of unit '${unit}': element ${i} is ${r[i]}`,
          );
        }
      }
    }
    const sorted = sortedMagnitudes(tensors.map((t) => t.residual));
    return new UnitResiduals(unit, tensors, valueDtype, sorted);
  }

  /** Values kept at `density`. */
  keptAt(density: number): number {
    return Math.min(topKCount(this.size, density), this.nonZero);
  }

  /** err at each of `densities` (any order), computed in one pass each way. */
  errorCurve(densities: readonly number[]): number[] {
    const s = this.#sorted;
    const n = s.length;
    if (this.norm === 0) return densities.map(() => 0);
    const round = this.valueDtype === "bf16" ? roundBf16 : roundF16;
    const ks = densities.map((d) => this.keptAt(d));
    const order = ks.map((_, i) => i).sort((a, b) => ks[a] - ks[b]);
    // Kept part: rounding error of the k largest (descending pass).
    const keptErr = new Array<number>(ks.length);
    let acc = 0;
    let taken = 0;
    for (const j of order) {
      for (; taken < ks[j]; taken++) {
        const x = s[n - 1 - taken];
        const e = x - round(x);
        acc += e * e;
      }
      keptErr[j] = acc;
    }
    // Dropped part: sum of squares of the n - k smallest (ascending pass).
    const dropped = new Array<number>(ks.length);
    acc = 0;
    let upto = 0;
    for (let q = order.length - 1; q >= 0; q--) {
      const j = order[q];
      for (; upto < n - ks[j]; upto++) acc += s[upto] * s[upto];
      dropped[j] = acc;
    }
    return ks.map((_, j) => Math.sqrt(dropped[j] + keptErr[j]) / this.norm);
  }

  /** err at one density. */
  errorAt(density: number): number {
    return this.errorCurve([density])[0];
  }

  /**
   * The smallest ladder density whose error is at most `maxError`; the
   * ladder's last density (met: false) when none is.
   */
  chooseDensity(
    options: { ladder?: readonly number[]; maxError?: number } = {},
  ): DensityChoice {
    const ladder = options.ladder ?? DEFAULT_DENSITY_LADDER;
    const maxError = options.maxError ?? DEFAULT_MAX_ERROR;
    checkLadder(ladder);
    if (!(maxError >= 0 && Number.isFinite(maxError))) {
      throw new RangeError(`Cannot choose a density: max_error ${maxError} must be >= 0`);
    }
    const errors = this.errorCurve(ladder);
    const curve = ladder.map((density, i) => ({ density, error: errors[i] }));
    const hit = curve.find((p) => p.error <= maxError);
    const pick = hit ?? curve[curve.length - 1];
    return { density: pick.density, error: pick.error, met: hit !== undefined, curve };
  }

  /** The unit-level cut at `density`: threshold and per-tensor counts. */
  cut(density: number): UnitCut {
    const kept = this.keptAt(density);
    const threshold = kept > 0 ? this.#sorted[this.size - kept] : Infinity;
    let quota = kept;
    const counts = this.tensors.map((t) => {
      let greater = 0;
      let equal = 0;
      const r = t.residual;
      for (let i = 0; i < r.length; i++) {
        const m = r[i] < 0 ? -r[i] : r[i];
        if (m > threshold) greater++;
        else if (m === threshold) equal++;
      }
      return { greater, equal };
    });
    for (const c of counts) quota -= c.greater;
    const tensors = this.tensors.map((t, i) => {
      const keepAtThreshold = Math.min(counts[i].equal, quota);
      quota -= keepAtThreshold;
      return {
        name: t.name,
        rows: t.rows,
        cols: t.cols,
        nnz: counts[i].greater + keepAtThreshold,
        keepAtThreshold,
      };
    });
    return {
      unit: this.unit,
      density,
      kept,
      threshold,
      error: this.errorAt(density),
      valueDtype: this.valueDtype,
      tensors,
    };
  }

  /** The sparse expert tensor `index` of a cut, as CSR with 16-bit values. */
  extract(cut: UnitCut, index: number): SparseMatrixData {
    const { rows, cols, residual } = this.#checkCut(cut, index);
    const tc = cut.tensors[index];
    const toBits = cut.valueDtype === "bf16" ? f32ToBf16 : f32ToF16;
    const rowPtr = new Uint32Array(rows + 1);
    const colIdx = new Uint32Array(tc.nnz);
    const values = new Uint16Array(tc.nnz);
    const threshold = cut.threshold;
    let quota = tc.keepAtThreshold;
    let j = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0, i = r * cols; c < cols; c++, i++) {
        const v = residual[i];
        const m = v < 0 ? -v : v;
        if (m > threshold || (m === threshold && quota-- > 0)) {
          colIdx[j] = c;
          values[j++] = toBits(v);
        }
      }
      rowPtr[r + 1] = j;
    }
    return { rows, cols, rowPtr, colIdx, values, valueDtype: cut.valueDtype };
  }

  /**
   * Exact encoded bytes of every tensor of a cut (smaller layout each),
   * counted in one pass without building the sparse tensors. `format` is the
   * stored value format (default: the cut's 16-bit type).
   */
  cutBytes(cut: UnitCut, format: SparseValueFormat = cut.valueDtype): number[] {
    return cut.tensors.map((tc, index) => {
      const { rows, cols, residual } = this.#checkCut(cut, index);
      const threshold = cut.threshold;
      let quota = tc.keepAtThreshold;
      let indexBytes = 0;
      for (let r = 0; r < rows; r++) {
        let count = 0;
        let prev = -1;
        for (let c = 0, i = r * cols; c < cols; c++, i++) {
          const m = residual[i] < 0 ? -residual[i] : residual[i];
          if (m > threshold || (m === threshold && quota-- > 0)) {
            indexBytes += varintBytes(c - prev - 1);
            prev = c;
            count++;
          }
        }
        indexBytes += varintBytes(count);
      }
      return smallerEncodedSize(rows, cols, tc.nnz, indexBytes, format);
    });
  }

  #checkCut(cut: UnitCut, index: number): ResidualTensor {
    const t = this.tensors[index];
    const tc = cut.tensors[index];
    if (!t || !tc || cut.unit !== this.unit || tc.name !== t.name) {
      throw new RangeError(
        `Cannot use tensor ${index} of a cut with unit '${this.unit}': the cut belongs to ` +
          `another unit or has no such tensor`,
      );
    }
    return t;
  }
}

/** Throw RangeError unless `ladder` is non-empty, ascending and within (0, 1]. */
export function checkLadder(ladder: readonly number[]): void {
  if (ladder.length === 0) throw new RangeError("Cannot use an empty density ladder");
  ladder.forEach((d, i) => {
    if (!(d > 0 && d <= 1) || (i > 0 && d <= ladder[i - 1])) {
      throw new RangeError(
        `Cannot use density ladder [${ladder.join(", ")}]: values must ascend within (0, 1]`,
      );
    }
  });
}

/**
 * ||r - S|| / ||r|| computed directly from residuals and decoded sparse
 * tensors (0 when r is zero): an independent check of `errorCurve`.
 */
export function relativeError(
  residuals: readonly Float32Array[],
  sparse: readonly SparseMatrixData[],
): number {
  let num = 0;
  let den = 0;
  residuals.forEach((r, k) => {
    const s = sparse[k];
    const toF32 = s.valueDtype === "bf16" ? bf16ToF32 : f16ToF32;
    const dense = new Float32Array(r.length);
    for (let row = 0; row < s.rows; row++) {
      for (let j = s.rowPtr[row]; j < s.rowPtr[row + 1]; j++) {
        dense[row * s.cols + s.colIdx[j]] = toF32(s.values[j]);
      }
    }
    for (let i = 0; i < r.length; i++) {
      const d = r[i] - dense[i];
      num += d * d;
      den += r[i] * r[i];
    }
  });
  return den > 0 ? Math.sqrt(num / den) : 0;
}
