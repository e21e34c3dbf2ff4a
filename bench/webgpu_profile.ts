/**
 * Where a WebGPU decode step spends its time, on a random-weight model with the full
 * Qwen2.5-0.5B configuration (run on the GPU machine; any adapter works).
 *
 *   deno run -A --no-config bench/webgpu_profile.ts [--layers 24] [--tokens 24]
 *     [--submit 0,48] [--batches 1,8]
 *
 * 1. Host side, per submission setting (`submitEvery`, with early read-back on and, for
 *    comparison, off): median step time and the part spent recording the step's ops before
 *    its read (the rest is submission, GPU work not hidden behind recording, and read-back).
 * 2. GPU side (adapters with "timestamp-query"): one decode step with every launch timed,
 *    grouped by kernel and shape: launches, GPU microseconds, and the span of the step, whose
 *    excess over the summed launch times is time between launches.
 * Prints readable lines and, last, one JSON line with everything.
 */
import { createWebGpuBackend, type WebGpuBackend } from "../src/backends/webgpu.ts";
import type { KernelTime } from "../src/backends/webgpu_timer.ts";
import type { ModelConfig } from "../src/model/config.ts";
import type { Transformer } from "../src/model/forward.ts";
import { buildModel, freeModel, median } from "./decode.ts";
import { QWEN25_05B } from "./random_model.ts";

function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : fallback;
}

const layers = Number(arg("layers", "24"));
const tokens = Number(arg("tokens", "24"));
const submitChoices = arg("submit", "0,48").split(",").map(Number);
const batches = arg("batches", "1,8").split(",").map(Number);
const config: ModelConfig = { ...QWEN25_05B, numLayers: layers };
const PROMPT = 16;

/** Step timings of one backend setting at one batch size. */
interface HostRow {
  submitEvery: number;
  earlyReadback: boolean;
  batch: number;
  stepMs: number;
  recordMs: number;
  submissionsPerStep: number;
  earlyReads: number;
}

/** Runs `fn(model)` on a fresh backend with a random model; always frees both. */
async function withModel<T>(
  opts: Parameters<typeof createWebGpuBackend>[0],
  fn: (gpu: WebGpuBackend, model: Transformer) => Promise<T>,
): Promise<T> {
  const gpu = await createWebGpuBackend({ allowFallback: true, ...opts });
  const model = buildModel(gpu, config);
  try {
    return await fn(gpu, model);
  } finally {
    freeModel(model);
    await gpu.settle();
    gpu.dispose();
  }
}

/** Decodes `tokens` steps at `batch`; calls `each` after every step. */
async function decode(
  gpu: WebGpuBackend,
  model: Transformer,
  batch: number,
  each: (wallMs: number, recordMs: number) => void | Promise<void>,
): Promise<void> {
  const caches = Array.from({ length: batch }, () => model.newCache(PROMPT + tokens + 2));
  const read = gpu.read.bind(gpu);
  let readAt = 0;
  gpu.read = (t, o, l) => {
    readAt = performance.now();
    return read(t, o, l);
  };
  try {
    const prompt = Int32Array.from({ length: PROMPT }, (_, i) => (i * 7919 + 11) % 151936);
    await model.step(caches.map((cache) => ({ ids: prompt, cache, startPos: 0 })));
    for (let t = 0; t < tokens; t++) {
      const s = performance.now();
      await model.step(caches.map((cache, i) => ({
        ids: Int32Array.of((t * 31 + i) % 151936),
        cache,
        startPos: PROMPT + t,
      })));
      await each(performance.now() - s, readAt - s);
    }
  } finally {
    gpu.read = read;
    for (const c of caches) gpu.free(c);
  }
}

const probe = await navigator.gpu.requestAdapter();
console.log(
  `adapter features: ${[...(probe?.features ?? [])].sort().join(", ")}; ` +
    `maxStorageBuffersPerShaderStage ${probe?.limits.maxStorageBuffersPerShaderStage}`,
);
const host: HostRow[] = [];
const settings = [
  ...submitChoices.map((submitEvery) => ({ submitEvery, earlyReadback: true })),
  { submitEvery: 0, earlyReadback: false },
];
for (const s of settings) {
  await withModel(s, async (gpu, model) => {
    for (const batch of batches) {
      const wall: number[] = [], rec: number[] = [];
      const before = gpu.stats;
      await decode(gpu, model, batch, (w, r) => {
        wall.push(w);
        rec.push(r);
      });
      const after = gpu.stats;
      const row: HostRow = {
        ...s,
        batch,
        stepMs: median(wall),
        recordMs: median(rec),
        submissionsPerStep: (after.submissions - before.submissions) / (tokens + 1),
        earlyReads: after.earlyReads - before.earlyReads,
      };
      host.push(row);
      console.log(
        `submitEvery ${String(s.submitEvery).padStart(3)} early ${
          s.earlyReadback ? "on " : "off"
        }` +
          ` batch ${batch}: step ${row.stepMs.toFixed(2)} ms (${
            (batch * 1000 / row.stepMs)
              .toFixed(0)
          } tok/s), recording ${row.recordMs.toFixed(2)} ms, ` +
          `${row.submissionsPerStep.toFixed(1)} submissions/step, ${row.earlyReads} early reads`,
      );
    }
  });
}

/** Launches of one step grouped by label, largest total first. */
function summarize(launches: KernelTime[]) {
  const groups = new Map<string, { count: number; us: number }>();
  let busy = 0;
  for (const l of launches) {
    const us = (l.endNs - l.startNs) / 1000;
    busy += us;
    const g = groups.get(l.kernel) ?? { count: 0, us: 0 };
    g.count++;
    g.us += us;
    groups.set(l.kernel, g);
  }
  const span = launches.length
    ? (launches[launches.length - 1].endNs - launches[0].startNs) / 1000
    : 0;
  const rows = [...groups].map(([kernel, g]) => ({ kernel, ...g })).sort((a, b) => b.us - a.us);
  return { launches: launches.length, spanUs: span, busyUs: busy, kernels: rows };
}

const gpuProfiles: Record<string, ReturnType<typeof summarize>> = {};
if (probe?.features.has("timestamp-query")) {
  await withModel({ profile: true, submitEvery: 0 }, async (gpu, model) => {
    for (const batch of batches) {
      const steps: KernelTime[][] = [];
      await decode(gpu, model, batch, async () => {
        steps.push((await gpu.launchTimes()).launches);
      });
      const p = summarize(steps[steps.length - 1]);
      gpuProfiles[`batch${batch}`] = p;
      console.log(
        `GPU, one decode step at batch ${batch}: ${p.launches} launches, span ` +
          `${p.spanUs.toFixed(0)} us, in launches ${p.busyUs.toFixed(0)} us, between ` +
          `${(p.spanUs - p.busyUs).toFixed(0)} us`,
      );
      for (const k of p.kernels.slice(0, 16)) {
        console.log(
          `  ${k.kernel.padEnd(60)} ${String(k.count).padStart(4)} x ${
            (k.us / k.count).toFixed(1).padStart(7)
          } us = ${k.us.toFixed(0).padStart(6)} us`,
        );
      }
    }
  });
} else {
  console.log("GPU profile skipped: the adapter has no timestamp-query feature");
}
console.log(JSON.stringify({ layers, tokens, host, gpu: gpuProfiles }));
