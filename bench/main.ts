/**
 * `deno task bench`: CPU decode benchmark of a random-weight model with the full
 * Qwen2.5-0.5B configuration (24 layers, bf16, tied embeddings), measured in one run:
 *   - DRAM read bandwidth with 1 and N threads (the kernel bench's probe);
 *   - decode tokens/s and time to first token on the wasm backend with 1 and N threads,
 *     beside the bandwidth bound (measured bandwidth / weight bytes per token) and the
 *     fraction of it reached;
 *   - the Mediator routed path against dense on wasm: two random sparse experts mixed
 *     (density 0.1) on every other layer;
 *   - the reference backend for scale (a couple of decode steps only: it is slow).
 * Medians of the timed decode steps. Prints a markdown table (or JSON with --json) and
 * writes bench/out/bench.json.
 *
 *   deno task bench [--quick] [--json] [--kernels]
 *   deno task bench --compare [--quick] [--json]   the cross-runtime table (bench/compare.ts)
 */
import type { Backend } from "../src/backends/backend.ts";
import { createReferenceBackend } from "../src/backends/reference.ts";
import { createWasmBackend } from "../src/backends/wasm.ts";
import { compareMain, markdownTable } from "./compare.ts";
import { buildModel, type DecodeResult, freeModel, measureDecode, median } from "./decode.ts";
import { CpuContention, quietest } from "./cpu_contention.ts";
import { measureDramBandwidth } from "./dram_bandwidth.ts";
import { QWEN25_05B, weightBytesPerToken } from "./random_model.ts";
import { PROJECTIONS, projectionShape } from "../src/model/weights.ts";

const args = Deno.args;
const QUICK = args.includes("--quick");
const JSON_OUT = args.includes("--json");
const PROMPT = 16;
const TOKENS = QUICK ? 12 : 32;
/** Rounds of dense (and routed) measurements per thread count; medians over rounds. */
const ROUNDS = QUICK ? 1 : 3;
/** Extra measurements of a thread count when other processes shared the machine. */
const RETRIES = QUICK ? 0 : 2;
/** Decode steps of the reference backend (about a second each at 0.5B). */
const REFERENCE_TOKENS = QUICK ? 1 : 2;
const REFERENCE_PROMPT = 4;
const ROUTED_LAYERS = Array.from({ length: QWEN25_05B.numLayers / 2 }, (_, i) => 2 * i);
const EXPERTS = 2;
const DENSITY = 0.1;

/**
 * Routed/dense speed if decoding were bound by memory traffic alone: the dense weight bytes
 * over dense + sparse expert bytes, the experts held as 4 bytes per non-zero (a bf16 value
 * and a 16-bit column offset, the wasm backend's layout) with random_model.ts's row counts.
 */
function routedTrafficCeiling(): number {
  let nnz = 0;
  for (const p of PROJECTIONS) {
    const [rows, cols] = projectionShape(QWEN25_05B, p);
    nnz += rows * Math.round(cols * DENSITY);
  }
  nnz *= EXPERTS * ROUTED_LAYERS.length;
  const dense = weightBytesPerToken(QWEN25_05B);
  return dense / (dense + 4 * nnz);
}

/** One measured configuration. */
interface Row {
  backend: string;
  threads: number | null;
  path: "dense" | "routed";
  prompt: number;
  decodeSteps: number;
  ttftMs: number;
  tokensPerSecond: number;
  /** Tokens/s if every weight byte came at the measured DRAM bandwidth. */
  boundTokensPerSecond: number | null;
  ofBound: number | null;
  /** Routed tokens/s over dense tokens/s on the same backend. */
  vsDense: number | null;
  sparseBytes: number;
  /** Cores other processes kept busy during the measurement on average (null: unknown). */
  othersCpu: number | null;
  /** Measurements of this configuration (repeated while other work shared the machine). */
  attempts: number;
}

function log(line: string): void {
  console.error(line);
}

