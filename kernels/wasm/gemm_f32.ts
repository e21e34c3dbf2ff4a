/**
 * Dense matmul with f32 weights: y[m, rows] = x[m, cols] @ W^T (+ bias[rows]).
 *
 * Layout: W row-major [rows, cols] f32; x f32 [m, cols]; y f32 [m, rows].
 * Vectorisation: 4 weight rows per step (rows r, r + q, r + 2q, r + 3q of the thread's range
 * of 4q rows, so each lane streams through its own contiguous quarter); m = 1 walks 8 columns per iteration with two
 * accumulators per row; m > 1 takes 2 x rows per step (8 accumulators, 4 columns per
 * iteration). Relaxed fused multiply-add; four row sums reduced together by shuffles.
 * Columns past the last multiple of 8 (m = 1) or 4 (m > 1) are handled with scalar code.
 * Threading: the caller splits weight rows [rowStart, rowEnd) between threads.
 */
import { sumLanes, sumLanes4 } from "./simd_math";

/** Scalar dot of row columns [from, cols) with x. */
function tailDot(wRow: usize, x: usize, from: i32, cols: i32): f32 {
  let s: f32 = 0;
  for (let k = from; k < cols; k++) {
    s += load<f32>(wRow + (<usize> k << 2)) * load<f32>(x + (<usize> k << 2));
  }
  return s;
}

/**
 * Adds bias and the scalar tails [from, cols) to the sums of rows r, r + q, r + 2q, r + 3q
 * (lanes 0-3) and stores them into the output row y.
 */
function storeQuarterRows(
  sums: v128,
  y: usize,
  bias: usize,
  r: i32,
  q: i32,
  w: usize,
  rowBytes: usize,
  x: usize,
  from: i32,
  cols: i32,
): void {
  for (let l = 0; l < 4; l++) {
    const row = r + l * q;
    let s: f32 = l == 0
      ? f32x4.extract_lane(sums, 0)
      : l == 1
      ? f32x4.extract_lane(sums, 1)
      : l == 2
      ? f32x4.extract_lane(sums, 2)
      : f32x4.extract_lane(sums, 3);
    if (bias != 0) s += load<f32>(bias + (<usize> row << 2));
    if (from != cols) s += tailDot(w + <usize> row * rowBytes, x, from, cols);
    store<f32>(y + (<usize> row << 2), s);
  }
}

/** Rows w0, w0 + d, w0 + 2d, w0 + 3d times one x row over columns [0, cols8). */
function block4x1(w0: usize, d: usize, x: usize, cols8: i32): v128 {
  const w1 = w0 + d;
  const w2 = w1 + d;
  const w3 = w2 + d;
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
  let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
  const end = <usize> cols8 << 2;
  for (let o: usize = 0; o < end; o += 32) {
    const xa = v128.load(x + o);
    const xb = v128.load(x + o, 16);
    a0 = f32x4.relaxed_madd(v128.load(w0 + o), xa, a0);
    b0 = f32x4.relaxed_madd(v128.load(w0 + o, 16), xb, b0);
    a1 = f32x4.relaxed_madd(v128.load(w1 + o), xa, a1);
    b1 = f32x4.relaxed_madd(v128.load(w1 + o, 16), xb, b1);
    a2 = f32x4.relaxed_madd(v128.load(w2 + o), xa, a2);
    b2 = f32x4.relaxed_madd(v128.load(w2 + o, 16), xb, b2);
    a3 = f32x4.relaxed_madd(v128.load(w3 + o), xa, a3);
    b3 = f32x4.relaxed_madd(v128.load(w3 + o, 16), xb, b3);
  }
  return sumLanes4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
}

/** Full dot of one f32 row with one x row (used for leftover rows). */
function rowDot(wRow: usize, x: usize, cols: i32): f32 {
  const cols4 = cols & ~3;
  let a = f32x4.splat(0);
  for (let k = 0; k < cols4; k += 4) {
    a = f32x4.relaxed_madd(v128.load(wRow + (<usize> k << 2)), v128.load(x + (<usize> k << 2)), a);
  }
  return sumLanes(a) + tailDot(wRow, x, cols4, cols);
}

/** Rows per chunk: four quarter streams about 2 MiB apart (far-apart streams read slower). */
const CHUNK_BYTES: usize = 8 << 20;

