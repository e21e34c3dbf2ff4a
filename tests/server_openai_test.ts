import assert from "node:assert/strict";
import OpenAI from "openai";
import { ReferenceBackend } from "../src/backends/reference.ts";
import type { Transformer } from "../src/model/forward.ts";
import { generate } from "../src/model/generate.ts";
import { loadHfModel } from "../src/model/hf.ts";
import { freeModelWeights } from "../src/model/weights.ts";
import { createApp } from "../src/server/app.ts";
import { DenseEngine, engineTokenizer } from "../src/server/dense_engine.ts";
import type { Engine } from "../src/server/engine.ts";
import { LocalStorage } from "../src/storage/local.ts";
import type { TextTokenizer } from "../src/tokenizer/tokenizer.ts";
import { FAMILY } from "./helpers/fixtures.ts";
import { byteTokenizer, RANDOM_MODEL_CONFIG, randomModel } from "./helpers/server_model.ts";

const KEY = "sk-local";
const HAS_FIXTURES = (() => {
  try {
    return Deno.statSync(`${FAMILY}/base/config.json`).isFile;
  } catch {
    return false;
  }
})();

/** Serve `engine` on loopback port 0 and hand an OpenAI client to `fn`. */
async function withServer(
  engine: Engine,
  fn: (client: OpenAI, baseURL: string) => Promise<void>,
): Promise<void> {
  const app = createApp(engine, { apiKey: KEY });
  const stop = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: stop.signal, onListen: () => {} },
    app.fetch,
  );
  const baseURL = `http://127.0.0.1:${server.addr.port}/v1`;
  try {
    await fn(new OpenAI({ baseURL, apiKey: KEY, maxRetries: 0 }), baseURL);
  } finally {
    stop.abort();
    await server.finished;
  }
}

/** The reference: generate() on an independently held model, greedy. */
interface Reference {
  model: Transformer;
  tokenizer: TextTokenizer;
  eos: number[];
}

async function greedy(ref: Reference, ids: number[], maxTokens: number) {
  const r = await generate(ref.model, ids, { maxTokens, eosTokenIds: ref.eos });
  return {
    text: ref.tokenizer.decode(r.outputIds),
    tokens: r.outputIds.length,
    finish: r.finishReason,
  };
}

/** Chat and completions, streamed and not, against generate() on the same weights. */
async function clientSuite(
  engine: Engine,
  ref: Reference,
  prompts: string[],
  maxTokens: number,
  chatContent: (prompt: string) => string = (p) => p,
): Promise<void> {
  await withServer(engine, async (client) => {
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === engine.name));

    for (const prompt of prompts) {
      const messages = [{ role: "user" as const, content: chatContent(prompt) }];
      const chatIds = ref.tokenizer.encode(
        ref.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }),
        { addSpecialTokens: false },
      );
      const want = await greedy(ref, chatIds, maxTokens);
      const { data, response } = await client.chat.completions.create({
        model: engine.name,
        messages,
        max_tokens: maxTokens,
        temperature: 0,
      }).withResponse();
      assert.equal(data.choices[0].message.content, want.text, `chat: ${prompt}`);
      assert.equal(data.choices[0].finish_reason, want.finish);
      assert.equal(data.usage?.prompt_tokens, chatIds.length);
      assert.equal(data.usage?.completion_tokens, want.tokens);
      assert.equal(data.usage?.total_tokens, chatIds.length + want.tokens);
      const mediator = (data as unknown as { mediator: unknown }).mediator;
      assert.deepEqual(mediator, { experts: [], weights: [], uncertainty: 0, forced: false });
      assert.equal(response.headers.get("x-mediator-experts"), "");
      assert.equal(Number(response.headers.get("x-mediator-uncertainty")), 0);

      const stream = await client.chat.completions.create({
        model: "auto",
        messages,
        max_tokens: maxTokens,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "", first = true, finish: string | null = null, usage;
      for await (const chunk of stream) {
        if (first) {
          assert.ok(
            (chunk as unknown as { mediator?: unknown }).mediator,
            "route in the first chunk",
          );
          assert.equal(chunk.choices[0].delta.role, "assistant");
          first = false;
        }
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices[0];
        if (!choice) continue;
        text += choice.delta.content ?? "";
        finish = choice.finish_reason ?? finish;
      }
      assert.equal(text, want.text, `streamed chat: ${prompt}`);
      assert.equal(finish, want.finish);
      assert.equal(usage?.completion_tokens, want.tokens);

      const textIds = ref.tokenizer.encode(prompt);
      const wantText = await greedy(ref, textIds, maxTokens);
      const completion = await client.completions.create({
        model: engine.name,
        prompt,
        max_tokens: maxTokens,
        temperature: 0,
      });
      assert.equal(completion.choices[0].text, wantText.text, `completion: ${prompt}`);
      assert.equal(completion.usage?.prompt_tokens, textIds.length);
      assert.equal(completion.usage?.completion_tokens, wantText.tokens);

      const byIds = await client.completions.create({
        model: engine.name,
        prompt: textIds,
        max_tokens: maxTokens,
        temperature: 0,
        stream: true,
      });
      let streamed = "";
      for await (const chunk of byIds) streamed += chunk.choices[0]?.text ?? "";
      assert.equal(streamed, wantText.text, `streamed completion by ids: ${prompt}`);
    }

    await assert.rejects(
      client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
      (e: unknown) =>
        e instanceof OpenAI.APIError && e.status === 404 && e.code === "model_not_found",
    );
    const wrongKey = new OpenAI({ baseURL: client.baseURL, apiKey: "sk-wrong", maxRetries: 0 });
    await assert.rejects(
      wrongKey.models.list(),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 401,
    );
  });
}

