/**
 * From serving options to a running engine: picks the backend, opens the
 * storage (local folder, http(s)://, s3://) and loads a plain checkpoint
 * (`model`) into a dense engine. A Mediator bundle (`bundle`) is opened here
 * by the bundle engine once it exists; until then it is refused clearly.
 * Shared by the `serve` command and the Deno Deploy entry.
 */
import type { Backend } from "../backends/backend.ts";
import { BACKEND_NAMES, type BackendName, selectBackend } from "../backends/select.ts";
import { openStorage } from "../storage/open.ts";
import { DenseEngine } from "./dense_engine.ts";
import type { Engine } from "./engine.ts";

/** How weights are combined with a route's sparse experts. */
export type ApplyMode = "delta" | "materialize";

/** What to serve and how. */
export interface EngineSpec {
  /** Mediator bundle location (folder, http(s)://, s3://). */
  bundle?: string;
  /** Plain Hugging Face checkpoint location (folder, http(s)://, s3://). */
  model?: string;
  /** Backend name (default "auto"). */
  backend?: BackendName;
  /** Threads of the WASM backend (default: all cores; 1 where Workers are unavailable). */
  threads?: number;
  /** Byte budget of the expert cache (bundle engine). */
  cacheBytes?: number;
  /** Route application path (bundle engine; default "delta"). */
  apply?: ApplyMode;
  /** Most concurrent sequences (default 8). */
  maxBatch?: number;
  /** Most waiting requests before 429 (default 64). */
  maxQueue?: number;
  /** Context length cap (default: the model's). */
  contextLength?: number;
  /** Largest max_tokens a request may ask for (default: the context length). */
  maxTokensLimit?: number;
  /** Model name clients send (default: last segment of the location). */
  name?: string;
}

/** An engine with the backend it runs on. */
export interface OpenedEngine {
  engine: Engine;
  backend: Backend;
  /** What is served, for the start-up line: "model <location>" or "bundle <location>". */
  source: string;
  /** Close the engine, then release the backend. */
  close(): Promise<void>;
}

/** Check a spec before anything is loaded; throws TypeError/RangeError naming the option. */
export function checkEngineSpec(spec: EngineSpec): void {
  if (!spec.bundle === !spec.model) {
    throw new TypeError(
      "Cannot serve: --bundle DIR|URL or --model DIR|URL is required (one of them)",
    );
  }
  if (spec.backend !== undefined && !BACKEND_NAMES.includes(spec.backend)) {
    throw new TypeError(
      `Cannot serve: --backend must be one of ${BACKEND_NAMES.join(", ")}, got '${spec.backend}'`,
    );
  }
  if (spec.apply !== undefined && spec.apply !== "delta" && spec.apply !== "materialize") {
    throw new TypeError(`Cannot serve: --apply must be delta or materialize, got '${spec.apply}'`);
  }
  if (spec.model && (spec.cacheBytes !== undefined || spec.apply !== undefined)) {
    throw new TypeError(
      "Cannot serve: --cache-bytes and --apply concern the experts of a --bundle; drop them with --model",
    );
  }
  const positive = (name: string, v: number | undefined) => {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) {
      throw new RangeError(`Cannot serve: --${name} must be a positive integer, got ${v}`);
    }
  };
  positive("threads", spec.threads);
  positive("cache-bytes", spec.cacheBytes);
  positive("max-batch", spec.maxBatch);
  positive("max-queue", spec.maxQueue);
  positive("context-length", spec.contextLength);
  positive("max-tokens", spec.maxTokensLimit);
}

/** Open the engine a spec describes. */
export async function openEngine(spec: EngineSpec): Promise<OpenedEngine> {
  checkEngineSpec(spec);
  if (spec.bundle) {
    // The Mediator bundle engine (routing + lazily fetched sparse experts) plugs in here.
    throw new TypeError(
      "Cannot serve: --bundle needs the Mediator bundle engine, which this build does not have yet; " +
        "serve a plain checkpoint with --model DIR|URL",
    );
  }
  const location = spec.model!;
  const { backend, choice } = await selectBackend(spec.backend ?? "auto", {
    threads: spec.threads,
  });
  try {
    const engine = await DenseEngine.open(openStorage(location), backend, {
      backendChoice: choice,
      name: spec.name,
      maxBatch: spec.maxBatch,
      maxQueue: spec.maxQueue,
      contextLength: spec.contextLength,
      maxTokensLimit: spec.maxTokensLimit,
    });
    return {
      engine,
      backend,
      source: `model ${location}`,
      close: async () => {
        await engine.close();
        backend.dispose();
      },
    };
  } catch (e) {
    backend.dispose();
    throw e;
  }
}
