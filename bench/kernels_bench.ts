/**
 * Kernel benchmarks of the WASM SIMD backend on Qwen2.5-0.5B shapes (hidden 896,
 * intermediate 4864, vocab 151936), weights from a fixed-seed PRNG:
 *   - DRAM read bandwidth, measured here (wasm SIMD sum over a 512 MiB buffer);
 *   - dense GEMV (m = 1), bf16 and f32 weights, 1 and 2 threads: GFLOP/s, GB/s, fraction of
 *     the measured bandwidth, and the ratio against onnxruntime-web's wasm MatMul (f32; it
 *     has no bf16 MatMul) on the same shapes and thread counts in this run;
 *   - sparse delta y += w * (S x) at densities 0.05, 0.1, 0.2: time relative to dense GEMV.
 * Each weight set is several times the L3 cache (copies are cycled), so weights come from
 * DRAM as in decoding. Medians of several repeats.
 *
 * Run: `deno run -A bench/kernels_bench.ts [--quick] [--sparse]`. Prints a markdown table;
 * writes bench/out/kernels.json. `--sparse` measures only the sparse rows and the dense GEMV
 * of the sparse shapes they are compared with (no onnxruntime-web, no bandwidth probe).
 */
import { measureDramBandwidth } from "./dram_bandwidth.ts";
import { createWasmBackend, type WasmBackend } from "../src/backends/wasm.ts";
import type { SparseMatrixData, Weight } from "../src/backends/backend.ts";

const QUICK = Deno.args.includes("--quick");
const SPARSE_ONLY = Deno.args.includes("--sparse");
const REPS = QUICK ? 3 : 7;
/** Bytes of each cycled weight set (L3 here is 32 MiB). */
const SET_BYTES = (QUICK ? 96 : 192) * 1048576;
const THREADS = [1, 2];
const SHAPES: { name: string; rows: number; cols: number }[] = [
  { name: "q/o proj", rows: 896, cols: 896 },
  { name: "gate/up proj", rows: 4864, cols: 896 },
  { name: "down proj", rows: 896, cols: 4864 },
  { name: "lm head", rows: 151936, cols: 896 },
];
const SPARSE_SHAPES = SHAPES.slice(1, 3);
const DENSITIES = [0.05, 0.1, 0.2];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Fast fixed-seed xorshift32 stream in [0, 1). */
function rngStream(seed: number): () => number {
  let s = seed | 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/** Raw bytes of a rows x cols weight in `dtype` with values in [-0.5, 0.5). */
function weightBytes(rows: number, cols: number, dtype: "bf16" | "f32", seed: number) {
  const rng = rngStream(seed);
  const f = new Float32Array(rows * cols);
  for (let i = 0; i < f.length; i++) f[i] = rng() - 0.5;
  if (dtype === "f32") return new Uint8Array(f.buffer);
  const bits = new Uint32Array(f.buffer);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < out.length; i++) out[i] = bits[i] >>> 16;
  return new Uint8Array(out.buffer);
}

function randomCsr(rows: number, cols: number, density: number, seed: number): SparseMatrixData {
  const rng = rngStream(seed);
  const rowPtr = new Uint32Array(rows + 1);
  const colIdx: number[] = [];
  const values: number[] = [];
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (rng() >= density) continue;
      colIdx.push(c);
      f[0] = rng() - 0.5;
      values.push(u[0] >>> 16);
    }
    rowPtr[r + 1] = colIdx.length;
  }
  return {
    rows,
    cols,
    rowPtr,
    colIdx: Uint32Array.from(colIdx),
    values: Uint16Array.from(values),
    valueDtype: "bf16",
  };
}

/** Runs `pass` (which does `n` ops) REPS times after one warm-up; median ms per op. */
function timeOps(n: number, pass: () => void): number {
  pass();
  const ms: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now();
    pass();
    ms.push((performance.now() - t0) / n);
  }
  return median(ms);
}

/** DRAM read bandwidth (GB/s) of `threads` threads summing a 512 MiB buffer. */
function measureBandwidth(threads: number): Promise<number> {
  return measureDramBandwidth(threads, 512, REPS);
}

