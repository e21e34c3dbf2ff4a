/**
 * Routing benchmark of a Mediator bundle on the WASM backend, every figure
 * against a peer measured in the same run:
 *   1. decode tokens/s of routed requests (sparse deltas of one expert, a
 *      two-expert mixture, the materialized route; one sequence, and four
 *      sequences on four different routes sharing each step) against the same
 *      model served dense (the bundle's dense weights without deltas), for the
 *      bundle and for fixed-density merges of the fixture family (`--sweep`);
 *   2. time to first token of a route whose experts are fetched cold from S3
 *      (one-node Swift on loopback) against the same route warm (cached), and
 *      the same from a local folder;
 *   3. N concurrent streaming clients through the HTTP server on loopback for
 *      a bounded time, against one client: tokens/s, p50/p99 TTFT, errors
 *      (must be 0), memory before/after.
 * Decode figures are medians of timed steps over interleaved rounds. Prints a
 * table and writes bench/out/routing.json.
 *
 *   deno run -A bench/routing_bench.ts [--bundle DIR] [--threads N] [--tokens 48]
 *     [--rounds 3] [--streams 4] [--seconds 8] [--no-s3] [--sweep 0.02,0.1 | --sweep ""]
 *
 * `--sweep` also merges the fixture family at those fixed densities (every block routed)
 * and measures their decode rows: the routed/dense ratio is a property of the density.
 */
import { parseArgs } from "node:util";
import type { Backend } from "../src/backends/backend.ts";
import { createWasmBackend } from "../src/backends/wasm.ts";
import { MediatorModel, type RouteDecision } from "../src/bundle/mediator_model.ts";
import type { RouteDeltas, Transformer } from "../src/model/forward.ts";
import type { ModelWeights } from "../src/model/weights.ts";
import { MediatorEngine } from "../src/server/mediator_engine.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { S3Storage } from "../src/storage/s3.ts";
import type { ByteStorage } from "../src/storage/storage.ts";
import { ensureS3Server, s3Options, uniqueBucketName } from "../tests/helpers/s3.ts";
import { uploadBundle } from "../tests/helpers/mediator_bundle.ts";
import { median } from "./decode.ts";
import { measureStreams, type StreamsResult } from "./routing_streams.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    bundle: { type: "string", default: `${ROOT}bundles/demo` },
    threads: { type: "string" },
    tokens: { type: "string", default: "48" },
    rounds: { type: "string", default: "3" },
    streams: { type: "string", default: "4" },
    seconds: { type: "string", default: "8" },
    "no-s3": { type: "boolean", default: false },
    sweep: { type: "string", default: "0.02,0.1" },
  },
});
const TOKENS = Number(args.tokens), ROUNDS = Number(args.rounds);
const STREAMS = Number(args.streams), SECONDS = Number(args.seconds);
const THREADS = args.threads === undefined ? undefined : Number(args.threads);
if (![TOKENS, ROUNDS, STREAMS, SECONDS].every((n) => n > 0 && n <= 10_000)) {
  throw new RangeError(
    "Cannot run the routing bench: --tokens, --rounds, --streams, --seconds must be in (0, 10000]",
  );
}
const log = (line: string) => console.error(line);

/** A held-out prompt per task (fixtures/family/eval), first `n` of each. */
function taskPrompts(n: number): { task: string; prompt: string }[] {
  const dir = `${ROOT}fixtures/family/eval/`;
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort().flatMap((f) =>
    Deno.readTextFileSync(dir + f).split("\n").filter(Boolean).slice(0, n).map((l) => ({
      task: f.replace(/\.jsonl$/, ""),
      prompt: JSON.parse(l).prompt as string,
    }))
  );
}

// ---- 1. decode: routed against dense on the same model -------------------------------------

/** One decode configuration: per sequence its deltas; optional materialized weights. */
interface DecodePath {
  name: string;
  seqs: (RouteDeltas | undefined)[];
  weights?: ModelWeights;
}

/** Seconds of each of `TOKENS` decode steps after a prefill of `prompt`. */
async function stepTimes(model: Transformer, path: DecodePath, prompt: number[]) {
  const caches = path.seqs.map(() => model.newCache(prompt.length + TOKENS + 1));
  const opts = { weights: path.weights };
  try {
    await model.step(
      path.seqs.map((deltas, i) => ({
        ids: Int32Array.from(prompt),
        cache: caches[i],
        startPos: 0,
        deltas,
      })),
      opts,
    );
    const times: number[] = [];
    for (let t = 0; t < TOKENS; t++) {
      const s = performance.now();
      await model.step(
        path.seqs.map((deltas, i) => ({
          ids: Int32Array.of((t * 31 + i * 7 + 3) % model.config.vocabSize),
          cache: caches[i],
          startPos: prompt.length + t,
          deltas,
        })),
        opts,
      );
      times.push((performance.now() - s) / 1000);
    }
    return times;
  } finally {
    for (const c of caches) model.backend.free(c);
  }
}

const forcedRoute = (experts: string[], weights: number[]): RouteDecision => ({
  experts,
  weights,
  uncertainty: 0,
  mode: "forced",
  forced: true,
});

