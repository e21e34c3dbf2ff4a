/**
 * Layer-wise conflict between task vectors (MEDIATOR.md section 1). One
 * `ConflictAccumulator` per unit is fed the task vectors tau_t = E_t - B of
 * each tensor of the unit in turn (so a merge can stream tensor by tensor) and
 * reports three measures:
 *
 * - conflict d_l: trim each tau_t to its top-`density` fraction by magnitude
 *   (per tensor, as TIES does); among coordinates where at least two experts
 *   keep a non-zero value, the share whose kept values do not all have the
 *   same sign;
 * - mean pairwise cosine of the untrimmed task vectors over the whole unit
 *   (a pair with a zero task vector counts as cosine 0);
 * - relative averaging loss: mean over t of ||tau_t - mean(tau)|| / ||tau_t||
 *   over the whole unit (experts whose task vector is zero in the unit are
 *   left out; 0 when all are).
 */
import { topKCount, topKMask } from "./topk.ts";
import type { UnitId } from "./units.ts";

/** Default trim fraction k of the conflict measure (TIES' default density). */
export const DEFAULT_CONFLICT_DENSITY = 0.2;

/** Options of `ConflictAccumulator`. */
export interface ConflictOptions {
  /** Fraction of each task vector kept by the trim, in (0, 1]; default 0.2. */
  density?: number;
}

/** The three conflict measures of one unit, plus the counts behind them. */
export interface UnitConflict {
  readonly unit: UnitId;
  readonly experts: number;
  readonly tensors: number;
  /** Coordinates seen (summed over tensors). */
  readonly elements: number;
  /** Trim fraction used. */
  readonly density: number;
  /** Coordinates where >= 2 experts keep a non-zero value. */
  readonly contested: number;
  /** Contested coordinates whose kept values do not all share a sign. */
  readonly disagreeing: number;
  /** d_l = disagreeing / contested (0 when nothing is contested). */
  readonly conflict: number;
  /** Mean over pairs of the cosine of untrimmed task vectors. */
  readonly meanCosine: number;
  /** Cosine of every pair, [T][T], 1 on the diagonal for non-zero vectors. */
  readonly pairCosine: number[][];
  /** Mean of `expertAveragingLoss` over experts with a non-zero task vector. */
  readonly averagingLoss: number;
  /** ||tau_t - mean(tau)|| / ||tau_t|| per expert (0 for a zero task vector). */
  readonly expertAveragingLoss: number[];
  /** ||tau_t|| over the unit, per expert. */
  readonly taskVectorNorms: number[];
}

/** Accumulates the conflict measures of one unit over its tensors. */
export class ConflictAccumulator {
  readonly unit: UnitId;
  readonly experts: number;
  readonly density: number;
  #tensors = 0;
  #elements = 0;
  #contested = 0;
  #disagreeing = 0;
  /** Gram matrix of the task vectors, row-major T x T, in float64. */
  #gram: Float64Array;
  /** Sum of ||tau_t - mean||^2 per expert. */
  #deviation: Float64Array;
  #masks: Uint8Array[] = [];

  /**
   * @param unit the unit's name (for reports and messages)
   * @param experts number of experts T (at least 2)
   * @param options trim fraction
   */
  constructor(unit: UnitId, experts: number, options: ConflictOptions = {}) {
    if (!(Number.isInteger(experts) && experts >= 2)) {
      throw new RangeError(
        `Cannot measure conflict of unit '${unit}': ${experts} experts given; at least 2 are needed`,
      );
    }
    const density = options.density ?? DEFAULT_CONFLICT_DENSITY;
    if (!(density > 0 && density <= 1)) {
      throw new RangeError(
        `Cannot measure conflict of unit '${unit}': density ${density} must be in (0, 1]`,
      );
    }
    this.unit = unit;
    this.experts = experts;
    this.density = density;
    this.#gram = new Float64Array(experts * experts);
    this.#deviation = new Float64Array(experts);
  }

