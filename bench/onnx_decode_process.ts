/**
 * Times onnxruntime-web on the ONNX decoder in a child process, one per configuration:
 * ORT reads its thread count once per instance, its WebGPU entry point cannot start inside
 * a Deno Worker (it resolves its own URL against `location.origin`, which is "null" there),
 * and a process returns ORT's wasm heap (up to 4 GiB) to the system when it exits.
 * The child builds the random checkpoint itself from the seed, creates the session, then
 * times a prefill (time to first token) and single-token decode steps with the same token
 * ids as the Mediator runs. Request on stdin, result on stdout, both JSON.
 */
import type { ModelConfig } from "../src/model/config.ts";
import { buildOnnxDecoder } from "./onnx_model.ts";
import { benchDecodeId, benchPromptIds, OnnxDecoder, type Ort } from "./onnx_session.ts";
import { RandomCheckpoint } from "./onnx_weights.ts";

/** What to run. */
export interface OnnxDecodeRequest {
  config: ModelConfig;
  seed: number;
  ep: "wasm" | "webgpu";
  threads: number;
  prompt: number;
  tokens: number;
  /** Initializers of at least this many bytes go to external data. */
  externalMinBytes: number;
}

/** Timings of one run (milliseconds) and the prefill's logits. */
export interface OnnxDecodeResult {
  buildMs: number;
  sessionMs: number;
  ttftMs: number;
  stepMs: number[];
  logits: Float32Array;
  /** WebGPU adapter description, when that EP ran. */
  adapter?: string;
}

async function adapterName(): Promise<string> {
  const a = await navigator.gpu?.requestAdapter();
  if (!a) throw new Error("Cannot use the webgpu EP: no WebGPU adapter");
  const i = a.info;
  return `${i.vendor} ${i.architecture} ${i.device} ${i.description}`.replace(/\s+/g, " ").trim();
}

async function child(req: OnnxDecodeRequest): Promise<OnnxDecodeResult> {
  const ort: Ort = req.ep === "webgpu"
    ? await import("onnxruntime-web/webgpu")
    : await import("onnxruntime-web");
  ort.env.wasm.numThreads = req.threads;
  ort.env.logLevel = "error";
  const adapter = req.ep === "webgpu" ? await adapterName() : undefined;
  let t0 = performance.now();
  const bytes = await buildOnnxDecoder(req.config, new RandomCheckpoint(req.config, req.seed), {
    externalMinBytes: req.externalMinBytes,
  });
  const buildMs = performance.now() - t0;
  t0 = performance.now();
  const decoder = await OnnxDecoder.create(ort, bytes, req.config, {
    executionProviders: [req.ep],
    kvOnDevice: req.ep === "webgpu",
  });
  bytes.externalData.length = 0;
  const sessionMs = performance.now() - t0;
  const state = decoder.newState();
  t0 = performance.now();
  const logits = await decoder.step(benchPromptIds(req.config.vocabSize, req.prompt), state);
  const ttftMs = performance.now() - t0;
  const stepMs: number[] = [];
  for (let t = 0; t < req.tokens; t++) {
    const s = performance.now();
    await decoder.step([benchDecodeId(t, req.config.vocabSize)], state);
    stepMs.push(performance.now() - s);
  }
  decoder.disposeState(state);
  await decoder.release();
  return { buildMs, sessionMs, ttftMs, stepMs, logits, adapter };
}

/**
 * Runs `req` in a fresh Deno process; rejects with the child's error message.
 *
 * @param child the child script: this module (default), or its esbuild bundle (a `.js`
 *   file, run without a config file) where no npm download is possible
 */
export async function runOnnxDecode(
  req: OnnxDecodeRequest,
  child = new URL(import.meta.url).pathname,
): Promise<OnnxDecodeResult> {
  const config = child.endsWith(".js")
    ? ["--no-config"]
    : ["--config", new URL("../deno.json", import.meta.url).pathname];
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...config, child],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const proc = cmd.spawn();
  const writer = proc.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(req)));
  await writer.close();
  const out = await proc.output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.trim().split("\n").pop() ?? "";
  let parsed: { error?: string } & Omit<OnnxDecodeResult, "logits"> & { logits?: number[] };
  try {
    parsed = JSON.parse(line);
  } catch {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" ");
    throw new Error(
      `Cannot time onnxruntime-web: its process exited with ${out.code} and no result: ` +
        (err || text.slice(-300)),
    );
  }
  if (parsed.error) throw new Error(parsed.error);
  return { ...parsed, logits: Float32Array.from(parsed.logits ?? []) };
}

if (import.meta.main) {
  const req = JSON.parse(await new Response(Deno.stdin.readable).text()) as OnnxDecodeRequest;
  let reply: string;
  try {
    const r = await child(req);
    reply = JSON.stringify({ ...r, logits: Array.from(r.logits) });
  } catch (err) {
    reply = JSON.stringify({ error: err instanceof Error ? err.message : String(err) });
  }
  console.log(reply);
  Deno.exit(0); // ORT's thread pool would otherwise keep the process alive
}
