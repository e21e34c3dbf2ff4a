/**
 * Decode and prefill timing of a full random-weight model on one backend:
 * time to first token (prefill of `prompt` tokens for `batch` sequences) and
 * decode tokens/s (median step time over `tokens` steps, every sequence gets a
 * token per step). Optionally with Mediator route deltas on some layers, for
 * the routed-vs-dense ratio.
 */
import type { Backend } from "../src/backends/backend.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { Transformer } from "../src/model/forward.ts";
import { freeModelWeights } from "../src/model/weights.ts";
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
  const caches = Array.from({ length: o.batch }, () => model.newCache(o.prompt + o.tokens + 1));
  const prompt = Int32Array.from({ length: o.prompt }, (_, i) => (i * 7919 + 11) % c.vocabSize);
  try {
    const t0 = performance.now();
    await model.step(caches.map((cache) => ({ ids: prompt, cache, startPos: 0, deltas })));
    const ttftMs = performance.now() - t0;
    const times: number[] = [];
    for (let t = 0; t < o.tokens; t++) {
      const s = performance.now();
      await model.step(caches.map((cache, i) => ({
        ids: Int32Array.of((t * 31 + i) % c.vocabSize),
        cache,
        startPos: o.prompt + t,
        deltas,
      })));
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
      sparseBytes: deltas?.bytes ?? 0,
    };
  } finally {
    for (const cache of caches) model.backend.free(cache);
  }
}
