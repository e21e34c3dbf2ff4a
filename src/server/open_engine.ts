/**
 * From serving options to a running engine: picks the backend, opens the
 * storage (local folder, http(s)://, s3://) and loads either a Mediator bundle
 * (`bundle`: router + lazily fetched experts, the bundle engine) or a plain
 * checkpoint (`model`: the dense engine). Shared by the `serve` command and
 * the Deno Deploy entry.
 */
import type { Backend } from "../backends/backend.ts";
import type { ApplyMode } from "../bundle/mediator_model.ts";
import { BACKEND_NAMES, type BackendName, selectBackend } from "../backends/select.ts";
import { openStorage, type OpenStorageOptions } from "../storage/open.ts";
import { DenseEngine } from "./dense_engine.ts";
import type { Engine } from "./engine.ts";
import { MediatorEngine } from "./mediator_engine.ts";

export type { ApplyMode };

/** What a bundle engine does when an expert cannot be loaded. */
export type ExpertErrorMode = "error" | "dense";

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
  /** Route application path (bundle engine; default "auto"). */
  apply?: ApplyMode;
  /** When an expert cannot be loaded: fail the request (default) or serve the dense expert. */
  onExpertError?: ExpertErrorMode;
  /** Timeouts, retries and credentials of remote storage (default: env settings). */
  storage?: OpenStorageOptions;
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
  if (spec.apply !== undefined && !["auto", "delta", "materialize"].includes(spec.apply)) {
    throw new TypeError(
      `Cannot serve: --apply must be auto, delta or materialize, got '${spec.apply}'`,
    );
  }
  if (
    spec.onExpertError !== undefined && spec.onExpertError !== "error" &&
    spec.onExpertError !== "dense"
  ) {
    throw new TypeError(
      `Cannot serve: --on-expert-error must be error or dense, got '${spec.onExpertError}'`,
    );
  }
  if (
    spec.model &&
    (spec.cacheBytes !== undefined || spec.apply !== undefined || spec.onExpertError !== undefined)
  ) {
    throw new TypeError(
      "Cannot serve: --cache-bytes, --apply and --on-expert-error concern the experts of a --bundle; drop them with --model",
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

/**
 * Refuse a local bundle location that is not a folder before any backend is
 * created (remote locations are checked when the manifest is read).
 */
async function checkLocalBundle(location: string): Promise<void> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !/^file:\/\//i.test(location)) return;
  const path = /^file:\/\//i.test(location)
    ? decodeURIComponent(new URL(location).pathname)
    : location;
  const isDir = await Deno.stat(path).then((s) => s.isDirectory, () => false);
  if (!isDir) {
    throw new TypeError(
      `Cannot serve: --bundle '${location}' is not a folder; give a bundle folder built by 'deno task merge', an https:// or an s3:// location`,
    );
  }
}

/** Open the engine a spec describes. */
export async function openEngine(spec: EngineSpec): Promise<OpenedEngine> {
  checkEngineSpec(spec);
  if (spec.bundle) await checkLocalBundle(spec.bundle);
  const location = (spec.bundle ?? spec.model)!;
  const { backend, choice } = await selectBackend(spec.backend ?? "auto", {
    threads: spec.threads,
  });
  try {
    const storage = openStorage(location, spec.storage);
    const limits = {
      backendChoice: choice,
      name: spec.name,
      maxBatch: spec.maxBatch,
      maxQueue: spec.maxQueue,
      contextLength: spec.contextLength,
      maxTokensLimit: spec.maxTokensLimit,
    };
    const engine = spec.bundle
      ? await MediatorEngine.open(storage, backend, {
        ...limits,
        cacheBytes: spec.cacheBytes,
        apply: spec.apply,
        onExpertError: spec.onExpertError,
      })
      : await DenseEngine.open(storage, backend, limits);
    return {
      engine,
      backend,
      source: `${spec.bundle ? "bundle" : "model"} ${location}`,
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
