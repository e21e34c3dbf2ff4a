/**
 * The official OpenAI client (npm `openai`) against a bundle served by
 * `Deno.serve` on loopback: chat and text completions, whole and streamed,
 * the `mediator` route in bodies, first chunks and headers, and the fixture
 * experts' answers to their own tasks (held-out answer key).
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { createApp } from "../src/server/app.ts";
import { type OpenedEngine, openEngine } from "../src/server/open_engine.ts";
import { expertNames } from "./helpers/fixtures.ts";
import { buildTestBundle, heldOutExamples, isCorrect } from "./helpers/mediator_bundle.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

// Merged before any test starts, so the sanitizers see only what each test does.
const built = await buildTestBundle("family");
const KEY = "sk-bundle";
const TASKS = expertNames();
const EXAMPLES = heldOutExamples(3);

/** The route field the server adds to bodies and first chunks. */
interface Mediator {
  experts: string[];
  weights: number[];
  uncertainty: number;
  forced: boolean;
  fallback?: string;
}

function mediatorOf(x: unknown): Mediator {
  const m = (x as { mediator?: Mediator }).mediator;
  assert.ok(m, "response carries the mediator route");
  return m;
}

/** Serve the bundle on 127.0.0.1, port 0, and hand an OpenAI client to `fn`. */
async function withBundleServer(fn: (client: OpenAI, opened: OpenedEngine) => Promise<void>) {
  const opened = await openEngine({ bundle: built.dir, backend: "reference" });
  const stop = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen: () => {} },
    createApp(opened.engine, { apiKey: KEY }).fetch,
  );
  try {
    const baseURL = `http://127.0.0.1:${server.addr.port}/v1`;
    await fn(new OpenAI({ baseURL, apiKey: KEY, maxRetries: 0 }), opened);
  } finally {
    stop.abort();
    await server.finished;
    await opened.close();
  }
}

/** Per task, how many answers were right (the fixture protocol's exact match). */
function tally(rows: { task: string; ok: boolean }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of TASKS) out[t] = rows.filter((r) => r.task === t && r.ok).length;
  return out;
}

test("openai client: chat completions on a bundle, whole and streamed, with routes", async () => {
  await withBundleServer(async (client) => {
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === "family:add"));
    const rows: { task: string; ok: boolean }[] = [];
    for (const ex of EXAMPLES) {
      // The chat template renders a user message as the task prompt ("<s>" + content + " =").
      const messages = [{ role: "user" as const, content: ex.prompt.replace(/ =$/, "") }];
      const { data, response } = await client.chat.completions.create({
        model: "family",
        messages,
        max_tokens: 10,
        temperature: 0,
      }).withResponse();
      const text = data.choices[0].message.content ?? "";
      const route = mediatorOf(data);
      assert.equal(route.experts[0], ex.task, `route of '${ex.prompt}'`);
      assert.equal(route.forced, false);
      assert.equal(response.headers.get("x-mediator-experts"), route.experts.join(","));
      assert.equal(
        Number(response.headers.get("x-mediator-uncertainty")).toFixed(4),
        route.uncertainty.toFixed(4),
      );
      rows.push({ task: ex.task, ok: isCorrect(text, ex.answer) });

      const stream = await client.chat.completions.create({
        model: "auto",
        messages,
        max_tokens: 10,
        temperature: 0,
        stream: true,
      });
      let streamed = "", first: Mediator | undefined, chunks = 0;
      for await (const chunk of stream) {
        if (chunks++ === 0) {
          first = mediatorOf(chunk);
          assert.equal(chunk.choices[0].delta.role, "assistant");
        }
        streamed += chunk.choices[0]?.delta.content ?? "";
      }
      assert.deepEqual(first, route);
      assert.equal(streamed, text);
    }
    const correct = tally(rows);
    for (const t of TASKS) assert.ok(correct[t] >= 2, `${t}: ${correct[t]}/3 correct`);
  });
});

test("openai client: text completions on a bundle, routed and forced, whole and streamed", async () => {
  await withBundleServer(async (client) => {
    const rows: { task: string; ok: boolean }[] = [];
    for (const ex of EXAMPLES) {
      const { data, response } = await client.completions.create({
        model: `family:${ex.task}`,
        prompt: ex.prompt,
        max_tokens: 10,
        temperature: 0,
      }).withResponse();
      assert.deepEqual(mediatorOf(data), {
        experts: [ex.task],
        weights: [1],
        uncertainty: 0,
        forced: true,
      });
      assert.equal(response.headers.get("x-mediator-forced"), "true");
      assert.equal(response.headers.get("x-mediator-weights"), "1.000000");
      rows.push({ task: ex.task, ok: isCorrect(data.choices[0].text, ex.answer) });

      const stream = await client.completions.create({
        model: "family",
        prompt: ex.prompt,
        max_tokens: 10,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
      let streamed = "", first: Mediator | undefined, chunks = 0, usage;
      for await (const chunk of stream) {
        if (chunks++ === 0) first = mediatorOf(chunk);
        if (chunk.usage) usage = chunk.usage;
        streamed += chunk.choices[0]?.text ?? "";
      }
      assert.ok(first);
      assert.equal(first.forced, false);
      assert.equal(first.experts[0], ex.task);
      // Routed top-1 and forced run the same weights: same answer.
      if (first.experts.length === 1) assert.equal(streamed, data.choices[0].text);
      assert.ok(usage && usage.completion_tokens > 0);
    }
    const correct = tally(rows);
    for (const t of TASKS) assert.ok(correct[t] >= 2, `${t}: ${correct[t]}/3 correct`);
  });
});

test("openai client: an unknown expert raises the client's NotFoundError", async () => {
  await withBundleServer(async (client) => {
    await assert.rejects(
      client.chat.completions.create({
        model: "family:nope",
        messages: [{ role: "user", content: "add 1 2" }],
      }),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.NotFoundError);
        assert.equal(e.code, "model_not_found");
        return true;
      },
    );
  });
});
