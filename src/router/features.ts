/**
 * Router features (MEDIATOR.md §4): the mean over a prompt's tokens of the
 * hidden state after `layer` blocks of a model (for Mediator, the averaged
 * model with every routed unit replaced by its dense expert).
 */
import type { KvCache } from "../backends/backend.ts";
import type { Transformer } from "../model/forward.ts";

/** Prompts run together in one forward step unless told otherwise. */
export const DEFAULT_FEATURE_BATCH = 8;

/**
 * Features [hiddenSize] for each prompt in `ids`, in order. Prompts are run
 * `batch` at a time through `model.step(..., { stopAfterLayer: layer })`, each
 * with a temporary KV cache sized to it and freed afterwards.
 */
export async function routerFeatures(
  model: Transformer,
  ids: readonly (readonly number[])[],
  layer: number,
  batch = DEFAULT_FEATURE_BATCH,
): Promise<Float32Array[]> {
  const L = model.config.numLayers;
  if (!Number.isInteger(layer) || layer < 0 || layer > L) {
    throw new RangeError(
      `Cannot compute router features: layer must be an integer in [0, ${L}], got ${layer}`,
    );
  }
  if (!Number.isInteger(batch) || batch < 1) {
    throw new RangeError(
      `Cannot compute router features: batch must be an integer >= 1, got ${batch}`,
    );
  }
  ids.forEach((p, i) => {
    if (p.length === 0) {
      throw new RangeError(`Cannot compute router features: prompt ${i} has no tokens`);
    }
    if (p.length > model.config.maxPositionEmbeddings) {
      throw new RangeError(
        `Cannot compute router features: prompt ${i} has ${p.length} tokens, more than the model's ${model.config.maxPositionEmbeddings} positions`,
      );
    }
  });
  const out: Float32Array[] = [];
  for (let start = 0; start < ids.length; start += batch) {
    const group = ids.slice(start, start + batch);
    const caches: KvCache[] = [];
    try {
      for (const p of group) caches.push(model.newCache(p.length));
      const pooled = await model.step(
        group.map((p, i) => ({
          ids: Int32Array.from(p),
          cache: caches[i],
          startPos: 0,
          wantLogits: false,
        })),
        { stopAfterLayer: layer },
      );
      for (const f of pooled) out.push(f!);
    } finally {
      for (const c of caches) model.backend.free(c);
    }
  }
  return out;
}
