/**
 * The one forward pass for the Llama family (Llama, Qwen2, Mistral), written
 * against the Backend interface. One call runs a batch of sequences: each
 * entry brings its new tokens, its KV cache and position, and optionally the
 * sparse deltas of its Mediator route (the `delta` path: y = D x + sum w S x,
 * added on that entry's rows only, so differently-routed requests share every
 * dense matmul).
 *
 * Buffers (R = total new tokens in the batch, H = hidden, I = intermediate,
 * Q = heads * headDim, K = kvHeads * headDim, V = vocab, L = entries wanting logits):
 *   x [R, H] residual stream    q [R, Q]   k, v [R, K]
 *   attn [R, Q]   gate, up [R, I]      last [L, H]   logits [L, V]
 * They are allocated once and grown only when a larger batch arrives. The o and down
 * projections add into x directly (matmul's `accumulate`: the residual connection), and
 * the down projection takes silu(gate) * up through matmul's `gate`, and the RMS norms
 * ride in the matmuls that read them (matmul's `norm`), so no normed copy of x is kept.
 */
import type {
  Backend,
  KvCache,
  MatmulDelta,
  MatmulOptions,
  SparseWeight,
  Tensor,
} from "../backends/backend.ts";
import type { ModelConfig } from "./config.ts";
import type { LayerWeights, ModelWeights, Projection } from "./weights.ts";

/** One sparse expert term of a route: scale * S. */
export interface LinearDelta {
  sparse: SparseWeight;
  scale: number;
}

/** The sparse deltas of a route, by layer and projection. */
export interface RouteDeltas {
  /** Deltas for a projection of a layer; undefined or empty when the layer is not routed. */
  get(layer: number, proj: Projection): readonly LinearDelta[] | undefined;
  /**
   * For routes still being fetched: a promise that settles when `layer`'s deltas
   * are in (undefined once they are). The step awaits it before that layer, so
   * a prompt's prefill runs its early layers while later blocks still arrive.
   */
  ready?(layer: number): Promise<void> | undefined;
}

/** One sequence's share of a batched step. */
export interface BatchEntry {
  /** New token ids (the prompt for prefill, one id for decode). */
  ids: Int32Array;
  cache: KvCache;
  /** Position of ids[0]; the cache already holds positions [0, startPos). */
  startPos: number;
  /** The route's sparse deltas (delta path); absent for dense or materialized weights. */
  deltas?: RouteDeltas;
  /** Return the logits of the last new token (default true). */
  wantLogits?: boolean;
}

/** Options of a forward step. */
export interface StepOptions {
  /** Weights to use instead of the model's own (the materialize path). */
  weights?: ModelWeights;
  /** Stop after this many layers and return the mean-pooled hidden state per entry. */
  stopAfterLayer?: number;
}

interface Workspace {
  rows: number;
  logitRows: number;
  x: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  attn: Tensor;
  gate: Tensor;
  up: Tensor;
  last: Tensor;
  logits: Tensor;
}

/** A model ready to run on a backend. */
export class Transformer {
  #ws?: Workspace;

