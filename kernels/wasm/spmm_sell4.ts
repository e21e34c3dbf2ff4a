/**
 * Sparse delta: y[m, rows] += scale * x[m, cols] @ S^T for a sparse S (the delta path).
 *
 * Layout (SELL-4 in column blocks, built on upload from CSR by src/backends/wasm_sparse.ts):
 * rows are sorted by non-zero count and taken four at a time into groups; `groupRows` holds
 * the 4 row indices of each group (u32, 0xffffffff for a missing row). The columns are cut
 * into `blocks` equal blocks of at most 2560 columns, and the slots are stored block by
 * block, group by group: `groupPtr[b * groups + g] .. groupPtr[b * groups + g + 1]` are the
 * slots of group g in column block b. A slot holds one non-zero of each of the 4 rows: 4
 * byte offsets into an x row (col * 4, absolute; u16 when cols <= 16384, else u32) followed
 * by 4 values (bf16 bits, or f32 for matrices that came as f16), so the kernel reads one
 * sequential stream. Rows with fewer non-zeros in a block than the group's longest are padded
 * with (offset 0, value 0).
 * Why column blocks: the kernel runs block by block, so the x values one pass gathers (at
 * most 10 KiB) stay in the 32 KiB L1 cache next to the streamed slots. With the 4864 columns
 * of the down projection in one block (19 KiB of x), the gathers missed L1 and the shape ran
 * 1.4x slower per non-zero than the 896-column ones; two blocks of 2432 columns fixed that.
 * Staged mode (decode, m <= 2, u16 offsets): the host copies x row 0 to address 0 and row 1
 * to address 65536 (below the module's memoryBase), so a gathered address is the stored
 * offset itself (plus the immediate 65536 for row 1), with no add.
 * Vectorisation: one f32x4 accumulator holds the 4 rows of a group; x is gathered with
 * `v128.load32_lane` (4 scalar loads into lanes); bf16 values widen with one shift; relaxed
 * fused multiply-add. No horizontal sums: lane l ends as row l's dot product. Four slots per
 * iteration (one x row) or two slots of two x rows keep four independent FMA chains (with
 * two, the FMA latency capped the kernel at about half speed).
 * Cost model: V8 in Deno compiles every wasm memory access with an explicit bounds check
 * (compare + branch against the memory size minus the access's end offset; there is no
 * guard-page trap handler here: `--no-wasm-bounds-checks` runs this kernel 1.36x faster).
 * The kernel is bound by those per-access ops and branches, not by the shuffles of the
 * lane inserts, so it minimises accesses and distinct immediates per slot:
 *   - the 4 u16 offsets come as two u32 loads split with a mask and a shift (2 checked loads
 *     instead of 4);
 *   - the slot pointer steps one slot at a time with fixed immediates (offsets at +0 and +4,
 *     values at +8), so each iteration computes the few "memory size - end offset" bounds
 *     once; unrolling by address (+16, +32, ...) needs one per immediate and V8 then spills;
 *   - the staged x base is a compile-time constant (groupDot1 / groupDot2 take it as a type
 *     parameter; a runtime base of 0 costs an add per gathered lane).
 * Measured and not kept (d = 0.1, both shapes, within +-3% of this or slower): one u64 load
 * per slot split into 4 offsets (more shifts than loads saved), one v128 load per slot with
 * lane extracts to registers (extracts are slow: -20%), gathering with four load32_zero and
 * shuffles, full-width x loads combined with blends or kept in 4 per-lane accumulators,
 * values pre-interleaved for slot pairs (AND / shift instead of the widening load: +1-2% on
 * top of this), f32 values (bigger stream), 8 slots per iteration, and plain u16 offset
 * loads in the non-staged (m > 2) path.
 * Threading: the caller splits groups [gStart, gEnd) between threads, balanced by slot
 * count over all blocks; a thread runs its groups in every block, and groups own distinct
 * rows, so threads never write the same output.
 */
const NO_ROW: u32 = 0xffffffff;
/** Address of staged x row 1 (row 0 is at 0). */
const STAGE_ROW1: usize = 65536;

/**
 * Four x values gathered at the 4 byte offsets of the slot at `sp`, from the x row at `x`
 * (`R` = u8: staged row 1, at the load immediate STAGE_ROW1). u16 offsets come as two u32
 * loads split with a mask and a shift: two bounds-checked loads instead of four.
 */
