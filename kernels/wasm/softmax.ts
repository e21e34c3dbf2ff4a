/**
 * Softmax over contiguous f32 vectors, in place: x = exp(x - max) / sum.
 *
 * Layout: rows of `n` f32, stride n.
 * Vectorisation: f32x4 max, vector exp (`expF32x4`) and scale; scalar for n % 4 leftovers.
 * Threading: the caller splits rows [rowStart, rowEnd); attention calls `softmaxInPlace`
 * on its own scratch row.
 */
import { expF32, expF32x4, maxLanes, sumLanes } from "./simd_math";

/** Softmax of the n floats at `p`, in place. */
export function softmaxInPlace(p: usize, n: i32): void {
  const n4 = n & ~3;
  let mv = f32x4.splat(-Infinity);
  let k = 0;
  for (; k < n4; k += 4) mv = f32x4.max(mv, v128.load(p + (<usize> k << 2)));
  let mx = maxLanes(mv);
  for (; k < n; k++) mx = max(mx, load<f32>(p + (<usize> k << 2)));
  const mxv = f32x4.splat(mx);
  let sv = f32x4.splat(0);
  for (k = 0; k < n4; k += 4) {
    const o = <usize> k << 2;
    const e = expF32x4(f32x4.sub(v128.load(p + o), mxv));
    v128.store(p + o, e);
    sv = f32x4.add(sv, e);
  }
  let sum = sumLanes(sv);
  for (; k < n; k++) {
    const o = <usize> k << 2;
    const e = expF32(load<f32>(p + o) - mx);
    store<f32>(p + o, e);
    sum += e;
  }
  const inv: f32 = 1 / sum;
  const iv = f32x4.splat(inv);
  for (k = 0; k < n4; k += 4) {
    const o = <usize> k << 2;
    v128.store(p + o, f32x4.mul(v128.load(p + o), iv));
  }
  for (; k < n; k++) {
    const o = <usize> k << 2;
    store<f32>(p + o, load<f32>(p + o) * inv);
  }
}

/** Softmax of rows [rowStart, rowEnd) of x [?, n], in place. */
export function softmaxRows(x: usize, n: i32, rowStart: i32, rowEnd: i32): void {
  for (let i = rowStart; i < rowEnd; i++) softmaxInPlace(x + (<usize> (i * n) << 2), n);
}
