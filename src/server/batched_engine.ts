/**
 * The `Engine` every model kind shares: a `Transformer` driven by the
 * continuous-batching `Scheduler`, with a per-request route hook. The dense
 * engine passes a hook that never routes; a Mediator bundle engine passes its
 * router (and its experts, health and metrics) and gets the same HTTP-facing
 * behaviour.
 */
import type { Transformer } from "../model/forward.ts";
import type {
  Engine,
  EngineTokenizer,
  GenerationHandle,
  GenerationRequest,
  RouteResolver,
} from "./engine.ts";
import type { MetricsRegistry } from "./metrics.ts";
import { Scheduler } from "./scheduler.ts";
import { registerSchedulerMetrics } from "./scheduler_metrics.ts";

/** Limits of an engine. */
export interface EngineLimits {
  /** Most concurrent sequences (default 8). */
  maxBatch?: number;
  /** Most waiting requests before 429 (default 64). */
  maxQueue?: number;
  /** Prompt tokens fed per step (default 256). */
  prefillTokensPerStep?: number;
  /** Context length (default and maximum: the model's max positions). */
  contextLength?: number;
  /** Largest max_tokens (default: the context length). */
  maxTokensLimit?: number;
}

/** Everything a batched engine is built from. */
export interface BatchedEngineOptions extends EngineLimits {
  /** Model name clients send in `model`. */
  name: string;
  model: Transformer;
  tokenizer: EngineTokenizer;
  /** Ids that end generation. */
  eosTokenIds: readonly number[];
  /** How the backend was chosen, for /health. */
  backendChoice: string;
  /** The per-request route hook. */
  resolveRoute: RouteResolver;
  /** Experts a request may force with NAME:EXPERT (default none). */
  experts?: readonly string[];
  /** Extra /health fields (bundle, cache use). */
  health?: () => Record<string, unknown>;
  /** Extra metrics (cache hits, fetch latency). */
  registerMetrics?: (registry: MetricsRegistry) => void;
  /** Called by `close` after the scheduler stopped: free weights, caches, storage. */
  onClose?: () => void | Promise<void>;
}

/** A model served with continuous batching and a route hook. */
export class BatchedEngine implements Engine {
  readonly name: string;
  readonly experts: readonly string[];
  readonly contextLength: number;
  readonly maxTokensLimit: number;
  readonly vocabSize: number;
  readonly tokenizer: EngineTokenizer;
  readonly backendChoice: string;
  readonly #o: BatchedEngineOptions;
  readonly #scheduler: Scheduler;

  /** @param o model, tokenizer, route hook and limits */
  constructor(o: BatchedEngineOptions) {
    const maxPositions = o.model.config.maxPositionEmbeddings;
    this.#o = o;
    this.name = o.name;
    this.experts = o.experts ?? [];
    this.contextLength = Math.min(o.contextLength ?? maxPositions, maxPositions);
    this.maxTokensLimit = Math.min(o.maxTokensLimit ?? this.contextLength, this.contextLength);
    this.vocabSize = o.model.config.vocabSize;
    this.tokenizer = o.tokenizer;
    this.backendChoice = o.backendChoice;
    this.#scheduler = new Scheduler({
      model: o.model,
      eosTokenIds: o.eosTokenIds,
      decode: (ids) => o.tokenizer.decode(ids),
      resolveRoute: o.resolveRoute,
      maxBatch: o.maxBatch,
      maxQueue: o.maxQueue,
      prefillTokensPerStep: o.prefillTokensPerStep,
      maxSequenceLength: this.contextLength,
    });
  }

  /** The scheduler (for route hooks that need `exclusive`, and for stats). */
  get scheduler(): Scheduler {
    return this.#scheduler;
  }

  /** Model facts, queue state and the engine's own fields. */
  health(): Record<string, unknown> {
    const s = this.#scheduler.stats();
    const c = this.#o.model.config;
    return {
      architecture: c.modelType,
      layers: c.numLayers,
      hidden_size: c.hiddenSize,
      queue: {
        running: s.running,
        waiting: s.waiting,
        max_batch: s.maxBatch,
        max_queue: s.maxQueue,
      },
      ...this.#o.health?.(),
    };
  }

  /** Scheduler metrics, then the engine's own. */
  registerMetrics(registry: MetricsRegistry): void {
    registerSchedulerMetrics(registry, () => this.#scheduler.stats());
    this.#o.registerMetrics?.(registry);
  }

  /** Queue a request (throws QueueFullError when full). */
  submit(request: GenerationRequest): GenerationHandle {
    return this.#scheduler.submit(request);
  }

  /** Stop the scheduler, free activations, then run `onClose`. */
  async close(): Promise<void> {
    await this.#scheduler.close();
    this.#o.model.dispose();
    await this.#o.onClose?.();
  }
}
