/**
 * Streaming magnitude profile of one (unit, expert) residual r = E_t - D
 * (MEDIATOR.md section 3). Tensors are added one at a time and dropped, so a
 * merge never holds a whole unit: |r| is binned on a log scale (64 bins per
 * octave, about 1.1% wide) with the count and the sum of squares of each bin.
 *
 * From it: the relative error err(rho) = ||r - S|| / ||r|| of keeping the
 * top rho share of values by magnitude, the smallest ladder density meeting
 * a maximum error, and the magnitude threshold that keeps about rho * n values
 * (exact up to the bin width; the stored density and error are measured
 * exactly when the sparse tensors are written). Values inside the crossing bin
 * are taken as spread evenly in log-magnitude.
 */

const BINS_PER_OCTAVE = 64;
const MIN_EXP = -48;
const MAX_EXP = 24;
const BINS = (MAX_EXP - MIN_EXP) * BINS_PER_OCTAVE;

/** Outcome of the adaptive density choice. */
export interface DensityChoice {
  readonly density: number;
  readonly error: number;
  /** Whether the error is within `maxError` (false: the ladder's last density). */
  readonly met: boolean;
}

/** Check a density ladder: non-empty, ascending, in (0, 1]. */
export function checkLadder(ladder: readonly number[]): void {
  if (ladder.length === 0) throw new RangeError("Cannot use an empty density ladder");
  ladder.forEach((d, i) => {
    if (!(d > 0 && d <= 1) || (i > 0 && d <= ladder[i - 1])) {
      throw new RangeError(
        `Cannot use density ladder [${ladder}]: densities must ascend strictly within (0, 1]`,
      );
    }
  });
}

/** Log-binned |r| statistics of one unit and expert. */
export class MagnitudeProfile {
  readonly #count = new Float64Array(BINS);
  readonly #sumSq = new Float64Array(BINS);
  #n = 0;
  #zeros = 0;
  #total = 0;

  /** Add one tensor's residual values. */
  add(residual: Float32Array): void {
    const count = this.#count, sumSq = this.#sumSq;
    for (let i = 0; i < residual.length; i++) {
      const v = residual[i];
      const m = v < 0 ? -v : v;
      if (m === 0) {
        this.#zeros++;
        continue;
      }
      let b = Math.floor((Math.log2(m) - MIN_EXP) * BINS_PER_OCTAVE);
      if (b < 0) b = 0;
      else if (b >= BINS) b = BINS - 1;
      count[b]++;
      sumSq[b] += m * m;
      this.#total += m * m;
    }
    this.#n += residual.length;
  }

  /** Values seen. */
  get size(): number {
    return this.#n;
  }

  /** Non-zero values seen. */
  get nonZero(): number {
    return this.#n - this.#zeros;
  }

  /** ||r||^2 over the unit. */
  get sumOfSquares(): number {
    return this.#total;
  }

  /**
   * Walk bins from the largest magnitudes down until `kept` values are
   * covered; returns the kept sum of squares and the threshold magnitude.
   */
  #cut(kept: number): { keptSq: number; threshold: number } {
    if (kept <= 0) return { keptSq: 0, threshold: Infinity };
    let have = 0, keptSq = 0;
    for (let b = BINS - 1; b >= 0; b--) {
      const c = this.#count[b];
      if (c === 0) continue;
      if (have + c >= kept) {
        const f = (kept - have) / c; // share of this bin kept (its upper part)
        keptSq += f * this.#sumSq[b];
        const threshold = 2 ** (MIN_EXP + (b + 1 - f) / BINS_PER_OCTAVE);
        return { keptSq, threshold: b === 0 && f === 1 ? 0 : threshold };
      }
      have += c;
      keptSq += this.#sumSq[b];
    }
    return { keptSq, threshold: 0 };
  }

  /** Values kept at `density`: min(round(density * n), non-zeros). */
  keptAt(density: number): number {
    return Math.min(Math.round(density * this.#n), this.nonZero);
  }

  /** err(density) = sqrt(dropped energy / total energy); 0 for a zero residual. */
  errorAt(density: number): number {
    const kept = this.keptAt(density);
    if (this.#total === 0 || kept >= this.nonZero) return 0;
    const { keptSq } = this.#cut(kept);
    return Math.sqrt(Math.max(0, this.#total - keptSq) / this.#total);
  }

  /** Magnitude at or above which values are kept for `density` (Infinity keeps none). */
  thresholdAt(density: number): number {
    return this.#cut(this.keptAt(density)).threshold;
  }

  /** The smallest ladder density with error <= maxError, else the last one (met: false). */
  chooseDensity(ladder: readonly number[], maxError: number): DensityChoice {
    checkLadder(ladder);
    if (!(maxError >= 0 && Number.isFinite(maxError))) {
      throw new RangeError(`Cannot choose a density: max_error ${maxError} must be >= 0`);
    }
    for (const density of ladder) {
      const error = this.errorAt(density);
      if (error <= maxError) return { density, error, met: true };
    }
    const last = ladder[ladder.length - 1];
    return { density: last, error: this.errorAt(last), met: false };
  }
}
