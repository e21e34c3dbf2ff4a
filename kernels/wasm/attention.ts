/**
 * Causal attention of new query rows over a per-sequence KV cache (GQA).
 *
 * Layout: q, out f32 [m, numHeads * headDim] (pointers at the window's first row). The
 * layer's cache holds K then V, each [numKvHeads, maxSeq, headDim] f32, so one head's
 * keys are contiguous. Query row i sits at position startPos + i and sees cache positions
 * [0, startPos + i]. Query head h reads kv head h / (numHeads / numKvHeads).
 * Each task (row, head) scores keys into its thread's scratch row (maxSeq f32), runs
 * `softmaxInPlace`, then accumulates the weighted values into out.
 * Vectorisation: f32x4 over headDim for q.k and for the value sum; scalar leftovers.
 * Threading: the caller splits tasks [taskStart, taskEnd) (task = row * numHeads + head);
 * thread `tid` uses scratch row tid.
 */
import { sumLanes } from "./simd_math";
import { softmaxInPlace } from "./softmax";

/** Attention for tasks [taskStart, taskEnd); scale is usually 1 / sqrt(headDim). */
export function attention(
  out: usize,
  q: usize,
  kCache: usize,
  vCache: usize,
  scratch: usize,
  numHeads: i32,
  numKvHeads: i32,
  headDim: i32,
  maxSeq: i32,
  startPos: i32,
  scale: f32,
  taskStart: i32,
  taskEnd: i32,
  tid: i32,
): void {
  const group = numHeads / numKvHeads;
  const hd4 = headDim & ~3;
  const headBytes = <usize> headDim << 2;
  const rowBytes = <usize> numHeads * headBytes;
  const cacheHeadBytes = <usize> maxSeq * headBytes;
  const scores = scratch + (<usize> tid * <usize> maxSeq << 2);
  for (let t = taskStart; t < taskEnd; t++) {
    const i = t / numHeads;
    const h = t - i * numHeads;
    const kv = h / group;
    const len = startPos + i + 1;
    const qh = q + <usize> i * rowBytes + <usize> h * headBytes;
    const oh = out + <usize> i * rowBytes + <usize> h * headBytes;
    const kh = kCache + <usize> kv * cacheHeadBytes;
    const vh = vCache + <usize> kv * cacheHeadBytes;
    for (let j = 0; j < len; j++) {
      const kj = kh + <usize> j * headBytes;
      let a = f32x4.splat(0);
      let d = 0;
      for (; d < hd4; d += 4) {
        a = f32x4.relaxed_madd(
          v128.load(qh + (<usize> d << 2)),
          v128.load(kj + (<usize> d << 2)),
          a,
        );
      }
      let s = sumLanes(a);
      for (; d < headDim; d++) {
        s += load<f32>(qh + (<usize> d << 2)) * load<f32>(kj + (<usize> d << 2));
      }
      store<f32>(scores + (<usize> j << 2), s * scale);
    }
    softmaxInPlace(scores, len);
    for (let d = 0; d < headDim; d++) store<f32>(oh + (<usize> d << 2), 0);
    for (let j = 0; j < len; j++) {
      const p = load<f32>(scores + (<usize> j << 2));
      const pv = f32x4.splat(p);
      const vj = vh + <usize> j * headBytes;
      let d = 0;
      for (; d < hd4; d += 4) {
        const o = <usize> d << 2;
        v128.store(oh + o, f32x4.relaxed_madd(pv, v128.load(vj + o), v128.load(oh + o)));
      }
      for (; d < headDim; d++) {
        const o = <usize> d << 2;
        store<f32>(oh + o, load<f32>(oh + o) + p * load<f32>(vj + o));
      }
    }
  }
}

/**
 * Copies k/v rows [rowStart, rowEnd) of the window (each [numKvHeads * headDim]) into the
 * layer's cache at positions startPos + row.
 */
export function kvWrite(
  kCache: usize,
  vCache: usize,
  k: usize,
  v: usize,
  numKvHeads: i32,
  headDim: i32,
  maxSeq: i32,
  startPos: i32,
  rowStart: i32,
  rowEnd: i32,
): void {
  const headBytes = <usize> headDim << 2;
  const rowBytes = <usize> numKvHeads * headBytes;
  const cacheHeadBytes = <usize> maxSeq * headBytes;
  for (let i = rowStart; i < rowEnd; i++) {
    const pos = <usize> (startPos + i);
    for (let g = 0; g < numKvHeads; g++) {
      const src = <usize> i * rowBytes + <usize> g * headBytes;
      const dst = <usize> g * cacheHeadBytes + pos * headBytes;
      memory.copy(kCache + dst, k + src, headBytes);
      memory.copy(vCache + dst, v + src, headBytes);
    }
  }
}
