/**
 * Dense matmul with bf16 weights: y[m, rows] = x[m, cols] @ W^T (+ bias[rows]).
 *
 * Layout: W is row-major [rows, cols] of bf16 bit patterns (u16) and stays bf16 in memory;
 * x f32 [m, cols]; y f32 [m, rows]. A v128 of 8 bf16 weights widens into two f32x4 with
 * two 16-bit unpacks against zero (each bf16 becomes the top half of an f32 lane), which
 * meet x[k..k+4] and x[k+4..k+8] directly. Columns past the last multiple of 8 are handled
 * with scalar code.
 * Vectorisation: 4 weight rows per step, rows r, r + q, r + 2q, r + 3q of the thread's
 * range of 4q rows, so each lane walks its own contiguous quarter: long sequential streams
 * keep the hardware prefetcher busy (blocks of 4 adjacent rows measured 2.5x slower from
 * DRAM). m = 1 keeps two accumulators per row; m > 1 takes 2 x rows per step (8
 * accumulators). Relaxed fused multiply-add; the four row sums are reduced together with
 * shuffles.
 * Threading: the caller splits weight rows [rowStart, rowEnd) between threads; each thread
 * writes only its own output columns.
 */
import { bf16ToF32, sumLanes, sumLanes4 } from "./simd_math";

/** Weights 0-3 of 8 bf16 lanes as f32x4 (unpack low against zero). */
function lo4(v: v128): v128 {
  return v128.shuffle<i16>(i32x4.splat(0), v, 0, 8, 1, 9, 2, 10, 3, 11);
}

/** Weights 4-7 of 8 bf16 lanes as f32x4 (unpack high against zero). */
function hi4(v: v128): v128 {
  return v128.shuffle<i16>(i32x4.splat(0), v, 4, 12, 5, 13, 6, 14, 7, 15);
}

/** Scalar dot of bf16 row columns [from, cols) with x. */
function tailDot(wRow: usize, x: usize, from: i32, cols: i32): f32 {
  let s: f32 = 0;
  for (let k = from; k < cols; k++) {
    s += bf16ToF32(load<u16>(wRow + (<usize> k << 1))) * load<f32>(x + (<usize> k << 2));
  }
  return s;
}

/** Full dot of one bf16 row with one x row (used for leftover rows). */
function rowDot(wRow: usize, x: usize, cols: i32): f32 {
  const cols8 = cols & ~7;
  let a = f32x4.splat(0);
  let b = f32x4.splat(0);
  for (let k = 0; k < cols8; k += 8) {
    const w = v128.load(wRow + (<usize> k << 1));
    const xo = x + (<usize> k << 2);
    a = f32x4.relaxed_madd(lo4(w), v128.load(xo), a);
    b = f32x4.relaxed_madd(hi4(w), v128.load(xo, 16), b);
  }
  return sumLanes(f32x4.add(a, b)) + tailDot(wRow, x, cols8, cols);
}

/**
 * Adds bias and the scalar column tails to the sums of rows r, r + q, r + 2q, r + 3q (lanes
 * 0-3) and stores them into the output row y.
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
  cols: i32,
): void {
  const cols8 = cols & ~7;
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
    if (cols8 != cols) s += tailDot(w + <usize> row * rowBytes, x, cols8, cols);
    store<f32>(y + (<usize> row << 2), s);
  }
}

/** Rows w0, w0 + d, w0 + 2d, w0 + 3d times one x row: the GEMV step. */
function block4x1(w0: usize, d: usize, x: usize, cols8: i32): v128 {
  const w1 = w0 + d;
  const w2 = w1 + d;
  const w3 = w2 + d;
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
  let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
  const end = <usize> cols8 << 1;
  for (let o: usize = 0; o < end; o += 16) {
    const xl = v128.load(x + (o << 1));
    const xh = v128.load(x + (o << 1), 16);
    const v0 = v128.load(w0 + o);
    a0 = f32x4.relaxed_madd(lo4(v0), xl, a0);
    b0 = f32x4.relaxed_madd(hi4(v0), xh, b0);
    const v1 = v128.load(w1 + o);
    a1 = f32x4.relaxed_madd(lo4(v1), xl, a1);
    b1 = f32x4.relaxed_madd(hi4(v1), xh, b1);
    const v2 = v128.load(w2 + o);
    a2 = f32x4.relaxed_madd(lo4(v2), xl, a2);
    b2 = f32x4.relaxed_madd(hi4(v2), xh, b2);
    const v3 = v128.load(w3 + o);
    a3 = f32x4.relaxed_madd(lo4(v3), xl, a3);
    b3 = f32x4.relaxed_madd(hi4(v3), xh, b3);
  }
  return sumLanes4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
}

