/**
 * Deno Deploy entry: a module whose default export has `fetch`. Settings come
 * from environment variables; the engine loads on the first request (weights
 * from S3 or HTTP) and is reused by every later one.
 *
 *   MEDIATOR_BUNDLE or MEDIATOR_MODEL   location: s3://bucket/prefix, https://..., or a folder
 *                                       (a Mediator bundle is routed per request; a model is not)
 *   MEDIATOR_BACKEND                    auto | wasm | webgpu | reference (default auto)
 *   MEDIATOR_THREADS                    WASM threads (1 where Workers are unavailable)
 *   MEDIATOR_API_KEY                    require this bearer key on /v1/*
 *   MEDIATOR_NAME                       model name clients send
 *   MEDIATOR_MAX_BATCH, MEDIATOR_MAX_QUEUE, MEDIATOR_CONTEXT_LENGTH, MEDIATOR_MAX_TOKENS,
 *   MEDIATOR_CACHE_BYTES, MEDIATOR_APPLY, MEDIATOR_ON_EXPERT_ERROR (bundle: error | dense),
 *   MEDIATOR_BODY_LIMIT
 *   AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   for s3:// locations
 */
import type { BackendName } from "./backends/select.ts";
import { createApp, errorResponse } from "./server/app.ts";
import { ApiError } from "./server/errors.ts";
import {
  type ApplyMode,
  type EngineSpec,
  type ExpertErrorMode,
  type OpenedEngine,
  openEngine,
} from "./server/open_engine.ts";

/** Reads one environment variable. */
export type EnvReader = (name: string) => string | undefined;

function intEnv(env: EnvReader, name: string): number | undefined {
  const v = env(name);
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) {
    throw new TypeError(`Cannot configure: ${name} must be an integer, got '${v}'`);
  }
  return n;
}

/** The engine spec described by MEDIATOR_* variables. */
export function specFromEnv(env: EnvReader): EngineSpec {
  return {
    bundle: env("MEDIATOR_BUNDLE") || undefined,
    model: env("MEDIATOR_MODEL") || undefined,
    backend: (env("MEDIATOR_BACKEND") || "auto") as BackendName,
    threads: intEnv(env, "MEDIATOR_THREADS"),
    cacheBytes: intEnv(env, "MEDIATOR_CACHE_BYTES"),
    apply: (env("MEDIATOR_APPLY") || undefined) as ApplyMode | undefined,
    onExpertError: (env("MEDIATOR_ON_EXPERT_ERROR") || undefined) as ExpertErrorMode | undefined,
    maxBatch: intEnv(env, "MEDIATOR_MAX_BATCH"),
    maxQueue: intEnv(env, "MEDIATOR_MAX_QUEUE"),
    contextLength: intEnv(env, "MEDIATOR_CONTEXT_LENGTH"),
    maxTokensLimit: intEnv(env, "MEDIATOR_MAX_TOKENS"),
    name: env("MEDIATOR_NAME") || undefined,
  };
}

/** A fetch handler that loads the engine on first use, and a way to release it. */
export interface DeployHandler {
  fetch(request: Request): Promise<Response>;
  /** Close the engine if it was loaded. */
  close(): Promise<void>;
}

/**
 * Build the handler from `env`. A failed load answers 503 with the reason
 * and is retried by the next request.
 */
export function createDeployHandler(env: EnvReader): DeployHandler {
  let loading:
    | Promise<{ opened: OpenedEngine; fetch: (r: Request) => Response | Promise<Response> }>
    | undefined;
  const load = () => {
    loading ??= (async () => {
      const opened = await openEngine(specFromEnv(env));
      const app = createApp(opened.engine, {
        apiKey: env("MEDIATOR_API_KEY") || undefined,
        bodyLimitBytes: intEnv(env, "MEDIATOR_BODY_LIMIT"),
      });
      console.log(`Mediator serving ${opened.source} (backend: ${opened.engine.backendChoice})`);
      return { opened, fetch: (r: Request) => app.fetch(r) };
    })();
    loading.catch(() => (loading = undefined));
    return loading;
  };
  return {
    async fetch(request) {
      let served;
      try {
        served = await load();
      } catch (e) {
        return errorResponse(
          new ApiError(503, `Cannot load the model: ${(e as Error).message}`, {
            type: "server_error",
            code: "model_unavailable",
          }),
        );
      }
      return await served.fetch(request);
    },
    async close() {
      const current = loading;
      loading = undefined;
      if (current) await (await current.catch(() => undefined))?.opened.close();
    },
  };
}

const handler = createDeployHandler((name) => Deno.env.get(name));

/** The Deno Deploy module: `export default { fetch }`. */
export default { fetch: (request: Request) => handler.fetch(request) };
