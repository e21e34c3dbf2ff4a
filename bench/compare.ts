/**
 * One table, one model, one prompt: decode tokens/s and time to first token of the Mediator
 * backends (reference, wasm with 1 and N threads, webgpu on whatever adapter exists) and of
 * onnxruntime-web running the same decoder as an ONNX graph (wasm EP with 1 and N threads,
 * and its webgpu EP when it initialises).
 *
 * The model is a random-weight checkpoint with the Qwen2.5-0.5B configuration (all 24
 * layers and the full vocabulary unless --layers/--vocab say otherwise). Every runtime gets
 * the same values: bf16 for the Mediator backends (as released checkpoints are), and their
 * exact f32 widening for onnxruntime-web, which has no bf16 MatMul; the ONNX weights travel
 * as external data because the f32 model exceeds protobuf's 2 GB. Bytes per token therefore
 * differ (shown), and one column checks that every runtime computes the same logits.
 *
 *   deno run -A bench/compare.ts [--quick] [--json] [--layers N] [--vocab N]
 *     [--prompt N] [--tokens N] [--ort-child dist/ort-bench/onnx_decode_process.js]
 *     [--ort-threads 1,N]
 * or `deno task bench --compare ...`. Writes bench/out/compare.json. Where npm is out of
 * reach (the GPU machine), bench/onnx_gpu_bundle.ts packs the onnxruntime-web side; there
 * run this file with `--no-config --ort-child dist/ort-bench/onnx_decode_process.js
 * --ort-threads 1` (that bundle starts ORT with one thread only, see CompareOptions).
 */
import { createReferenceBackend } from "../src/backends/reference.ts";
import { createWasmBackend } from "../src/backends/wasm.ts";
import { createWebGpuBackend } from "../src/backends/webgpu.ts";
import { describeAdapter, requestGpuAdapter } from "../src/backends/webgpu_device.ts";
import type { ModelConfig } from "../src/model/config.ts";
import {
  type CompareOptions,
  type CompareRow,
  type Context,
  mediatorRow,
  ortRow,
} from "./compare_rows.ts";
import { quietest } from "./cpu_contention.ts";
import { measureDramBandwidth } from "./dram_bandwidth.ts";
import { QWEN25_05B } from "./random_model.ts";

export type { CompareOptions, CompareRow } from "./compare_rows.ts";

/** A markdown table. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** Runs the comparison; `log` receives progress lines. */
export async function runCompare(
  o: CompareOptions,
  log: (line: string) => void = () => {},
): Promise<{ config: ModelConfig; bandwidthGBps: Record<number, number>; rows: CompareRow[] }> {
  const ctx: Context = {
    config: { ...QWEN25_05B, numLayers: o.layers, vocabSize: o.vocab },
    options: o,
    log,
  };
  const n = navigator.hardwareConcurrency || 1;
  const threads = n > 1 ? [1, n] : [1];
  const bandwidthGBps: Record<number, number> = {};
  for (const t of threads) bandwidthGBps[t] = await measureDramBandwidth(t);
  // The reference backend and software GPU adapters take seconds per token: a few steps.
  const few = o.quick ? 1 : 2;
  const adapter = await requestGpuAdapter();
  const software = !adapter || describeAdapter(adapter).software;
  const gpuTokens = software ? Math.min(o.tokens, few + 1) : o.tokens;
  // Rows that share the machine with other work are measured again (the quietest run stays).
  const retries = o.quick ? 0 : 2, gpuRetries = software ? 0 : retries;
  const measure = async (run: () => Promise<CompareRow>, n: number) => {
    const { result, attempts } = await quietest(run, (r) => r.othersCpu, n);
    result.attempts = attempts;
    return result;
  };
  const rows: CompareRow[] = [];
  const reference = () => Promise.resolve(createReferenceBackend());
  rows.push(await mediatorRow(ctx, "reference", null, reference, few));
  for (const t of threads) {
    const wasm = () => createWasmBackend({ threads: t });
    rows.push(await measure(() => mediatorRow(ctx, "wasm", t, wasm, o.tokens), retries));
  }
  const webgpu = async () => {
    if (!adapter) throw new Error("no WebGPU adapter");
    return await createWebGpuBackend({ adapter, allowFallback: true });
  };
  rows.push(await measure(() => mediatorRow(ctx, "webgpu", null, webgpu, gpuTokens), gpuRetries));
  for (const t of o.ortThreads ?? threads) {
    rows.push(await measure(() => ortRow(ctx, "wasm", t, o.tokens), retries));
  }
  rows.push(await measure(() => ortRow(ctx, "webgpu", 1, gpuTokens), gpuRetries));
  return { config: ctx.config, bandwidthGBps, rows };
}

