/**
 * Exact top-k selection by magnitude, the trimming step shared by the conflict
 * measure, TIES and the sparse experts, plus the magnitude sort the sparse
 * error curve needs.
 *
 * Both work on the IEEE-754 bits: for finite floats, |x| orders like the
 * integer (bits & 0x7fffffff). Selection is a three-pass radix select over
 * that key (11, 11 and 9 bits), so the k-th largest |x| is exact, needs no
 * scratch copy and does not slow down on the long runs of equal magnitudes
 * that bf16 task vectors have. Ties at the threshold are broken
 * deterministically: the lowest indices are kept.
 */

/** Where the top-k of a vector by magnitude starts. */
export interface MagnitudeCut {
  /** Number of elements kept. */
  readonly k: number;
  /** Magnitude of the k-th largest element (Infinity when k = 0). */
  readonly threshold: number;
  /** How many elements with |x| == threshold are kept: the first ones by index. */
  readonly keepAtThreshold: number;
}

/** Number of elements kept at `density` of `n`: round(density * n), in [0, n]. */
export function topKCount(n: number, density: number): number {
  if (!(density >= 0 && density <= 1)) {
    throw new RangeError(`Cannot select a top fraction: density ${density} must be in [0, 1]`);
  }
  return Math.min(n, Math.max(0, Math.round(density * n)));
}

/** Radix digits of the 31-bit magnitude key, most significant first: [shift, width]. */
const DIGITS: readonly [number, number][] = [[20, 11], [9, 11], [0, 9]];
const ABS = 0x7fffffff;
const INF_BITS = 0x7f800000;

const bitsOf = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** Throw RangeError naming the first NaN of `bits` (keys above the infinity pattern). */
function rejectNaN(bits: Uint32Array): void {
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & ABS) > INF_BITS) {
      throw new RangeError(`Cannot rank values by magnitude: element ${i} is NaN`);
    }
  }
}

/**
 * The cut that keeps exactly `k` elements of `x` by magnitude. Throws
 * RangeError on NaN values or k outside [0, x.length].
 */
export function magnitudeCut(x: Float32Array, k: number): MagnitudeCut {
  const n = x.length;
  if (!(Number.isInteger(k) && k >= 0 && k <= n)) {
    throw new RangeError(`Cannot select the top ${k} of ${n} elements: k must be in [0, ${n}]`);
  }
  const bits = bitsOf(x);
  rejectNaN(bits);
  if (k === 0) return { k, threshold: Infinity, keepAtThreshold: 0 };
  let prefix = 0;
  let prefixMask = 0;
  let remaining = k; // rank, from the top, of the wanted key among keys matching the prefix
  for (const [shift, width] of DIGITS) {
    const size = 1 << width;
    const hist = new Uint32Array(size);
    for (let i = 0; i < n; i++) {
      const key = bits[i] & ABS;
      if ((key & prefixMask) === prefix) hist[(key >>> shift) & (size - 1)]++;
    }
    let bucket = size - 1;
    while (hist[bucket] < remaining) remaining -= hist[bucket--];
    prefix |= bucket << shift;
    prefixMask |= (size - 1) << shift;
  }
  const scratch = new Uint32Array([prefix]);
  return { k, threshold: new Float32Array(scratch.buffer)[0], keepAtThreshold: remaining };
}

/**
 * A 0/1 mask of the `k` largest-magnitude elements of `x` (ties at the
 * threshold: lowest indices first). `out` may be passed to reuse memory.
 */
export function topKMask(x: Float32Array, k: number, out?: Uint8Array): Uint8Array {
  const cut = magnitudeCut(x, k);
  const mask = out ? out.subarray(0, x.length) : new Uint8Array(x.length);
  const { threshold } = cut;
  let quota = cut.keepAtThreshold;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const m = v < 0 ? -v : v;
    if (m > threshold) mask[i] = 1;
    else if (m === threshold && quota > 0) {
      mask[i] = 1;
      quota--;
    } else mask[i] = 0;
  }
  return mask;
}

/**
 * |x| of every element of `parts` (concatenated), sorted ascending, by an LSD
 * radix sort on the magnitude key. Throws RangeError on NaN.
 */
export function sortedMagnitudes(parts: readonly Float32Array[]): Float32Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  let keys = new Uint32Array(n);
  let o = 0;
  for (const p of parts) {
    const bits = bitsOf(p);
    rejectNaN(bits);
    for (let i = 0; i < bits.length; i++) keys[o++] = bits[i] & ABS;
  }
  let tmp = new Uint32Array(n);
  for (let d = DIGITS.length - 1; d >= 0; d--) {
    const [shift, width] = DIGITS[d];
    const size = 1 << width;
    const count = new Uint32Array(size + 1);
    for (let i = 0; i < n; i++) count[((keys[i] >>> shift) & (size - 1)) + 1]++;
    for (let b = 0; b < size; b++) count[b + 1] += count[b];
    for (let i = 0; i < n; i++) tmp[count[(keys[i] >>> shift) & (size - 1)]++] = keys[i];
    [keys, tmp] = [tmp, keys];
  }
  return new Float32Array(keys.buffer);
}
