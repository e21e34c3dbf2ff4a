/**
 * WebGPU kernel throughput at Qwen2.5-0.5B shapes, against the device's own copy bandwidth.
 *
 *   deno run -A bench/webgpu_bench.ts [--launches 24] [--tpr auto,8,16,32,64]
 *     [--unroll auto] [--density 0.1] [--shapes down,gate,q,kv,lm_head]
 *
 * Kernel times come from timestamp queries around each launch (median over --launches
 * launches of one submission), so neither the host's recording nor the runtime's read-back
 * latency enters them; adapters without "timestamp-query" fall back to wall-clock time per
 * launch, taken as the difference between batches of 2n and n launches (which cancels the
 * fixed cost of submitting and waiting). Measures:
 *   - copy: copyBufferToBuffer of a large tensor, bytes read + written per second (the peer);
 *   - launch cost: a chain of small `add` launches, GPU time per launch and wall time per
 *     launch (recording, submission and GPU together);
 *   - GEMV (m = 1 and 8) with bf16 weights for each threads-per-row and unroll choice;
 *   - the sparse delta y += w * (S x) with S at --density (bf16 values, packed CSR).
 * Bandwidth counts the bytes each kernel must move (weights + activations). Prints one line
 * per case, the best GEMV setting per shape, and a JSON line. Each threads-per-row and
 * unroll choice uploads every shape again (lm_head is 272 MB), so sweep few choices at once
 * where uploads are slow.
 */
import { createWebGpuBackend, type WebGpuBackend } from "../src/backends/webgpu.ts";
import { defaultGemvThreadsPerRow, defaultGemvUnroll } from "../src/backends/webgpu_ops.ts";
import { randomSparse } from "./random_model.ts";

const ALL_SHAPES: Record<string, [number, number]> = {
  down: [896, 4864],
  gate: [4864, 896],
  q: [896, 896],
  kv: [128, 896],
  lm_head: [151936, 896],
};

function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

const launches = Number(arg("launches", "24"));
const density = Number(arg("density", "0.1"));
const tprChoices = arg("tpr", "auto,8,16,32,64").split(",");
const unrollChoices = arg("unroll", "auto").split(",");
const shapes = arg("shapes", "down,gate,q,kv,lm_head").split(",").map((s) => {
  if (!ALL_SHAPES[s]) {
    throw new RangeError(`Cannot bench shape '${s}': not one of ${Object.keys(ALL_SHAPES)}`);
  }
  return [s, ...ALL_SHAPES[s]] as [string, number, number];
});

const adapter = await navigator.gpu.requestAdapter();
const timestamps = adapter?.features.has("timestamp-query") ?? false;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Random bf16 weights in about [-1, 1], as raw bytes. */
function randomBf16(n: number, seed: number): Uint8Array {
  const bits = new Uint16Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    bits[i] = (0x3000 + (s >>> 20) % 0xf00) | (s & 0x8000);
  }
  return new Uint8Array(bits.buffer);
}

/** Wall seconds per launch: batches of 2n and n launches, difference over n (median of 5). */
async function wallPerLaunch(gpu: WebGpuBackend, record: () => void, n: number): Promise<number> {
  const batch = async (k: number) => {
    const t0 = performance.now();
    for (let i = 0; i < k; i++) record();
    await gpu.flush();
    return (performance.now() - t0) / 1000;
  };
  await batch(n); // warm-up: pipelines, bind groups
  const samples: number[] = [];
  for (let r = 0; r < 5; r++) samples.push(((await batch(2 * n)) - (await batch(n))) / n);
  return median(samples);
}

/** GPU seconds per launch: median of the timed launches of one submission. */
async function gpuPerLaunch(gpu: WebGpuBackend, record: () => void, n: number): Promise<number> {
  record();
  await gpu.flush(); // warm-up
  await gpu.launchTimes();
  for (let i = 0; i < n; i++) record();
  await gpu.flush();
  const { launches } = await gpu.launchTimes();
  return median(launches.slice(1).map((l) => (l.endNs - l.startNs) / 1e9));
}

/** Seconds per launch: GPU time with timestamps, else wall time. */
function perLaunch(gpu: WebGpuBackend, record: () => void): Promise<number> {
  return timestamps ? gpuPerLaunch(gpu, record, launches) : wallPerLaunch(gpu, record, launches);
}

interface Row {
  case: string;
  micros: number;
  gbps: number;
  ofCopy: number;
}

