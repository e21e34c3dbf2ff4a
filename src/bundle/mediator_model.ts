/**
 * A Mediator bundle ready to serve (MEDIATOR.md sections 4-6): the merged
 * dense model on a backend, the router, and the lazily fetched sparse experts.
 *
 * Per request: `decide` runs the router on the prompt (features after
 * `routerLayer` layers of the merged model) and applies the uncertainty rule;
 * `prepare` fetches the route's sparse blocks (all in parallel, one Range
 * request each) and returns either the route's sparse deltas (`delta` path:
 * y = D x + sum_t w_t S_t x) or weights with the deltas folded in
 * (`materialize` path: W = D + sum_t w_t S_t, cached per distinct route).
 */
import type { Backend } from "../backends/backend.ts";
import { BundleFormatError } from "../errors.ts";
import { type ModelConfig, parseHfConfig } from "../model/config.ts";
import { type RouteDeltas, Transformer } from "../model/forward.ts";
import {
  type LayerWeights,
  loadModelWeights,
  type ModelWeights,
  type Projection,
} from "../model/weights.ts";
import { routerFeatures } from "../router/features.ts";
import type { Router } from "../router/router.ts";
import type { SelectionOptions } from "../router/select.ts";
import { decodeRouter } from "../router/serialize.ts";
import { Checkpoint } from "../safetensors/checkpoint.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { ExpertStore, type UnitSparse } from "./expert_store.ts";
import { ByteLru } from "./lru.ts";
import { type BundleManifest, routedUnits } from "./manifest.ts";
import { readManifest, readVerified } from "./reader.ts";
import { Deltas, ProgressiveDeltas } from "./route_deltas.ts";
import { VerifiedDense } from "./verified_dense.ts";

/**
 * How routed layers are applied: `delta` (sparse kernels, no weight copies),
 * `materialize` (W = D + sum w S, cached per route), or `auto` (default):
 * single-expert routes - few and recurring - are materialized while one such
 * weight set fits in a quarter of the cache, mixtures run the delta path.
 */
export type ApplyMode = "delta" | "materialize" | "auto";

/** The route of one request, as reported to clients. */
export interface RouteDecision {
  experts: string[];
  weights: number[];
  /** Normalised entropy of the router's distribution, in [0, 1]. */
  uncertainty: number;
  /** "top1" | "mixture" | "dense" (router) or "forced" (the request named an expert). */
  mode: "top1" | "mixture" | "dense" | "forced";
  forced: boolean;
  /** Router probabilities by expert name (absent when forced). */
  probabilities?: Record<string, number>;
  /** Set when experts could not be fetched and the dense expert served instead. */
  fallback?: string;
}

/** A route with its resources acquired; call `release` when the request ends. */
export interface PreparedRoute {
  decision: RouteDecision;
  deltas?: RouteDeltas;
  weights?: ModelWeights;
  release(): void;
}

/** Options of `MediatorModel.open`. */
export interface MediatorOptions {
  /** LRU budget for fetched sparse experts (and materialized routes), bytes. */
  cacheBytes?: number;
  apply?: ApplyMode;
  /** What to do when an expert cannot be fetched: fail the request, or serve the dense expert. */
  onExpertError?: "error" | "dense";
  /** Overrides of the bundle's selection defaults. */
  selection?: Partial<SelectionOptions>;
}

/** Options of `MediatorModel.prepare`. */
export interface PrepareOptions {
  /** Runs backend work where no forward step runs (a scheduler's `exclusive`). */
  exclusive?: <T>(fn: () => Promise<T>) => Promise<T>;
  /**
   * Return at once, with deltas that fill in layer by layer as their blocks
   * arrive (`RouteDeltas.ready`): prefill starts while the route is fetched.
   * A fetch failure then fails the request at that layer, so this is ignored
   * with `onExpertError: "dense"`, whose fallback must be known up front.
   */
  progressive?: boolean;
}

