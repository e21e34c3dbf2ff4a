import assert from "node:assert/strict";
import { StorageError } from "../src/errors.ts";
import type { LinearDelta, RouteDeltas, Transformer } from "../src/model/forward.ts";
import { generate, type GenerateOptions } from "../src/model/generate.ts";
import type { SamplingOptions } from "../src/model/sampling.ts";
import { type ModelWeights, type Projection, PROJECTIONS } from "../src/model/weights.ts";
import { denseRoute } from "../src/server/dense_engine.ts";
import type {
  GenerationEvent,
  GenerationHandle,
  RouteInfo,
  RouteResolver,
} from "../src/server/engine.ts";
import { QueueFullError } from "../src/server/errors.ts";
import { Scheduler, type SchedulerOptions } from "../src/server/scheduler.ts";
import { makeRng, randomSparse } from "./backend_suite.ts";
import { byteTokenizer, RANDOM_MODEL_CONFIG, randomModel } from "./helpers/server_model.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

const tokenizer = byteTokenizer();
const decode = (ids: number[]) => tokenizer.decode(ids);
const EOS = [RANDOM_MODEL_CONFIG.eos_token_id];

async function withScheduler(
  opts: Partial<SchedulerOptions>,
  fn: (s: Scheduler, model: Transformer) => Promise<void> | void,
): Promise<void> {
  const model = await randomModel();
  const scheduler = new Scheduler({
    model,
    eosTokenIds: EOS,
    decode,
    resolveRoute: denseRoute,
    ...opts,
  });
  try {
    await fn(scheduler, model);
  } finally {
    await scheduler.close();
    model.dispose();
  }
}

async function collect(handle: GenerationHandle): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [];
  for await (const ev of handle) events.push(ev);
  return events;
}

interface Case {
  prompt: string;
  maxTokens: number;
  sampling: SamplingOptions;
  stop?: string[];
}

function alone(model: Transformer, c: Case, extra: Partial<GenerateOptions> = {}) {
  return generate(model, tokenizer.encode(c.prompt), {
    maxTokens: c.maxTokens,
    ...c.sampling,
    eosTokenIds: EOS,
    stop: c.stop,
    decode,
    ...extra,
  });
}

const CASES: Case[] = [
  { prompt: "Hello wörld", maxTokens: 12, sampling: {} },
  { prompt: "abc", maxTokens: 20, sampling: { temperature: 0.8, seed: 7 } },
  {
    prompt: "The quick brown fox jumps",
    maxTokens: 5,
    sampling: { temperature: 1.2, topP: 0.9, seed: 11 },
  },
  {
    prompt: "x",
    maxTokens: 16,
    sampling: { temperature: 0.7, topK: 20, seed: 3, repetitionPenalty: 1.3 },
  },
  { prompt: "a longer prompt with several words, fed in chunks", maxTokens: 9, sampling: {} },
  { prompt: "zz", maxTokens: 14, sampling: { temperature: 1, seed: 99 } },
];

test("Scheduler: concurrent requests give the tokens of generate() run alone", async () => {
  await withScheduler({ maxBatch: 3, prefillTokensPerStep: 7 }, async (scheduler, model) => {
    const handles = CASES.map((c) =>
      scheduler.submit({
        promptIds: tokenizer.encode(c.prompt),
        maxTokens: c.maxTokens,
        sampling: c.sampling,
      })
    );
    const streams = await Promise.all(handles.map(collect));
    for (const [i, c] of CASES.entries()) {
      const expected = await alone(model, c);
      const events = streams[i];
      assert.equal(events[0].type, "route", "the route comes before any token");
      const done = events.at(-1)!;
      assert.equal(done.type, "done");
      const result = (done as { result: Awaited<GenerationHandle["result"]> }).result;
      assert.deepEqual(result.tokenIds, expected.outputIds, `case ${i}: ${c.prompt}`);
      assert.equal(result.finishReason, expected.finishReason);
      assert.equal(result.text, decode(expected.outputIds));
      const streamed = events.map((e) => e.type === "text" ? e.text : "").join("");
      assert.equal(streamed, result.text, "text deltas add up to the text");
      assert.deepEqual(result.usage, {
        promptTokens: tokenizer.encode(c.prompt).length,
        completionTokens: expected.outputIds.length,
      });
    }
    const stats = scheduler.stats();
    assert.equal(stats.completed, CASES.length);
    assert.equal(stats.running, 0);
  });
});

