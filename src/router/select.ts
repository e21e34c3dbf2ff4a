/**
 * Uncertainty-based expert selection (MEDIATOR.md §5). From router logits:
 *
 *   p = softmax(logits / temperature)
 *   u = entropy(p) / log(T)            in [0, 1]; 0 when T = 1
 *
 * - `minConfidence` set and max(p) < minConfidence: the dense expert alone
 *   (no sparse experts, mode "dense");
 * - u <= uLow: the top-1 expert with weight 1 (mode "top1");
 * - otherwise: the top-m experts, weights = their p renormalised to sum 1
 *   (mode "mixture"; "top1" when only one expert is left, e.g. T = 1 or m = 1).
 *
 * Ties in p are broken by the lower expert index, so a route is deterministic.
 */

/** How a route was chosen. */
export type RouteMode = "top1" | "mixture" | "dense";

/** The experts a request uses and why. */
export interface Route {
  /** Expert indices, most probable first; empty in "dense" mode. */
  experts: number[];
  /** One weight per expert, summing to 1 (empty in "dense" mode). */
  weights: number[];
  /** Normalised entropy of `probabilities`, in [0, 1]. */
  uncertainty: number;
  /** The router's distribution over all experts (after temperature). */
  probabilities: number[];
  /** Which rule chose the experts. */
  mode: RouteMode;
}

/** Options of the selection rule. */
export interface SelectionOptions {
  /** Softmax temperature, > 0 (default 1). */
  temperature: number;
  /** Uncertainty at or below which the top-1 expert is used alone, in [0, 1] (default 0.3). */
  uLow: number;
  /** Experts mixed when uncertain, an integer >= 1 (default 2; capped at T). */
  topM: number;
  /** Use the dense expert alone when max(p) is below this, in [0, 1]; undefined = never. */
  minConfidence?: number;
}

/** The defaults of MEDIATOR.md §5. */
export const DEFAULT_SELECTION: Readonly<SelectionOptions> = Object.freeze({
  temperature: 1,
  uLow: 0.3,
  topM: 2,
  minConfidence: undefined,
});

/**
 * Check selection options, throwing a RangeError that names the bad field.
 * Returns a complete options record (defaults filled in).
 */
export function validateSelection(opts: Partial<SelectionOptions> = {}): SelectionOptions {
  const o = { ...DEFAULT_SELECTION, ...stripUndefined(opts) };
  if (typeof o.temperature !== "number" || !Number.isFinite(o.temperature) || o.temperature <= 0) {
    throw new RangeError(
      `Cannot select experts: temperature must be a finite number > 0, got ${o.temperature}`,
    );
  }
  if (typeof o.uLow !== "number" || !(o.uLow >= 0 && o.uLow <= 1)) {
    throw new RangeError(`Cannot select experts: u_low must be in [0, 1], got ${o.uLow}`);
  }
  if (!Number.isInteger(o.topM) || o.topM < 1) {
    throw new RangeError(`Cannot select experts: top_m must be an integer >= 1, got ${o.topM}`);
  }
  const mc = o.minConfidence;
  if (mc !== undefined && (typeof mc !== "number" || !(mc >= 0 && mc <= 1))) {
    throw new RangeError(
      `Cannot select experts: min_confidence must be in [0, 1] or unset, got ${mc}`,
    );
  }
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** softmax(logits / temperature), computed stably in f64. */
export function softmax(logits: ArrayLike<number>, temperature = 1): number[] {
  if (logits.length === 0) throw new RangeError("Cannot compute softmax: no logits");
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (!Number.isFinite(v)) {
      throw new RangeError(`Cannot compute softmax: logit ${i} is ${v}`);
    }
    max = Math.max(max, v / temperature);
  }
  const p = new Array<number>(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp(logits[i] / temperature - max);
    sum += p[i];
  }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/** Entropy of `p` divided by log(T), clamped to [0, 1]; 0 when T = 1. */
export function normalizedEntropy(p: readonly number[]): number {
  if (p.length <= 1) return 0;
  let h = 0;
  for (const v of p) if (v > 0) h -= v * Math.log(v);
  return Math.min(1, Math.max(0, h / Math.log(p.length)));
}

/** Expert indices ordered by decreasing probability, ties to the lower index. */
function ranked(p: readonly number[]): number[] {
  return p.map((_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
}

/** Apply the selection rule to a probability vector (already tempered). */
export function selectFromProbabilities(
  p: readonly number[],
  opts: Partial<SelectionOptions> = {},
): Route {
  const o = validateSelection(opts);
  if (p.length === 0) throw new RangeError("Cannot select experts: no probabilities");
  for (let i = 0; i < p.length; i++) {
    if (!(p[i] >= 0 && p[i] <= 1)) {
      throw new RangeError(`Cannot select experts: probability ${i} is ${p[i]}, not in [0, 1]`);
    }
  }
  const uncertainty = normalizedEntropy(p);
  const order = ranked(p);
  const probabilities = [...p];
  if (o.minConfidence !== undefined && p[order[0]] < o.minConfidence) {
    return { experts: [], weights: [], uncertainty, probabilities, mode: "dense" };
  }
  if (uncertainty <= o.uLow) {
    return { experts: [order[0]], weights: [1], uncertainty, probabilities, mode: "top1" };
  }
  const experts = order.slice(0, Math.min(o.topM, p.length));
  const total = experts.reduce((s, e) => s + p[e], 0);
  const weights = experts.map((e) => p[e] / total);
  const mode: RouteMode = experts.length === 1 ? "top1" : "mixture";
  return { experts, weights, uncertainty, probabilities, mode };
}

/** Apply the selection rule to router logits: softmax at `opts.temperature`, then the rule. */
export function selectFromLogits(
  logits: ArrayLike<number>,
  opts: Partial<SelectionOptions> = {},
): Route {
  const o = validateSelection(opts);
  return selectFromProbabilities(softmax(logits, o.temperature), o);
}
