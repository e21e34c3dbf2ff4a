/**
 * Load benchmark of the OpenAI-compatible server over loopback: N concurrent
 * streaming clients for a bounded time, compared with one client alone (the
 * peer in the same run), so the table shows what continuous batching buys.
 *
 *   deno run -A bench/load_bench.ts --model DIR [--backend auto] [--streams 8]
 *     [--seconds 20] [--max-tokens 32] [--url http://host:port]  (an already running server)
 *
 * Reports tokens/s, p50/p99 time to first token, errors (must be 0) and memory
 * before/after; writes the figures as JSON under bench/out/.
 */
import { streamOnce } from "./sse_client.ts";
import { parseArgs } from "node:util";
import type { BackendName } from "../src/backends/select.ts";
import { createApp } from "../src/server/app.ts";
import { openEngine } from "../src/server/open_engine.ts";

interface PhaseResult {
  streams: number;
  requests: number;
  errors: number;
  completionTokens: number;
  seconds: number;
  tokensPerSecond: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** `streams` clients loop over the prompts until `seconds` pass (each at most 10000 requests). */
async function phase(
  url: string,
  model: string,
  prompts: string[],
  streams: number,
  seconds: number,
  maxTokens: number,
): Promise<PhaseResult> {
  const deadline = performance.now() + seconds * 1000;
  const ttfts: number[] = [];
  let requests = 0, errors = 0, tokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: streams }, async (_, s) => {
    for (let i = 0; i < 10_000 && performance.now() < deadline; i++) {
      requests++;
      try {
        const r = await streamOnce(
          url,
          model,
          prompts[(s + i * streams) % prompts.length],
          maxTokens,
          i,
        );
        tokens += r.tokens;
        if (!Number.isNaN(r.ttftMs)) ttfts.push(r.ttftMs);
      } catch (e) {
        errors++;
        console.error(`stream ${s}: ${(e as Error).message}`);
      }
    }
  }));
  const secondsTaken = (performance.now() - t0) / 1000;
  ttfts.sort((a, b) => a - b);
  return {
    streams,
    requests,
    errors,
    completionTokens: tokens,
    seconds: secondsTaken,
    tokensPerSecond: tokens / secondsTaken,
    ttftP50Ms: percentile(ttfts, 0.5),
    ttftP99Ms: percentile(ttfts, 0.99),
  };
}

function loadPrompts(): string[] {
  const dir = new URL("../fixtures/family/eval/", import.meta.url).pathname;
  const prompts: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      const lines = Deno.readTextFileSync(`${dir}${e.name}`).split("\n").filter(Boolean);
      for (const line of lines.slice(0, 8)) prompts.push(JSON.parse(line).prompt);
    }
  } catch {
    // No fixtures: fall back to fixed prompts.
  }
  return prompts.length ? prompts : ["Hello there", "12+34=", "reverse: abcdef", "Tell me a story"];
}

const mib = (n: number) => (n / 2 ** 20).toFixed(1);

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      url: { type: "string" },
      name: { type: "string" },
      backend: { type: "string", default: "auto" },
      streams: { type: "string", default: "8" },
      seconds: { type: "string", default: "20" },
      "max-tokens": { type: "string", default: "32" },
    },
  });
  const streams = Number(values.streams), seconds = Number(values.seconds);
  const maxTokens = Number(values["max-tokens"]);
  if (!(streams >= 1 && seconds > 0 && maxTokens >= 1)) {
    throw new RangeError(
      "Cannot run the load bench: --streams, --seconds and --max-tokens must be positive",
    );
  }
  const memBefore = Deno.memoryUsage();
  let url = values.url, model = values.name ?? "auto", backendChoice = "remote server";
  let close = async () => {};
  if (!url) {
    const location = values.model ?? new URL("../fixtures/family/base", import.meta.url).pathname;
    const opened = await openEngine({
      model: location,
      backend: values.backend as BackendName,
      maxBatch: Math.max(streams, 1),
    });
    const app = createApp(opened.engine);
    const stop = new AbortController();
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: stop.signal,
      onListen() {},
    }, app.fetch);
    url = `http://127.0.0.1:${server.addr.port}`;
    model = opened.engine.name;
    backendChoice = opened.engine.backendChoice;
    close = async () => {
      stop.abort();
      await server.finished;
      await opened.close();
    };
  }
  const prompts = loadPrompts();
  const memLoaded = Deno.memoryUsage();
  const single = await phase(url, model, prompts, 1, seconds / 2, maxTokens);
  const batched = await phase(url, model, prompts, streams, seconds / 2, maxTokens);
  const memAfter = Deno.memoryUsage();
  await close();

  const rows = [single, batched];
  console.log(
    `load bench: ${model} on ${backendChoice}, max_tokens ${maxTokens}, ${prompts.length} prompts`,
  );
  console.log("| streams | requests | errors | tokens | tokens/s | TTFT p50 ms | TTFT p99 ms |");
  console.log("|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    console.log(
      `| ${r.streams} | ${r.requests} | ${r.errors} | ${r.completionTokens} | ${
        r.tokensPerSecond.toFixed(1)
      } | ${r.ttftP50Ms.toFixed(1)} | ${r.ttftP99Ms.toFixed(1)} |`,
    );
  }
  const ratio = batched.tokensPerSecond / single.tokensPerSecond;
  console.log(`throughput ${streams} streams / 1 stream: ${ratio.toFixed(2)}x`);
  console.log(
    `memory rss MiB: before ${mib(memBefore.rss)}, loaded ${mib(memLoaded.rss)}, after ${
      mib(memAfter.rss)
    }; ` +
      `heap used MiB: loaded ${mib(memLoaded.heapUsed)}, after ${mib(memAfter.heapUsed)}`,
  );
  const outDir = new URL("./out/", import.meta.url).pathname;
  await Deno.mkdir(outDir, { recursive: true });
  const file = `${outDir}load_bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      {
        model,
        backend: backendChoice,
        maxTokens,
        phases: rows,
        batchedOverSingle: ratio,
        memory: { before: memBefore, loaded: memLoaded, after: memAfter },
      },
      null,
      2,
    ),
  );
  console.log(`wrote ${file}`);
  if (single.errors + batched.errors > 0) Deno.exit(1);
}
