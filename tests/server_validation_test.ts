import assert from "node:assert/strict";
import { createApp } from "../src/server/app.ts";
import { randomEngine } from "./helpers/server_model.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

const KEY = "sk-test-key";
const LIMIT = 4096;
const chat = (extra: Record<string, unknown>) => ({
  model: "tiny",
  messages: [{ role: "user", content: "hi" }],
  ...extra,
});
const completion = (extra: Record<string, unknown>) => ({ model: "tiny", prompt: "hi", ...extra });

interface BadCase {
  name: string;
  path?: string;
  method?: string;
  /** An object is sent as JSON; a string as is. */
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
  param?: string | null;
  code?: string | null;
}

const CHAT = "/v1/chat/completions";
const TEXT = "/v1/completions";

const BAD: BadCase[] = [
  { name: "malformed JSON", body: '{"model": "tiny",', status: 400, code: "invalid_json" },
  { name: "empty body", body: "", status: 400, code: "invalid_json" },
  { name: "array body", body: "[1, 2]", status: 400, code: "invalid_json" },
  { name: "string body", body: '"hello"', status: 400, code: "invalid_json" },
  {
    name: "missing model",
    body: { messages: [{ role: "user", content: "x" }] },
    status: 400,
    param: "model",
  },
  {
    name: "model not a string",
    body: chat({ model: 7 }),
    status: 400,
    param: "model",
    code: "invalid_type",
  },
  { name: "unknown model", body: chat({ model: "gpt-4" }), status: 404, code: "model_not_found" },
  {
    name: "unknown expert",
    body: chat({ model: "tiny:add" }),
    status: 404,
    code: "model_not_found",
  },
  { name: "missing messages", body: { model: "tiny" }, status: 400, param: "messages" },
  { name: "messages not an array", body: chat({ messages: "hi" }), status: 400, param: "messages" },
  { name: "empty messages", body: chat({ messages: [] }), status: 400, param: "messages" },
  {
    name: "message not an object",
    body: chat({ messages: ["hi"] }),
    status: 400,
    param: "messages[0]",
  },
  {
    name: "unknown role",
    body: chat({ messages: [{ role: "wizard", content: "x" }] }),
    status: 400,
    param: "messages[0].role",
  },
  {
    name: "tool role",
    body: chat({ messages: [{ role: "tool", content: "x" }] }),
    status: 400,
    param: "messages[0].role",
  },
  {
    name: "content a number",
    body: chat({ messages: [{ role: "user", content: 5 }] }),
    status: 400,
    param: "messages[0].content",
  },
  {
    name: "image content part",
    body: chat({ messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] }),
    status: 400,
    param: "messages[0].content[0]",
  },
  {
    name: "unknown message field",
    body: chat({ messages: [{ role: "user", content: "x", mood: "happy" }] }),
    status: 400,
    param: "mood",
  },
  { name: "n = 2", body: chat({ n: 2 }), status: 400, param: "n" },
  { name: "n = 0", body: chat({ n: 0 }), status: 400, param: "n" },
  { name: "n a string", body: chat({ n: "1" }), status: 400, param: "n", code: "invalid_type" },
  { name: "negative max_tokens", body: chat({ max_tokens: -1 }), status: 400, param: "max_tokens" },
  { name: "zero max_tokens", body: chat({ max_tokens: 0 }), status: 400, param: "max_tokens" },
  {
    name: "fractional max_tokens",
    body: chat({ max_tokens: 1.5 }),
    status: 400,
    param: "max_tokens",
  },
  {
    name: "max_tokens a string",
    body: chat({ max_tokens: "9" }),
    status: 400,
    code: "invalid_type",
  },
  { name: "huge max_tokens", body: chat({ max_tokens: 1e9 }), status: 400, param: "max_tokens" },
  {
    name: "max_completion_tokens above the limit",
    body: chat({ max_completion_tokens: 65 }),
    status: 400,
    param: "max_completion_tokens",
  },
  {
    name: "temperature above 2",
    body: chat({ temperature: 2.5 }),
    status: 400,
    param: "temperature",
  },
  {
    name: "negative temperature",
    body: chat({ temperature: -0.1 }),
    status: 400,
    param: "temperature",
  },
  {
    name: "temperature a string",
    body: chat({ temperature: "hot" }),
    status: 400,
    code: "invalid_type",
  },
  { name: "top_p above 1", body: chat({ top_p: 1.5 }), status: 400, param: "top_p" },
  { name: "negative top_p", body: chat({ top_p: -1 }), status: 400, param: "top_p" },
  { name: "negative top_k", body: chat({ top_k: -1 }), status: 400, param: "top_k" },
  { name: "zero repetition_penalty", body: chat({ repetition_penalty: 0 }), status: 400 },
  { name: "stop a number", body: chat({ stop: 5 }), status: 400, param: "stop" },
  { name: "stop with a number", body: chat({ stop: ["a", 1] }), status: 400, param: "stop" },
  {
    name: "five stop strings",
    body: chat({ stop: ["a", "b", "c", "d", "e"] }),
    status: 400,
    param: "stop",
  },
  { name: "empty stop string", body: chat({ stop: [""] }), status: 400, param: "stop" },
  { name: "fractional seed", body: chat({ seed: 1.5 }), status: 400, param: "seed" },
  { name: "seed a string", body: chat({ seed: "x" }), status: 400, param: "seed" },
  { name: "stream a string", body: chat({ stream: "yes" }), status: 400, param: "stream" },
  {
    name: "stream_options without stream",
    body: chat({ stream_options: { include_usage: true } }),
    status: 400,
    param: "stream_options",
  },
  {
    name: "include_usage a string",
    body: chat({ stream: true, stream_options: { include_usage: "yes" } }),
    status: 400,
    param: "include_usage",
  },
  {
    name: "unknown field",
    body: chat({ foo: 1 }),
    status: 400,
    param: "foo",
    code: "unknown_parameter",
  },
  {
    name: "frequency_penalty",
    body: chat({ frequency_penalty: 0.5 }),
    status: 400,
    code: "unsupported_parameter",
  },
  { name: "logprobs", body: chat({ logprobs: true }), status: 400, param: "logprobs" },
  { name: "tools", body: chat({ tools: [{ type: "function" }] }), status: 400, param: "tools" },
  {
    name: "prompt longer than the context",
    body: chat({ messages: [{ role: "user", content: "a".repeat(200) }] }),
    status: 400,
    code: "context_length_exceeded",
  },
  {
    name: "prompt + max_tokens beyond the context",
    body: chat({ messages: [{ role: "user", content: "a".repeat(90) }], max_tokens: 60 }),
    status: 400,
    code: "context_length_exceeded",
  },
  {
    name: "body too large",
    body: chat({ messages: [{ role: "user", content: "a".repeat(LIMIT) }] }),
    status: 413,
  },
  {
    name: "missing API key",
    body: chat({}),
    headers: { authorization: "" },
    status: 401,
    code: "invalid_api_key",
  },
  {
    name: "wrong API key",
    body: chat({}),
    headers: { authorization: "Bearer sk-wrong" },
    status: 401,
    code: "invalid_api_key",
  },
  { name: "GET on chat", method: "GET", status: 405 },
  { name: "PUT on completions", path: TEXT, method: "PUT", body: completion({}), status: 405 },
  { name: "POST on models", path: "/v1/models", body: {}, status: 405 },
  { name: "unknown path", path: "/v2/chat", body: chat({}), status: 404 },
  { name: "unknown model id", path: "/v1/models/gpt-4", method: "GET", status: 404 },
  { name: "missing prompt", path: TEXT, body: { model: "tiny" }, status: 400, param: "prompt" },
  {
    name: "token id out of range",
    path: TEXT,
    body: completion({ prompt: [1, 99999] }),
    status: 400,
  },
  { name: "negative token id", path: TEXT, body: completion({ prompt: [-1] }), status: 400 },
  {
    name: "two prompts",
    path: TEXT,
    body: completion({ prompt: ["a", "b"] }),
    status: 400,
    param: "prompt",
  },
  { name: "two token prompts", path: TEXT, body: completion({ prompt: [[1], [2]] }), status: 400 },
  {
    name: "prompt an object",
    path: TEXT,
    body: completion({ prompt: {} }),
    status: 400,
    param: "prompt",
  },
  {
    name: "empty prompt",
    path: TEXT,
    body: completion({ prompt: "" }),
    status: 400,
    param: "prompt",
  },
  { name: "echo", path: TEXT, body: completion({ echo: true }), status: 400, param: "echo" },
  {
    name: "best_of 2",
    path: TEXT,
    body: completion({ best_of: 2 }),
    status: 400,
    param: "best_of",
  },
  { name: "suffix", path: TEXT, body: completion({ suffix: "x" }), status: 400, param: "suffix" },
  {
    name: "token prompt longer than the context",
    path: TEXT,
    body: completion({ prompt: new Array(200).fill(97) }),
    status: 400,
    code: "context_length_exceeded",
  },
  { name: "messages on completions", path: TEXT, body: chat({}), status: 400, param: "messages" },
];

