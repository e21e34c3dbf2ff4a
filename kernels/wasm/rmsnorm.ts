/**
 * RMSNorm: out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * gamma.
 *
 * Layout: x, out f32 [m, cols] (out may alias x); gamma f32 [cols].
 * Vectorisation: f32x4 sum of squares (two accumulators), then a scaled multiply; scalar
 * code for the last cols % 4 columns.
 * Threading: the caller splits rows [rowStart, rowEnd).
 */
import { sumLanes } from "./simd_math";

/** RMSNorm of rows [rowStart, rowEnd) of x [?, cols] into out. */
export function rmsNorm(
  out: usize,
  x: usize,
  gamma: usize,
  cols: i32,
  eps: f32,
  rowStart: i32,
  rowEnd: i32,
): void {
  const cols4 = cols & ~3;
  const stride = <usize> cols << 2;
  for (let i = rowStart; i < rowEnd; i++) {
    const xr = x + <usize> i * stride;
    const or = out + <usize> i * stride;
    let a = f32x4.splat(0);
    let k = 0;
    for (; k < cols4; k += 4) {
      const v = v128.load(xr + (<usize> k << 2));
      a = f32x4.relaxed_madd(v, v, a);
    }
    let ss = sumLanes(a);
    for (; k < cols; k++) {
      const v = load<f32>(xr + (<usize> k << 2));
      ss += v * v;
    }
    const inv: f32 = 1 / sqrt<f32>(ss / <f32> cols + eps);
    const iv = f32x4.splat(inv);
    k = 0;
    for (; k < cols4; k += 4) {
      const o = <usize> k << 2;
      v128.store(or + o, f32x4.mul(f32x4.mul(v128.load(xr + o), iv), v128.load(gamma + o)));
    }
    for (; k < cols; k++) {
      const o = <usize> k << 2;
      store<f32>(or + o, load<f32>(xr + o) * inv * load<f32>(gamma + o));
    }
  }
}
