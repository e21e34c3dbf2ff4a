/**
 * Element-wise ops on f32 vectors: SiLU-gated product and addition.
 *
 * Layout: flat f32 arrays; out may alias an input.
 * Vectorisation: f32x4 with the vector exp of `simd_math.ts`; scalar leftovers.
 * Threading: the caller splits elements [start, end) (multiples of 4 except at the end).
 */
import { expF32, expF32x4 } from "./simd_math";

/** out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + e^-gate[i]) * up[i] for i in [start, end). */
export function siluMul(out: usize, gate: usize, up: usize, start: i32, end: i32): void {
  let i = start;
  const one = f32x4.splat(1);
  for (; i + 4 <= end; i += 4) {
    const o = <usize> i << 2;
    const g = v128.load(gate + o);
    const e = expF32x4(f32x4.neg(g));
    v128.store(out + o, f32x4.mul(f32x4.div(g, f32x4.add(one, e)), v128.load(up + o)));
  }
  for (; i < end; i++) {
    const o = <usize> i << 2;
    const g = load<f32>(gate + o);
    store<f32>(out + o, g / (1 + expF32(-g)) * load<f32>(up + o));
  }
}

/** out[i] = a[i] + b[i] for i in [start, end). */
export function addVec(out: usize, a: usize, b: usize, start: i32, end: i32): void {
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const o = <usize> i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < end; i++) {
    const o = <usize> i << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}
