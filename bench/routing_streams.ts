/**
 * The HTTP part of the routing benchmark: N concurrent streaming chat clients
 * on loopback for a bounded time, each looping over prompts of every task (so
 * the batch mixes routes), with tokens/s, p50/p99 time to first token, errors
 * and memory before/after.
 */
import { streamOnce } from "./sse_client.ts";
import { createApp } from "../src/server/app.ts";
import type { Engine } from "../src/server/engine.ts";

/** What one phase of concurrent streams measured. */
export interface StreamsResult {
  streams: number;
  requests: number;
  errors: number;
  completionTokens: number;
  seconds: number;
  tokensPerSecond: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  /** Requests per first expert of their route. */
  routes: Record<string, number>;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  heapAfterMiB: number;
}

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

const mib = (n: number) => n / 2 ** 20;

/**
 * Serve `engine` on 127.0.0.1 (port 0) and run `streams` clients over
 * `prompts` until `seconds` pass (each client at most 10000 requests).
 */
export async function measureStreams(
  engine: Engine,
  prompts: readonly string[],
  streams: number,
  seconds: number,
  maxTokens: number,
): Promise<StreamsResult> {
  const stop = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen() {} },
    createApp(engine).fetch,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const before = Deno.memoryUsage();
  const ttfts: number[] = [];
  const routes: Record<string, number> = {};
  let requests = 0, errors = 0, tokens = 0;
  const t0 = performance.now(), deadline = t0 + seconds * 1000;
  try {
    await Promise.all(Array.from({ length: streams }, async (_, s) => {
      for (let i = 0; i < 10_000 && performance.now() < deadline; i++) {
        requests++;
        try {
          const prompt = prompts[(s + i * streams) % prompts.length];
          const r = await streamOnce(url, engine.name, prompt, maxTokens, i);
          tokens += r.tokens;
          routes[r.expert] = (routes[r.expert] ?? 0) + 1;
          if (!Number.isNaN(r.ttftMs)) ttfts.push(r.ttftMs);
        } catch (e) {
          errors++;
          console.error(`stream ${s}: ${(e as Error).message}`);
        }
      }
    }));
  } finally {
    stop.abort();
    await server.finished;
  }
  const taken = (performance.now() - t0) / 1000;
  const after = Deno.memoryUsage();
  ttfts.sort((a, b) => a - b);
  return {
    streams,
    requests,
    errors,
    completionTokens: tokens,
    seconds: taken,
    tokensPerSecond: tokens / taken,
    ttftP50Ms: percentile(ttfts, 0.5),
    ttftP99Ms: percentile(ttfts, 0.99),
    routes,
    rssBeforeMiB: mib(before.rss),
    rssAfterMiB: mib(after.rss),
    heapAfterMiB: mib(after.heapUsed),
  };
}
