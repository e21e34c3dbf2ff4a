/**
 * Rotary position embedding, Hugging Face rotate-half convention, in place.
 *
 * Layout: x f32 [m, numHeads * headDim]; each head splits into halves (x1 | x2) of
 * half = headDim / 2; `table` holds cos [m, half] followed by sin [m, half] for the row
 * positions (computed by the host). x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin.
 * Vectorisation: f32x4 over the half-head; scalar for half % 4 leftovers.
 * Threading: the caller splits rows [rowStart, rowEnd).
 */

/** Rotates rows [rowStart, rowEnd) of x (m rows in the table). */
export function ropeRotateHalf(
  x: usize,
  table: usize,
  m: i32,
  numHeads: i32,
  headDim: i32,
  rowStart: i32,
  rowEnd: i32,
): void {
  const half = headDim >> 1;
  const half4 = half & ~3;
  const rowBytes = <usize> (numHeads * headDim) << 2;
  const sinBase = table + (<usize> (m * half) << 2);
  for (let i = rowStart; i < rowEnd; i++) {
    const cr = table + (<usize> (i * half) << 2);
    const sr = sinBase + (<usize> (i * half) << 2);
    for (let h = 0; h < numHeads; h++) {
      const p1 = x + <usize> i * rowBytes + (<usize> (h * headDim) << 2);
      const p2 = p1 + (<usize> half << 2);
      let k = 0;
      for (; k < half4; k += 4) {
        const o = <usize> k << 2;
        const c = v128.load(cr + o);
        const s = v128.load(sr + o);
        const a = v128.load(p1 + o);
        const b = v128.load(p2 + o);
        v128.store(p1 + o, f32x4.sub(f32x4.mul(a, c), f32x4.mul(b, s)));
        v128.store(p2 + o, f32x4.add(f32x4.mul(b, c), f32x4.mul(a, s)));
      }
      for (; k < half; k++) {
        const o = <usize> k << 2;
        const c = load<f32>(cr + o);
        const s = load<f32>(sr + o);
        const a = load<f32>(p1 + o);
        const b = load<f32>(p2 + o);
        store<f32>(p1 + o, a * c - b * s);
        store<f32>(p2 + o, b * c + a * s);
      }
    }
  }
}