function gather4<I, R>(x: usize, sp: usize): v128 {
  if (sizeof<I>() == 2) {
    const lo = load<u32>(sp);
    const hi = load<u32>(sp, 4);
    const i0 = x + <usize> (lo & 0xffff);
    const i1 = x + <usize> (lo >> 16);
    const i2 = x + <usize> (hi & 0xffff);
    const i3 = x + <usize> (hi >> 16);
    if (sizeof<R>() == 1) {
      let v = v128.load32_zero(i0, STAGE_ROW1);
      v = v128.load32_lane(i1, v, 1, STAGE_ROW1);
      v = v128.load32_lane(i2, v, 2, STAGE_ROW1);
      return v128.load32_lane(i3, v, 3, STAGE_ROW1);
    }
    let v = v128.load32_zero(i0);
    v = v128.load32_lane(i1, v, 1);
    v = v128.load32_lane(i2, v, 2);
    return v128.load32_lane(i3, v, 3);
  }
  let v = v128.load32_zero(x + <usize> load<u32>(sp));
  v = v128.load32_lane(x + <usize> load<u32>(sp, 4), v, 1);
  v = v128.load32_lane(x + <usize> load<u32>(sp, 8), v, 2);
  return v128.load32_lane(x + <usize> load<u32>(sp, 12), v, 3);
}

/** The 4 values of the slot at `sp` as f32x4 (bf16 widened with one shift). */
function values4<I, V>(sp: usize): v128 {
  if (sizeof<V>() == 2) return i32x4.shl(v128.load16x4_u(sp, 4 * sizeof<I>()), 16);
  return v128.load(sp, 4 * sizeof<I>());
}

/** y[row_l] += lane l of `acc` for the 4 rows of group `g` (y is one output row). */
function addLanes(y: usize, groupRows: usize, g: i32, acc: v128): void {
  const gr = groupRows + (<usize> g << 4);
  let r = load<u32>(gr);
  if (r != NO_ROW) {
    store<f32>(y + (<usize> r << 2), load<f32>(y + (<usize> r << 2)) + f32x4.extract_lane(acc, 0));
  }
  r = load<u32>(gr, 4);
  if (r != NO_ROW) {
    store<f32>(y + (<usize> r << 2), load<f32>(y + (<usize> r << 2)) + f32x4.extract_lane(acc, 1));
  }
  r = load<u32>(gr, 8);
  if (r != NO_ROW) {
    store<f32>(y + (<usize> r << 2), load<f32>(y + (<usize> r << 2)) + f32x4.extract_lane(acc, 2));
  }
  r = load<u32>(gr, 12);
  if (r != NO_ROW) {
    store<f32>(y + (<usize> r << 2), load<f32>(y + (<usize> r << 2)) + f32x4.extract_lane(acc, 3));
  }
}

/**
 * One group, one x row at `x0` (ignored when `X` = u8: staged row 0 at address 0, a
 * compile-time constant): the 4 row dot products. Four slots per iteration into four
 * accumulators (with fewer, the FMA latency chain sets the pace); the slot pointer steps one
 * slot at a time so every load uses the same few immediates (see the header).
 */
function groupDot1<I, V, X>(slots: usize, s0: usize, s1: usize, x0: usize): v128 {
  const x: usize = sizeof<X>() == 1 ? 0 : x0;
  const slot = <usize> (4 * (sizeof<I>() + sizeof<V>()));
  let a = f32x4.splat(0);
  let b = f32x4.splat(0);
  let c = f32x4.splat(0);
  let d = f32x4.splat(0);
  let sp = slots + s0 * slot;
  const stop = slots + s1 * slot;
  while (sp + 4 * slot <= stop) {
    a = f32x4.relaxed_madd(values4<I, V>(sp), gather4<I, u32>(x, sp), a);
    sp += slot;
    b = f32x4.relaxed_madd(values4<I, V>(sp), gather4<I, u32>(x, sp), b);
    sp += slot;
    c = f32x4.relaxed_madd(values4<I, V>(sp), gather4<I, u32>(x, sp), c);
    sp += slot;
    d = f32x4.relaxed_madd(values4<I, V>(sp), gather4<I, u32>(x, sp), d);
    sp += slot;
  }
  for (; sp < stop; sp += slot) {
    a = f32x4.relaxed_madd(values4<I, V>(sp), gather4<I, u32>(x, sp), a);
  }
  return f32x4.add(f32x4.add(a, b), f32x4.add(c, d));
}

/**
 * One group, two x rows (row 1 at `x1`, or staged when `R` = u8): accumulators a (row 0) and
 * b (row 1), two slots per iteration.
 */
function groupDot2<I, V, R>(
  slots: usize,
  s0: usize,
  s1: usize,
  x0: usize,
  x1: usize,
  y0: usize,
  y1: usize,
  groupRows: usize,
  g: i32,
  sc: v128,
): void {
  const slot = <usize> (4 * (sizeof<I>() + sizeof<V>()));
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
  let sp = slots + s0 * slot;
  const stop = slots + s1 * slot;
  while (sp + 2 * slot <= stop) {
    const v = values4<I, V>(sp);
    a0 = f32x4.relaxed_madd(v, gather4<I, u32>(x0, sp), a0);
    b0 = f32x4.relaxed_madd(v, gather4<I, R>(x1, sp), b0);
    sp += slot;
    const w = values4<I, V>(sp);
    a1 = f32x4.relaxed_madd(w, gather4<I, u32>(x0, sp), a1);
    b1 = f32x4.relaxed_madd(w, gather4<I, R>(x1, sp), b1);
    sp += slot;
  }
  if (sp < stop) {
    const v = values4<I, V>(sp);
    a0 = f32x4.relaxed_madd(v, gather4<I, u32>(x0, sp), a0);
    b0 = f32x4.relaxed_madd(v, gather4<I, R>(x1, sp), b0);
  }
  addLanes(y0, groupRows, g, f32x4.mul(f32x4.add(a0, a1), sc));
  addLanes(y1, groupRows, g, f32x4.mul(f32x4.add(b0, b1), sc));
}

