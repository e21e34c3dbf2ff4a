/**
 * Seeded pseudo-random numbers for merge methods that drop values at random
 * (DARE). The generator is xoshiro128** (Blackman and Vigna, 2018) seeded
 * through splitmix32, so a merge is reproducible from one integer seed, and
 * `rngForTensor` derives an independent stream per tensor so results do not
 * depend on the order in which tensors are streamed.
 */

/** A source of uniform random numbers in [0, 1). */
export interface Rng {
  /** Next uniform number in [0, 1), with 32 bits of resolution. */
  next(): number;
}

/** splitmix32 step: returns the next state and a well-mixed 32-bit output. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** xoshiro128** over four 32-bit words of state. */
class Xoshiro128 implements Rng {
  #s = new Uint32Array(4);

  constructor(seed: number) {
    let state = seed | 0;
    for (let i = 0; i < 4; i++) {
      const [nextState, out] = splitmix32(state);
      state = nextState;
      this.#s[i] = out;
    }
    // The all-zero state is a fixed point; splitmix32 never yields it for
    // all four words, but guard anyway.
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) this.#s[0] = 1;
  }

  /** Next raw 32-bit output. */
  nextU32(): number {
    const s = this.#s;
    const x = Math.imul(s[1], 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >>> 21);
    return result;
  }

  next(): number {
    return this.nextU32() / 4294967296;
  }
}

/**
 * A new generator for `seed` (any integer; only its low 32 bits are used).
 * Throws TypeError when the seed is not a safe integer.
 */
export function createRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) {
    throw new TypeError(`Cannot seed the random generator: seed ${seed} is not an integer`);
  }
  return new Xoshiro128(seed >>> 0);
}

/** FNV-1a hash of a string's UTF-16 code units, as an unsigned 32-bit integer. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The generator for one tensor of a merge: seeded from the merge `seed` and the
 * tensor name, so every tensor gets its own reproducible stream whatever order
 * tensors are processed in.
 */
export function rngForTensor(seed: number, tensorName: string): Rng {
  if (!Number.isSafeInteger(seed)) {
    throw new TypeError(
      `Cannot seed the random generator for tensor '${tensorName}': seed ${seed} is not an integer`,
    );
  }
  return new Xoshiro128((Math.imul(seed >>> 0, 0x9e3779b1) ^ hashString(tensorName)) >>> 0);
}
