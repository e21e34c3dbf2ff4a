/**
 * The bundle engine behind the HTTP app (app.request, no sockets) on a real
 * bundle merged from the fixture family: routed answers against the held-out
 * answer key, forced experts against the fine-tuned checkpoints themselves,
 * delta against materialize, cache and fetch counters, /health and /metrics,
 * the Deno Deploy handler and the serve command's default bundle.
 */
import assert from "node:assert/strict";
import { ReferenceBackend } from "../src/backends/reference.ts";
import { generate } from "../src/model/generate.ts";
import { loadHfModel } from "../src/model/hf.ts";
import { freeModelWeights } from "../src/model/weights.ts";
import { createDeployHandler } from "../src/deploy.ts";
import { createApp } from "../src/server/app.ts";
import type { MediatorEngine } from "../src/server/mediator_engine.ts";
import { type EngineSpec, type OpenedEngine, openEngine } from "../src/server/open_engine.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { expertNames, FAMILY } from "./helpers/fixtures.ts";
import { buildTestBundle, heldOutExamples, isCorrect } from "./helpers/mediator_bundle.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

// Merged before any test starts, so the sanitizers see only what each test does.
const built = await buildTestBundle("family");
const TASKS = expertNames();

/** Open the test bundle on the reference backend, run `fn`, close. */
async function withBundleEngine(
  spec: Partial<EngineSpec>,
  fn: (opened: OpenedEngine, app: ReturnType<typeof createApp>) => Promise<void>,
): Promise<void> {
  const { dir } = built;
  const opened = await openEngine({ bundle: dir, backend: "reference", ...spec });
  try {
    await fn(opened, createApp(opened.engine));
  } finally {
    await opened.close();
  }
}

