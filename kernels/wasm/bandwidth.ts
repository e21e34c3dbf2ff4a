/**
 * Memory read probe for the benchmarks: sums f32 values so every byte is read once.
 *
 * Layout: a flat f32 array; the caller passes a byte range [start, end).
 * Vectorisation: the range is read in chunks of 8 MiB, each as four interleaved sequential
 * streams (its 2 MiB quarters), 64 bytes from each per iteration into eight independent
 * f32x4 accumulators. This is the access pattern of the GEMV kernels on the model's
 * matrices (four streams about 2 MiB apart), which reach more bandwidth than one stream.
 * Threading: the caller splits the byte range; each thread returns its partial sum.
 */
import { sumLanes } from "./simd_math";

const CHUNK: usize = 8 << 20;

/** Sum of the f32 values in bytes [start, end) of the array at `base`. */
export function sumBytes(base: usize, start: i32, end: i32): f32 {
  let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0), d = f32x4.splat(0);
  let e = f32x4.splat(0), f = f32x4.splat(0), g = f32x4.splat(0), h = f32x4.splat(0);
  let p0 = base + <usize> start;
  const stop = base + <usize> end;
  for (; p0 + CHUNK <= stop; p0 += CHUNK) {
    const quarter = CHUNK >> 2;
    const p1 = p0 + quarter;
    const p2 = p1 + quarter;
    const p3 = p2 + quarter;
    for (let o: usize = 0; o < quarter; o += 64) {
      a = f32x4.add(a, f32x4.add(v128.load(p0 + o), v128.load(p0 + o, 16)));
      b = f32x4.add(b, f32x4.add(v128.load(p0 + o, 32), v128.load(p0 + o, 48)));
      c = f32x4.add(c, f32x4.add(v128.load(p1 + o), v128.load(p1 + o, 16)));
      d = f32x4.add(d, f32x4.add(v128.load(p1 + o, 32), v128.load(p1 + o, 48)));
      e = f32x4.add(e, f32x4.add(v128.load(p2 + o), v128.load(p2 + o, 16)));
      f = f32x4.add(f, f32x4.add(v128.load(p2 + o, 32), v128.load(p2 + o, 48)));
      g = f32x4.add(g, f32x4.add(v128.load(p3 + o), v128.load(p3 + o, 16)));
      h = f32x4.add(h, f32x4.add(v128.load(p3 + o, 32), v128.load(p3 + o, 48)));
    }
  }
  for (; p0 + 16 <= stop; p0 += 16) a = f32x4.add(a, v128.load(p0));
  let s = sumLanes(
    f32x4.add(
      f32x4.add(f32x4.add(a, b), f32x4.add(c, d)),
      f32x4.add(f32x4.add(e, f), f32x4.add(g, h)),
    ),
  );
  for (; p0 < stop; p0 += 4) s += load<f32>(p0);
  return s;
}