Deno.test({
  name: "OpenAI client: chat and completions on a random model match generate()",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const tokenizer = byteTokenizer();
    const eos = [RANDOM_MODEL_CONFIG.eos_token_id];
    const served = await randomModel();
    const engine = new DenseEngine({
      name: "tiny",
      model: served,
      tokenizer: engineTokenizer(tokenizer),
      eosTokenIds: eos,
      backendChoice: "reference",
      maxBatch: 2,
    });
    const ref = { model: await randomModel(), tokenizer, eos };
    try {
      await clientSuite(engine, ref, ["Hello wörld", "2+2=", "reverse: abc"], 10);
    } finally {
      await engine.close();
    }
  },
});

Deno.test({
  name: "OpenAI client: greedy answers of a fixture expert match generate()",
  ignore: !HAS_FIXTURES,
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const dir = `${FAMILY}/experts/add`;
    const engineBackend = new ReferenceBackend();
    const engine = await DenseEngine.open(new LocalStorage(dir), engineBackend, {
      backendChoice: "reference",
      name: "add",
    });
    const loaded = await loadHfModel(new LocalStorage(dir), new ReferenceBackend());
    const eos = [...new Set([...loaded.config.eosTokenIds, ...loaded.tokenizer.eosTokenIds])];
    const prompts: string[] = [];
    for (const task of ["add", "add", "reverse", "sort"]) {
      const lines = Deno.readTextFileSync(`${FAMILY}/eval/${task}.jsonl`).split("\n");
      prompts.push(JSON.parse(lines[prompts.length]).prompt);
    }
    // The chat template turns a user message "add 34 57" into the task prompt "<s>add 34 57 =".
    const chatContent = (p: string) => p.replace(/ =$/, "");
    const tok = loaded.tokenizer;
    for (const p of prompts) {
      const chat = tok.applyChatTemplate([{ role: "user", content: chatContent(p) }], {
        addGenerationPrompt: true,
      });
      assert.deepEqual(tok.encode(chat, { addSpecialTokens: false }), tok.encode(p));
    }
    try {
      await clientSuite(engine, { ...loaded, eos }, prompts, 10, chatContent);
    } finally {
      await engine.close();
      loaded.model.dispose();
      freeModelWeights(loaded.model.backend, loaded.model.weights);
    }
  },
});

Deno.test({
  name: "Server: a client that disconnects mid-stream cancels its request",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const engine = new DenseEngine({
      name: "tiny",
      model: await randomModel(),
      tokenizer: engineTokenizer(byteTokenizer()),
      eosTokenIds: [],
      backendChoice: "reference",
      maxBatch: 1,
    });
    try {
      await withServer(engine, async (client, baseURL) => {
        const stream = await client.completions.create({
          model: "tiny",
          prompt: "Hello",
          max_tokens: 240,
          stream: true,
        });
        let chunks = 0;
        for await (const _ of stream) {
          if (++chunks === 3) break; // leaving the loop aborts the HTTP request
        }
        // Wait (bounded) for the server to notice the disconnect and free the slot.
        let running = -1;
        for (let i = 0; i < 200; i++) {
          running = (engine.health().queue as { running: number }).running;
          if (running === 0) break;
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.equal(running, 0, "the slot is freed");
        const metrics = await (await fetch(baseURL.replace("/v1", "/metrics"))).text();
        assert.match(metrics, /mediator_requests_finished_total\{reason="cancelled"\} 1/);
        const tokens = Number(/mediator_completion_tokens_total (\d+)/.exec(metrics)?.[1]);
        assert.ok(tokens < 240, `generation stopped early (${tokens} tokens)`);
      });
    } finally {
      await engine.close();
    }
  },
});