async function post(app: ReturnType<typeof createApp>, path: string, body: unknown) {
  return await app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

interface Completion {
  choices: { text: string }[];
  mediator: {
    experts: string[];
    weights: number[];
    uncertainty: number;
    forced: boolean;
    fallback?: string;
  };
}

test("MediatorEngine: routes held-out prompts to their task's expert and answers them", async () => {
  await withBundleEngine({}, async (opened, app) => {
    assert.equal(opened.engine.name, "family");
    assert.deepEqual([...opened.engine.experts].sort(), TASKS);
    const examples = heldOutExamples(10);
    // All at once: routes of four experts share the batched steps.
    const answers = await Promise.all(examples.map(async (ex) => {
      const res = await post(app, "/v1/completions", {
        model: "family",
        prompt: ex.prompt,
        max_tokens: 10,
        temperature: 0,
      });
      assert.equal(res.status, 200);
      const headers = res.headers;
      return { ex, body: await res.json() as Completion, headers };
    }));
    for (const task of TASKS) {
      const mine = answers.filter((a) => a.ex.task === task);
      const routedHere = mine.filter((a) => a.body.mediator.experts[0] === task).length;
      const correct = mine.filter((a) => isCorrect(a.body.choices[0].text, a.ex.answer)).length;
      assert.ok(routedHere >= 9, `${task}: ${routedHere}/10 routed to ${task}`);
      assert.ok(correct >= 7, `${task}: ${correct}/10 correct`);
    }
    for (const { body, headers } of answers) {
      const m = body.mediator;
      assert.equal(m.forced, false);
      assert.equal(m.fallback, undefined);
      assert.ok(m.uncertainty >= 0 && m.uncertainty <= 1);
      assert.equal(m.experts.length, m.weights.length);
      assert.ok(Math.abs(m.weights.reduce((a, b) => a + b, 0) - 1) < 1e-6);
      assert.equal(headers.get("x-mediator-experts"), m.experts.join(","));
      assert.equal(headers.get("x-mediator-forced"), "false");
    }
    // Ten concurrent requests per route share one fetch of each of its blocks.
    const used = new Set(answers.flatMap((a) => a.body.mediator.experts));
    const units = (opened.engine as MediatorEngine).bundle.routedUnits.length;
    const health = opened.engine.health();
    assert.equal((health.fetches as { count: number }).count, used.size * units);
    assert.equal((health.cache as { misses: number }).misses, used.size * units);
  });
});

test("MediatorEngine: NAME:EXPERT forces the expert, which answers as its fine-tune does", async () => {
  const backend = new ReferenceBackend();
  await withBundleEngine({}, async (_opened, app) => {
    for (const task of TASKS) {
      const ft = await loadHfModel(new LocalStorage(`${FAMILY}/experts/${task}`), backend);
      try {
        const examples = heldOutExamples(3).filter((e) => e.task === task);
        let same = 0;
        for (const ex of examples) {
          const ids = ft.tokenizer.encode(ex.prompt);
          const want = await generate(ft.model, ids, {
            maxTokens: 10,
            eosTokenIds: ft.config.eosTokenIds,
          });
          const res = await post(app, "/v1/completions", {
            model: `family:${task}`,
            prompt: ex.prompt,
            max_tokens: 10,
            temperature: 0,
          });
          const body = await res.json() as Completion;
          assert.equal(res.status, 200);
          assert.deepEqual(body.mediator, {
            experts: [task],
            weights: [1],
            uncertainty: 0,
            forced: true,
          });
          assert.equal(res.headers.get("x-mediator-forced"), "true");
          if (body.choices[0].text === ft.tokenizer.decode(want.outputIds)) same++;
        }
        assert.ok(same >= 2, `${task}: ${same}/3 answers equal the fine-tune's`);
      } finally {
        ft.model.dispose();
        freeModelWeights(backend, ft.model.weights);
      }
    }
    // Forcing another task's expert overrides the router.
    const other = TASKS.find((t) => t !== "add")!;
    const res = await post(app, "/v1/completions", {
      model: `family:${other}`,
      prompt: "add 12 34 =",
      max_tokens: 4,
      temperature: 0,
    });
    assert.deepEqual((await res.json() as Completion).mediator.experts, [other]);
  });
  backend.dispose();
});

test("MediatorEngine: an unknown expert is refused in the OpenAI error shape", async () => {
  await withBundleEngine({}, async (_opened, app) => {
    for (const model of ["family:nope", "other"]) {
      const res = await post(app, "/v1/chat/completions", {
        model,
        messages: [{ role: "user", content: "add 1 2" }],
        max_tokens: 2,
      });
      assert.equal(res.status, 404);
      const body = await res.json();
      assert.equal(body.error.code, "model_not_found");
      assert.equal(body.error.param, "model");
      assert.equal(body.error.type, "invalid_request_error");
      assert.match(body.error.message, /family:EXPERT/);
    }
    const models = await (await app.request("/v1/models")).json();
    assert.deepEqual(
      models.data.map((m: { id: string }) => m.id).sort(),
      ["family", ...TASKS.map((t) => `family:${t}`)].sort(),
    );
  });
});

test("MediatorEngine: delta and materialize give the same greedy tokens", async () => {
  const examples = heldOutExamples(2);
  const run = async (apply: "delta" | "materialize") => {
    const out: number[][] = [];
    await withBundleEngine({ apply }, async (opened) => {
      const results = await Promise.all(examples.map((ex) =>
        opened.engine.submit({
          promptIds: opened.engine.tokenizer.encode(ex.prompt),
          maxTokens: 10,
          sampling: { temperature: 0 },
        }).result
      ));
      for (const r of results) out.push(r.tokenIds);
      assert.equal((opened.engine.health().bundle as { apply: string }).apply, apply);
    });
    return out;
  };
  const delta = await run("delta");
  const materialized = await run("materialize");
  assert.deepEqual(materialized, delta);
  assert.ok(delta.every((ids) => ids.length > 0));
});

test("MediatorEngine: the first request of a route misses the cache, the next one hits", async () => {
  await withBundleEngine({}, async (opened, app) => {
    const engine = opened.engine as MediatorEngine;
    const units = engine.bundle.routedUnits.length;
    assert.ok(units > 0);
    const cache = async () => (await (await app.request("/health")).json()).cache;
    assert.deepEqual(await cache(), {
      bytes: 0,
      capacity: 256 << 20,
      entries: 0,
      hits: 0,
      misses: 0,
      evictions: 0,
    });
    const ask = () =>
      post(app, "/v1/completions", {
        model: "family:add",
        prompt: "add 11 22 =",
        max_tokens: 3,
        temperature: 0,
      }).then((r) => r.json());
    await ask();
    const first = await cache();
    assert.equal(first.misses, units);
    // The blocks may be pinned again to build the materialized route in the background.
    assert.ok(first.hits === 0 || first.hits === units, `hits ${first.hits}`);
    assert.equal(first.entries, units);
    assert.ok(first.bytes > 0);
    await ask();
    const second = await cache();
    assert.equal(second.misses, units, "the second request fetches nothing");
    assert.ok(second.hits >= units, `hits ${second.hits}`);

    const health = await (await app.request("/health")).json();
    assert.equal(health.kind, "bundle");
    assert.equal(health.bundle.location, new LocalStorage(built.dir).location);
    assert.deepEqual(health.bundle.routed_units, [...engine.bundle.routedUnits]);
    assert.equal(health.bundle.apply, "auto");
    assert.equal(health.fetches.count, units);
    assert.equal(health.fetches.failures, 0);

    const metrics = await (await app.request("/metrics")).text();
    assert.match(metrics, new RegExp(`^mediator_expert_cache_misses_total ${units}$`, "m"));
    assert.match(metrics, new RegExp(`^mediator_expert_cache_hits_total ${second.hits}$`, "m"));
    assert.match(metrics, new RegExp(`^mediator_expert_fetches_total ${units}$`, "m"));
    assert.match(
      metrics,
      new RegExp(`^mediator_expert_fetch_seconds_count\\{outcome="ok"\\} ${units}$`, "m"),
    );
    assert.match(metrics, /^mediator_route_total\{expert="add",how="forced"\} 2$/m);
  });
});

test("createDeployHandler: MEDIATOR_BUNDLE serves a bundle", async () => {
  const { dir } = built;
  const env = new Map([
    ["MEDIATOR_BUNDLE", dir],
    ["MEDIATOR_BACKEND", "reference"],
    ["MEDIATOR_ON_EXPERT_ERROR", "dense"],
  ]);
  const handler = createDeployHandler((name) => env.get(name));
  try {
    const health = await (await handler.fetch(new Request("http://deploy.test/health"))).json();
    assert.equal(health.kind, "bundle");
    assert.equal(health.model, "family");
    assert.equal(health.bundle.on_expert_error, "dense");
    const res = await handler.fetch(
      new Request("http://deploy.test/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "family", prompt: "shift a b c =", max_tokens: 8 }),
      }),
    );
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json() as Completion).mediator.experts, ["shift"]);
  } finally {
    await handler.close();
  }
});

