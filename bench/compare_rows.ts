/**
 * The rows of bench/compare.ts: one Mediator backend (loaded from the random checkpoint
 * through the real loader, timed like bench/decode.ts, its prefill logits kept) or one
 * onnxruntime-web configuration (in its own process, see onnx_decode_process.ts), each with
 * its logits compared against the reference backend's and the CPU other processes used
 * meanwhile.
 */
import type { Backend } from "../src/backends/backend.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { Transformer } from "../src/model/forward.ts";
import { freeModelWeights, loadModelWeights } from "../src/model/weights.ts";
import { median } from "./decode.ts";
import { CpuContention } from "./cpu_contention.ts";
import { runOnnxDecode } from "./onnx_decode_process.ts";
import { benchDecodeId, benchPromptIds } from "./onnx_session.ts";
import { RandomCheckpoint } from "./onnx_weights.ts";
import { weightBytesPerToken } from "./random_model.ts";

/** Seed of the random checkpoint every runtime loads. */
export const SEED = 1;

/** Options of `runCompare`. */
export interface CompareOptions {
  quick: boolean;
  layers: number;
  vocab: number;
  prompt: number;
  tokens: number;
  /** The onnxruntime-web child script (default bench/onnx_decode_process.ts). */
  ortChild?: string;
  /**
   * Thread counts of onnxruntime-web's wasm EP (default: those of the wasm backend, 1 and N).
   * Its bundled child starts only one thread: ORT loads its worker script through a blob URL
   * outside an npm package, which Deno's worker threads refuse.
   */
  ortThreads?: number[];
}

/** One row of the comparison. */
export interface CompareRow {
  runtime: "mediator" | "onnxruntime-web";
  backend: string;
  threads: number | null;
  weights: "bf16" | "f32";
  /** Weight bytes read per decode step. */
  bytesPerToken: number;
  ttftMs: number | null;
  tokensPerSecond: number | null;
  decodeSteps: number;
  /** Max |logit difference| of the prefill against the reference backend. */
  maxLogitDiff: number | null;
  note: string;
  /** Cores other processes kept busy during the row on average (null: unknown). */
  othersCpu: number | null;
  /** Measurements made (repeated while other work shared the machine). */
  attempts: number;
  error?: string;
}

function maxDiff(a: Float32Array, b: Float32Array | undefined): number | null {
  if (!b || a.length !== b.length) return null;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Prefill + decode on a Mediator backend, as bench/decode.ts times it, keeping the logits. */
async function timeMediator(backend: Backend, c: ModelConfig, o: CompareOptions, tokens: number) {
  const weights = await loadModelWeights(backend, c, new RandomCheckpoint(c, SEED));
  const model = new Transformer(backend, c, weights);
  const cache = model.newCache(o.prompt + tokens + 1);
  try {
    const ids = Int32Array.from(benchPromptIds(c.vocabSize, o.prompt));
    let t0 = performance.now();
    const [logits] = await model.step([{ ids, cache, startPos: 0 }]);
    const ttftMs = performance.now() - t0;
    const times: number[] = [];
    for (let t = 0; t < tokens; t++) {
      t0 = performance.now();
      const next = Int32Array.of(benchDecodeId(t, c.vocabSize));
      await model.step([{ ids: next, cache, startPos: o.prompt + t }]);
      times.push(performance.now() - t0);
    }
    return { ttftMs, tokensPerSecond: 1000 / median(times), logits: logits! };
  } finally {
    backend.free(cache);
    model.dispose();
    freeModelWeights(backend, weights);
  }
}

/** What every row of one comparison shares. */
export interface Context {
  config: ModelConfig;
  options: CompareOptions;
  /** The reference backend's prefill logits, once measured. */
  refLogits?: Float32Array;
  log: (line: string) => void;
}

/** One Mediator backend: load the checkpoint, time it, compare its logits. */
export async function mediatorRow(
  ctx: Context,
  name: "reference" | "wasm" | "webgpu",
  threads: number | null,
  make: () => Promise<Backend>,
  tokens: number,
): Promise<CompareRow> {
  ctx.log(`${name}${threads ? ` x${threads}` : ""} ...`);
  const bf16 = weightBytesPerToken(ctx.config);
  const row: CompareRow = {
    runtime: "mediator",
    backend: name,
    threads,
    weights: "bf16",
    bytesPerToken: name === "reference" ? 2 * bf16 : bf16,
    ttftMs: null,
    tokensPerSecond: null,
    decodeSteps: tokens,
    maxLogitDiff: null,
    note: name === "reference" ? "plain TS, weights widened to f32 at load" : "",
    othersCpu: null,
    attempts: 1,
  };
  const contention = new CpuContention();
  let backend: Backend | undefined;
  try {
    backend = await make();
    if (name !== "reference") row.note = backend.info.device;
    const r = await timeMediator(backend, ctx.config, ctx.options, tokens);
    if (name === "reference") ctx.refLogits = r.logits;
    row.ttftMs = r.ttftMs;
    row.tokensPerSecond = r.tokensPerSecond;
    row.maxLogitDiff = maxDiff(r.logits, ctx.refLogits);
  } catch (e) {
    row.error = (e as Error).message;
  } finally {
    backend?.dispose();
  }
  row.othersCpu = contention.stop();
  return row;
}

/** One onnxruntime-web configuration, in its own process. */
export async function ortRow(
  ctx: Context,
  ep: "wasm" | "webgpu",
  threads: number,
  tokens: number,
): Promise<CompareRow> {
  ctx.log(`onnxruntime-web ${ep}${ep === "wasm" ? ` x${threads}` : ""} ...`);
  const row: CompareRow = {
    runtime: "onnxruntime-web",
    backend: `${ep} EP`,
    threads: ep === "wasm" ? threads : null,
    weights: "f32",
    bytesPerToken: 2 * weightBytesPerToken(ctx.config),
    ttftMs: null,
    tokensPerSecond: null,
    decodeSteps: tokens,
    maxLogitDiff: null,
    note: "",
    othersCpu: null,
    attempts: 1,
  };
  const contention = new CpuContention();
  try {
    const r = await runOnnxDecode({
      config: ctx.config,
      seed: SEED,
      ep,
      threads,
      prompt: ctx.options.prompt,
      tokens,
      externalMinBytes: 1 << 16,
    }, ctx.options.ortChild);
    row.ttftMs = r.ttftMs;
    row.tokensPerSecond = 1000 / median(r.stepMs);
    row.maxLogitDiff = maxDiff(r.logits, ctx.refLogits);
    row.note = `${r.adapter ? r.adapter + "; " : ""}session created in ${
      (r.sessionMs / 1000).toFixed(1)
    } s`;
  } catch (e) {
    row.error = (e as Error).message;
  }
  row.othersCpu = contention.stop();
  return row;
}