/** A worker running onnxruntime-web with `threads` threads. */
class OrtPeer {
  #worker: Worker;
  constructor() {
    this.#worker = new Worker(new URL("./ort_matmul_worker.ts", import.meta.url), {
      type: "module",
    });
  }
  call(msg: Record<string, unknown>): Promise<{ ms?: number[]; error?: string }> {
    return new Promise((resolve, reject) => {
      this.#worker.onmessage = (e) =>
        e.data.error ? reject(new Error(e.data.error)) : resolve(e.data);
      this.#worker.postMessage(msg);
    });
  }
  close(): void {
    this.#worker.terminate();
  }
}

interface DenseRow {
  shape: string;
  rows: number;
  cols: number;
  threads: number;
  dtype: "bf16" | "f32";
  copies: number;
  ms: number;
  gflops: number;
  gbps: number;
  ofBandwidth: number | null;
  ortMs: number | null;
  vsOrt: number | null;
}

interface SparseRow {
  shape: string;
  rows: number;
  cols: number;
  threads: number;
  density: number;
  nnz: number;
  ms: number;
  gnnzps: number;
  vsDenseBf16: number;
  vsDenseF32: number;
}

/** Dense GEMV of one shape in both dtypes on `be`; returns per-op ms. */
function denseTimes(be: WasmBackend, rows: number, cols: number) {
  const x = be.alloc(cols);
  be.write(x, Float32Array.from({ length: cols }, (_, i) => Math.sin(i)));
  const y = be.alloc(rows);
  const out: Record<"bf16" | "f32", { ms: number; copies: number }> = {} as never;
  for (const dtype of ["bf16", "f32"] as const) {
    const bytes = weightBytes(rows, cols, dtype, rows * 31 + cols);
    const copies = Math.max(1, Math.ceil(SET_BYTES / bytes.byteLength));
    const ws: Weight[] = [];
    for (let i = 0; i < copies; i++) ws.push(be.uploadWeight(bytes, dtype, rows, cols));
    out[dtype] = {
      ms: timeOps(copies, () => {
        for (const w of ws) be.matmul(y, x, w, 1);
      }),
      copies,
    };
    for (const w of ws) be.free(w);
  }
  be.free(x);
  be.free(y);
  return out;
}