  /**
   * Add one tensor of the unit: `taskVectors[t]` is tau_t for this tensor,
   * flattened; all must have the same length. `tensor` names it in messages.
   */
  add(taskVectors: readonly Float32Array[], tensor = "tensor"): void {
    const T = this.experts;
    if (taskVectors.length !== T) {
      throw new RangeError(
        `Cannot add '${tensor}' to the conflict of unit '${this.unit}': ` +
          `${taskVectors.length} task vectors given for ${T} experts`,
      );
    }
    const n = taskVectors[0].length;
    for (let t = 0; t < T; t++) {
      if (!(taskVectors[t] instanceof Float32Array) || taskVectors[t].length !== n) {
        throw new RangeError(
          `Cannot add '${tensor}' to the conflict of unit '${this.unit}': task vector ${t} ` +
            `must be a Float32Array of ${n} elements like task vector 0`,
        );
      }
    }
    const k = topKCount(n, this.density);
    for (let t = 0; t < T; t++) {
      if (!this.#masks[t] || this.#masks[t].length < n) this.#masks[t] = new Uint8Array(n);
      topKMask(taskVectors[t], k, this.#masks[t]);
    }
    this.#countSignConflicts(taskVectors, n);
    this.#accumulateGeometry(taskVectors, n);
    this.#tensors++;
    this.#elements += n;
  }

  #countSignConflicts(taus: readonly Float32Array[], n: number): void {
    const T = this.experts;
    const masks = this.#masks;
    let contested = 0;
    let disagreeing = 0;
    for (let i = 0; i < n; i++) {
      let pos = 0;
      let neg = 0;
      for (let t = 0; t < T; t++) {
        if (masks[t][i] === 0) continue;
        const v = taus[t][i];
        if (v > 0) pos++;
        else if (v < 0) neg++;
      }
      if (pos + neg >= 2) {
        contested++;
        if (pos > 0 && neg > 0) disagreeing++;
      }
    }
    this.#contested += contested;
    this.#disagreeing += disagreeing;
  }

  #accumulateGeometry(taus: readonly Float32Array[], n: number): void {
    const T = this.experts;
    for (let a = 0; a < T; a++) {
      const x = taus[a];
      for (let b = a; b < T; b++) {
        const y = taus[b];
        let dot = 0;
        for (let i = 0; i < n; i++) dot += x[i] * y[i];
        this.#gram[a * T + b] += dot;
        if (a !== b) this.#gram[b * T + a] += dot;
      }
    }
    const dev = new Float64Array(T);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let t = 0; t < T; t++) sum += taus[t][i];
      const mean = sum / T;
      for (let t = 0; t < T; t++) {
        const d = taus[t][i] - mean;
        dev[t] += d * d;
      }
    }
    for (let t = 0; t < T; t++) this.#deviation[t] += dev[t];
  }

  /** The measures over every tensor added so far. */
  result(): UnitConflict {
    const T = this.experts;
    const g = this.#gram;
    const norms = Array.from({ length: T }, (_, t) => Math.sqrt(g[t * T + t]));
    const pairCosine: number[][] = [];
    let cosSum = 0;
    for (let a = 0; a < T; a++) {
      const row: number[] = [];
      for (let b = 0; b < T; b++) {
        const denom = norms[a] * norms[b];
        row.push(denom > 0 ? g[a * T + b] / denom : 0);
        if (b > a) cosSum += row[b];
      }
      pairCosine.push(row);
    }
    const losses = norms.map((nrm, t) => nrm > 0 ? Math.sqrt(this.#deviation[t]) / nrm : 0);
    const nonZero = norms.filter((nrm) => nrm > 0).length;
    const lossSum = losses.reduce((s, x) => s + x, 0);
    return {
      unit: this.unit,
      experts: T,
      tensors: this.#tensors,
      elements: this.#elements,
      density: this.density,
      contested: this.#contested,
      disagreeing: this.#disagreeing,
      conflict: this.#contested > 0 ? this.#disagreeing / this.#contested : 0,
      meanCosine: cosSum / ((T * (T - 1)) / 2),
      pairCosine,
      averagingLoss: nonZero > 0 ? lossSum / nonZero : 0,
      expertAveragingLoss: losses,
      taskVectorNorms: norms,
    };
  }
}

/** Conflict measures of one unit given all its tensors at once (a convenience). */
export function measureConflict(
  unit: UnitId,
  tensors: readonly (readonly Float32Array[])[],
  options: ConflictOptions = {},
): UnitConflict {
  const acc = new ConflictAccumulator(unit, tensors[0]?.length ?? 0, options);
  tensors.forEach((taus, i) => acc.add(taus, `tensor ${i}`));
  return acc.result();
}
