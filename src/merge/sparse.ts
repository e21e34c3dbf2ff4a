/**
 * Sparse experts of a routed unit (MEDIATOR.md section 3): S_t = the values of
 * the residual r = E_t - D whose magnitude reaches the unit's threshold (the
 * threshold that keeps the top rho share of the unit, from
 * `MagnitudeProfile.thresholdAt`), one tensor at a time.
 */
import type { SparseMatrixData } from "../backends/backend.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../tensor/dtype.ts";
import type { SparseValueFormat } from "./sparse_codec.ts";

/** Default density ladder of the adaptive choice. */
export const DEFAULT_DENSITY_LADDER: readonly number[] = [
  0.01,
  0.02,
  0.05,
  0.1,
  0.2,
  0.3,
  0.5,
  0.7,
  1,
];

/**
 * The sparse tensor of `residual` [rows, cols]: every non-zero value with
 * |r| >= threshold, as CSR with 16-bit values (bf16, or f16 for that format).
 */
export function sparsifyTensor(
  residual: Float32Array,
  rows: number,
  cols: number,
  threshold: number,
  format: SparseValueFormat,
): SparseMatrixData {
  if (residual.length !== rows * cols) {
    throw new RangeError(
      `Cannot sparsify: ${residual.length} values for shape [${rows}, ${cols}]`,
    );
  }
  const valueDtype = format === "f16" ? "f16" : "bf16";
  const toBits = valueDtype === "f16" ? f32ToF16 : f32ToBf16;
  let nnz = 0;
  for (let i = 0; i < residual.length; i++) {
    const m = Math.abs(residual[i]);
    if (m !== 0 && m >= threshold) nnz++;
  }
  const rowPtr = new Uint32Array(rows + 1);
  const colIdx = new Uint32Array(nnz);
  const values = new Uint16Array(nnz);
  let j = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0, i = r * cols; c < cols; c++, i++) {
      const v = residual[i];
      const m = v < 0 ? -v : v;
      if (m !== 0 && m >= threshold) {
        colIdx[j] = c;
        values[j++] = toBits(v);
      }
    }
    rowPtr[r + 1] = j;
  }
  return { rows, cols, rowPtr, colIdx, values, valueDtype };
}

/** ||r||^2 and ||r - S||^2 of a residual tensor and its stored sparse approximation. */
export function storedError(
  residual: Float32Array,
  s: SparseMatrixData,
): { total: number; lost: number } {
  const toF32 = s.valueDtype === "bf16" ? bf16ToF32 : f16ToF32;
  let total = 0;
  for (let i = 0; i < residual.length; i++) total += residual[i] * residual[i];
  let lost = total;
  for (let r = 0; r < s.rows; r++) {
    for (let j = s.rowPtr[r]; j < s.rowPtr[r + 1]; j++) {
      const x = residual[r * s.cols + s.colIdx[j]];
      const d = x - toF32(s.values[j]);
      lost += d * d - x * x;
    }
  }
  return { total, lost: Math.max(0, lost) };
}
