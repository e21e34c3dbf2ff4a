import assert from "node:assert/strict";
import type { KvCache } from "../src/backends/backend.ts";
import { ReferenceBackend } from "../src/backends/reference.ts";
import { createRng } from "../src/merge/prng.ts";
import { parseHfConfig } from "../src/model/config.ts";
import { Transformer } from "../src/model/forward.ts";
import { loadModelWeights, type TensorSource } from "../src/model/weights.ts";
import { routerFeatures } from "../src/router/features.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

/** A reference backend that counts live KV caches. */
class CacheCountingBackend extends ReferenceBackend {
  live = new Set<KvCache>();
  override allocKvCache(layers: number, maxSeq: number, kvHeads: number, headDim: number) {
    const c = super.allocKvCache(layers, maxSeq, kvHeads, headDim);
    this.live.add(c);
    return c;
  }
  override free(r: Parameters<ReferenceBackend["free"]>[0]): void {
    this.live.delete(r as KvCache);
    super.free(r);
  }
}

const CONFIG = parseHfConfig({
  model_type: "qwen2",
  hidden_size: 16,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 24,
  vocab_size: 40,
  max_position_embeddings: 64,
  tie_word_embeddings: true,
});

/** Random f32 tensors for every name the loader asks for (norm weights near 1). */
function randomSource(seed: number): { src: TensorSource; values: Map<string, Float32Array> } {
  const rng = createRng(seed);
  const values = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const c = CONFIG, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const add = (name: string, shape: number[], base = 0) => {
    shapes.set(name, shape);
    const n = shape.reduce((a, b) => a * b, 1);
    values.set(name, Float32Array.from({ length: n }, () => base + (rng.next() - 0.5) * 0.6));
  };
  add("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize]);
  add("model.norm.weight", [c.hiddenSize], 1);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    add(p + "input_layernorm.weight", [c.hiddenSize], 1);
    add(p + "post_attention_layernorm.weight", [c.hiddenSize], 1);
    add(p + "self_attn.q_proj.weight", [q, c.hiddenSize]);
    add(p + "self_attn.k_proj.weight", [kv, c.hiddenSize]);
    add(p + "self_attn.v_proj.weight", [kv, c.hiddenSize]);
    add(p + "self_attn.q_proj.bias", [q]);
    add(p + "self_attn.k_proj.bias", [kv]);
    add(p + "self_attn.v_proj.bias", [kv]);
    add(p + "self_attn.o_proj.weight", [c.hiddenSize, q]);
    add(p + "mlp.gate_proj.weight", [c.intermediateSize, c.hiddenSize]);
    add(p + "mlp.up_proj.weight", [c.intermediateSize, c.hiddenSize]);
    add(p + "mlp.down_proj.weight", [c.hiddenSize, c.intermediateSize]);
  }
  const src: TensorSource = {
    has: (name) => values.has(name),
    info: (name) => ({ dtype: "f32", shape: shapes.get(name)! }),
    read: (name) => {
      const v = values.get(name)!;
      return Promise.resolve(new Uint8Array(v.buffer.slice(0)));
    },
  };
  return { src, values };
}

const PROMPTS = [[1, 5, 9], [2], [7, 7, 3, 11, 30, 4], [39, 0], [12, 13, 14, 15], [6], [8, 2, 2]];

async function tinyModel() {
  const backend = new CacheCountingBackend();
  const { src, values } = randomSource(3);
  const model = new Transformer(backend, CONFIG, await loadModelWeights(backend, CONFIG, src));
  return { backend, model, embed: values.get("model.embed_tokens.weight")! };
}

test("routerFeatures: layer 0 is the mean of the prompt's embedding rows", async () => {
  const { model, embed } = await tinyModel();
  const H = CONFIG.hiddenSize;
  const features = await routerFeatures(model, PROMPTS, 0, 3);
  PROMPTS.forEach((ids, n) => {
    for (let d = 0; d < H; d++) {
      const mean = ids.reduce((s, id) => s + embed[id * H + d], 0) / ids.length;
      assert.ok(Math.abs(features[n][d] - mean) < 1e-6, `prompt ${n} dim ${d}`);
    }
  });
  model.dispose();
});

test("routerFeatures: batching prompts of different lengths does not change features", async () => {
  const { backend, model } = await tinyModel();
  for (const layer of [1, 3]) {
    const single = await routerFeatures(model, PROMPTS, layer, 1);
    for (const batch of [2, 3, 16]) {
      const batched = await routerFeatures(model, PROMPTS, layer, batch);
      assert.equal(batched.length, PROMPTS.length);
      batched.forEach((f, n) => {
        f.forEach((v, d) =>
          assert.ok(Math.abs(v - single[n][d]) < 1e-5, `layer ${layer} batch ${batch}`)
        );
      });
    }
    assert.equal(backend.live.size, 0, "every temporary KV cache is freed");
  }
  const l1 = await routerFeatures(model, PROMPTS.slice(0, 1), 1);
  const l3 = await routerFeatures(model, PROMPTS.slice(0, 1), 3);
  assert.ok(l1[0].some((v, d) => Math.abs(v - l3[0][d]) > 1e-3), "deeper layers change features");
  model.dispose();
});

test("routerFeatures: rejects bad layers, batches and empty prompts", async () => {
  const { backend, model } = await tinyModel();
  await assert.rejects(
    () => routerFeatures(model, PROMPTS, 4),
    /layer must be an integer in \[0, 3\]/,
  );
  await assert.rejects(() => routerFeatures(model, PROMPTS, -1), RangeError);
  await assert.rejects(() => routerFeatures(model, PROMPTS, 1, 0), /batch must be/);
  await assert.rejects(() => routerFeatures(model, [[1], []], 1), /prompt 1 has no tokens/);
  await assert.rejects(
    () => routerFeatures(model, [new Array(65).fill(1)], 1),
    /prompt 0 has 65 tokens/,
  );
  assert.deepEqual(await routerFeatures(model, [], 2), []);
  assert.equal(backend.live.size, 0);
  model.dispose();
});