  /**
   * @param backend where the weights live and ops run
   * @param config the model description
   * @param weights weights loaded on `backend`
   */
  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    readonly weights: ModelWeights,
  ) {}

  /** A fresh KV cache for one sequence of up to `maxSeq` tokens. */
  newCache(maxSeq: number): KvCache {
    const c = this.config;
    return this.backend.allocKvCache(c.numLayers, maxSeq, c.numKvHeads, c.headDim);
  }

  #workspace(rows: number, logitRows: number): Workspace {
    const ws = this.#ws;
    if (ws && ws.rows >= rows && ws.logitRows >= logitRows) return ws;
    if (ws) this.#freeWorkspace(ws);
    const c = this.config, b = this.backend;
    const r = Math.max(rows, ws?.rows ?? 0), l = Math.max(logitRows, ws?.logitRows ?? 1);
    const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
    const next: Workspace = {
      rows: r,
      logitRows: l,
      x: b.alloc(r * c.hiddenSize),
      q: b.alloc(r * q),
      k: b.alloc(r * kv),
      v: b.alloc(r * kv),
      attn: b.alloc(r * q),
      gate: b.alloc(r * c.intermediateSize),
      up: b.alloc(r * c.intermediateSize),
      last: b.alloc(l * c.hiddenSize),
      logits: b.alloc(l * c.vocabSize),
    };
    this.#ws = next;
    return next;
  }

  #freeWorkspace(ws: Workspace): void {
    for (
      const t of [
        ws.x,
        ws.q,
        ws.k,
        ws.v,
        ws.attn,
        ws.gate,
        ws.up,
        ws.last,
        ws.logits,
      ]
    ) {
      this.backend.free(t);
    }
  }

  /** Release the activation buffers (the weights stay). */
  dispose(): void {
    if (this.#ws) this.#freeWorkspace(this.#ws);
    this.#ws = undefined;
  }

  /**
   * out = W x (+ bias) for all rows (out += W x for the residual projections o and down;
   * x gated by silu(gate) when given), then each entry's route deltas on its rows.
   */
  #linear(
    out: Tensor,
    x: Tensor,
    layer: LayerWeights,
    layerIndex: number,
    proj: Projection,
    rows: number,
    entries: readonly BatchEntry[],
    offsets: readonly number[],
    order: readonly number[],
    input: Pick<MatmulOptions, "gate" | "norm"> = {},
  ): void {
    const bias = proj === "q" || proj === "k" || proj === "v" ? layer.bias[proj] : undefined;
    const accumulate = proj === "o" || proj === "down";
    // Entries are laid out grouped by route (`order`): each group shares one sparse pass.
    const deltas: MatmulDelta[] = [];
    for (let k = 0; k < order.length;) {
      const first = order[k], route = entries[first].deltas;
      let m = 0;
      while (k < order.length && entries[order[k]].deltas === route) {
        m += entries[order[k++]].ids.length;
      }
      for (const d of route?.get(layerIndex, proj) ?? []) {
        deltas.push({ sparse: d.sparse, scale: d.scale, rowOffset: offsets[first], m });
      }
    }
    this.backend.matmul(out, x, layer.linear[proj], rows, { bias, deltas, accumulate, ...input });
  }

  /**
   * Run one step for a batch. Returns, per entry, the logits of its last new
   * token (or null when `wantLogits` is false) — or, with `stopAfterLayer`, the
   * mean over its new tokens of the hidden state after that many layers.
   */
  async step(
    entries: readonly BatchEntry[],
    opts: StepOptions = {},
  ): Promise<(Float32Array | null)[]> {
    const c = this.config, b = this.backend, W = opts.weights ?? this.weights;
    // Rows are laid out grouped by route, so entries sharing a route are adjacent
    // and share one sparse pass per projection (see #linear).
    const routeGroup = new Map<RouteDeltas | undefined, number>();
    for (const e of entries) {
      if (!routeGroup.has(e.deltas)) routeGroup.set(e.deltas, routeGroup.size);
    }
    const order = entries.map((_, i) => i).sort((a, b) =>
      routeGroup.get(entries[a].deltas)! - routeGroup.get(entries[b].deltas)! || a - b
    );
    const offsets: number[] = new Array(entries.length);
    let rows = 0;
    for (const i of order) {
      const e = entries[i];
      if (e.ids.length === 0) throw new RangeError("Cannot run a step: an entry has no tokens");
      const window = this.config.slidingWindow;
      if (window && e.startPos + e.ids.length > window) {
        throw new RangeError(
          `Cannot run a step: ${
            e.startPos + e.ids.length
          } tokens exceed the model's sliding window of ${window}; sliding-window attention beyond it is not supported`,
        );
      }
      if (e.startPos + e.ids.length > e.cache.maxSeq) {
        throw new RangeError(
          `Cannot run a step: ${
            e.startPos + e.ids.length
          } tokens exceed the sequence's cache of ${e.cache.maxSeq}`,
        );
      }
      offsets[i] = rows;
      rows += e.ids.length;
    }
    const wanted = entries.map((e) => e.wantLogits !== false);
    const ws = this.#workspace(rows, Math.max(1, wanted.filter(Boolean).length));
    const H = c.hiddenSize;

    const ids = new Int32Array(rows);
    const positions = new Int32Array(rows);
    entries.forEach((e, i) => {
      ids.set(e.ids, offsets[i]);
      for (let j = 0; j < e.ids.length; j++) positions[offsets[i] + j] = e.startPos + j;
    });
    b.embed(ws.x, W.embed, ids);

    const nLayers = opts.stopAfterLayer ?? c.numLayers;
    for (let l = 0; l < nLayers; l++) {
      const L = W.layers[l];
      const pending = entries.map((e) => e.deltas?.ready?.(l)).filter((p) => p !== undefined);
      if (pending.length > 0) await Promise.all(pending);
      // Attention block.
      // The input norm rides in each of the q, k, v matmuls.
      const inputNorm = { norm: { gamma: L.inputNorm, eps: c.rmsNormEps } };
      this.#linear(ws.q, ws.x, L, l, "q", rows, entries, offsets, order, inputNorm);
      this.#linear(ws.k, ws.x, L, l, "k", rows, entries, offsets, order, inputNorm);
      this.#linear(ws.v, ws.x, L, l, "v", rows, entries, offsets, order, inputNorm);
      b.rope(ws.q, rows, c.numHeads, c.headDim, positions, c.ropeTheta);
      entries.forEach((e, i) => {
        const m = e.ids.length;
        // The keys' rope rides in the cache write.
        b.kvWrite(e.cache, l, ws.k, ws.v, offsets[i], m, e.startPos, c.ropeTheta);
        b.attention(ws.attn, ws.q, {
          numHeads: c.numHeads,
          numKvHeads: c.numKvHeads,
          headDim: c.headDim,
          cache: e.cache,
          layer: l,
          rowOffset: offsets[i],
          m,
          startPos: e.startPos,
        });
      });
      this.#linear(ws.x, ws.attn, L, l, "o", rows, entries, offsets, order);
      // MLP block.
      const postNorm = { norm: { gamma: L.postNorm, eps: c.rmsNormEps } };
      this.#linear(ws.gate, ws.x, L, l, "gate", rows, entries, offsets, order, postNorm);
      this.#linear(ws.up, ws.x, L, l, "up", rows, entries, offsets, order, postNorm);
      // down(silu(gate) * up): the gate rides in the down projection's matmul.
      this.#linear(ws.x, ws.up, L, l, "down", rows, entries, offsets, order, { gate: ws.gate });
    }

    if (opts.stopAfterLayer !== undefined) {
      const all = await b.read(ws.x, 0, rows * H);
      return entries.map((e, i) => {
        const pooled = new Float32Array(H);
        for (let j = 0; j < e.ids.length; j++) {
          const row = all.subarray((offsets[i] + j) * H, (offsets[i] + j + 1) * H);
          for (let d = 0; d < H; d++) pooled[d] += row[d];
        }
        for (let d = 0; d < H; d++) pooled[d] /= e.ids.length;
        return pooled;
      });
    }

    // Final norm and lm_head only on the last row of each entry that wants logits.
    let n = 0;
    entries.forEach((e, i) => {
      if (!wanted[i]) return;
      b.copy(ws.last, n * H, ws.x, (offsets[i] + e.ids.length - 1) * H, H);
      n++;
    });
    if (n === 0) return entries.map(() => null);
    b.matmul(ws.logits, ws.last, W.lmHead, n, {
      norm: { gamma: W.finalNorm, eps: c.rmsNormEps },
    });
    const all = await b.read(ws.logits, 0, n * c.vocabSize);
    let k = 0;
    return entries.map((_, i) => {
      if (!wanted[i]) return null;
      const out = all.slice(k * c.vocabSize, (k + 1) * c.vocabSize);
      k++;
      return out;
    });
  }
}