function send(app: ReturnType<typeof createApp>, c: BadCase): Promise<Response> {
  const method = c.method ?? "POST";
  const body = c.body === undefined
    ? undefined
    : typeof c.body === "string"
    ? c.body
    : JSON.stringify(c.body);
  return Promise.resolve(app.request(c.path ?? CHAT, {
    method,
    body: method === "GET" ? undefined : body,
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}`, ...c.headers },
  }));
}

test("createApp: every bad request gets its 4xx in the OpenAI error shape", async () => {
  const engine = await randomEngine({ contextLength: 128, maxTokensLimit: 64 });
  try {
    const app = createApp(engine, { apiKey: KEY, bodyLimitBytes: LIMIT });
    assert.ok(BAD.length >= 50);
    for (const c of BAD) {
      const res = await send(app, c);
      const text = await res.text();
      assert.equal(res.status, c.status, `${c.name}: ${text}`);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/, c.name);
      const body = JSON.parse(text);
      assert.deepEqual(Object.keys(body), ["error"], c.name);
      const e = body.error;
      assert.deepEqual(Object.keys(e).sort(), ["code", "message", "param", "type"], c.name);
      assert.equal(typeof e.message, "string");
      assert.ok(e.message.length > 10, c.name);
      assert.equal(typeof e.type, "string");
      if (c.param !== undefined) assert.equal(e.param, c.param, `${c.name}: ${e.message}`);
      if (c.code !== undefined) assert.equal(e.code, c.code, `${c.name}: ${e.message}`);
      if (c.status === 405) assert.ok(res.headers.get("allow"), `${c.name}: Allow header`);
    }
    // The server still answers a valid request afterwards.
    const ok = await send(app, {
      name: "valid",
      body: chat({ max_tokens: 4, temperature: 0 }),
      status: 200,
    });
    assert.equal(ok.status, 200);
    const body = await ok.json();
    assert.equal(body.object, "chat.completion");
    assert.equal(body.usage.completion_tokens <= 4, true);
    const metrics = await (await app.request("/metrics")).text();
    assert.match(
      metrics,
      /mediator_http_requests_total\{path="\/v1\/chat\/completions",status="400"\} \d+/,
    );
    assert.match(
      metrics,
      /mediator_http_requests_total\{path="\/v1\/chat\/completions",status="200"\} 1/,
    );
  } finally {
    await engine.close();
  }
});

test("createApp: a full queue answers 429 and the server recovers", async () => {
  const engine = await randomEngine({ maxBatch: 1, maxQueue: 1 });
  try {
    const app = createApp(engine);
    const hold = new AbortController();
    const promptIds = [72, 105];
    const running = engine.submit({ promptIds, maxTokens: 200, sampling: {}, signal: hold.signal });
    await running.route; // holds the only slot
    const queued = engine.submit({ promptIds, maxTokens: 3, sampling: {}, signal: hold.signal });
    const res = await app.request(CHAT, {
      method: "POST",
      body: JSON.stringify(chat({ max_tokens: 3 })),
    });
    assert.equal(res.status, 429);
    const body = await res.json();
    assert.equal(body.error.code, "rate_limit_exceeded");
    hold.abort();
    assert.equal((await running.result).finishReason, "cancelled");
    assert.equal((await queued.result).finishReason, "cancelled");
    const again = await app.request(CHAT, {
      method: "POST",
      body: JSON.stringify(chat({ max_tokens: 3 })),
    });
    assert.equal(again.status, 200);
    await again.body?.cancel();
  } finally {
    await engine.close();
  }
});
