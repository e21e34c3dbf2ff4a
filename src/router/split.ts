/**
 * Seeded, stratified splits of a labelled set: every class keeps the same
 * share in each part, so a small held-out set still covers every expert.
 */
import type { Rng } from "../merge/prng.ts";

/** Indices of the two parts of a split, each ascending. */
export interface Split {
  /** Indices that stay in the main part. */
  keep: number[];
  /** Indices set aside (the requested share of each class). */
  held: number[];
}

/** Fisher-Yates shuffle of `items` in place, driven by `rng`. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/**
 * Split `indices` (default: all of `labels`) so that about `share` of each
 * class goes to `held`. A class always keeps at least one example in `keep`.
 * Classes are visited in ascending order, so the result depends only on the
 * labels, the share and the generator's state.
 */
export function stratifiedSplit(
  labels: readonly number[],
  share: number,
  rng: Rng,
  indices: readonly number[] = labels.map((_, i) => i),
): Split {
  if (!(share >= 0 && share < 1)) {
    throw new RangeError(`Cannot split examples: share must be in [0, 1), got ${share}`);
  }
  const byClass = new Map<number, number[]>();
  for (const i of indices) {
    const list = byClass.get(labels[i]) ?? [];
    list.push(i);
    byClass.set(labels[i], list);
  }
  const keep: number[] = [], held: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = shuffleInPlace(byClass.get(c)!, rng);
    const k = Math.min(members.length - 1, Math.round(members.length * share));
    held.push(...members.slice(0, k));
    keep.push(...members.slice(k));
  }
  keep.sort((a, b) => a - b);
  held.sort((a, b) => a - b);
  return { keep, held };
}
