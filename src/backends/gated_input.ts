/**
 * The fallback of `MatmulOptions.gate` for backends (or paths) that do not fuse it: the
 * gated input silu(gate) * x is built in a temporary tensor, then the matmul runs on it.
 */
import type { Backend, MatmulOptions, Tensor, Weight } from "./backend.ts";

/** `b.matmul(out, x, w, m, opts)` with `opts.gate` applied through a temporary tensor. */
export function matmulGatedInput(
  b: Backend,
  out: Tensor,
  x: Tensor,
  w: Weight,
  m: number,
  opts: MatmulOptions & { gate: Tensor },
): void {
  const gated = b.alloc(Math.max(1, m * w.cols));
  try {
    b.siluMul(gated, opts.gate, x, m * w.cols);
    b.matmul(out, gated, w, m, { ...opts, gate: undefined });
  } finally {
    b.free(gated);
  }
}
