/**
 * The fallback of `kvWrite`'s `ropeTheta` for backends that do not fuse it: the key rows are
 * copied into a temporary tensor at the same row offset, rotated there with the backend's own
 * `rope`, and stored from it.
 */
import type { Backend, KvCache, Tensor } from "./backend.ts";

/** `b.kvWrite(...)` with the keys rotated by RoPE (theta) at positions startPos + i. */
export function kvWriteRotated(
  b: Backend,
  cache: KvCache,
  layer: number,
  k: Tensor,
  v: Tensor,
  rowOffset: number,
  m: number,
  startPos: number,
  theta: number,
): void {
  const width = cache.numKvHeads * cache.headDim;
  const rows = rowOffset + m;
  if (k.size < rows * width) {
    throw new RangeError(
      `Cannot run kvWrite: k has ${k.size} elements, needs ${rows} rows of ${width}`,
    );
  }
  const rotated = b.alloc(Math.max(1, rows * width));
  try {
    b.copy(rotated, rowOffset * width, k, rowOffset * width, m * width);
    // Rows before rowOffset are zero and unused; they take position 0.
    const positions = new Int32Array(rows);
    for (let i = 0; i < m; i++) positions[rowOffset + i] = startPos + i;
    b.rope(rotated, rows, cache.numKvHeads, cache.headDim, positions, theta);
    b.kvWrite(cache, layer, rotated, v, rowOffset, m, startPos);
  } finally {
    b.free(rotated);
  }
}