/** A row from the rounds of one configuration: medians of the per-round figures. */
function row(
  runs: DecodeResult[],
  threads: number | null,
  prompt: number,
  steps: number,
  bandwidth: number | null,
): Row {
  const r = runs[0];
  const tokensPerSecond = median(runs.map((x) => x.tokensPerSecond));
  const bound = bandwidth === null ? null : (bandwidth * 1e9) / r.bytesPerStep;
  return {
    backend: r.backend,
    threads,
    path: r.routedLayers ? "routed" : "dense",
    prompt,
    decodeSteps: steps * runs.length,
    ttftMs: median(runs.map((x) => x.ttftMs)),
    tokensPerSecond,
    boundTokensPerSecond: bound,
    ofBound: bound === null ? null : tokensPerSecond / bound,
    vsDense: null,
    sparseBytes: r.sparseBytes,
    othersCpu: null,
    attempts: 1,
  };
}

/**
 * Dense (and routed) decode on wasm with `threads` threads. Dense and routed alternate over
 * ROUNDS rounds, so a burst of load from elsewhere hits both alike; the routed/dense ratio is
 * the median of the per-round ratios.
 */
async function wasmRows(threads: number, bandwidth: number, routed: boolean): Promise<Row[]> {
  log(`wasm x${threads}: building the model ...`);
  const backend = await createWasmBackend({ threads });
  const model = buildModel(backend, QWEN25_05B);
  try {
    const opts = { batch: 1, prompt: PROMPT, tokens: TOKENS };
    const dense: DecodeResult[] = [], sparse: DecodeResult[] = [];
    const contention = new CpuContention();
    for (let round = 0; round < ROUNDS; round++) {
      log(`wasm x${threads}: round ${round + 1}/${ROUNDS} ...`);
      dense.push(await measureDecode(model, opts));
      if (!routed) continue;
      sparse.push(
        await measureDecode(model, {
          ...opts,
          routedLayers: ROUTED_LAYERS,
          experts: EXPERTS,
          density: DENSITY,
        }),
      );
    }
    const rows = [row(dense, threads, PROMPT, TOKENS, bandwidth)];
    if (routed) {
      const r = row(sparse, threads, PROMPT, TOKENS, null);
      r.vsDense = median(sparse.map((x, i) => x.tokensPerSecond / dense[i].tokensPerSecond));
      rows.push(r);
    }
    const others = contention.stop();
    for (const r of rows) r.othersCpu = others;
    return rows;
  } finally {
    freeModel(model);
    backend.dispose();
  }
}

async function referenceRow(): Promise<Row> {
  log("reference: building the model (f32) ...");
  const backend: Backend = createReferenceBackend();
  const model = buildModel(backend, QWEN25_05B);
  try {
    const opts = { batch: 1, prompt: REFERENCE_PROMPT, tokens: REFERENCE_TOKENS };
    const contention = new CpuContention();
    const r = row(
      [await measureDecode(model, opts)],
      null,
      REFERENCE_PROMPT,
      REFERENCE_TOKENS,
      null,
    );
    r.othersCpu = contention.stop();
    return r;
  } finally {
    freeModel(model);
    backend.dispose();
  }
}

