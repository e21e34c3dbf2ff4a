/**
 * DRAM read bandwidth as the decode benchmarks see it: the WASM backend's own SIMD sum
 * kernel (`sumBytes`) over a buffer far larger than the caches, split across `threads`
 * threads of its worker pool (the same probe as kernels_bench.ts). Median of several passes
 * after a warm-up.
 */
import { median } from "./decode.ts";
import {
  compileKernels,
  createSharedMemory,
  instantiateKernels,
  WASM_PAGE_BYTES,
} from "../src/backends/wasm_module.ts";
import { WasmThreadPool } from "../src/backends/wasm_pool.ts";

/** Read bandwidth in GB/s (1e9 bytes/s) of `threads` threads summing `mib` MiB. */
export async function measureDramBandwidth(threads: number, mib = 1024, reps = 7): Promise<number> {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`Cannot measure bandwidth: threads = ${threads}, expected >= 1`);
  }
  const bytes = mib * 1048576;
  const module = await compileKernels();
  const memory = createSharedMemory(Math.ceil(bytes / WASM_PAGE_BYTES) + 8);
  const kernels = instantiateKernels(module, memory);
  const base = kernels.heapBase();
  new Uint8Array(memory.buffer, base, bytes).fill(1); // touch every page
  const pool = await WasmThreadPool.create(module, memory, kernels, threads);
  try {
    const per = Math.ceil(bytes / threads / 64) * 64;
    const ranges = Array.from(
      { length: threads },
      (_, t) => [t * per, Math.min(bytes, (t + 1) * per)],
    ).flat();
    pool.run("sumBytes", [base], ranges);
    const ms: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      pool.run("sumBytes", [base], ranges);
      ms.push(performance.now() - t0);
    }
    return bytes / median(ms) / 1e6;
  } finally {
    pool.dispose();
  }
}
