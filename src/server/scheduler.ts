/**
 * Continuous batching over `Transformer.step`. One async loop; each iteration
 *   1. ends sequences cancelled during the last step (an ended sequence frees
 *      its slot and KV cache at once, before its client hears of the end),
 *   2. admits waiting requests into free slots and starts resolving their
 *      routes (concurrently: fetching experts does not stall decoding),
 *   3. runs ONE batched step: a decode token for every running sequence plus
 *      prompt chunks of sequences in prefill, up to a prompt-token budget,
 *   4. samples each sequence with its own sampler and checks EOS, stop strings
 *      and max_tokens.
 * Sequences with different sparse deltas share the step (the deltas touch only
 * their rows); sequences with different materialized weights run in one step
 * per weights. A failing step is retried entry by entry so an error fails only
 * the request that causes it. The loop sleeps when there is nothing to run.
 */
import { setImmediate } from "node:timers";
import type { BatchEntry, Transformer } from "../model/forward.ts";
import type { ModelWeights } from "../model/weights.ts";
import { AsyncLock, Wakeup } from "./async.ts";
import type {
  EngineFinishReason,
  GenerationHandle,
  GenerationRequest,
  RouteResolver,
} from "./engine.ts";
import { EngineClosedError, QueueFullError } from "./errors.ts";
import { Sequence } from "./sequence.ts";

/** Settings of a scheduler. */
export interface SchedulerOptions {
  model: Transformer;
  /** Token ids that end generation. */
  eosTokenIds: readonly number[];
  /** Detokenizer (text deltas, stop strings). */
  decode: (ids: number[]) => string;
  /** Per-request route hook. */
  resolveRoute: RouteResolver;
  /** Most sequences holding a KV cache at once (default 8). */
  maxBatch?: number;
  /** Most requests waiting for a slot before `submit` throws QueueFullError (default 64). */
  maxQueue?: number;
  /** Most prompt tokens fed per step, so long prompts do not stall decoding (default 256). */
  prefillTokensPerStep?: number;
  /** Most prompt + new tokens of one sequence (default: the model's max positions). */
  maxSequenceLength?: number;
}

/** Counters and gauges of a scheduler. */
export interface SchedulerStats {
  running: number;
  waiting: number;
  maxBatch: number;
  maxQueue: number;
  completed: number;
  cancelled: number;
  failed: number;
  promptTokens: number;
  completionTokens: number;
  steps: number;
  /** Seconds spent inside batched steps. */
  busySeconds: number;
}