const rows: Row[] = [];
function report(name: string, seconds: number, bytes: number, copyGbps: number): Row {
  const gbps = bytes / seconds / 1e9;
  const row = { case: name, micros: seconds * 1e6, gbps, ofCopy: copyGbps ? gbps / copyGbps : 1 };
  rows.push(row);
  console.log(
    `${name.padEnd(46)} ${row.micros.toFixed(1).padStart(10)} us ${gbps.toFixed(1).padStart(8)} ` +
      `GB/s ${(100 * row.ofCopy).toFixed(0).padStart(4)}% of copy`,
  );
  return row;
}

const base = await createWebGpuBackend({ profile: timestamps });
console.log(
  `adapter: ${base.info.device}; ${timestamps ? "GPU timestamps" : "wall clock"}; ` +
    `${launches} launches per case; sparse density ${density}`,
);

// The peer: a device-local copy of the largest tensor the binding limit allows (<= 512 MiB).
const copyElems = Math.floor(Math.min(base.maxBindingBytes, 512 * 2 ** 20) / 4);
const src = base.alloc(copyElems), dst = base.alloc(copyElems);
const copySeconds = await wallPerLaunch(base, () => base.copy(dst, 0, src, 0, copyElems), 4);
const copyGbps = (2 * copyElems * 4) / copySeconds / 1e9;
report(
  `copy ${(copyElems * 4 / 2 ** 20).toFixed(0)} MiB (read + write)`,
  copySeconds,
  2 * copyElems * 4,
  0,
);
base.free(src);
base.free(dst);

// Launch cost: a dependent chain of 896-element adds.
const a = base.alloc(896), b = base.alloc(896);
const chain = () => base.add(a, a, b, 896);
report("launch: add[896] chained, GPU", await perLaunch(base, chain), 3 * 896 * 4, copyGbps);
const plain = await createWebGpuBackend({});
const pa = plain.alloc(896), pb = plain.alloc(896);
report(
  "launch: add[896] chained, wall",
  await wallPerLaunch(plain, () => plain.add(pa, pa, pb, 896), 400),
  3 * 896 * 4,
  copyGbps,
);
plain.dispose();
base.free(a);
base.free(b);

const best = new Map<string, { label: string; micros: number }>();
const weights = shapes.map(([name, r, c], i) => ({ name, r, c, bytes: randomBf16(r * c, i + 1) }));
for (const tpr of tprChoices) {
  for (const unroll of unrollChoices) {
    const gpu = await createWebGpuBackend({
      profile: timestamps,
      gemvThreadsPerRow: tpr === "auto" ? undefined : Number(tpr),
      gemvUnroll: unroll === "auto" ? undefined : Number(unroll),
    });
    for (const { name, r, c, bytes } of weights) {
      const w = gpu.uploadWeight(bytes, "bf16", r, c);
      const t = tpr === "auto" ? defaultGemvThreadsPerRow(c / 8, r) : Number(tpr);
      const label = tpr === "auto" ? `auto(${t})` : tpr;
      const u = unroll === "auto" ? `auto(${defaultGemvUnroll(t)})` : unroll;
      for (const m of [1, 8]) {
        const x = gpu.alloc(m * c), y = gpu.alloc(m * r);
        const seconds = await perLaunch(gpu, () => gpu.matmul(y, x, w, m));
        const what = `gemv ${name} ${r}x${c} m=${m} tpr=${label} unroll=${u}`;
        report(what, seconds, r * c * 2 + 4 * m * (r + c), copyGbps);
        const key = `${name} m=${m}`;
        if (!best.has(key) || best.get(key)!.micros > seconds * 1e6) {
          best.set(key, { label: `tpr=${label} unroll=${u}`, micros: seconds * 1e6 });
        }
        gpu.free(x);
        gpu.free(y);
      }
      gpu.free(w);
    }
    gpu.dispose();
  }
}
for (const [key, v] of best) {
  console.log(`best gemv ${key.padEnd(14)} ${v.label.padEnd(24)} ${v.micros.toFixed(1)} us`);
}

for (const [name, r, c] of shapes.filter(([n]) => n !== "lm_head")) {
  const csr = randomSparse(r, c, density, 7);
  const s = base.uploadSparse(csr);
  for (const m of [1, 8]) {
    const x = base.alloc(m * c), y = base.alloc(m * r);
    const seconds = await perLaunch(base, () => base.sparseMatmulAdd(y, x, s, 0.5, 0, m));
    // Packed CSR: 4 bytes per non-zero plus row offsets; x read once, y read and written.
    const bytes = csr.values.length * 4 + (r + 1) * 4 + 4 * m * (c + 2 * r);
    report(`sparse delta d=${density} ${name} ${r}x${c} m=${m}`, seconds, bytes, copyGbps);
    base.free(x);
    base.free(y);
  }
  base.free(s);
}
base.dispose();
console.log(JSON.stringify({ adapter: base.info.device, timestamps, copyGbps, rows }));