/** A bundle loaded for serving. */
export class MediatorModel {
  readonly #routed: string[];
  readonly #materialized: ByteLru<ModelWeights>;

  private constructor(
    readonly storage: ByteStorage,
    readonly manifest: BundleManifest,
    readonly config: ModelConfig,
    readonly model: Transformer,
    readonly tokenizer: TextTokenizer,
    readonly router: Router,
    readonly experts: ExpertStore,
    readonly options: Required<Omit<MediatorOptions, "selection">> & {
      selection: Partial<SelectionOptions>;
    },
  ) {
    this.#routed = routedUnits(manifest);
    this.#materialized = new ByteLru<ModelWeights>(
      options.cacheBytes,
      (w) => this.#freeMaterialized(w),
    );
  }

  /** Open a bundle and load its dense weights, tokenizer and router onto `backend`. */
  static async open(
    storage: ByteStorage,
    backend: Backend,
    opts: MediatorOptions = {},
  ): Promise<MediatorModel> {
    const manifest = await readManifest(storage);
    const config = parseHfConfig(manifest.modelConfig, `${storage.location}/manifest.json`);
    const ckpt = await Checkpoint.open(storage);
    const tokenizer = await TextTokenizer.load(storage);
    const routerFile = manifest.files.find((f) => f.path === manifest.router.file);
    if (!routerFile) {
      throw new BundleFormatError(
        `Cannot open bundle: router file '${manifest.router.file}' is not listed`,
      );
    }
    const router = decodeRouter(
      await readVerified(
        storage,
        routerFile.path,
        0,
        routerFile.size,
        routerFile.sha256,
        "the router",
      ),
      `${storage.location}/${routerFile.path}`,
    );
    const names = manifest.experts.map((e) => e.name);
    if (router.expertNames.join() !== names.join()) {
      throw new BundleFormatError(
        `Cannot open bundle: the router's experts (${router.expertNames}) differ from the manifest's (${names})`,
      );
    }
    const weights = await loadModelWeights(
      backend,
      config,
      new VerifiedDense(ckpt, storage, manifest),
    );
    const options = {
      cacheBytes: opts.cacheBytes ?? 256 << 20,
      apply: opts.apply ?? "auto",
      onExpertError: opts.onExpertError ?? "error",
      selection: opts.selection ?? {},
    };
    return new MediatorModel(
      storage,
      manifest,
      config,
      new Transformer(backend, config, weights),
      tokenizer,
      router,
      new ExpertStore(storage, manifest, backend, options.cacheBytes),
      options,
    );
  }

  /** The bundle's name. */
  get name(): string {
    return this.manifest.name;
  }

  /** Expert names, in router class order. */
  get expertNames(): readonly string[] {
    return this.router.expertNames;
  }

  /** Routed units, in model order. */
  get routedUnits(): readonly string[] {
    return this.#routed;
  }

  /** Route a prompt: the forced expert, or the router's uncertainty-based choice. */
  async decide(promptIds: readonly number[], forced?: string): Promise<RouteDecision> {
    if (forced !== undefined) {
      this.router.expertIndex(forced); // RangeError naming the experts when unknown
      return { experts: [forced], weights: [1], uncertainty: 0, mode: "forced", forced: true };
    }
    const [features] = await routerFeatures(this.model, [promptIds], this.router.routerLayer);
    const r = this.router.select(features, this.options.selection);
    const probabilities: Record<string, number> = {};
    this.router.expertNames.forEach((n, i) => probabilities[n] = r.probabilities[i]);
    return {
      experts: r.experts.map((i) => this.router.expertNames[i]),
      weights: r.weights,
      uncertainty: r.uncertainty,
      mode: r.mode,
      forced: false,
      probabilities,
    };
  }

  /**
   * Fetch the route's experts and build its deltas or materialized weights.
   * `opts.exclusive` runs the weight building (backend work outside a step)
   * where no forward step is running; fetches never wait for it.
   */
  async prepare(decision: RouteDecision, opts: PrepareOptions = {}): Promise<PreparedRoute> {
    if (decision.experts.length === 0 || this.#routed.length === 0) {
      return { decision, release: () => {} };
    }
    const wanted = decision.experts.flatMap((e) => this.#routed.map((u) => ({ e, u })));
    const key = decision.experts.map((e, i) => `${e}:${decision.weights[i].toFixed(4)}`).join(",");
    const materialize = this.#materializes(decision);
    const cold = wanted.some(({ e, u }) => !this.experts.isCached(e, u));
    if (
      opts.progressive && cold && this.options.onExpertError !== "dense" &&
      !(materialize && this.#materialized.has(key))
    ) {
      return this.#prepareProgressive(decision, wanted, key, materialize, opts);
    }
    const settled = await Promise.allSettled(wanted.map(({ e, u }) => this.experts.acquire(e, u)));
    const failed = settled.find((s) => s.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    const releaseAll = () =>
      settled.forEach((s, i) => {
        if (s.status === "fulfilled") this.experts.release(wanted[i].e, wanted[i].u);
      });
    if (failed) {
      releaseAll();
      if (this.options.onExpertError === "dense") {
        return {
          decision: { ...decision, fallback: `dense expert (${(failed.reason as Error).message})` },
          release: () => {},
        };
      }
      throw failed.reason;
    }
    const parts = settled.map((s, i) => ({
      weight: decision.weights[decision.experts.indexOf(wanted[i].e)],
      unit: (s as PromiseFulfilledResult<UnitSparse>).value,
    }));
    if (!materialize) {
      return { decision, deltas: this.#deltasFor(key, parts), release: releaseAll };
    }
    // materialize: one weight set per distinct route, cached and pinned while used.
    try {
      const exclusive = opts.exclusive ?? ((fn) => fn());
      const weights = await this.#materialized.acquire(
        key,
        () => exclusive(() => Promise.resolve(this.#materialize(parts))),
      );
      return { decision, weights, release: () => this.#materialized.release(key) };
    } finally {
      releaseAll();
    }
  }

  /**
   * Progressive delta route: every block fetch starts now; each layer's deltas
   * are added as its blocks arrive. A route that should be materialized is
   * built in the background (between steps) for the requests that follow.
   */
  #prepareProgressive(
    decision: RouteDecision,
    wanted: { e: string; u: string }[],
    key: string,
    materialize: boolean,
    opts: PrepareOptions,
  ): PreparedRoute {
    const deltas = new ProgressiveDeltas();
    const loads = wanted.map(({ e, u }) => this.experts.acquire(e, u));
    const byLayer = new Map<number, Promise<void>[]>();
    loads.forEach((load, i) => {
      const layer = Number(wanted[i].u.split(".")[1]);
      const weight = decision.weights[decision.experts.indexOf(wanted[i].e)];
      const added = load.then((unit) => {
        for (const t of unit.tensors) {
          deltas.add(unit.layer, t.proj, { sparse: t.sparse, scale: weight });
        }
      });
      byLayer.set(layer, [...(byLayer.get(layer) ?? []), added]);
    });
    for (const [layer, parts] of byLayer) deltas.track(layer, Promise.all(parts).then(() => {}));
    const settled = Promise.allSettled(loads);
    if (materialize) {
      // Warm the materialized route for later requests; errors surface in this request.
      settled.then(async (all) => {
        if (all.some((s) => s.status === "rejected") || this.#materialized.has(key)) return;
        // Pin the blocks again: this request may end (and unpin) before the build runs.
        const units = await Promise.all(wanted.map(({ e, u }) => this.experts.acquire(e, u)));
        try {
          const parts = units.map((unit, i) => ({
            weight: decision.weights[decision.experts.indexOf(wanted[i].e)],
            unit,
          }));
          const exclusive = opts.exclusive ?? ((fn) => fn());
          await this.#materialized.acquire(
            key,
            () => exclusive(() => Promise.resolve(this.#materialize(parts))),
          );
          this.#materialized.release(key);
        } finally {
          for (const { e, u } of wanted) this.experts.release(e, u);
        }
      }).catch(() => {});
    }
    return {
      decision,
      deltas,
      release: () => {
        settled.then((all) =>
          all.forEach((s, i) => {
            if (s.status === "fulfilled") this.experts.release(wanted[i].e, wanted[i].u);
          })
        );
      },
    };
  }

  /** Whether a route runs on materialized weights (see ApplyMode). */
  #materializes(decision: RouteDecision): boolean {
    const mode = this.options.apply;
    if (mode !== "auto") return mode === "materialize";
    return decision.experts.length === 1 &&
      this.#routedWeightBytes() * 4 <= this.options.cacheBytes;
  }

  #routedWeightBytesCache?: number;
  /** Bytes of the dense projections of the routed layers (one materialized route). */
  #routedWeightBytes(): number {
    if (this.#routedWeightBytesCache === undefined) {
      const layers = new Set(this.#routed.map((u) => Number(u.split(".")[1])));
      let n = 0;
      for (const l of layers) {
        for (const w of Object.values(this.model.weights.layers[l].linear)) {
          n += w.rows * w.cols * (w.dtype === "f32" ? 4 : 2);
        }
      }
      this.#routedWeightBytesCache = n;
    }
    return this.#routedWeightBytesCache;
  }

  readonly #deltaCache = new Map<string, { units: UnitSparse[]; deltas: Deltas }>();
  /**
   * The route's deltas; requests with the same route get the same object, so
   * the forward pass runs one sparse pass over all their rows.
   */
  #deltasFor(key: string, parts: { weight: number; unit: UnitSparse }[]): Deltas {
    const hit = this.#deltaCache.get(key);
    if (
      hit && hit.units.length === parts.length && hit.units.every((u, i) => u === parts[i].unit)
    ) {
      return hit.deltas;
    }
    const deltas = new Deltas();
    for (const p of parts) {
      for (const t of p.unit.tensors) {
        deltas.add(p.unit.layer, t.proj, { sparse: t.sparse, scale: p.weight });
      }
    }
    if (this.#deltaCache.size >= 64) this.#deltaCache.delete(this.#deltaCache.keys().next().value!);
    this.#deltaCache.set(key, { units: parts.map((p) => p.unit), deltas });
    return deltas;
  }

  #materialize(
    parts: { weight: number; unit: UnitSparse }[],
  ): { value: ModelWeights; bytes: number } {
    const b = this.model.backend, base = this.model.weights;
    const layers = base.layers.slice();
    let bytes = 0;
    const cloned = new Map<number, LayerWeights>();
    for (const p of parts) {
      let l = cloned.get(p.unit.layer);
      if (!l) {
        const src = base.layers[p.unit.layer];
        l = { ...src, linear: { ...src.linear } };
        cloned.set(p.unit.layer, l);
        layers[p.unit.layer] = l;
      }
      for (const t of p.unit.tensors) {
        if (l.linear[t.proj] === base.layers[p.unit.layer].linear[t.proj]) {
          const w = b.cloneWeight(l.linear[t.proj]);
          bytes += w.rows * w.cols * (w.dtype === "f32" ? 4 : 2);
          l.linear[t.proj] = w;
        }
        b.scatterAdd(l.linear[t.proj], t.sparse, p.weight);
      }
    }
    return { value: { ...base, layers }, bytes };
  }

  #freeMaterialized(w: ModelWeights): void {
    const base = this.model.weights;
    w.layers.forEach((l, i) => {
      for (const [proj, weight] of Object.entries(l.linear)) {
        if (weight !== base.layers[i].linear[proj as Projection]) this.model.backend.free(weight);
      }
    });
  }

  /** Free experts, materialized routes and activations (the backend stays). */
  dispose(): void {
    this.#materialized.clear();
    this.experts.dispose();
    this.model.dispose();
  }
}
