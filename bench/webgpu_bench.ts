/**
 * WebGPU kernel throughput at Qwen2.5-0.5B shapes, against the device's own copy bandwidth.
 *
 *   deno run -A bench/webgpu_bench.ts [--reps 7] [--tpr 32,64,128,256] [--density 0.1]
 *
 * Measures (medians over --reps runs, each run timing enough back-to-back launches in one
 * submission to last ~0.2 s):
 *   - copy: copyBufferToBuffer of a large tensor, bytes read + written per second (the peer);
 *   - GEMV (m = 1 and 4) with bf16 weights [rows, cols] for each GEMV threads-per-row choice;
 *   - the sparse delta y += w * (S x) with S at --density (bf16 values, packed CSR).
 * Bandwidth counts the bytes each kernel must move (weights + activations), printed in GB/s
 * and as a percentage of the copy bandwidth. On a software adapter it only checks that
 * everything runs.
 */
import type { SparseMatrixData } from "../src/backends/backend.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../src/backends/webgpu.ts";

const SHAPES: [string, number, number][] = [
  ["down_proj 896x4864", 896, 4864],
  ["gate/up 4864x896", 4864, 896],
  ["lm_head 151936x896", 151936, 896],
];

function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

const reps = Number(arg("reps", "7"));
const density = Number(arg("density", "0.1"));
const tprChoices = arg("tpr", "auto,32,64,128,256").split(",");

/** xorshift32 stream of u32 values. */
function makeBits(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

/** Random bf16 weights in about [-1, 1], as raw bytes. */
function randomBf16(n: number, next: () => number): Uint8Array {
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) bits[i] = 0x3000 + (next() % 0xf00) | (next() & 0x8000);
  return new Uint8Array(bits.buffer);
}

function randomCsr(rows: number, cols: number, p: number, next: () => number): SparseMatrixData {
  const threshold = Math.floor(p * 2 ** 32);
  const rowPtr = new Uint32Array(rows + 1);
  const colIdx: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) if (next() < threshold) colIdx.push(c);
    rowPtr[r + 1] = colIdx.length;
  }
  const values = new Uint16Array(colIdx.length);
  for (let i = 0; i < values.length; i++) values[i] = 0x3000 + (next() % 0xf00);
  return { rows, cols, rowPtr, colIdx: Uint32Array.from(colIdx), values, valueDtype: "bf16" };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median seconds per launch of `record`, timing batches of launches in one submission. */
async function timeOp(gpu: WebGpuBackend, record: () => void): Promise<number> {
  record();
  await gpu.flush(); // warm-up: pipelines, bind groups
  let t0 = performance.now();
  record();
  await gpu.flush();
  const once = Math.max((performance.now() - t0) / 1000, 1e-6);
  const k = Math.max(1, Math.min(500, Math.ceil(0.2 / once)));
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    for (let i = 0; i < k; i++) record();
    await gpu.flush();
    samples.push((performance.now() - t0) / 1000 / k);
  }
  return median(samples);
}

interface Row {
  case: string;
  micros: number;
  gbps: number;
  ofCopy: number;
}

const rows: Row[] = [];
function report(name: string, seconds: number, bytes: number, copyGbps: number): void {
  const gbps = bytes / seconds / 1e9;
  const row = { case: name, micros: seconds * 1e6, gbps, ofCopy: copyGbps ? gbps / copyGbps : 1 };
  rows.push(row);
  console.log(
    `${name.padEnd(44)} ${row.micros.toFixed(1).padStart(10)} us ${
      gbps.toFixed(1).padStart(8)
    } GB/s` +
      ` ${(100 * row.ofCopy).toFixed(0).padStart(4)}% of copy`,
  );
}

const next = makeBits(12345);
const base = await createWebGpuBackend();
console.log(`adapter: ${base.info.device}; reps ${reps}; sparse density ${density}`);

// The peer: a device-local copy of the largest tensor the binding limit allows (<= 512 MiB).
const copyElems = Math.floor(Math.min(base.maxBindingBytes, 512 * 2 ** 20) / 4);
const src = base.alloc(copyElems), dst = base.alloc(copyElems);
const copySeconds = await timeOp(base, () => base.copy(dst, 0, src, 0, copyElems));
const copyGbps = (2 * copyElems * 4) / copySeconds / 1e9;
report(
  `copy ${(copyElems * 4 / 2 ** 20).toFixed(0)} MiB (read + write)`,
  copySeconds,
  2 * copyElems * 4,
  0,
);
base.free(src);
base.free(dst);

const weights = SHAPES.map(([name, r, c]) => ({ name, r, c, bytes: randomBf16(r * c, next) }));
for (const tpr of tprChoices) {
  const gpu = tpr === "auto" ? base : await createWebGpuBackend({ gemvThreadsPerRow: Number(tpr) });
  for (const { name, r, c, bytes } of weights) {
    const w = gpu.uploadWeight(bytes, "bf16", r, c);
    for (const m of [1, 4]) {
      const x = gpu.alloc(m * c), y = gpu.alloc(m * r);
      const seconds = await timeOp(gpu, () => gpu.matmul(y, x, w, m));
      report(`gemv bf16 ${name} m=${m} tpr=${tpr}`, seconds, r * c * 2 + 4 * m * (r + c), copyGbps);
      gpu.free(x);
      gpu.free(y);
    }
    gpu.free(w);
  }
  if (gpu !== base) gpu.dispose();
}

for (const [name, r, c] of SHAPES) {
  const csr = randomCsr(r, c, density, next);
  const s = base.uploadSparse(csr);
  const nnz = csr.values.length;
  for (const m of [1, 4]) {
    const x = base.alloc(m * c), y = base.alloc(m * r);
    const seconds = await timeOp(base, () => base.sparseMatmulAdd(y, x, s, 0.5, 0, m));
    // Packed CSR: 4 bytes per non-zero plus row offsets; x read once, y read and written.
    const bytes = nnz * 4 + (r + 1) * 4 + 4 * m * (c + 2 * r);
    report(`sparse delta d=${density} ${name} m=${m}`, seconds, bytes, copyGbps);
    base.free(x);
    base.free(y);
  }
  base.free(s);
}
base.dispose();
console.log(JSON.stringify({ adapter: base.info.device, copyGbps, rows }));
