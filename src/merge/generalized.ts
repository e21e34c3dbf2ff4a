/**
 * One generalized task-arithmetic merge of which average, task arithmetic,
 * TIES and DARE are settings (the way mergekit structures them):
 *
 *   1. sparsify each task vector tau_t: keep all ("none"), its top `density`
 *      fraction by magnitude ("magnitude", TIES' trim), or each value with
 *      probability `density`, rescaled by 1 / density ("random", DARE's
 *      drop-and-rescale with drop rate p = 1 - density);
 *   2. consensus: with "sign", elect per coordinate the sign of the sum of the
 *      sparsified values (TIES) and keep only values of that sign;
 *   3. combine the kept values per coordinate: "sum", "mean" (sum / T) or
 *      "disjoint_mean" (sum / number of experts that contributed a non-zero
 *      value; 0 where none did);
 *   4. merged = base + lambda * combined.
 *
 * Masks cost one byte per element and expert; values are never copied.
 */
import type { Rng } from "./prng.ts";
import { topKCount, topKMask } from "./topk.ts";

/** How each task vector is thinned before combining. */
export type Sparsification = "none" | "magnitude" | "random";
/** Whether values of the minority sign are dropped per coordinate. */
export type Consensus = "none" | "sign";
/** How kept values are combined per coordinate. */
export type Combination = "sum" | "mean" | "disjoint_mean";

/** Settings of `generalizedTaskArithmetic`. */
export interface GeneralizedOptions {
  readonly sparsify: Sparsification;
  /** Fraction kept: (0, 1] for "random", [0, 1] for "magnitude", ignored for "none". */
  readonly density: number;
  readonly consensus: Consensus;
  readonly combine: Combination;
  /** Scale of the combined task vector. */
  readonly lambda: number;
}

/** Per-expert keep masks (null: keep everything) and value scales. */
function sparsifyMasks(
  taus: readonly Float32Array[],
  options: GeneralizedOptions,
  rng: Rng | undefined,
): { masks: (Uint8Array | null)[]; scale: number } {
  const n = taus[0].length;
  const { sparsify, density } = options;
  if (sparsify === "none") return { masks: taus.map(() => null), scale: 1 };
  if (sparsify === "magnitude") {
    const k = topKCount(n, density);
    return { masks: taus.map((tau) => topKMask(tau, k)), scale: 1 };
  }
  if (!(density > 0 && density <= 1)) {
    throw new RangeError(
      `Cannot drop values at random: keep fraction ${density} must be in (0, 1] (drop rate below 1)`,
    );
  }
  if (!rng) {
    throw new TypeError("Cannot drop values at random: no random generator given; pass an Rng");
  }
  const masks = taus.map(() => {
    const mask = new Uint8Array(n);
    for (let i = 0; i < n; i++) mask[i] = rng.next() < density ? 1 : 0;
    return mask;
  });
  return { masks, scale: 1 / density };
}

/**
 * Merge one tensor: `base` and every `taskVectors[t]` are flattened and of the
 * same length. `rng` is required for random sparsification only.
 */
export function generalizedTaskArithmetic(
  base: Float32Array,
  taskVectors: readonly Float32Array[],
  options: GeneralizedOptions,
  rng?: Rng,
): Float32Array {
  const T = taskVectors.length;
  if (T === 0) {
    throw new RangeError("Cannot merge: no task vectors given; pass at least one expert");
  }
  const n = base.length;
  taskVectors.forEach((tau, t) => {
    if (tau.length !== n) {
      throw new RangeError(
        `Cannot merge: task vector ${t} has ${tau.length} elements but the base tensor has ${n}`,
      );
    }
  });
  const { masks, scale } = sparsifyMasks(taskVectors, options, rng);
  const useSign = options.consensus === "sign";
  const combine = options.combine;
  const lambda = options.lambda;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let elected = 0;
    if (useSign) {
      let total = 0;
      for (let t = 0; t < T; t++) {
        const m = masks[t];
        if (m === null || m[i] === 1) total += taskVectors[t][i];
      }
      elected = total > 0 ? 1 : total < 0 ? -1 : 0;
    }
    let sum = 0;
    let count = 0;
    for (let t = 0; t < T; t++) {
      const m = masks[t];
      if (m !== null && m[i] === 0) continue;
      const v = taskVectors[t][i];
      if (v === 0) continue;
      if (useSign && (v > 0 ? 1 : -1) !== elected) continue;
      sum += v;
      count++;
    }
    sum *= scale;
    const combined = combine === "sum"
      ? sum
      : combine === "mean"
      ? sum / T
      : count > 0
      ? sum / count
      : 0;
    out[i] = base[i] + lambda * combined;
  }
  return out;
}
