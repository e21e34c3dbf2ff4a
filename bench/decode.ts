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

/** Measure prefill + decode. */
export async function measureDecode(model: Transformer, o: DecodeOptions): Promise<DecodeResult> {
  const c = model.config;
  const deltas = o.routedLayers?.length
    ? randomRouteDeltas(model.backend, c, o.routedLayers, o.experts ?? 2, o.density ?? 0.1)
    : undefined;
  const weights = deltas && o.materialize
    ? materializeRoute(model, o.routedLayers!, deltas)
    : undefined;
  const run = weights ? undefined : deltas;
  const caches = Array.from({ length: o.batch }, () => model.newCache(o.prompt + o.tokens + 1));
  const prompt = Int32Array.from({ length: o.prompt }, (_, i) => (i * 7919 + 11) % c.vocabSize);
  try {
    const t0 = performance.now();
    await model.step(
      caches.map((cache) => ({ ids: prompt, cache, startPos: 0, deltas: run })),
      { weights },
    );
    const ttftMs = performance.now() - t0;
    const times: number[] = [];
    for (let t = 0; t < o.tokens; t++) {
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
      times.push((performance.now() - s) / 1000);
    }
    const stepSeconds = median(times);
    return {
      backend: model.backend.info.name,
      batch: o.batch,
      ttftMs,
      stepSeconds,
      tokensPerSecond: o.batch / stepSeconds,
      bytesPerStep: weightBytesPerToken(c),
      routedLayers: o.routedLayers?.length ?? 0,
      path: !deltas ? "dense" : weights ? "materialize" : "delta",
      sparseBytes: deltas?.bytes ?? 0,
    };
  } finally {
    for (const cache of caches) model.backend.free(cache);
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
