/**
 * Decode and prefill timing of a full random-weight model on one backend:
 * time to first token (prefill of `prompt` tokens for `batch` sequences) and
 * decode tokens/s (median step time over `tokens` steps, every sequence gets a
 * token per step). Optionally with Mediator route deltas on some layers, for
 * the routed-vs-dense ratio.
 */
import type { Backend } from "../src/backends/backend.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { type RouteDeltas, Transformer } from "../src/model/forward.ts";
import { freeModelWeights, type ModelWeights, PROJECTIONS } from "../src/model/weights.ts";
import { randomModelWeights, randomRouteDeltas, weightBytesPerToken } from "./random_model.ts";

/** Options of one decode measurement. */
export interface DecodeOptions {
  batch: number;
  prompt: number;
  tokens: number;
  /** Routed layers carrying random sparse experts (empty: dense). */
  routedLayers?: number[];
  experts?: number;
  density?: number;
  /**
   * Materialize the route instead: W = D + sum w S on the routed layers
   * (one weight copy per route), then decode with dense kernels only.
   */
  materialize?: boolean;
}

/** Result of one decode measurement. */
export interface DecodeResult {
  backend: string;
  batch: number;
  ttftMs: number;
  /** Median seconds per decode step. */
  stepSeconds: number;
  tokensPerSecond: number;
  /** Weight bytes read per step (all matrices once). */
  bytesPerStep: number;
  routedLayers: number;
  /** "dense", "delta" (sparse kernels) or "materialize" (route folded into weights). */
  path: string;
  sparseBytes: number;
}

/** Median of a list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** A model on `backend` reused across measurements. */
export function buildModel(backend: Backend, config: ModelConfig): Transformer {
  return new Transformer(backend, config, randomModelWeights(backend, config));
}

/** Free a model built by `buildModel`. */
export function freeModel(model: Transformer): void {
  model.dispose();
  freeModelWeights(model.backend, model.weights);
}

/** One prepared decode (route, caches, prefill done) whose steps can be timed one by one. */
interface DecodeRun {
  ttftMs: number;
  path: string;
  sparseBytes: number;
  /** Runs decode step `t` (t counts from 0) and returns its seconds. */
  step(t: number): Promise<number>;
  free(): void;
}

/** Builds the route of `o`, allocates the caches and runs the prefill. */
async function startDecode(model: Transformer, o: DecodeOptions): Promise<DecodeRun> {
  const c = model.config;
  const deltas = o.routedLayers?.length
    ? randomRouteDeltas(model.backend, c, o.routedLayers, o.experts ?? 2, o.density ?? 0.1)
    : undefined;
  const weights = deltas && o.materialize
    ? materializeRoute(model, o.routedLayers!, deltas)
    : undefined;
  const run = weights ? undefined : deltas;
  const caches = Array.from({ length: o.batch }, () => model.newCache(o.prompt + o.tokens + 1));
  const free = () => {
    const b = model.backend;
    for (const cache of caches) b.free(cache);
    for (const l of o.routedLayers ?? []) {
      for (const p of PROJECTIONS) {
        for (const d of deltas?.get(l, p) ?? []) b.free(d.sparse);
        if (weights) b.free(weights.layers[l].linear[p]);
      }
    }
  };
  const prompt = Int32Array.from({ length: o.prompt }, (_, i) => (i * 7919 + 11) % c.vocabSize);
  try {
    const t0 = performance.now();
    await model.step(
      caches.map((cache) => ({ ids: prompt, cache, startPos: 0, deltas: run })),
      { weights },
    );
    return {
      ttftMs: performance.now() - t0,
      path: !deltas ? "dense" : weights ? "materialize" : "delta",
      sparseBytes: deltas?.bytes ?? 0,
      async step(t: number): Promise<number> {
        const s = performance.now();
        await model.step(
          caches.map((cache, i) => ({
            ids: Int32Array.of((t * 31 + i) % c.vocabSize),
            cache,
            startPos: o.prompt + t,
            deltas: run,
          })),
          { weights },
        );
        return (performance.now() - s) / 1000;
      },
      free,
    };
  } catch (e) {
    free();
    throw e;
  }
}

/** Measure prefill + decode. */
export async function measureDecode(model: Transformer, o: DecodeOptions): Promise<DecodeResult> {
  const run = await startDecode(model, o);
  try {
    const times: number[] = [];
    for (let t = 0; t < o.tokens; t++) times.push(await run.step(t));
    return result(model, o, run, median(times));
  } finally {
    run.free();
  }
}

function result(
  model: Transformer,
  o: DecodeOptions,
  run: DecodeRun,
  stepSeconds: number,
): DecodeResult {
  return {
    backend: model.backend.info.name,
    batch: o.batch,
    ttftMs: run.ttftMs,
    stepSeconds,
    tokensPerSecond: o.batch / stepSeconds,
    bytesPerStep: weightBytesPerToken(model.config),
    routedLayers: o.routedLayers?.length ?? 0,
    path: run.path,
    sparseBytes: run.sparseBytes,
  };
}

/** A routed decode timed against the dense decode, interleaved (see `measurePaired`). */
export interface PairedResult {
  dense: DecodeResult;
  routed: DecodeResult;
  /** Per round: dense median step / routed median step (above 1: routed is faster). */
  ratios: number[];
  /** Median of `ratios`. */
  ratio: number;
}

/**
 * Routed against dense, interleaved so that drift of the machine (clocks, other load) hits
 * both alike: `rounds` rounds of `perRound` decode steps of each, the order alternating
 * between rounds; each round gives the ratio of the two median step times, and the result is
 * the median ratio. `o.tokens` must be at least rounds * perRound.
 */
export async function measurePaired(
  model: Transformer,
  o: DecodeOptions,
  rounds: number,
  perRound: number,
): Promise<PairedResult> {
  const denseOpts = { ...o, routedLayers: undefined, materialize: undefined };
  const dense = await startDecode(model, denseOpts);
  let routed: DecodeRun | undefined;
  try {
    routed = await startDecode(model, o);
    const all = { dense: [] as number[], routed: [] as number[] };
    const ratios: number[] = [];
    let t = 0;
    for (let r = 0; r < rounds; r++) {
      const round = { dense: [] as number[], routed: [] as number[] };
      const order = r % 2 === 0 ? [dense, routed] : [routed, dense];
      for (const run of order) {
        const times = run === dense ? round.dense : round.routed;
        for (let k = 0; k < perRound; k++) times.push(await run.step(t + k));
      }
      t += perRound;
      ratios.push(median(round.dense) / median(round.routed));
      all.dense.push(...round.dense);
      all.routed.push(...round.routed);
    }
    return {
      dense: result(model, denseOpts, dense, median(all.dense)),
      routed: result(model, o, routed, median(all.routed)),
      ratios,
      ratio: median(ratios),
    };
  } finally {
    dense.free();
    routed?.free();
  }
}

/** The model's weights with `deltas` folded into copies of the routed layers' projections. */
function materializeRoute(model: Transformer, layers: number[], deltas: RouteDeltas): ModelWeights {
  const b = model.backend, base = model.weights;
  const out = { ...base, layers: base.layers.slice() };
  for (const l of layers) {
    const linear = { ...base.layers[l].linear };
    for (const p of PROJECTIONS) {
      linear[p] = b.cloneWeight(linear[p]);
      for (const d of deltas.get(l, p) ?? []) b.scatterAdd(linear[p], d.sparse, d.scale);
    }
    out.layers[l] = { ...base.layers[l], linear };
  }
  return out;
}