/** Rows per chunk: four quarter streams about 2 MiB apart (far-apart streams read slower). */
const CHUNK_BYTES: usize = 8 << 20;

/**
 * y[m, rows] = x @ W^T (+ bias) for weight rows [rowStart, rowEnd); `bias` is 0 when absent.
 * The range is walked in chunks of about 8 MiB of weights, each read as four streams.
 */
export function gemmBf16(
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
  const rowBytes = <usize> cols << 1;
  const chunk = max<i32>(4, <i32> (CHUNK_BYTES / max<usize>(rowBytes, 1)) & ~3);
  for (let r = rowStart; r < rowEnd; r += chunk) {
    gemmBf16Range(w, x, y, bias, m, rows, cols, r, min(rowEnd, r + chunk));
  }
}

/** One chunk of rows [rowStart, rowEnd) (see the file comment). */
function gemmBf16Range(
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
  const rowBytes = <usize> cols << 1;
  const xStride = <usize> cols << 2;
  const yStride = <usize> rows << 2;
  const end = <usize> cols8 << 1;
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
      for (let o: usize = 0; o < end; o += 16) {
        const al = v128.load(x0 + (o << 1));
        const ah = v128.load(x0 + (o << 1), 16);
        const bl = v128.load(x1 + (o << 1));
        const bh = v128.load(x1 + (o << 1), 16);
        let v = v128.load(w0 + o);
        let vl = lo4(v);
        let vh = hi4(v);
        p0 = f32x4.relaxed_madd(vh, ah, f32x4.relaxed_madd(vl, al, p0));
        q0 = f32x4.relaxed_madd(vh, bh, f32x4.relaxed_madd(vl, bl, q0));
        v = v128.load(w1 + o);
        vl = lo4(v);
        vh = hi4(v);
        p1 = f32x4.relaxed_madd(vh, ah, f32x4.relaxed_madd(vl, al, p1));
        q1 = f32x4.relaxed_madd(vh, bh, f32x4.relaxed_madd(vl, bl, q1));
        v = v128.load(w2 + o);
        vl = lo4(v);
        vh = hi4(v);
        p2 = f32x4.relaxed_madd(vh, ah, f32x4.relaxed_madd(vl, al, p2));
        q2 = f32x4.relaxed_madd(vh, bh, f32x4.relaxed_madd(vl, bl, q2));
        v = v128.load(w3 + o);
        vl = lo4(v);
        vh = hi4(v);
        p3 = f32x4.relaxed_madd(vh, ah, f32x4.relaxed_madd(vl, al, p3));
        q3 = f32x4.relaxed_madd(vh, bh, f32x4.relaxed_madd(vl, bl, q3));
      }
      const y0 = y + <usize> i * yStride;
      storeQuarterRows(sumLanes4(p0, p1, p2, p3), y0, bias, r, q, w, rowBytes, x0, cols);
      storeQuarterRows(sumLanes4(q0, q1, q2, q3), y0 + yStride, bias, r, q, w, rowBytes, x1, cols);
    }
    for (; i < m; i++) {
      const xi = x + <usize> i * xStride;
      const sums = block4x1(w0, d, xi, cols8);
      storeQuarterRows(sums, y + <usize> i * yStride, bias, r, q, w, rowBytes, xi, cols);
    }
  }
  for (let r = rowStart + 4 * q; r < rowEnd; r++) {
    const wr = w + <usize> r * rowBytes;
    const b: f32 = bias != 0 ? load<f32>(bias + (<usize> r << 2)) : 0;
    for (let i = 0; i < m; i++) {
      const s = rowDot(wr, x + <usize> i * xStride, cols);
      store<f32>(y + <usize> i * yStride + (<usize> r << 2), s + b);
    }
  }
}
