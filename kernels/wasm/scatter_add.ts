/**
 * Materialize path: W += scale * S, in place, for a dense W (bf16 or f32) and a sparse S in
 * the SELL-4 layout of `spmm_sell4.ts`.
 *
 * Layout: W row-major [rows, cols]; S as groups of 4 rows with slots of 4 byte offsets
 * (col * 4) then 4 values, stored column block by column block (see spmm_sell4.ts).
 * Padding entries (value 0) are skipped. Each update is w + scale * v evaluated in f64, then
 * rounded to f32 and, for bf16 W, to bf16 (nearest even), matching the reference backend.
 * Vectorisation: none (scalar read-modify-write at scattered addresses; the cost is per
 * non-zero, far below one pass over W).
 * Threading: the caller splits groups [gStart, gEnd); groups own distinct rows.
 */
import { bf16ToF32, f32ToBf16 } from "./simd_math";

const NO_ROW: u32 = 0xffffffff;

function scatterImpl<I, V, W>(
  groupRows: usize,
  groupPtr: usize,
  slots: usize,
  w: usize,
  cols: i32,
  scale: f64,
  groups: i32,
  blocks: i32,
  gStart: i32,
  gEnd: i32,
): void {
  const slot = <usize> (4 * (sizeof<I>() + sizeof<V>()));
  for (let b = 0; b < blocks; b++) {
    const gp = groupPtr + (<usize> (b * groups) << 2);
    for (let g = gStart; g < gEnd; g++) {
      const s0 = <usize> load<u32>(gp + (<usize> g << 2));
      const s1 = <usize> load<u32>(gp + (<usize> g << 2), 4);
      for (let l: usize = 0; l < 4; l++) {
        const row = load<u32>(groupRows + (<usize> g << 4) + (l << 2));
        if (row == NO_ROW) continue;
        const wRow = w + <usize> row * <usize> cols * sizeof<W>();
        for (let s = s0; s < s1; s++) {
          const sp = slots + s * slot;
          const vp = sp + 4 * sizeof<I>() + l * sizeof<V>();
          let v: f64;
          if (sizeof<V>() == 2) {
            const bits = <u32> load<u16>(vp);
            if (bits == 0) continue;
            v = <f64> bf16ToF32(bits);
          } else {
            v = <f64> load<f32>(vp);
            if (v == 0) continue;
          }
          const col = <usize> load<I>(sp + l * sizeof<I>()) >> 2;
          const p = wRow + col * sizeof<W>();
          if (sizeof<W>() == 2) {
            store<u16>(p, <u16> f32ToBf16(<f32> (<f64> bf16ToF32(<u32> load<u16>(p)) + scale * v)));
          } else {
            store<f32>(p, <f32> (<f64> load<f32>(p) + scale * v));
          }
        }
      }
    }
  }
}

/**
 * W += scale * S over groups [gStart, gEnd) of each of the `blocks` column blocks
 * (`groupPtr` has blocks * groups + 1 entries). `wideIdx`: u32 offsets (else u16);
 * `f32Vals`: f32 values (else bf16); `f32W`: W is f32 (else bf16).
 */
export function scatterAddSell4(
  groupRows: usize,
  groupPtr: usize,
  slots: usize,
  w: usize,
  cols: i32,
  scale: f64,
  wideIdx: i32,
  f32Vals: i32,
  f32W: i32,
  groups: i32,
  blocks: i32,
  gStart: i32,
  gEnd: i32,
): void {
  const code = (wideIdx != 0 ? 4 : 0) | (f32Vals != 0 ? 2 : 0) | (f32W != 0 ? 1 : 0);
  switch (code) {
    case 0:
      scatterImpl<u16, u16, u16>(
        groupRows,
        groupPtr,
        slots,
        w,
        cols,
        scale,
        groups,
        blocks,
        gStart,
        gEnd,
      );
      break;
    case 1:
      scatterImpl<u16, u16, f32>(
        groupRows,
        groupPtr,
        slots,
        w,
        cols,
        scale,
        groups,
        blocks,
        gStart,
        gEnd,
      );
      break;
    case 2:
      scatterImpl<u16, f32, u16>(
        groupRows,
        groupPtr,
        slots,
        w,
        cols,
        scale,
        groups,
        blocks,
        gStart,
        gEnd,
      );
      break;
    case 3:
      scatterImpl<u16, f32, f32>(
        groupRows,
        groupPtr,
        slots,
        w,
        cols,
        scale,
        groups,
        blocks,
        gStart,
        gEnd,
      );
      break;
    case 4:
      scatterImpl<u32, u16, u16>(
        groupRows,
        groupPtr,
        slots,
        w,
        cols,
        scale,
        groups,
        blocks,
        gStart,
        gEnd,
      );
      break;
    case 5:
      scatterImpl<u32, u16, f32>(
        groupRows,
        groupPtr,
        slots,
        w,
        cols,
        scale,
        groups,
        blocks,
        gStart,
        gEnd,
      );
      break;
    case 6:
      scatterImpl<u32, f32, u16>(
        groupRows,
        groupPtr,
        slots,
        w,
        cols,
        scale,
        groups,
        blocks,
        gStart,
        gEnd,
      );
      break;
    default:
      scatterImpl<u32, f32, f32>(
        groupRows,
        groupPtr,
        slots,
        w,
        cols,
        scale,
        groups,
        blocks,
        gStart,
        gEnd,
      );
  }
}