/**
 * Groups [gStart, gEnd) of every column block, block by block, for x rows at
 * x + i * cols * 4, or staged (`X` = u8: x rows at 0 and STAGE_ROW1, m <= 2), where the
 * gather addresses are the stored offsets plus a constant immediate.
 */
function spmmImpl<I, V, X>(
  groupRows: usize,
  groupPtr: usize,
  slots: usize,
  x: usize,
  y: usize,
  scale: f32,
  m: i32,
  rows: i32,
  cols: i32,
  groups: i32,
  blocks: i32,
  gStart: i32,
  gEnd: i32,
): void {
  const yStride = <usize> rows << 2;
  const xStride = <usize> cols << 2;
  const sc = f32x4.splat(scale);
  for (let b = 0; b < blocks; b++) {
    const gp = groupPtr + (<usize> (b * groups) << 2);
    for (let g = gStart; g < gEnd; g++) {
      const s0 = <usize> load<u32>(gp + (<usize> g << 2));
      const s1 = <usize> load<u32>(gp + (<usize> g << 2), 4);
      if (sizeof<X>() == 1) {
        if (m == 2) {
          groupDot2<I, V, u8>(slots, s0, s1, 0, 0, y, y + yStride, groupRows, g, sc);
        } else {
          addLanes(y, groupRows, g, f32x4.mul(groupDot1<I, V, u8>(slots, s0, s1, 0), sc));
        }
        continue;
      }
      let i = 0;
      for (; i + 2 <= m; i += 2) {
        const x0 = x + <usize> i * xStride;
        const y0 = y + <usize> i * yStride;
        groupDot2<I, V, u32>(slots, s0, s1, x0, x0 + xStride, y0, y0 + yStride, groupRows, g, sc);
      }
      if (i < m) {
        const acc = groupDot1<I, V, u32>(slots, s0, s1, x + <usize> i * xStride);
        addLanes(y + <usize> i * yStride, groupRows, g, f32x4.mul(acc, sc));
      }
    }
  }
}

/**
 * y[m, rows] += scale * x[m, cols] @ S^T over groups [gStart, gEnd) of each of the `blocks`
 * column blocks (`groupPtr` has blocks * groups + 1 entries).
 * y points at the first output row of the window; x at the first input row, or is ignored
 * when `staged` (m <= 2, rows copied to 0 and 65536). `wideIdx`: u32 offsets (else u16);
 * `f32Vals`: f32 values (else bf16).
 */
export function spmmSell4(
  groupRows: usize,
  groupPtr: usize,
  slots: usize,
  x: usize,
  y: usize,
  scale: f32,
  m: i32,
  rows: i32,
  cols: i32,
  wideIdx: i32,
  f32Vals: i32,
  staged: i32,
  groups: i32,
  blocks: i32,
  gStart: i32,
  gEnd: i32,
): void {
  if (wideIdx != 0) {
    if (f32Vals != 0) {
      spmmImpl<u32, f32, u32>(
        groupRows,
        groupPtr,
        slots,
        x,
        y,
        scale,
        m,
        rows,
        cols,
        groups,
        blocks,
        gStart,
        gEnd,
      );
    } else {
      spmmImpl<u32, u16, u32>(
        groupRows,
        groupPtr,
        slots,
        x,
        y,
        scale,
        m,
        rows,
        cols,
        groups,
        blocks,
        gStart,
        gEnd,
      );
    }
  } else if (staged != 0) {
    if (f32Vals != 0) {
      spmmImpl<u16, f32, u8>(
        groupRows,
        groupPtr,
        slots,
        x,
        y,
        scale,
        m,
        rows,
        cols,
        groups,
        blocks,
        gStart,
        gEnd,
      );
    } else {
      spmmImpl<u16, u16, u8>(
        groupRows,
        groupPtr,
        slots,
        x,
        y,
        scale,
        m,
        rows,
        cols,
        groups,
        blocks,
        gStart,
        gEnd,
      );
    }
  } else if (f32Vals != 0) {
    spmmImpl<u16, f32, u32>(
      groupRows,
      groupPtr,
      slots,
      x,
      y,
      scale,
      m,
      rows,
      cols,
      groups,
      blocks,
      gStart,
      gEnd,
    );
  } else {
    spmmImpl<u16, u16, u32>(
      groupRows,
      groupPtr,
      slots,
      x,
      y,
      scale,
      m,
      rows,
      cols,
      groups,
      blocks,
      gStart,
      gEnd,
    );
  }
}
