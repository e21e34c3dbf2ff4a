/**
 * GPU benchmark (run on the H200 machine; see bench/RESULTS.md for the command):
 * decode tokens/s and time to first token of a random-weight model with the
 * full Qwen2.5-0.5B configuration on the WebGPU backend at batch 1 and 8; the
 * Mediator routed path (random sparse experts of density 0.1 on half the layers:
 * one expert materialized, one expert as deltas, two experts mixed as deltas)
 * against the dense path, interleaved in rounds (`measurePaired`); and the HBM
 * bound (weight bytes per step over the copy bandwidth measured in the same run
 * with copyBufferToBuffer). Prints one JSON line; the PyTorch peer
 * (bench/torch_decode.py) runs in the same command.
 *
 *   deno run -A --no-config bench/gpu_bench.ts [--tokens 64] [--prompt 16] [--layers 24]
 *     [--rounds 8] [--per-round 16]
 */
import { createWebGpuBackend } from "../src/backends/webgpu.ts";
import { buildModel, freeModel, measureDecode, measurePaired, median } from "./decode.ts";
import { QWEN25_05B } from "./random_model.ts";

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

/** Device-to-device copy bandwidth (bytes read + written per second), in GB/s. */
async function copyBandwidth(): Promise<number> {
  const adapter = await navigator.gpu.requestAdapter();
  const device = await adapter!.requestDevice({
    requiredLimits: { maxBufferSize: adapter!.limits.maxBufferSize },
  });
  const n = 1 << 30;
  const a = device.createBuffer({ size: n, usage: GPUBufferUsage.COPY_SRC });
  const b = device.createBuffer({ size: n, usage: GPUBufferUsage.COPY_DST });
  const times: number[] = [];
  for (let r = 0; r < 12; r++) {
    const reps = 10;
    const enc = device.createCommandEncoder();
    for (let i = 0; i < reps; i++) enc.copyBufferToBuffer(a, 0, b, 0, n);
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    if (r >= 2) times.push((performance.now() - t0) / 1000 / reps);
  }
  a.destroy();
  b.destroy();
  device.destroy();
  return (2 * n) / median(times) / 1e9;
}

const tokens = arg("tokens", 64), prompt = arg("prompt", 16);
const config = { ...QWEN25_05B, numLayers: arg("layers", QWEN25_05B.numLayers) };
const copyGbps = await copyBandwidth();
const backend = await createWebGpuBackend({ allowFallback: true });
const model = buildModel(backend, config);
const runs = [];
for (const batch of [1, 8]) runs.push(await measureDecode(model, { batch, prompt, tokens }));
// Routed against dense, interleaved in rounds so that drift hits both alike.
const half = Array.from({ length: Math.ceil(config.numLayers / 2) }, (_, i) => i * 2);
const rounds = arg("rounds", 8), perRound = arg("per-round", 16);
const paired = [];
for (const batch of [1, 8]) {
  for (const [materialize, experts] of [[true, 1], [false, 1], [false, 2]] as const) {
    const p = await measurePaired(
      model,
      {
        batch,
        prompt,
        tokens: rounds * perRound,
        routedLayers: half,
        experts,
        density: 0.1,
        materialize,
      },
      rounds,
      perRound,
    );
    paired.push({
      batch,
      path: p.routed.path,
      experts,
      denseStepMs: p.dense.stepSeconds * 1e3,
      routedStepMs: p.routed.stepSeconds * 1e3,
      routedTtftMs: p.routed.ttftMs,
      ratio: p.ratio,
      ratioMin: Math.min(...p.ratios),
      ratioMax: Math.max(...p.ratios),
    });
  }
}
freeModel(model);
const device = backend.info.device;
backend.dispose();
const boundTps = copyGbps * 1e9 / runs[0].bytesPerStep;
console.log(
  JSON.stringify({
    device,
    layers: config.numLayers,
    copyGbps,
    boundTokensPerSecond: boundTps,
    runs,
    paired,
  }),
);
