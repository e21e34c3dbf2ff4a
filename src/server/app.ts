/**
 * The OpenAI-compatible HTTP API as a hono app:
 *   POST /v1/chat/completions, POST /v1/completions (JSON or SSE stream),
 *   GET /v1/models, GET /v1/models/:id, GET /health, GET /metrics.
 * Requests are validated field by field; every error, wherever it is thrown,
 * goes through the one `onError` mapper into the OpenAI error shape.
 */
import { Hono } from "hono";
import type { Context, Next } from "hono";
import { runCompletion } from "./completions.ts";
import type { Engine } from "./engine.ts";
import { ApiError, toErrorResponse } from "./errors.ts";
import { MetricsRegistry } from "./metrics.ts";
import { ServerMetrics } from "./server_metrics.ts";
import { parseChatRequest, parseCompletionRequest } from "./validate.ts";

/** Options of `createApp`. */
export interface AppOptions {
  /** When set, /v1/* requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB); larger gets 413. */
  bodyLimitBytes?: number;
  /** Registry for /metrics (a new one by default). */
  registry?: MetricsRegistry;
}

/** 1 MiB. */
export const DEFAULT_BODY_LIMIT = 1 << 20;

const ROUTES: Record<string, string[]> = {
  "/v1/chat/completions": ["POST"],
  "/v1/completions": ["POST"],
  "/v1/models": ["GET"],
  "/health": ["GET"],
  "/metrics": ["GET"],
};

/** Read a JSON body of at most `limit` bytes. */
export async function readJsonBody(req: Request, limit: number): Promise<unknown> {
  const tooLarge = () =>
    new ApiError(413, `Request body too large: the limit is ${limit} bytes; send a smaller body`, {
      code: "request_too_large",
    });
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    await req.body?.cancel();
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (req.body) {
    const reader = req.body.getReader();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "") {
    throw new ApiError(400, "Invalid request body: it is empty; send a JSON object", {
      code: "invalid_json",
    });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `Invalid request body: malformed JSON (${(e as Error).message})`, {
      code: "invalid_json",
    });
  }
}

/** Compare two strings in time independent of where they differ. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

function requireApiKey(apiKey: string) {
  return async (c: Context, next: Next) => {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m || !sameSecret(m[1].trim(), apiKey)) {
      throw new ApiError(
        401,
        m
          ? "Incorrect API key provided; check the key the server was started with"
          : "Missing API key: send 'Authorization: Bearer <key>'",
        { code: "invalid_api_key" },
      );
    }
    await next();
  };
}

/** Build the app serving `engine`. */
export function createApp(engine: Engine, opts: AppOptions = {}): Hono {
  const limit = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  const registry = opts.registry ?? new MetricsRegistry();
  const metrics = new ServerMetrics(registry);
  engine.registerMetrics?.(registry);
  const app = new Hono();

  app.use("*", async (c, next) => {
    await next();
    const path = c.req.path in ROUTES || c.req.path.startsWith("/v1/models/")
      ? c.req.path.replace(/^\/v1\/models\/.*/, "/v1/models/:id")
      : "other";
    metrics.requests.inc({ path, status: String(c.res.status) });
  });
  if (opts.apiKey) app.use("/v1/*", requireApiKey(opts.apiKey));

  app.post("/v1/chat/completions", async (c) => {
    const req = parseChatRequest(await readJsonBody(c.req.raw, limit), engine);
    return await runCompletion(engine, metrics, "chat", req, c.req.raw.signal);
  });
  app.post("/v1/completions", async (c) => {
    const req = parseCompletionRequest(await readJsonBody(c.req.raw, limit), engine);
    return await runCompletion(engine, metrics, "text", req, c.req.raw.signal);
  });

  const created = Math.floor(Date.now() / 1000);
  const modelIds = () => [engine.name, ...engine.experts.map((e) => `${engine.name}:${e}`)];
  const modelCard = (id: string) => ({ id, object: "model", created, owned_by: "mediator" });
  app.get("/v1/models", (c) => c.json({ object: "list", data: modelIds().map(modelCard) }));
  app.get("/v1/models/:id", (c) => {
    const id = c.req.param("id");
    if (!modelIds().includes(id)) {
      throw new ApiError(404, `The model '${id}' does not exist; GET /v1/models lists them`, {
        param: "model",
        code: "model_not_found",
      });
    }
    return c.json(modelCard(id));
  });

  app.get("/health", (c) =>
    c.json({
      status: "ok",
      model: engine.name,
      experts: engine.experts,
      backend: engine.backendChoice,
      context_length: engine.contextLength,
      ...engine.health(),
    }));
  app.get(
    "/metrics",
    (c) =>
      c.body(registry.render(), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      }),
  );

  for (const [path, methods] of Object.entries(ROUTES)) {
    app.all(path, (c) => {
      const err = new ApiError(
        405,
        `Method ${c.req.method} is not allowed on ${path}; use ${methods.join(", ")}`,
        { code: "method_not_allowed" },
      );
      return errorResponse(err, { allow: methods.join(", ") });
    });
  }
  app.notFound((c) =>
    errorResponse(
      new ApiError(404, `Unknown path ${c.req.method} ${c.req.path}; see GET /v1/models`, {
        code: "not_found",
      }),
    )
  );
  app.onError((err) => {
    const response = errorResponse(err);
    if (response.status >= 500) console.error(`error: ${err.message}`);
    return response;
  });
  return app;
}

/** The one mapping from an error to an OpenAI-shaped JSON response. */
export function errorResponse(err: unknown, headers: Record<string, string> = {}): Response {
  const { status, body } = toErrorResponse(err);
  return Response.json(body, { status, headers });
}
