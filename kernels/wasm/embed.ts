/**
 * Embedding lookup: out[i, :] = table[ids[i], :] as f32.
 *
 * Layout: table row-major [vocab, dim] in bf16 or f32; ids i32 [count] (checked by the
 * host); out f32 [count, dim].
 * Vectorisation: bf16 rows widen 4 at a time (one shift); f32 rows are copied with
 * memory.copy.
 * Threading: the caller splits ids [start, end).
 */
import { bf16ToF32, loadBf16x4 } from "./simd_math";

/** Looks up ids [start, end); `bf16Table` selects bf16 (else f32) table rows. */
export function embedRows(
  out: usize,
  table: usize,
  ids: usize,
  dim: i32,
  bf16Table: i32,
  start: i32,
  end: i32,
): void {
  const dim4 = dim & ~3;
  const outRow = <usize> dim << 2;
  for (let i = start; i < end; i++) {
    const id = <usize> load<u32>(ids + (<usize> i << 2));
    const dst = out + <usize> i * outRow;
    if (bf16Table == 0) {
      memory.copy(dst, table + id * outRow, outRow);
      continue;
    }
    const src = table + id * (<usize> dim << 1);
    let k = 0;
    for (; k < dim4; k += 4) v128.store(dst + (<usize> k << 2), loadBf16x4(src + (<usize> k << 1)));
    for (; k < dim; k++) {
      store<f32>(dst + (<usize> k << 2), bf16ToF32(<u32> load<u16>(src + (<usize> k << 1))));
    }
  }
}
