/**
 * Shared SIMD helpers for the kernels (AssemblyScript, wasm32 + SIMD128).
 *
 * Layout: pure functions on v128 values; no memory of their own.
 * Vectorisation: f32x4 lanes; `expF32x4` is a range-reduced polynomial exp
 * (2^n * p(r), |r| <= ln2/2, degree-6 polynomial, about 2 ulp over the clamped range).
 * Threading: none (called from kernels that are already split by the caller).
 */

/** Sum of the four f32 lanes of `v`. */
export function sumLanes(v: v128): f32 {
  const pair = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(pair, 0) + f32x4.extract_lane(pair, 1);
}

/** Lane-wise maximum of the four f32 lanes of `v`. */
export function maxLanes(v: v128): f32 {
  const pair = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return max(f32x4.extract_lane(pair, 0), f32x4.extract_lane(pair, 1));
}

/** [sum(a), sum(b), sum(c), sum(d)]: the lane sums of four vectors in one vector. */
export function sumLanes4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** f32 value of the bf16 bit pattern `bits` (bf16 is the top half of an f32). */
export function bf16ToF32(bits: u32): f32 {
  return reinterpret<f32>(bits << 16);
}

/** bf16 bit pattern of `value`, round to nearest even, NaN kept quiet. */
export function f32ToBf16(value: f32): u32 {
  const x = reinterpret<u32>(value);
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** Four bf16 values at `ptr` (8 bytes) widened to f32x4. */
export function loadBf16x4(ptr: usize): v128 {
  return i32x4.shl(v128.load16x4_u(ptr), 16);
}

/** e^x lane-wise; inputs are clamped to [-87.3, 88.7] (results stay finite and normal). */
export function expF32x4(x: v128): v128 {
  const t = f32x4.min(f32x4.max(x, f32x4.splat(-87.3)), f32x4.splat(88.7));
  const n = f32x4.nearest(f32x4.mul(t, f32x4.splat(1.44269504)));
  // r = t - n * ln2, with ln2 split in a high part exact in f32 and a low correction.
  let r = f32x4.sub(t, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.mul(f32x4.mul(p, r), r), f32x4.add(r, f32x4.splat(1.0)));
  // 2^n built in the exponent field; n is within [-126, 128] after the clamp, so split it
  // in two factors to keep both normal.
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const half = i32x4.shr_s(ni, 1);
  const scaleA = i32x4.shl(i32x4.add(half, i32x4.splat(127)), 23);
  const scaleB = i32x4.shl(i32x4.add(i32x4.sub(ni, half), i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(p, scaleA), scaleB);
}

/** e^x for one f32, through the vector path (same accuracy as `expF32x4`). */
export function expF32(x: f32): f32 {
  return f32x4.extract_lane(expF32x4(f32x4.splat(x)), 0);
}