/** Decode rows of the bundle in `dir`: tokens/s of every path and its ratio to dense. */
async function measureDecode(backend: Backend, dir: string) {
  const storage = new LocalStorage(dir);
  const delta = await MediatorModel.open(storage, backend, { apply: "delta" });
  const mat = await MediatorModel.open(storage, backend, { apply: "materialize" });
  const names = delta.expertNames;
  const prompt = delta.tokenizer.encode(taskPrompts(1)[0].prompt);
  const held: { release(): void }[] = [];
  const prep = async (m: MediatorModel, experts: string[], weights: number[]) => {
    const p = await m.prepare(forcedRoute(experts, weights));
    held.push(p);
    return p;
  };
  const one = await prep(delta, [names[0]], [1]);
  const mix = await prep(delta, [names[0], names[1]], [0.5, 0.5]);
  const own = await Promise.all(names.slice(0, 4).map((e) => prep(delta, [e], [1])));
  const materialized = await prep(mat, [names[0]], [1]);
  const batch = own.length;
  const paths: (DecodePath & { batch: number; peer: string })[] = [
    { name: "dense", seqs: [undefined], batch: 1, peer: "dense" },
    { name: `delta ${names[0]}`, seqs: [one.deltas], batch: 1, peer: "dense" },
    { name: `delta ${names[0]}+${names[1]}`, seqs: [mix.deltas], batch: 1, peer: "dense" },
    {
      name: `materialize ${names[0]}`,
      seqs: [undefined],
      weights: materialized.weights,
      batch: 1,
      peer: "dense",
    },
    { name: `dense x${batch}`, seqs: own.map(() => undefined), batch, peer: `dense x${batch}` },
    {
      name: `delta x${batch} (${batch} routes)`,
      seqs: own.map((p) => p.deltas),
      batch,
      peer: `dense x${batch}`,
    },
  ];
  const times = new Map<string, number[]>(paths.map((p) => [p.name, []]));
  try {
    for (const p of paths) await stepTimes(delta.model, p, prompt); // warm-up, not counted
    for (let r = 0; r < ROUNDS; r++) {
      for (const p of paths) times.get(p.name)!.push(...await stepTimes(delta.model, p, prompt));
    }
  } finally {
    for (const h of held) h.release();
  }
  const tps = (name: string, batchSize: number) => batchSize / median(times.get(name)!);
  const rows = paths.map((p) => ({
    path: p.name,
    batch: p.batch,
    tokensPerSecond: tps(p.name, p.batch),
    vsDense: tps(p.name, p.batch) / tps(p.peer, p.batch),
  }));
  const density = delta.manifest.experts[0].blocks.map((b) => b.density);
  const result = {
    bundle: dir,
    routedUnits: delta.routedUnits.length,
    meanDensity: density.reduce((a, b) => a + b, 0) / Math.max(1, density.length),
    rows,
  };
  delta.dispose();
  mat.dispose();
  return result;
}

/** The fixture family merged at a fixed density, every block routed (for the density sweep). */
async function sweepBundle(density: number): Promise<string> {
  const { mergeMediator } = await import("../src/merge/mediator.ts");
  const { defaultMergeOptions } = await import("../src/merge/options.ts");
  const family = `${ROOT}fixtures/family`;
  const out = `${await Deno.makeTempDir({ prefix: "mediator-routing-bench-" })}/d${density}`;
  const d = defaultMergeOptions();
  await mergeMediator({
    ...d,
    base: `${family}/base`,
    experts: ["add", "reverse", "sort", "shift"].map((name) => ({
      name,
      model: `${family}/experts/${name}`,
      routerData: `${family}/router/${name}.jsonl`,
    })),
    out,
    policy: { name: "budget", params: { budget_models: 8 } },
    density: { mode: "fixed", density },
    router: { ...d.router, epochs: 20 },
    backend: "wasm",
  });
  return out;
}

// ---- 2. cold (fetched) against warm (cached) time to first token ---------------------------

/** TTFT of the first request of each task's route (cold) and of a second one (warm). */
async function measureColdWarm(backend: Backend, storage: () => ByteStorage) {
  const prompts = taskPrompts(2);
  const cold: number[] = [], warm: number[] = [], fetchMs: number[] = [];
  let fetchBytes = 0, fetches = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const engine = await MediatorEngine.open(storage(), backend, { backendChoice: "wasm" });
    try {
      for (let i = 0; i < prompts.length; i += 2) {
        for (const [k, list] of [[i, cold], [i + 1, warm]] as const) {
          const res = await engine.submit({
            promptIds: engine.tokenizer.encode(prompts[k].prompt),
            maxTokens: 1,
            sampling: { temperature: 0 },
          }).result;
          list.push(res.timeToFirstTokenMs ?? res.totalMs);
        }
      }
      const f = engine.bundle.experts.fetchStats;
      fetchMs.push(...f.latencyMs);
      fetchBytes += f.bytes;
      fetches += f.fetches;
    } finally {
      await engine.close();
    }
  }
  return {
    coldTtftMs: median(cold),
    warmTtftMs: median(warm),
    coldOverWarm: median(cold) / median(warm),
    blockFetches: fetches / ROUNDS,
    blockFetchMedianMs: median(fetchMs),
    bytesFetchedPerRound: fetchBytes / ROUNDS,
  };
}

