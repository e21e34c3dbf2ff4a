/**
 * Worker that times onnxruntime-web's wasm MatMul for kernels_bench.ts. One worker per
 * thread count (ORT reads `numThreads` once per instance). Messages:
 *   { cmd: "load", rows, cols, count, seed } -> { ok }        build and load the model
 *   { cmd: "run", reps }                     -> { ms: number[] } per-MatMul times of each run
 *   { cmd: "close" }                         -> { ok }        release the session
 * The first message must be { cmd: "init", threads }.
 */
/// <reference lib="deno.worker" />
import * as ort from "onnxruntime-web";
import { buildMatMulModel } from "./onnx_matmul.ts";

let session: ort.InferenceSession | undefined;
let input: ort.Tensor | undefined;
let count = 0;

/** Random f32 values in [-0.5, 0.5) from a 32-bit xorshift (fast for large arrays). */
function randomWeights(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed | 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 4294967296 - 0.5;
  }
  return out;
}

self.onmessage = async (e: MessageEvent) => {
  const msg = e.data;
  try {
    if (msg.cmd === "init") {
      ort.env.wasm.numThreads = msg.threads;
      ort.env.logLevel = "error";
      self.postMessage({ ok: true });
    } else if (msg.cmd === "load") {
      const { rows, cols, seed } = msg;
      count = msg.count;
      const base = randomWeights(rows * cols, seed);
      // Every copy differs (element 0), so ORT cannot share or merge identical MatMuls.
      const bytes = buildMatMulModel(1, rows, cols, count, (i) => {
        base[0] = i / count;
        return base;
      });
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: ["wasm"],
        graphOptimizationLevel: "all",
      });
      input = new ort.Tensor("float32", randomWeights(cols, seed + 1), [1, cols]);
      await session.run({ x: input }); // warm-up
      self.postMessage({ ok: true });
    } else if (msg.cmd === "run") {
      const ms: number[] = [];
      for (let r = 0; r < msg.reps; r++) {
        const t0 = performance.now();
        await session!.run({ x: input! });
        ms.push((performance.now() - t0) / count);
      }
      self.postMessage({ ms });
    } else if (msg.cmd === "close") {
      await session?.release();
      session = undefined;
      self.postMessage({ ok: true });
    }
  } catch (err) {
    self.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
};
