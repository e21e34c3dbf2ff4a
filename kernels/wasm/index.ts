/**
 * Entry of the kernel module (AssemblyScript -> one WebAssembly module with SIMD, relaxed
 * SIMD and threads). The memory is imported and shared: the host owns allocation (an arena
 * above `heapBase()`), every kernel takes byte pointers and a [start, end) share of the
 * work, and the same module runs on the main thread and on each worker.
 */
export { attention, kvWrite } from "./attention";
export { sumBytes } from "./bandwidth";
export { addVec, siluMul } from "./eltwise";
export { embedRows } from "./embed";
export { gemmBf16 } from "./gemm_bf16";
export { gemmF32 } from "./gemm_f32";
export { rmsNorm } from "./rmsnorm";
export { ropeRotateHalf } from "./rope";
export { scatterAddSell4 } from "./scatter_add";
export { softmaxRows } from "./softmax";
export { spmmSell4 } from "./spmm_sell4";

/** First byte the host may allocate: everything below belongs to the module. */
export function heapBase(): usize {
  return (__heap_base + 63) & ~63;
}
