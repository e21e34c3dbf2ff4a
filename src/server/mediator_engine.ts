/**
 * The engine over a Mediator bundle (MEDIATOR.md sections 4-6): the batched
 * engine of every model kind, with a route hook that runs the bundle's router
 * and fetches the route's sparse experts.
 *
 * Per request: the router's forward pass runs between batched steps
 * (`context.exclusive`), then every (unit, expert) block of the route is
 * fetched at once (one verified Range read each; requests with the same route
 * share fetches and cached blocks), and the request runs with the route's
 * sparse deltas (`delta`) or its materialized weights (`materialize`). Its
 * blocks stay pinned in the cache until the request ends.
 *
 * An expert that cannot be fetched, or whose bytes fail their sha256 check,
 * fails the request (502 for storage, 500 for a corrupt bundle) or, with
 * `onExpertError: "dense"`, serves the dense expert and says so in the route.
 */
import type { Backend } from "../backends/backend.ts";
import {
  MediatorModel,
  type MediatorOptions,
  type RouteDecision,
} from "../bundle/mediator_model.ts";
import { freeModelWeights } from "../model/weights.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { BatchedEngine, type EngineLimits } from "./batched_engine.ts";
import { engineTokenizer, unionEos } from "./dense_engine.ts";
import type { RouteContext, RouteInfo, RouteResolution } from "./engine.ts";
import { registerMediatorMetrics } from "./mediator_metrics.ts";

/** Everything `MediatorEngine.open` needs besides storage and backend. */
export interface MediatorEngineOptions extends EngineLimits, MediatorOptions {
  /** How the backend was chosen, for /health. */
  backendChoice: string;
  /** Model name clients send (default: the bundle's name). */
  name?: string;
}

/** The route clients see: what ran (a dense fallback lists no experts). */
export function routeInfo(d: RouteDecision): RouteInfo {
  if (d.fallback !== undefined) {
    return {
      experts: [],
      weights: [],
      uncertainty: d.uncertainty,
      forced: d.forced,
      fallback: d.fallback,
    };
  }
  if (d.mode === "dense") {
    return {
      experts: [],
      weights: [],
      uncertainty: d.uncertainty,
      forced: false,
      fallback: "dense expert (the router's confidence is below min_confidence)",
    };
  }
  return { experts: d.experts, weights: d.weights, uncertainty: d.uncertainty, forced: d.forced };
}

/**
 * The per-request side of a bundle engine: the route hook, /health fields and
 * shutdown. Requests whose experts fail in `dense` mode are counted.
 */
class BundleRoutes {
  /** Requests whose route ended in the dense fallback. */
  fallbacks = 0;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(readonly bundle: MediatorModel) {}

  /**
   * Router under the scheduler's lock, then the route's experts: every block is
   * fetched in parallel and prefill starts at once, each layer waiting for its own
   * blocks (materialized routes, once built, are used directly).
   */
  resolve(
    ids: readonly number[],
    forced: string | undefined,
    context: RouteContext,
  ): Promise<RouteResolution> {
    const work = (async () => {
      const decision = forced === undefined
        ? await context.exclusive(() => this.bundle.decide(ids))
        : await this.bundle.decide(ids, forced);
      // Prefill starts while the route's blocks are still arriving (layer by layer).
      const prepared = await this.bundle.prepare(decision, {
        exclusive: context.exclusive,
        progressive: true,
      });
      if (prepared.decision.fallback !== undefined) this.fallbacks++;
      let released = false;
      return {
        route: routeInfo(prepared.decision),
        deltas: prepared.deltas,
        weights: prepared.weights,
        release: () => {
          if (released) return;
          released = true;
          prepared.release();
        },
      };
    })();
    // `dispose` waits for routes still being fetched before it frees the caches.
    this.#pending.add(work);
    work.finally(() => this.#pending.delete(work)).catch(() => undefined);
    return work;
  }

  health(): Record<string, unknown> {
    const b = this.bundle, c = b.experts.cacheStats, f = b.experts.fetchStats;
    return {
      kind: "bundle",
      bundle: {
        name: b.name,
        location: b.storage.location,
        experts: b.expertNames,
        routed_units: b.routedUnits,
        router_layer: b.router.routerLayer,
        apply: b.options.apply,
        on_expert_error: b.options.onExpertError,
      },
      cache: {
        bytes: c.bytes,
        capacity: c.capacityBytes,
        entries: c.entries,
        hits: c.hits,
        misses: c.misses,
        evictions: c.evictions,
      },
      fetches: {
        count: f.fetches,
        bytes: f.bytes,
        failures: f.failures,
        median_ms: median(f.latencyMs),
      },
      fallbacks: this.fallbacks,
    };
  }

  async dispose(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
    const b = this.bundle;
    b.dispose();
    freeModelWeights(b.model.backend, b.model.weights);
  }
}

/** A Mediator bundle served with continuous batching and per-request routes. */
export class MediatorEngine extends BatchedEngine {
  readonly #routes: BundleRoutes;

  /**
   * @param bundle an opened bundle; the engine owns it from now on
   * @param o limits, backend choice and name (default: the bundle's name)
   */
  constructor(bundle: MediatorModel, o: EngineLimits & { backendChoice: string; name?: string }) {
    const routes = new BundleRoutes(bundle);
    const tokenizer = bundle.tokenizer;
    super({
      ...o,
      name: o.name ?? bundle.name,
      model: bundle.model,
      tokenizer: engineTokenizer(tokenizer),
      eosTokenIds: unionEos(bundle.config.eosTokenIds, tokenizer.eosTokenIds),
      experts: bundle.expertNames,
      resolveRoute: (ids, forced, context) => routes.resolve(ids, forced, context),
      health: () => routes.health(),
      registerMetrics: (registry) => registerMediatorMetrics(registry, routes),
      onClose: () => routes.dispose(),
    });
    this.#routes = routes;
  }

  /** Open the bundle in `storage` onto `backend` and serve it. */
  static async open(
    storage: ByteStorage,
    backend: Backend,
    opts: MediatorEngineOptions,
  ): Promise<MediatorEngine> {
    const bundle = await MediatorModel.open(storage, backend, {
      cacheBytes: opts.cacheBytes,
      apply: opts.apply,
      onExpertError: opts.onExpertError,
      selection: opts.selection,
    });
    return new MediatorEngine(bundle, opts);
  }

  /** The loaded bundle (router, dense weights, expert store). */
  get bundle(): MediatorModel {
    return this.#routes.bundle;
  }

  /** Requests served by the dense expert because their experts could not be loaded. */
  get fallbacks(): number {
    return this.#routes.fallbacks;
  }
}

function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
