/**
 * The contract between the HTTP layer (app.ts) and whatever generates text.
 * A plain dense checkpoint (dense_engine.ts) and a Mediator bundle (routing +
 * lazily fetched sparse experts) both implement `Engine`; the HTTP layer never
 * knows which one it talks to.
 *
 * A request goes in as token ids; a `GenerationHandle` comes back. Its events
 * always start with the route (which experts, with which weights) before any
 * token, then text deltas, then one `done` event with usage and finish reason.
 */
import type { RouteDeltas } from "../model/forward.ts";
import type { SamplingOptions } from "../model/sampling.ts";
import type { ModelWeights } from "../model/weights.ts";
import type { MetricsRegistry } from "./metrics.ts";

/** The route a request took: reported in every response. */
export interface RouteInfo {
  /** Expert names, most weighted first; empty when only dense weights ran. */
  experts: string[];
  /** Mixing weight of each expert (same order, summing to 1 when non-empty). */
  weights: number[];
  /** Normalised router entropy in [0, 1]; 0 when no router ran. */
  uncertainty: number;
  /** Whether the request named its expert (`NAME:EXPERT`). */
  forced: boolean;
  /** Why the router fell back (e.g. "dense" below the confidence floor). */
  fallback?: string;
}

/** One chat message after validation (text content only). */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** What the HTTP layer needs from a tokenizer. */
export interface EngineTokenizer {
  /** Token ids of `text`; `addSpecialTokens` adds BOS etc. per the tokenizer's post-processor. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`. */
  decode(ids: number[]): string;
  /** The model's chat template rendered with a generation prompt. */
  applyChatTemplate(messages: ChatMessage[]): string;
}

/** Why generation ended. */
export type EngineFinishReason = "stop" | "length" | "cancelled";

/** Token counts of a finished request. */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/** A request to generate, after HTTP validation. */
export interface GenerationRequest {
  /** Prompt token ids (chat template already applied). */
  promptIds: readonly number[];
  /** Maximum new tokens (>= 0). */
  maxTokens: number;
  /** Temperature, top-p, seed, ... (greedy when temperature is 0 or absent). */
  sampling: SamplingOptions;
  /** Strings that end generation; the text is cut before the first one. */
  stop?: readonly string[];
  /** Expert named by the request (`NAME:EXPERT`); absent lets the router decide. */
  forcedExpert?: string;
  /** Aborting it cancels the request (client disconnect) and frees its slot. */
  signal?: AbortSignal;
}

/** Everything known about a finished request. */
export interface GenerationResult {
  /** The full generated text (cut before a stop string). */
  text: string;
  /** Generated token ids (EOS excluded; a stop string's tokens included). */
  tokenIds: number[];
  finishReason: EngineFinishReason;
  usage: Usage;
  route: RouteInfo;
  /** Milliseconds from submission to the first token; undefined when none was produced. */
  timeToFirstTokenMs?: number;
  /** Milliseconds from submission to the end. */
  totalMs: number;
}

/** One event of a request's stream. */
export type GenerationEvent =
  | { type: "route"; route: RouteInfo }
  | { type: "text"; text: string }
  | { type: "done"; result: GenerationResult };

/**
 * A submitted request. Iterate it for events (route first, then text deltas,
 * then done), or await `route` / `result`. Iteration throws if the request fails.
 */
export interface GenerationHandle extends AsyncIterable<GenerationEvent> {
  /** Resolves with the route as soon as it is chosen, before the first token. */
  readonly route: Promise<RouteInfo>;
  /** Resolves when the request ends (rejects when it fails). */
  readonly result: Promise<GenerationResult>;
}

/** What a route resolver may use while it decides. */
export interface RouteContext {
  /** Aborted when the request is cancelled. */
  signal: AbortSignal;
  /** Run `fn` while no batched step is running (for router forward passes on the same model). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/** A route and what it takes to run it. */
export interface RouteResolution {
  route: RouteInfo;
  /** Sparse expert deltas for the `delta` path; absent for dense weights. */
  deltas?: RouteDeltas;
  /** Whole weights for the `materialize` path; requests sharing them are batched together. */
  weights?: ModelWeights;
  /** Called once when the request ends (unpins cached experts). */
  release?: () => void;
}

/**
 * Per-request route hook: which sparse deltas (or weights) a prompt gets.
 * The dense engine answers "no route"; the Mediator engine runs its router.
 * Throwing fails that request only.
 */
export type RouteResolver = (
  promptIds: readonly number[],
  forcedExpert: string | undefined,
  context: RouteContext,
) => Promise<RouteResolution>;

/** An engine the HTTP layer serves. */
export interface Engine {
  /** Model name clients use (`model` field); `NAME:EXPERT` forces an expert. */
  readonly name: string;
  /** Names of the experts a request may force; empty for a dense model. */
  readonly experts: readonly string[];
  /** Maximum prompt + completion tokens. */
  readonly contextLength: number;
  /** Largest `max_tokens` a request may ask for. */
  readonly maxTokensLimit: number;
  /** Vocabulary size (token-array prompts must be below it). */
  readonly vocabSize: number;
  readonly tokenizer: EngineTokenizer;
  /** How the backend was chosen, e.g. "auto -> wasm-simd". */
  readonly backendChoice: string;
  /** State for GET /health (bundle, cache use, queue). */
  health(): Record<string, unknown>;
  /** Register engine metrics (cache hits, fetch latency, ...) in the app's registry. */
  registerMetrics?(registry: MetricsRegistry): void;
  /** Queue a request. Throws QueueFullError when the queue is full. */
  submit(request: GenerationRequest): GenerationHandle;
  /** Cancel everything, wait for the loop to stop and release memory. */
  close(): Promise<void>;
}