test("Scheduler: stop strings and EOS end generation as generate() does", async () => {
  await withScheduler({ maxBatch: 4 }, async (scheduler, model) => {
    const probe = await alone(model, { prompt: "stop here", maxTokens: 30, sampling: {} });
    const text = decode(probe.outputIds);
    const stop = [text.slice(6, 8), "never-appears"];
    const eosCase = probe.outputIds[4];
    const cases: Case[] = [
      { prompt: "stop here", maxTokens: 30, sampling: {}, stop },
      { prompt: "stop here", maxTokens: 30, sampling: { temperature: 0.9, seed: 5 }, stop },
    ];
    for (const c of cases) {
      const expected = await alone(model, c);
      const handle = scheduler.submit({
        promptIds: tokenizer.encode(c.prompt),
        maxTokens: c.maxTokens,
        sampling: c.sampling,
        stop: c.stop,
      });
      const events = await collect(handle);
      const result = await handle.result;
      assert.deepEqual(result.tokenIds, expected.outputIds);
      assert.equal(result.text, expected.text ?? decode(expected.outputIds));
      assert.equal(result.finishReason, expected.finishReason);
      for (const e of events) {
        if (e.type === "text") assert.ok(!e.text.includes(stop[0]), "a stop string is never sent");
      }
    }
    // A scheduler whose EOS is a token the model produces stops there, like generate().
    const eosScheduler = new Scheduler({
      model,
      eosTokenIds: [eosCase],
      decode,
      resolveRoute: denseRoute,
    });
    try {
      const expected = await generate(model, tokenizer.encode("stop here"), {
        maxTokens: 30,
        eosTokenIds: [eosCase],
      });
      const result = await eosScheduler.submit({
        promptIds: tokenizer.encode("stop here"),
        maxTokens: 30,
        sampling: {},
      }).result;
      assert.deepEqual(result.tokenIds, expected.outputIds);
      assert.equal(result.finishReason, "stop");
      assert.ok(!result.tokenIds.includes(eosCase));
    } finally {
      await eosScheduler.close();
    }
  });
});

test("Scheduler: cancellation frees the slot for the next request", async () => {
  await withScheduler({ maxBatch: 1 }, async (scheduler, model) => {
    const long = new AbortController();
    const waiting = new AbortController();
    const a = scheduler.submit({
      promptIds: tokenizer.encode("Hello wörld"),
      maxTokens: 200,
      sampling: {},
      signal: long.signal,
    });
    const b = scheduler.submit({ promptIds: tokenizer.encode("abc"), maxTokens: 6, sampling: {} });
    const c = scheduler.submit({
      promptIds: tokenizer.encode("zz"),
      maxTokens: 6,
      sampling: {},
      signal: waiting.signal,
    });
    waiting.abort(); // cancelled while waiting: never routed
    const cResult = await c.result;
    assert.equal(cResult.finishReason, "cancelled");
    assert.equal(cResult.tokenIds.length, 0);
    for await (const ev of a) {
      if (ev.type === "text") {
        long.abort();
        break;
      }
    }
    const aResult = await a.result;
    assert.equal(aResult.finishReason, "cancelled");
    assert.ok(aResult.tokenIds.length < 200);
    const bResult = await b.result;
    const expected = await alone(model, { prompt: "abc", maxTokens: 6, sampling: {} });
    assert.deepEqual(bResult.tokenIds, expected.outputIds);
    const stats = scheduler.stats();
    assert.equal(stats.running, 0);
    assert.equal(stats.waiting, 0);
    assert.equal(stats.cancelled, 2);
  });
});