function report(bandwidth: Record<number, number>, rows: Row[], seconds: number): string {
  const f = (x: number | null, d: number) => (x === null ? "-" : x.toFixed(d));
  const c = QWEN25_05B;
  const bytes = weightBytesPerToken(c);
  const table = markdownTable(
    [
      "backend",
      "threads",
      "path",
      "prompt",
      "TTFT ms",
      "decode tok/s",
      "bound tok/s",
      "of bound",
      "vs dense",
      "others' CPU",
      "runs",
    ],
    rows.map((r) => [
      r.backend,
      r.threads === null ? "-" : String(r.threads),
      r.path,
      String(r.prompt),
      f(r.ttftMs, 0),
      f(r.tokensPerSecond, 2),
      f(r.boundTokensPerSecond, 1),
      r.ofBound === null ? "-" : `${(100 * r.ofBound).toFixed(0)}%`,
      r.vsDense === null ? "-" : `${r.vsDense.toFixed(2)}x`,
      r.othersCpu === null ? "-" : r.othersCpu.toFixed(2),
      String(r.attempts),
    ]),
  );
  return [
    `Decode on CPU: random weights, Qwen2.5-0.5B configuration (${c.numLayers} layers, ` +
    `hidden ${c.hiddenSize}, vocab ${c.vocabSize}, bf16, tied embeddings), batch 1; ` +
    `${navigator.hardwareConcurrency} CPUs, Deno ${Deno.version.deno}.`,
    `DRAM read bandwidth: ${
      Object.entries(bandwidth).map(([t, g]) =>
        `${g.toFixed(1)} GB/s (${t} thread${t === "1" ? "" : "s"})`
      )
        .join(", ")
    } (median of 7 passes over 1 GiB).`,
    `Weight bytes per token: ${(bytes / 1e9).toFixed(3)} GB; bound = bandwidth / bytes per token.`,
    "",
    table,
    "",
    `decode tok/s: median of ${TOKENS} decode steps after a ${PROMPT}-token prefill (TTFT); ` +
    `median over ${ROUNDS} round(s), dense and routed alternating. ` +
    `routed: ${EXPERTS} random sparse experts mixed (density ${DENSITY}) on ` +
    `${ROUTED_LAYERS.length} of ${c.numLayers} layers; memory traffic alone would allow ` +
    `${
      routedTrafficCeiling().toFixed(2)
    }x of dense. The reference backend runs only ${REFERENCE_TOKENS} decode ` +
    `step(s) after a ${REFERENCE_PROMPT}-token prompt (it is plain TypeScript, for scale). ` +
    "others' CPU: cores kept busy by other processes meanwhile (from /proc); well above 0, " +
    `the row shared the machine and its speed is pessimistic; such wasm rows are measured ` +
    `again (runs: up to ${RETRIES + 1}) and the quietest run is kept.`,
    "",
    `total ${seconds.toFixed(0)} s`,
  ].join("\n");
}

async function main(): Promise<void> {
  const t0 = performance.now(), load0 = Deno.loadavg();
  const n = navigator.hardwareConcurrency || 1;
  const threads = n > 1 ? [1, n] : [1];
  const bandwidth: Record<number, number> = {};
  const bwContention = new CpuContention();
  for (const t of threads) bandwidth[t] = await measureDramBandwidth(t);
  const bandwidthOthersCpu = bwContention.stop();
  const rows: Row[] = [];
  for (const t of threads) {
    // Measured again (up to RETRIES times) while other processes share the machine.
    const { result, attempts } = await quietest(
      () => wasmRows(t, bandwidth[t], t === threads.at(-1) || !QUICK),
      (r) => r[0].othersCpu,
      RETRIES,
    );
    for (const r of result) r.attempts = attempts;
    rows.push(...result);
  }
  rows.push(await referenceRow());
  const seconds = (performance.now() - t0) / 1000;
  const out = {
    date: new Date().toISOString(),
    cpus: n,
    deno: Deno.version.deno,
    quick: QUICK,
    loadAverage: { start: load0, end: Deno.loadavg() },
    config: QWEN25_05B,
    weightBytesPerToken: weightBytesPerToken(QWEN25_05B),
    routed: {
      layers: ROUTED_LAYERS,
      experts: EXPERTS,
      density: DENSITY,
      trafficCeiling: routedTrafficCeiling(),
    },
    bandwidthGBps: bandwidth,
    bandwidthOthersCpu,
    rows,
    seconds,
  };
  const dir = new URL("./out/", import.meta.url);
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(new URL("bench.json", dir), JSON.stringify(out, null, 2) + "\n");
  console.log(JSON_OUT ? JSON.stringify(out) : report(bandwidth, rows, seconds));
  if (args.includes("--kernels")) {
    const kernels = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        new URL("./kernels_bench.ts", import.meta.url).pathname,
        ...(QUICK ? ["--quick"] : []),
      ],
      stdout: JSON_OUT ? "null" : "inherit",
      stderr: "inherit",
    });
    const status = await kernels.output();
    if (!status.success) {
      throw new Error(`Cannot finish the kernel bench: it exited with ${status.code}`);
    }
  }
}

if (args.includes("--compare")) await compareMain(args);
else await main();
