/**
 * The fallback of `MatmulOptions.gate` and `MatmulOptions.norm` for backends (or paths) that
 * do not fuse them: the prepared input (silu(gate) * x, or rms_norm(x) * gamma) is built in a
 * temporary tensor with the backend's own op, then the plain matmul runs on it.
 */
import type { Backend, MatmulOptions, Tensor, Weight } from "./backend.ts";

/** Throws when `opts` asks for both input preparations. */
export function checkMatmulInput(opts: MatmulOptions): void {
  if (opts.gate && opts.norm) {
    throw new RangeError("Cannot run matmul with both a gate and a norm: apply one of them first");
  }
}

/** `b.matmul(out, x, w, m, opts)` with `opts.gate` / `opts.norm` applied in a temporary. */
export function matmulPreparedInput(
  b: Backend,
  out: Tensor,
  x: Tensor,
  w: Weight,
  m: number,
  opts: MatmulOptions,
): void {
  checkMatmulInput(opts);
  const input = b.alloc(Math.max(1, m * w.cols));
  try {
    if (opts.gate) b.siluMul(input, opts.gate, x, m * w.cols);
    else if (opts.norm) b.rmsNorm(input, x, opts.norm.gamma, m, opts.norm.eps);
    b.matmul(out, input, w, m, { ...opts, gate: undefined, norm: undefined });
  } finally {
    b.free(input);
  }
}