/** The comparison as markdown. */
export function compareReport(
  r: Awaited<ReturnType<typeof runCompare>>,
  o: CompareOptions,
): string {
  const f = (x: number | null, d: number) => (x === null ? "-" : x.toFixed(d));
  const c = r.config;
  const lines = [
    `Same model everywhere: random weights, Qwen2.5-0.5B shapes (${c.numLayers} layers, hidden ` +
    `${c.hiddenSize}, vocab ${c.vocabSize}, tied embeddings), batch 1, prompt ${o.prompt} tokens. ` +
    `DRAM read: ${
      Object.entries(r.bandwidthGBps).map(([t, g]) => `${g.toFixed(1)} GB/s (${t} thr)`).join(", ")
    }.`,
    "",
    markdownTable(
      [
        "runtime",
        "backend",
        "threads",
        "weights",
        "GB/token",
        "TTFT ms",
        "decode tok/s",
        "GB/s",
        "steps",
        "max logit diff vs ref",
        "others' CPU",
        "runs",
        "note",
      ],
      r.rows.map((x) => [
        x.runtime,
        x.backend,
        x.threads === null ? "-" : String(x.threads),
        x.weights,
        (x.bytesPerToken / 1e9).toFixed(2),
        f(x.ttftMs, 0),
        f(x.tokensPerSecond, 2),
        x.tokensPerSecond === null ? "-" : (x.tokensPerSecond * x.bytesPerToken / 1e9).toFixed(1),
        String(x.decodeSteps),
        x.maxLogitDiff === null ? "-" : x.maxLogitDiff.toExponential(1),
        x.othersCpu === null ? "-" : x.othersCpu.toFixed(2),
        String(x.attempts),
        x.error ? `failed: ${x.error.slice(0, 160)}` : x.note,
      ]),
    ),
    "",
    "decode tok/s: median over the timed steps; the reference backend and software GPU " +
    "adapters run only a few steps. GB/s = weight bytes per token x tokens/s. others' CPU: " +
    "cores kept busy by other processes during the row (from /proc); where it is well above " +
    "0, the row shared the machine and its speed is pessimistic; such rows are measured again " +
    "(runs; up to 3 outside --quick, not for the slow reference and software-GPU rows) and " +
    "the quietest run is kept.",
  ];
  return lines.join("\n");
}

function numArg(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(
      `Cannot parse --${name}: expected a positive integer, got '${args[i + 1]}'`,
    );
  }
  return v;
}

function threadList(args: string[]): number[] {
  const text = args[args.indexOf("--ort-threads") + 1] ?? "";
  const list = text.split(",").map(Number);
  if (!list.length || list.some((t) => !Number.isInteger(t) || t < 1)) {
    throw new RangeError(`Cannot parse --ort-threads: expected e.g. 1,2, got '${text}'`);
  }
  return list;
}

/** Options from command-line arguments. */
export function compareOptions(args: string[]): CompareOptions {
  const quick = args.includes("--quick");
  return {
    quick,
    layers: numArg(args, "layers", QWEN25_05B.numLayers),
    vocab: numArg(args, "vocab", QWEN25_05B.vocabSize),
    prompt: numArg(args, "prompt", 16),
    tokens: numArg(args, "tokens", quick ? 8 : 32),
    ortChild: args.includes("--ort-child") ? args[args.indexOf("--ort-child") + 1] : undefined,
    ortThreads: args.includes("--ort-threads") ? threadList(args) : undefined,
  };
}

/** Runs the comparison from the command line: prints markdown (or JSON), writes the JSON. */
export async function compareMain(args: string[]): Promise<void> {
  const o = compareOptions(args);
  const json = args.includes("--json");
  const t0 = performance.now(), load0 = Deno.loadavg();
  const r = await runCompare(o, (l) => console.error(l));
  const seconds = (performance.now() - t0) / 1000;
  const out = {
    date: new Date().toISOString(),
    cpus: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    options: o,
    loadAverage: { start: load0, end: Deno.loadavg() },
    ...r,
    seconds,
  };
  const dir = new URL("./out/", import.meta.url);
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(new URL("compare.json", dir), JSON.stringify(out, null, 2) + "\n");
  console.log(
    json ? JSON.stringify(out) : `${compareReport(r, o)}\n\ntotal ${seconds.toFixed(0)} s`,
  );
}

if (import.meta.main) await compareMain(Deno.args);