function positiveInt(v: number | undefined, fallback: number, name: string): number {
  const n = v ?? fallback;
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Cannot create scheduler: ${name} must be a positive integer, got ${v}`);
  }
  return n;
}

/** The continuous-batching loop of one model. */
export class Scheduler {
  readonly #o: SchedulerOptions;
  readonly #maxBatch: number;
  readonly #maxQueue: number;
  readonly #prefillBudget: number;
  readonly #maxSeq: number;
  readonly #waiting: Sequence[] = [];
  readonly #active: Sequence[] = [];
  readonly #wakeup = new Wakeup();
  readonly #lock = new AsyncLock();
  readonly #loop: Promise<void>;
  #closing = false;
  #stats = {
    completed: 0,
    cancelled: 0,
    failed: 0,
    promptTokens: 0,
    completionTokens: 0,
    steps: 0,
    busySeconds: 0,
  };

  /** @param options model, tokenizer hooks, route hook and limits */
  constructor(options: SchedulerOptions) {
    this.#o = options;
    this.#maxBatch = positiveInt(options.maxBatch, 8, "maxBatch");
    this.#maxQueue = positiveInt(options.maxQueue, 64, "maxQueue");
    this.#prefillBudget = positiveInt(options.prefillTokensPerStep, 256, "prefillTokensPerStep");
    this.#maxSeq = positiveInt(
      options.maxSequenceLength,
      options.model.config.maxPositionEmbeddings,
      "maxSequenceLength",
    );
    this.#loop = this.#run();
  }

  /** Queue a request; throws QueueFullError when the queue is full. */
  submit(request: GenerationRequest): GenerationHandle {
    if (this.#closing) {
      throw new EngineClosedError("Cannot accept the request: the server is shutting down");
    }
    const n = request.promptIds.length;
    if (n === 0) throw new RangeError("Cannot generate: the prompt has no tokens");
    if (!Number.isInteger(request.maxTokens) || request.maxTokens < 0) {
      throw new RangeError(
        `Cannot generate: max tokens must be a non-negative integer, got ${request.maxTokens}`,
      );
    }
    if (n + request.maxTokens > this.#maxSeq) {
      throw new RangeError(
        `Cannot generate: ${n} prompt + ${request.maxTokens} new tokens exceed the context of ${this.#maxSeq}`,
      );
    }
    if (this.#waiting.length >= this.#maxQueue) {
      throw new QueueFullError(
        `Cannot queue the request: ${this.#maxQueue} requests are already waiting; retry later`,
      );
    }
    const seq = new Sequence(
      request,
      this.#o.eosTokenIds,
      this.#o.decode,
      (s, outcome) => this.#ended(s, outcome),
    );
    const signal = request.signal;
    if (signal?.aborted) {
      seq.finish("cancelled");
      return seq.handle;
    }
    if (signal) {
      const onAbort = () => this.#cancel(seq);
      signal.addEventListener("abort", onAbort, { once: true });
      seq.handle.result.finally(() => signal.removeEventListener("abort", onAbort))
        .catch(() => undefined);
    }
    this.#waiting.push(seq);
    this.#wakeup.notify();
    return seq.handle;
  }

  /** Run `fn` between batched steps (for router passes on the same model). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(fn);
  }

  /** Current counters. */
  stats(): SchedulerStats {
    return {
      running: this.#active.length,
      waiting: this.#waiting.length,
      maxBatch: this.#maxBatch,
      maxQueue: this.#maxQueue,
      ...this.#stats,
    };
  }

  /** Fail every request, stop the loop and free all KV caches. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#wakeup.notify();
    await this.#loop;
  }

  #cancel(seq: Sequence): void {
    seq.cancelled = true;
    seq.abort.abort();
    // Waiting or routing: end now. Prefill or decode: end between steps (#reap).
    if (seq.phase === "waiting" || seq.phase === "routing") seq.finish("cancelled");
    this.#wakeup.notify();
  }

  /** A sequence ended: free its slot and memory, count it. */
  #ended(seq: Sequence, outcome: EngineFinishReason | "failed"): void {
    const w = this.#waiting.indexOf(seq);
    if (w >= 0) this.#waiting.splice(w, 1);
    const a = this.#active.indexOf(seq);
    if (a >= 0) this.#active.splice(a, 1);
    if (seq.cache) this.#o.model.backend.free(seq.cache);
    seq.cache = undefined;
    seq.resolution?.release?.();
    if (outcome === "failed") this.#stats.failed++;
    else if (outcome === "cancelled") this.#stats.cancelled++;
    else this.#stats.completed++;
    this.#wakeup.notify();
  }

  async #run(): Promise<void> {
    while (true) {
      this.#reap();
      if (this.#closing) break;
      this.#admit();
      const ready = this.#active.filter((s) => s.phase === "prefill" || s.phase === "decode");
      if (ready.length === 0) {
        await this.#wakeup.wait();
        continue;
      }
      const t0 = performance.now();
      try {
        await this.#lock.run(() => this.#step(ready));
      } catch (error) {
        // Not expected (#step isolates per-request failures), but the loop must survive it.
        for (const seq of ready) seq.fail(error);
      }
      this.#stats.busySeconds += (performance.now() - t0) / 1000;
      this.#stats.steps++;
      // Let I/O (responses, new requests) run between steps even when the backend never yields.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const closed = new EngineClosedError(
      "Cannot finish the request: the server is shutting down",
    );
    for (const seq of [...this.#waiting, ...this.#active]) {
      seq.abort.abort();
      seq.fail(closed);
    }
  }

  /** End sequences cancelled while they were in a step. */
  #reap(): void {
    for (const seq of [...this.#active]) if (seq.cancelled) seq.finish("cancelled");
  }

  #admit(): void {
    while (this.#active.length < this.#maxBatch && this.#waiting.length > 0) {
      const seq = this.#waiting.shift()!;
      seq.phase = "routing";
      this.#active.push(seq);
      const context = { signal: seq.abort.signal, exclusive: this.exclusive.bind(this) };
      Promise.resolve()
        .then(() => this.#o.resolveRoute(seq.request.promptIds, seq.request.forcedExpert, context))
        .then((resolution) => {
          if (seq.phase !== "routing") return resolution.release?.();
          seq.routed(resolution);
          this.#wakeup.notify();
        }, (error) => seq.fail(error));
    }
  }

  /** One batched step over `ready` (grouped by weights), then sampling. */
  async #step(ready: Sequence[]): Promise<void> {
    let budget = this.#prefillBudget;
    const groups = new Map<
      ModelWeights | undefined,
      { entries: BatchEntry[]; seqs: Sequence[]; fed: number[] }
    >();
    for (const seq of ready) {
      const prompt = seq.request.promptIds;
      const deltas = seq.resolution?.deltas;
      let entry: BatchEntry, fed = 0;
      if (seq.phase === "decode") {
        const startPos = seq.history.length - 1;
        entry = { ids: Int32Array.of(seq.history[startPos]), cache: seq.cache!, startPos, deltas };
      } else {
        if (budget === 0) continue;
        try {
          seq.cache ??= this.#o.model.newCache(prompt.length + seq.request.maxTokens);
        } catch (error) {
          seq.fail(error);
          continue;
        }
        fed = Math.min(budget, prompt.length - seq.prefilled);
        budget -= fed;
        entry = {
          ids: Int32Array.from(prompt.slice(seq.prefilled, seq.prefilled + fed)),
          cache: seq.cache,
          startPos: seq.prefilled,
          deltas,
          wantLogits: seq.prefilled + fed === prompt.length,
        };
      }
      const key = seq.resolution?.weights;
      let group = groups.get(key);
      if (!group) groups.set(key, group = { entries: [], seqs: [], fed: [] });
      group.entries.push(entry);
      group.seqs.push(seq);
      group.fed.push(fed);
    }
    for (const [weights, group] of groups) {
      const outputs = await this.#runIsolated(group.entries, weights);
      group.seqs.forEach((seq, i) => this.#consume(seq, outputs[i], group.fed[i]));
    }
  }

  #consume(seq: Sequence, output: Float32Array | null | Error, fed: number): void {
    if (output instanceof Error) {
      seq.fail(output);
      return;
    }
    seq.prefilled += fed;
    this.#stats.promptTokens += fed;
    if (output === null || seq.cancelled || seq.phase === "finished") return;
    const before = seq.output.length;
    try {
      seq.accept(output);
    } catch (error) {
      seq.fail(error); // e.g. the detokenizer refused a sampled id
    }
    this.#stats.completionTokens += seq.output.length - before;
  }

  /** Run a step; when it throws, rerun each entry alone to find the failing ones. */
  async #runIsolated(
    entries: BatchEntry[],
    weights: ModelWeights | undefined,
  ): Promise<(Float32Array | null | Error)[]> {
    const model = this.#o.model;
    try {
      return await model.step(entries, { weights });
    } catch (error) {
      if (entries.length === 1) return [asError(error)];
    }
    // Rerunning is safe: an entry rewrites the same cache positions it wrote before.
    const outputs: (Float32Array | null | Error)[] = [];
    for (const entry of entries) {
      try {
        outputs.push((await model.step([entry], { weights }))[0]);
      } catch (error) {
        outputs.push(asError(error));
      }
    }
    return outputs;
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
