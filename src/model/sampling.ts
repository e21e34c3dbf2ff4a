/**
 * Next-token selection: greedy, temperature, top-k, top-p (nucleus) and
 * repetition penalty, with a seeded PRNG so sampled runs reproduce.
 * Order of operations follows the common convention: repetition penalty,
 * temperature, top-k, top-p, then a draw.
 */

/** Sampling settings of one request. */
export interface SamplingOptions {
  /** 0 (default) means greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). */
  topP?: number;
  /** > 1 discourages tokens already present (1 = off), as in CTRL / transformers. */
  repetitionPenalty?: number;
  /** PRNG seed; the same seed gives the same tokens. */
  seed?: number;
}

/** Validate sampling options, throwing RangeError with the field name. */
export function checkSamplingOptions(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t)) {
    throw new RangeError(`Cannot sample: temperature must be >= 0, got ${o.temperature}`);
  }
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 0)) {
    throw new RangeError(`Cannot sample: top_k must be a non-negative integer, got ${o.topK}`);
  }
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) {
    throw new RangeError(`Cannot sample: top_p must be in (0, 1], got ${o.topP}`);
  }
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0)) {
    throw new RangeError(
      `Cannot sample: repetition_penalty must be > 0, got ${o.repetitionPenalty}`,
    );
  }
}

/** Seeded PRNG (mulberry32) returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = (seed >>> 0) || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the largest value (first on ties), like torch.argmax. */
export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** A sampler bound to one request's options and PRNG. */
export class Sampler {
  readonly #o: SamplingOptions;
  readonly #rand: () => number;

  /** @param options validated sampling settings */
  constructor(options: SamplingOptions = {}) {
    checkSamplingOptions(options);
    this.#o = options;
    this.#rand = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  /** Pick the next token from `logits` given the ids seen so far (modifies a copy). */
  next(logits: Float32Array, history: readonly number[]): number {
    const o = this.#o;
    const penalty = o.repetitionPenalty ?? 1;
    let scores = logits;
    if (penalty !== 1 && history.length > 0) {
      scores = logits.slice();
      for (const id of new Set(history)) {
        const v = scores[id];
        scores[id] = v > 0 ? v / penalty : v * penalty;
      }
    }
    const temperature = o.temperature ?? 0;
    if (temperature === 0) return argmax(scores);

    // Candidates sorted by score, cut by top-k.
    let order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
    if (o.topK && o.topK < order.length) order = order.slice(0, o.topK);
    const max = scores[order[0]];
    const probs = order.map((i) => Math.exp((scores[i] - max) / temperature));
    let total = probs.reduce((s, p) => s + p, 0);
    // Nucleus: keep the smallest prefix whose mass reaches top_p.
    const topP = o.topP ?? 1;
    if (topP < 1) {
      let acc = 0, keep = 0;
      while (keep < probs.length) {
        acc += probs[keep++] / total;
        if (acc >= topP) break;
      }
      probs.length = keep;
      order = order.slice(0, keep);
      total = probs.reduce((s, p) => s + p, 0);
    }
    let r = this.#rand() * total;
    for (let i = 0; i < probs.length; i++) {
      r -= probs[i];
      if (r <= 0) return order[i];
    }
    return order[order.length - 1];
  }
}