/** Upload the bundle to a fresh bucket on the loopback Swift; returns the storage and cleanup. */
async function s3Bundle() {
  const server = await ensureS3Server();
  const bucket = uniqueBucketName();
  const admin = new S3Storage(`s3://${bucket}`, s3Options(server));
  await admin.createBucket();
  const location = `s3://${bucket}/bundle`;
  await uploadBundle(args.bundle!, new S3Storage(location, s3Options(server)));
  return {
    location,
    open: () => new S3Storage(location, s3Options(server)),
    cleanup: async () => {
      for (const f of await admin.list()) await admin.delete(f.path);
      await admin.deleteBucket();
    },
  };
}

// ---- main ----------------------------------------------------------------------------------

const backend = await createWasmBackend({ threads: THREADS });
const device = `${backend.info.name} (${backend.info.device})`;
log(`routing bench: ${args.bundle} on ${device}, ${TOKENS} decode steps x ${ROUNDS} rounds`);
const result: Record<string, unknown> = { bundle: args.bundle, backend: device };
let streamRows: StreamsResult[] = [];
try {
  const decode = [await measureDecode(backend, args.bundle!)];
  for (const density of args.sweep!.split(",").filter(Boolean).map(Number)) {
    const dir = await sweepBundle(density);
    try {
      decode.push(await measureDecode(backend, dir));
    } finally {
      await Deno.remove(dir.replace(/\/[^/]+$/, ""), { recursive: true });
    }
  }
  result.decode = decode;
  log("decode done");
  const local = await measureColdWarm(backend, () => new LocalStorage(args.bundle!));
  result.local = local;
  if (!args["no-s3"]) {
    const s3 = await s3Bundle().catch((e) => {
      log(`S3 part skipped: ${(e as Error).message}`);
      return undefined;
    });
    if (s3) {
      try {
        result.s3 = { location: s3.location, ...await measureColdWarm(backend, s3.open) };
      } finally {
        await s3.cleanup();
      }
    }
  }
  log("cold/warm done");
  const engine = await MediatorEngine.open(new LocalStorage(args.bundle!), backend, {
    backendChoice: device,
    maxBatch: Math.max(STREAMS, 1),
  });
  try {
    const chats = taskPrompts(8).map((p) => p.prompt.replace(/ =$/, ""));
    for (const n of [1, STREAMS]) {
      streamRows.push(await measureStreams(engine, chats, n, SECONDS / 2, 16));
    }
  } finally {
    await engine.close();
  }
  result.streams = streamRows;
} finally {
  backend.dispose();
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const decode = result.decode as Awaited<ReturnType<typeof measureDecode>>[];
console.log(`\nrouting bench: ${args.bundle} on ${device}`);
console.log("\n| bundle | density | decode path | batch | tokens/s | vs dense |");
console.log("|---|---:|---|---:|---:|---:|");
for (const d of decode) {
  const name = d.bundle === args.bundle ? d.bundle.split("/").pop() : "fixed-density merge";
  for (const r of d.rows) {
    console.log(
      `| ${name} | ${f(d.meanDensity, 2)} | ${r.path} | ${r.batch} | ${f(r.tokensPerSecond)} | ${
        f(r.vsDense, 2)
      }x |`,
    );
  }
}
console.log("\n| experts from | cold TTFT ms | warm TTFT ms | cold/warm | block fetch ms |");
console.log("|---|---:|---:|---:|---:|");
for (const key of ["local", "s3"]) {
  const c = result[key] as Awaited<ReturnType<typeof measureColdWarm>> | undefined;
  if (!c) continue;
  console.log(
    `| ${key} | ${f(c.coldTtftMs)} | ${f(c.warmTtftMs)} | ${f(c.coldOverWarm, 2)}x | ${
      f(c.blockFetchMedianMs, 2)
    } |`,
  );
}
console.log(
  "\n| streams | requests | errors | tokens/s | TTFT p50 ms | TTFT p99 ms | RSS MiB before -> after |",
);
console.log("|---:|---:|---:|---:|---:|---:|---|");
for (const s of streamRows) {
  console.log(
    `| ${s.streams} | ${s.requests} | ${s.errors} | ${f(s.tokensPerSecond)} | ${f(s.ttftP50Ms)} | ${
      f(s.ttftP99Ms)
    } | ${f(s.rssBeforeMiB)} -> ${f(s.rssAfterMiB)} |`,
  );
}
const outDir = `${ROOT}bench/out/`;
await Deno.mkdir(outDir, { recursive: true });
await Deno.writeTextFile(`${outDir}routing.json`, JSON.stringify(result, null, 2) + "\n");
console.log(`\nwrote ${outDir}routing.json`);
streamRows = streamRows.filter((s) => s.errors > 0);
if (streamRows.length > 0) Deno.exit(1);
