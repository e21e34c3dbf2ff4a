/**
 * One request inside the scheduler: its phase, prompt progress, KV cache,
 * sampler, output and event channel. The scheduler moves it through
 * waiting -> routing -> prefill -> decode -> finished; every transition that
 * the client can see (route, text, done, failure) goes through here.
 */
import type { KvCache } from "../backends/backend.ts";
import { Sampler } from "../model/sampling.ts";
import { Channel } from "./async.ts";
import type {
  EngineFinishReason,
  GenerationEvent,
  GenerationHandle,
  GenerationRequest,
  GenerationResult,
  RouteInfo,
  RouteResolution,
} from "./engine.ts";
import { TextStream } from "./text_stream.ts";

/** Where a sequence is in its life. */
export type Phase = "waiting" | "routing" | "prefill" | "decode" | "finished";

/** Settled state of a promise that nobody may be waiting on (no unhandled rejections). */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void, reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** A request's state while the scheduler owns it. */
export class Sequence {
  phase: Phase = "waiting";
  /** Prompt tokens already in the KV cache. */
  prefilled = 0;
  cache?: KvCache;
  resolution?: RouteResolution;
  /** Set when the client's signal aborts; the scheduler reaps it between steps. */
  cancelled = false;
  /** Prompt then generated ids (the repetition-penalty history). */
  readonly history: number[];
  readonly output: number[] = [];
  readonly sampler: Sampler;
  readonly abort = new AbortController();
  readonly handle: GenerationHandle;

  readonly #events = new Channel<GenerationEvent>();
  readonly #route = deferred<RouteInfo>();
  readonly #result = deferred<GenerationResult>();
  readonly #text: TextStream;
  readonly #eos: ReadonlySet<number>;
  readonly #submitted = performance.now();
  #firstTokenMs?: number;
  #settled = false;

  /**
   * @param request the validated request
   * @param eosTokenIds ids that end generation
   * @param decode detokenizer for text deltas and stop strings
   * @param onEnd called once when the sequence ends (finished, cancelled or failed),
   *   before the client hears of it, so the slot is free by then
   */
  constructor(
    readonly request: GenerationRequest,
    eosTokenIds: readonly number[],
    decode: (ids: number[]) => string,
    readonly onEnd: (seq: Sequence, outcome: EngineFinishReason | "failed") => void,
  ) {
    this.sampler = new Sampler(request.sampling);
    this.history = [...request.promptIds];
    this.#eos = new Set(eosTokenIds);
    this.#text = new TextStream(decode, request.stop ?? []);
    const events = this.#events;
    this.handle = {
      route: this.#route.promise,
      result: this.#result.promise,
      [Symbol.asyncIterator]: () => events[Symbol.asyncIterator](),
    };
  }

  /** Whether the sequence holds a slot (routing, prefill or decode). */
  get active(): boolean {
    return this.phase === "routing" || this.phase === "prefill" || this.phase === "decode";
  }

  /** The route is known: report it before any token. */
  routed(resolution: RouteResolution): void {
    this.resolution = resolution;
    this.phase = this.request.maxTokens === 0 ? "finished" : "prefill";
    this.#route.resolve(resolution.route);
    this.#events.push({ type: "route", route: resolution.route });
    if (this.request.maxTokens === 0) this.finish("length");
  }

  /**
   * Take the logits of the last fed token: sample, then report text and
   * decide whether the sequence ends. Returns true when it finished.
   */
  accept(logits: Float32Array): boolean {
    const id = this.sampler.next(logits, this.history);
    if (this.#eos.has(id)) {
      this.finish("stop");
      return true;
    }
    this.#firstTokenMs ??= performance.now() - this.#submitted;
    this.output.push(id);
    this.history.push(id);
    const { delta, stopped } = this.#text.push(id);
    if (delta) this.#events.push({ type: "text", text: delta });
    if (stopped) {
      this.finish("stop");
      return true;
    }
    if (this.output.length >= this.request.maxTokens) {
      this.finish("length");
      return true;
    }
    this.phase = "decode";
    return false;
  }

  /** End normally (or by cancellation): flush text, report usage. */
  finish(reason: EngineFinishReason): void {
    if (this.#settled) return;
    this.phase = "finished";
    this.#settled = true;
    const rest = reason === "cancelled" ? "" : this.#text.finish();
    if (rest) this.#events.push({ type: "text", text: rest });
    const route = this.resolution?.route ??
      { experts: [], weights: [], uncertainty: 0, forced: false };
    const result: GenerationResult = {
      text: this.#text.text,
      tokenIds: [...this.output],
      finishReason: reason,
      usage: { promptTokens: this.request.promptIds.length, completionTokens: this.output.length },
      route,
      timeToFirstTokenMs: this.#firstTokenMs,
      totalMs: performance.now() - this.#submitted,
    };
    this.onEnd(this, reason);
    this.#route.resolve(route);
    this.#events.push({ type: "done", result });
    this.#events.close();
    this.#result.resolve(result);
  }

  /** End with an error that only this request sees. */
  fail(error: unknown): void {
    if (this.#settled) return;
    this.phase = "finished";
    this.#settled = true;
    this.onEnd(this, "failed");
    this.#route.reject(error);
    this.#result.reject(error);
    this.#events.fail(error);
  }
}