async function main() {
  const t0 = performance.now();
  const bandwidth: Record<number, number> = {};
  if (!SPARSE_ONLY) { for (const t of THREADS) bandwidth[t] = await measureBandwidth(t); }
  const dense: DenseRow[] = [];
  const sparse: SparseRow[] = [];
  for (const threads of THREADS) {
    const be = await createWasmBackend({ threads });
    const ort = SPARSE_ONLY ? null : new OrtPeer();
    try {
      await ort?.call({ cmd: "init", threads });
      const denseMs: Record<string, Record<string, number>> = {};
      for (const s of SPARSE_ONLY ? SPARSE_SHAPES : SHAPES) {
        const ours = denseTimes(be, s.rows, s.cols);
        const f32Bytes = s.rows * s.cols * 4;
        const count = Math.max(1, Math.ceil(SET_BYTES / f32Bytes));
        let ortMs: number | null = null;
        if (ort) {
          await ort.call({ cmd: "load", rows: s.rows, cols: s.cols, count, seed: s.rows + s.cols });
          ortMs = median((await ort.call({ cmd: "run", reps: REPS })).ms!);
          await ort.call({ cmd: "close" });
        }
        denseMs[s.name] = { bf16: ours.bf16.ms, f32: ours.f32.ms };
        for (const dtype of ["bf16", "f32"] as const) {
          const { ms, copies } = ours[dtype];
          const gbps = (s.rows * s.cols * (dtype === "bf16" ? 2 : 4)) / ms / 1e6;
          dense.push({
            shape: s.name,
            rows: s.rows,
            cols: s.cols,
            threads,
            dtype,
            copies,
            ms,
            gflops: (2 * s.rows * s.cols) / ms / 1e6,
            gbps,
            ofBandwidth: SPARSE_ONLY ? null : gbps / bandwidth[threads],
            ortMs,
            vsOrt: ortMs === null ? null : ortMs / ms,
          });
        }
      }
      for (const s of SPARSE_SHAPES) {
        const x = be.alloc(s.cols);
        be.write(x, Float32Array.from({ length: s.cols }, (_, i) => Math.cos(i)));
        const y = be.alloc(s.rows);
        for (const density of DENSITIES) {
          const csr = randomCsr(s.rows, s.cols, density, Math.round(density * 1000) + s.rows);
          const copies = Math.max(1, Math.ceil(SET_BYTES / 2 / (csr.values.length * 4)));
          const mats = Array.from({ length: copies }, () => be.uploadSparse(csr));
          const ms = timeOps(copies, () => {
            for (const m of mats) be.sparseMatmulAdd(y, x, m, 0.5, 0, 1);
          });
          for (const m of mats) be.free(m);
          sparse.push({
            shape: s.name,
            rows: s.rows,
            cols: s.cols,
            threads,
            density,
            nnz: csr.values.length,
            ms,
            gnnzps: csr.values.length / ms / 1e6,
            vsDenseBf16: ms / denseMs[s.name].bf16,
            vsDenseF32: ms / denseMs[s.name].f32,
          });
        }
        be.free(x);
        be.free(y);
      }
    } finally {
      ort?.close();
      be.dispose();
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  report(bandwidth, dense, sparse, seconds);
}

function report(
  bandwidth: Record<number, number>,
  dense: DenseRow[],
  sparse: SparseRow[],
  seconds: number,
) {
  const f = (x: number | null, d = 2) => (x === null ? "-" : x.toFixed(d));
  const lines: string[] = [];
  lines.push(
    `WASM SIMD kernels (${navigator.hardwareConcurrency} CPUs, Deno ${Deno.version.deno})`,
  );
  lines.push("");
  lines.push("| threads | DRAM read GB/s |", "|---|---|");
  for (const [t, g] of Object.entries(bandwidth)) lines.push(`| ${t} | ${f(g, 1)} |`);
  lines.push("");
  lines.push(
    "| shape | rows x cols | threads | weights | ms | GFLOP/s | GB/s | of DRAM | ORT f32 ms | vs ORT |",
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const r of dense) {
    lines.push(
      `| ${r.shape} | ${r.rows}x${r.cols} | ${r.threads} | ${r.dtype} | ${f(r.ms, 3)} | ` +
        `${f(r.gflops, 1)} | ${f(r.gbps, 1)} | ` +
        `${r.ofBandwidth === null ? "-" : `${f(100 * r.ofBandwidth, 0)}%`} | ` +
        `${f(r.ortMs, 3)} | ${r.vsOrt === null ? "-" : `${f(r.vsOrt)}x`} |`,
    );
  }
  lines.push("");
  lines.push(
    "| sparse shape | threads | density | ms | G nnz/s | vs dense bf16 | vs dense f32 |",
    "|---|---|---|---|---|---|---|",
  );
  for (const r of sparse) {
    lines.push(
      `| ${r.shape} ${r.rows}x${r.cols} | ${r.threads} | ${r.density} | ${f(r.ms, 3)} | ` +
        `${f(r.gnnzps)} | ${f(100 * r.vsDenseBf16, 0)}% | ${f(100 * r.vsDenseF32, 0)}% |`,
    );
  }
  lines.push("", `total ${seconds.toFixed(0)} s`);
  console.log(lines.join("\n"));
  const outDir = new URL("./out/", import.meta.url);
  Deno.mkdirSync(outDir, { recursive: true });
  Deno.writeTextFileSync(
    new URL("kernels.json", outDir),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        cpus: navigator.hardwareConcurrency,
        deno: Deno.version.deno,
        quick: QUICK,
        reps: REPS,
        setBytes: SET_BYTES,
        bandwidthGBps: bandwidth,
        dense,
        sparse,
        seconds,
      },
      null,
      2,
    ) + "\n",
  );
}

await main();
