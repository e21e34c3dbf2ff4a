/**
 * `deno task serve [--bundle DIR|URL | --model DIR|URL] [options]`: the
 * OpenAI-compatible server. With neither source it serves the demo bundle
 * committed at bundles/demo. Logs one line at start (URL, backend, model) and
 * shuts down gracefully on SIGINT/SIGTERM: stop accepting, let running
 * requests finish for a grace period, then cancel the rest.
 */
import { parseArgs } from "node:util";
import type { BackendName } from "../backends/select.ts";
import { createApp, DEFAULT_BODY_LIMIT } from "../server/app.ts";
import {
  type ApplyMode,
  type EngineSpec,
  type ExpertErrorMode,
  openEngine,
} from "../server/open_engine.ts";
import { runCli } from "./run.ts";

/** The demo bundle served when neither --bundle nor --model is given. */
export const DEFAULT_BUNDLE = decodeURIComponent(
  new URL("../../bundles/demo", import.meta.url).pathname,
);

const USAGE = `Usage: deno task serve [--bundle DIR|URL | --model DIR|URL] [options]
  --bundle DIR|URL       Mediator bundle (local folder, https://, s3://; default bundles/demo)
  --model DIR|URL        plain Hugging Face checkpoint, served without routing
  --port N               port (default 8000; 0 picks a free one)
  --host NAME            interface (default 127.0.0.1; 0.0.0.0 for all)
  --backend NAME         auto | wasm | webgpu | reference (default auto)
  --threads N            WASM backend threads (default: all cores)
  --cache-bytes N        expert cache budget in bytes (bundle)
  --apply MODE           auto | delta | materialize (bundle; default auto)
  --on-expert-error M    error | dense: fail the request, or serve the dense expert (bundle)
  --api-key KEY          require 'Authorization: Bearer KEY' on /v1/* (or MEDIATOR_API_KEY)
  --max-batch N          most concurrent sequences (default 8)
  --max-queue N          most waiting requests before 429 (default 64)
  --context-length N     cap the context length (default: the model's)
  --max-tokens N         largest max_tokens per request (default: the context length)
  --body-limit N         largest request body in bytes (default ${DEFAULT_BODY_LIMIT})
  --name NAME            model name clients send (default: the bundle or folder name)
  --grace-seconds N      on shutdown, wait this long for running requests (default 10)`;

function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) {
    throw new TypeError(`Cannot serve: --${name} must be an integer, got '${v}'`);
  }
  return n;
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** Parsed command line of `serve`. */
export interface ServeArgs {
  spec: EngineSpec;
  port: number;
  host: string;
  apiKey?: string;
  bodyLimit: number;
  graceSeconds: number;
}

/** Parse `serve` arguments; throws TypeError naming the bad option. */
export function parseServeArgs(args: string[]): ServeArgs | null {
  const { values } = parseArgs({
    args,
    options: {
      bundle: { type: "string" },
      model: { type: "string" },
      port: { type: "string", default: "8000" },
      host: { type: "string", default: "127.0.0.1" },
      backend: { type: "string", default: "auto" },
      threads: { type: "string" },
      "cache-bytes": { type: "string" },
      apply: { type: "string" },
      "on-expert-error": { type: "string" },
      "api-key": { type: "string" },
      "max-batch": { type: "string" },
      "max-queue": { type: "string" },
      "context-length": { type: "string" },
      "max-tokens": { type: "string" },
      "body-limit": { type: "string" },
      name: { type: "string" },
      "grace-seconds": { type: "string", default: "10" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return null;
  const port = intOption("port", values.port)!;
  if (port < 0 || port > 65535) {
    throw new TypeError(`Cannot serve: --port must be 0-65535, got ${port}`);
  }
  const bodyLimit = intOption("body-limit", values["body-limit"]) ?? DEFAULT_BODY_LIMIT;
  if (bodyLimit < 1) {
    throw new TypeError(`Cannot serve: --body-limit must be positive, got ${bodyLimit}`);
  }
  let bundle = values.bundle;
  if (bundle === undefined && values.model === undefined) {
    if (!isDirectory(DEFAULT_BUNDLE)) {
      throw new TypeError(
        `Cannot serve: --bundle DIR|URL or --model DIR|URL is required (the default bundle ${DEFAULT_BUNDLE} is missing)`,
      );
    }
    bundle = DEFAULT_BUNDLE;
  }
  return {
    spec: {
      bundle,
      model: values.model,
      backend: values.backend as BackendName,
      threads: intOption("threads", values.threads),
      cacheBytes: intOption("cache-bytes", values["cache-bytes"]),
      apply: values.apply as ApplyMode | undefined,
      onExpertError: values["on-expert-error"] as ExpertErrorMode | undefined,
      maxBatch: intOption("max-batch", values["max-batch"]),
      maxQueue: intOption("max-queue", values["max-queue"]),
      contextLength: intOption("context-length", values["context-length"]),
      maxTokensLimit: intOption("max-tokens", values["max-tokens"]),
      name: values.name,
    },
    port,
    host: values.host!,
    apiKey: values["api-key"] ?? Deno.env.get("MEDIATOR_API_KEY"),
    bodyLimit,
    graceSeconds: Math.max(0, intOption("grace-seconds", values["grace-seconds"])!),
  };
}

/** Serve until SIGINT/SIGTERM. */
export async function serve(a: ServeArgs): Promise<void> {
  const opened = await openEngine(a.spec);
  const app = createApp(opened.engine, { apiKey: a.apiKey, bodyLimitBytes: a.bodyLimit });
  const server = Deno.serve({
    hostname: a.host,
    port: a.port,
    onListen: ({ port }) => {
      const host = a.host.includes(":") ? `[${a.host}]` : a.host;
      console.log(
        `Mediator serving ${opened.source} as '${opened.engine.name}' at http://${host}:${port}/v1` +
          ` (backend: ${opened.engine.backendChoice})`,
      );
    },
  }, app.fetch);

  let stopping = false;
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  const onSignal = () => {
    if (stopping) Deno.exit(130); // a second signal stops at once
    stopping = true;
    console.error(`Shutting down: waiting up to ${a.graceSeconds} s for running requests`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise((r) => (timer = setTimeout(r, a.graceSeconds * 1000)));
    Promise.race([server.shutdown(), grace])
      .then(() => clearTimeout(timer))
      .then(() => opened.close()) // cancels what is left; open streams end with an error event
      .then(() => server.finished)
      .finally(stopped);
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  await done;
  for (const s of signals) Deno.removeSignalListener(s, onSignal);
}

if (import.meta.main) {
  await runCli(USAGE, async () => {
    const args = parseServeArgs(Deno.args);
    if (!args) return console.log(USAGE);
    await serve(args);
  });
}