test("Scheduler: a full queue refuses with QueueFullError", async () => {
  await withScheduler({ maxBatch: 1, maxQueue: 2 }, async (scheduler) => {
    const req = { promptIds: tokenizer.encode("abc"), maxTokens: 3, sampling: {} };
    const first = scheduler.submit(req);
    const second = scheduler.submit(req);
    assert.throws(() => scheduler.submit(req), QueueFullError);
    await Promise.all([first.result, second.result]);
    await scheduler.submit(req).result; // room again
  });
});

/** Random sparse deltas on a few projections, as a Mediator route would bring. */
function randomDeltas(model: Transformer, seed: number): RouteDeltas {
  const rng = makeRng(seed);
  const table = new Map<string, LinearDelta[]>();
  const targets: [number, Projection][] = [[0, "q"], [0, "gate"], [1, "down"], [1, "o"]];
  for (const [layer, proj] of targets) {
    const w = model.weights.layers[layer].linear[proj];
    const sparse = model.backend.uploadSparse(randomSparse(w.rows, w.cols, 0.2, rng));
    table.set(`${layer}.${proj}`, [{ sparse, scale: 0.7 }]);
  }
  return { get: (layer, proj) => table.get(`${layer}.${proj}`) };
}

test("Scheduler: per-request deltas share a batch; a broken route fails only its request", async () => {
  const model = await randomModel();
  const deltas = randomDeltas(model, 5);
  const sparseRoute: RouteInfo = { experts: ["add"], weights: [1], uncertainty: 0.1, forced: true };
  const resolveRoute: RouteResolver = (_ids, forced) => {
    if (forced === "add") return Promise.resolve({ route: sparseRoute, deltas });
    if (forced === "broken") {
      const route = { experts: ["broken"], weights: [1], uncertainty: 0, forced: true };
      const failing: RouteDeltas = {
        get: () => {
          throw new StorageError("Cannot load expert 'broken' layer 0: sha256 mismatch");
        },
      };
      return Promise.resolve({ route, deltas: failing });
    }
    if (forced === "missing") {
      return Promise.reject(new StorageError("Cannot fetch expert 'missing'"));
    }
    return Promise.resolve({ route: { experts: [], weights: [], uncertainty: 0, forced: false } });
  };
  let released = 0;
  const counting: RouteResolver = async (ids, forced, ctx) => {
    const r = await resolveRoute(ids, forced, ctx);
    return { ...r, release: () => released++ };
  };
  const scheduler = new Scheduler({ model, eosTokenIds: EOS, decode, resolveRoute: counting });
  try {
    const promptIds = tokenizer.encode("Hello wörld");
    const submit = (forcedExpert?: string, sampling: SamplingOptions = {}) =>
      scheduler.submit({ promptIds, maxTokens: 10, sampling, forcedExpert });
    const dense = submit();
    const sparse = submit("add");
    const broken = submit("broken");
    const missing = submit("missing");
    const sampled = submit("add", { temperature: 0.9, seed: 4 });
    const badId = scheduler.submit({ promptIds: [1, 100000], maxTokens: 3, sampling: {} });
    await assert.rejects(badId.result, RangeError);
    await assert.rejects(broken.result, StorageError);
    await assert.rejects(missing.result, StorageError);
    await assert.rejects(missing.route, StorageError);
    assert.deepEqual(await sparse.route, sparseRoute);
    const ids = [...promptIds];
    const want = async (opts: Partial<GenerateOptions>) =>
      (await generate(model, ids, { maxTokens: 10, eosTokenIds: EOS, ...opts })).outputIds;
    assert.deepEqual((await dense.result).tokenIds, await want({}));
    assert.deepEqual((await sparse.result).tokenIds, await want({ deltas }));
    assert.deepEqual(
      (await sampled.result).tokenIds,
      await want({ deltas, temperature: 0.9, seed: 4 }),
    );
    assert.notDeepEqual(await want({ deltas }), await want({}), "the deltas change the output");
    assert.equal(released, 5, "every resolved route is released once");
    assert.equal(scheduler.stats().failed, 3);
  } finally {
    await scheduler.close();
    model.dispose();
  }
});