test("serve: with no --bundle or --model serves bundles/demo; a missing bundle folder is refused", async () => {
  const serve = new URL("../src/cli/serve.ts", import.meta.url).pathname;
  const command = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", serve, ...args],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    });
  const missing = await command(["--bundle", `${built.dir}-missing`]).output();
  assert.equal(missing.code, 2);
  assert.match(new TextDecoder().decode(missing.stderr), /Cannot serve: --bundle .* not a folder/);
  const bad = await command(["--on-expert-error", "ignore"]).output();
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--on-expert-error must be error or dense/);

  const child = command(["--port", "0", "--backend", "reference"]).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  for (let i = 0; i < 100 && !out.includes("\n"); i++) {
    const { done, value } = await lines.read();
    if (done) break;
    out += value;
  }
  const m = /serving bundle (\S+) as '(\w+)' at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out);
  assert.ok(m, out);
  assert.ok(m[1].endsWith("/bundles/demo"), m[1]);
  const health = await (await fetch(`${m[3]}/health`)).json();
  assert.equal(health.kind, "bundle");
  assert.equal(health.model, m[2]);
  child.kill("SIGTERM");
  const [status] = await Promise.all([child.status, lines.cancel(), child.stderr.cancel()]);
  assert.equal(status.code, 0);
});