/**
 * y[m, rows] = x @ W^T (+ bias) for weight rows [rowStart, rowEnd); `bias` is 0 when absent.
 * The range is walked in chunks of about 8 MiB of weights, each read as four streams.
 */
export function gemmF32(
  w: usize,
  x: usize,
  y: usize,
  bias: usize,
  m: i32,
  rows: i32,
  cols: i32,
  rowStart: i32,
  rowEnd: i32,
): void {
  const rowBytes = <usize> cols << 2;
  const chunk = max<i32>(4, <i32> (CHUNK_BYTES / max<usize>(rowBytes, 1)) & ~3);
  for (let r = rowStart; r < rowEnd; r += chunk) {
    gemmF32Range(w, x, y, bias, m, rows, cols, r, min(rowEnd, r + chunk));
  }
}

/** One chunk of rows [rowStart, rowEnd) (see the file comment). */
function gemmF32Range(
  w: usize,
  x: usize,
  y: usize,
  bias: usize,
  m: i32,
  rows: i32,
  cols: i32,
  rowStart: i32,
  rowEnd: i32,
): void {
  const cols8 = cols & ~7;
  const cols4 = cols & ~3;
  const rowBytes = <usize> cols << 2;
  const xStride = rowBytes;
  const yStride = <usize> rows << 2;
  const end4 = <usize> cols4 << 2;
  // Lane l of block i is row rowStart + i + l * q: four long contiguous streams.
  const q = (rowEnd - rowStart) >> 2;
  const d = <usize> q * rowBytes;
  for (let r = rowStart; r < rowStart + q; r++) {
    const w0 = w + <usize> r * rowBytes;
    const w1 = w0 + d;
    const w2 = w1 + d;
    const w3 = w2 + d;
    let i = 0;
    for (; i + 2 <= m; i += 2) {
      const x0 = x + <usize> i * xStride;
      const x1 = x0 + xStride;
      let p0 = f32x4.splat(0), p1 = f32x4.splat(0), p2 = f32x4.splat(0), p3 = f32x4.splat(0);
      let q0 = f32x4.splat(0), q1 = f32x4.splat(0), q2 = f32x4.splat(0), q3 = f32x4.splat(0);
      for (let o: usize = 0; o < end4; o += 16) {
        const a = v128.load(x0 + o);
        const b = v128.load(x1 + o);
        let v = v128.load(w0 + o);
        p0 = f32x4.relaxed_madd(v, a, p0);
        q0 = f32x4.relaxed_madd(v, b, q0);
        v = v128.load(w1 + o);
        p1 = f32x4.relaxed_madd(v, a, p1);
        q1 = f32x4.relaxed_madd(v, b, q1);
        v = v128.load(w2 + o);
        p2 = f32x4.relaxed_madd(v, a, p2);
        q2 = f32x4.relaxed_madd(v, b, q2);
        v = v128.load(w3 + o);
        p3 = f32x4.relaxed_madd(v, a, p3);
        q3 = f32x4.relaxed_madd(v, b, q3);
      }
      const y0 = y + <usize> i * yStride;
      storeQuarterRows(sumLanes4(p0, p1, p2, p3), y0, bias, r, q, w, rowBytes, x0, cols4, cols);
      storeQuarterRows(
        sumLanes4(q0, q1, q2, q3),
        y0 + yStride,
        bias,
        r,
        q,
        w,
        rowBytes,
        x1,
        cols4,
        cols,
      );
    }
    for (; i < m; i++) {
      const xi = x + <usize> i * xStride;
      const sums = block4x1(w0, d, xi, cols8);
      storeQuarterRows(sums, y + <usize> i * yStride, bias, r, q, w, rowBytes, xi, cols8, cols);
    }
  }
  for (let r = rowStart + 4 * q; r < rowEnd; r++) {
    const wr = w + <usize> r * rowBytes;
    const b: f32 = bias != 0 ? load<f32>(bias + (<usize> r << 2)) : 0;
    for (let i = 0; i < m; i++) {
      store<f32>(
        y + <usize> i * yStride + (<usize> r << 2),
        rowDot(wr, x + <usize> i * xStride, cols) + b,
      );
    }
  }
}