test("Scheduler: requests with materialized weights run in their own group", async () => {
  await withScheduler({}, async (scheduler, model) => {
    const b = model.backend;
    const deltas = randomDeltas(model, 9);
    const merged: ModelWeights = {
      ...model.weights,
      layers: model.weights.layers.map((layer, l) => {
        const linear = { ...layer.linear };
        for (const p of PROJECTIONS) {
          const d = deltas.get(l, p);
          if (!d) continue;
          linear[p] = b.cloneWeight(layer.linear[p]);
          for (const t of d) b.scatterAdd(linear[p], t.sparse, t.scale);
        }
        return { ...layer, linear };
      }),
    };
    const route = { experts: ["m"], weights: [1], uncertainty: 0, forced: true };
    const materialized = new Scheduler({
      model,
      eosTokenIds: EOS,
      decode,
      resolveRoute: (_ids, forced) =>
        Promise.resolve(forced ? { route, weights: merged } : { route: { ...route, experts: [] } }),
    });
    try {
      const promptIds = tokenizer.encode("abc");
      const [m, d] = await Promise.all([
        materialized.submit({ promptIds, maxTokens: 8, sampling: {}, forcedExpert: "m" }).result,
        materialized.submit({ promptIds, maxTokens: 8, sampling: {} }).result,
      ]);
      const opts = { maxTokens: 8, eosTokenIds: EOS };
      assert.deepEqual(
        m.tokenIds,
        (await generate(model, promptIds, { ...opts, weights: merged })).outputIds,
      );
      assert.deepEqual(d.tokenIds, (await generate(model, promptIds, opts)).outputIds);
    } finally {
      await materialized.close();
    }
    // The plain scheduler is unaffected.
    const r = await scheduler.submit({ promptIds: [1, 2, 3], maxTokens: 0, sampling: {} }).result;
    assert.equal(r.finishReason, "length");
    assert.deepEqual(r.tokenIds, []);
  });
});

test("Scheduler: bad requests are refused before queueing", async () => {
  await withScheduler({ maxSequenceLength: 64 }, (scheduler) => {
    assert.throws(
      () => scheduler.submit({ promptIds: [], maxTokens: 3, sampling: {} }),
      RangeError,
    );
    assert.throws(
      () => scheduler.submit({ promptIds: [1], maxTokens: -1, sampling: {} }),
      RangeError,
    );
    assert.throws(
      () => scheduler.submit({ promptIds: [1], maxTokens: 64, sampling: {} }),
      RangeError,
    );
    assert.throws(
      () => scheduler.submit({ promptIds: [1], maxTokens: 3, sampling: { temperature: -1 } }),
      RangeError,
    );
    assert.equal(scheduler.stats().waiting, 0);
  });
});

test("Scheduler: a detokenizer error fails only its request and the loop keeps going", async () => {
  const model = await randomModel();
  const prompts = ["Hello wörld", "abc", "zz", "The quick brown fox"];
  const outputs = await Promise.all(
    prompts.map(async (p) =>
      (await generate(model, tokenizer.encode(p), { maxTokens: 6, eosTokenIds: EOS })).outputIds
    ),
  );
  // A token only the first prompt produces; the tokenizer refuses ids beyond its vocabulary,
  // as it does for the padding rows of a model's embedding table.
  const bad = outputs[0].find((id) => outputs.slice(1).every((o) => !o.includes(id)))!;
  assert.ok(bad !== undefined);
  const scheduler = new Scheduler({
    model,
    eosTokenIds: EOS,
    decode: (ids) => tokenizer.decode(ids.map((id) => (id === bad ? 1_000_000 : id))),
    resolveRoute: denseRoute,
  });
  try {
    const handles = prompts.map((p) =>
      scheduler.submit({ promptIds: tokenizer.encode(p), maxTokens: 6, sampling: {} })
    );
    await assert.rejects(handles[0].result, RangeError);
    for (let i = 1; i < prompts.length; i++) {
      assert.deepEqual((await handles[i].result).tokenIds, outputs[i]);
    }
    const after = await scheduler.submit({ promptIds: [1, 2], maxTokens: 2, sampling: {} }).result;
    assert.equal(after.tokenIds.length <= 2, true);
    assert.equal(scheduler.stats().failed, 1);
  } finally {
    await scheduler.close();
    model.dispose();
  }
});
