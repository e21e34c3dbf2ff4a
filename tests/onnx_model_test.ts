/**
 * The ONNX decoder (bench/onnx_model.ts) run by onnxruntime-web's wasm EP must compute the
 * same model: against PyTorch's logits for the fixture checkpoint when it is present, and
 * against the reference backend on random models (Qwen2-style: QKV bias, tied embeddings,
 * GQA; Llama-style: no bias, untied lm_head, plain multi-head). Each check runs a prefill and
 * then decode steps through the past/present key-value inputs and outputs.
 */
import assert from "node:assert/strict";
import * as ort from "onnxruntime-web";
import { createReferenceBackend } from "../src/backends/reference.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { Transformer } from "../src/model/forward.ts";
import { openHfCheckpoint } from "../src/model/hf.ts";
import { freeModelWeights, loadModelWeights } from "../src/model/weights.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { buildOnnxDecoder } from "../bench/onnx_model.ts";
import { causalMask, OnnxDecoder, ropeTables } from "../bench/onnx_session.ts";
import { RandomCheckpoint } from "../bench/onnx_weights.ts";
import { FAMILY, readReference } from "./helpers/fixtures.ts";

ort.env.wasm.numThreads = 1;
ort.env.logLevel = "error";

function maxAbsDiff(a: Float32Array, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "logit count");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const SMALL: ModelConfig = {
  modelType: "qwen2",
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  intermediateSize: 96,
  vocabSize: 300,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: true,
  attentionBias: true,
  bosTokenId: null,
  eosTokenIds: [0],
};

const VARIANTS: { name: string; config: ModelConfig }[] = [
  { name: "qwen2-style (bias, tied, GQA)", config: SMALL },
  {
    name: "llama-style (no bias, untied, MHA)",
    config: {
      ...SMALL,
      modelType: "llama",
      numKvHeads: 4,
      tieWordEmbeddings: false,
      attentionBias: false,
      ropeTheta: 500000,
    },
  },
];

Deno.test("ropeTables: rows repeat the half-dim table and match cos/sin of position x freq", () => {
  const { cos, sin } = ropeTables(SMALL, 5, 2);
  const d = SMALL.headDim;
  for (let s = 0; s < 2; s++) {
    for (let i = 0; i < d / 2; i++) {
      const angle = (5 + s) * Math.pow(SMALL.ropeTheta, (-2 * i) / d);
      assert.ok(Math.abs(cos[s * d + i] - Math.cos(angle)) < 1e-5);
      assert.equal(cos[s * d + i], cos[s * d + i + d / 2]);
      assert.equal(sin[s * d + i], sin[s * d + i + d / 2]);
    }
  }
});

Deno.test("causalMask: row s sees cached positions and new positions up to itself", () => {
  const m = causalMask(2, 3);
  const visible = Array.from(m, (v) => (v === 0 ? 1 : 0));
  assert.deepEqual(visible, [1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
});

for (const { name, config } of VARIANTS) {
  Deno.test({
    name: `buildOnnxDecoder: ${name} matches the reference backend over prefill + decode`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const src = new RandomCheckpoint(config, 7);
      const backend = createReferenceBackend();
      const weights = await loadModelWeights(backend, config, src);
      const model = new Transformer(backend, config, weights);
      const cache = model.newCache(16);
      const onnx = await OnnxDecoder.create(ort, await buildOnnxDecoder(config, src), config);
      try {
        const state = onnx.newState();
        const steps = [[5, 17, 42, 299, 3, 8], [77], [150]];
        let pos = 0;
        for (const ids of steps) {
          const [want] = await model.step([{ ids: Int32Array.from(ids), cache, startPos: pos }]);
          const got = await onnx.step(ids, state);
          pos += ids.length;
          const err = maxAbsDiff(got, want!);
          assert.ok(err < 1e-3, `after ${pos} tokens: max |logit difference| ${err}`);
        }
        assert.equal(state.length, pos);
      } finally {
        await onnx.release();
        backend.free(cache);
        model.dispose();
        freeModelWeights(backend, weights);
      }
    },
  });
}

const FIXTURE_BASE = `${FAMILY}/base`;
const hasFixture = (() => {
  try {
    return Deno.statSync(`${FIXTURE_BASE}/config.json`).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "buildOnnxDecoder: fixture base checkpoint matches PyTorch logits (prefill, then decode)",
  ignore: !hasFixture,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const hf = await openHfCheckpoint(new LocalStorage(FIXTURE_BASE));
    const bytes = await buildOnnxDecoder(hf.config, hf.checkpoint);
    const onnx = await OnnxDecoder.create(ort, bytes, hf.config);
    try {
      const ref = readReference(`${FAMILY}/reference/base.json`);
      assert.ok(ref.prompts.length > 0, "reference prompts");
      for (const p of ref.prompts) {
        const ids = p.input_ids;
        // The whole prompt at once.
        const whole = await onnx.step(ids, onnx.newState());
        const err = maxAbsDiff(whole, p.last_logits);
        assert.ok(err <= 2e-3, `${JSON.stringify(p.text)} prefill: max |logit error| ${err}`);
        if (ids.length < 3) continue;
        // Prefill all but two tokens, then two decode steps through the cache.
        const state = onnx.newState();
        await onnx.step(ids.slice(0, -2), state);
        await onnx.step(ids.slice(-2, -1), state);
        const stepped = await onnx.step(ids.slice(-1), state);
        const err2 = maxAbsDiff(stepped, p.last_logits);
        assert.ok(err2 <= 2e-3, `${JSON.stringify(p.text)} decode: max |logit error| ${err2}`);
      }
    } finally {
      await onnx.release();
    }
  },
});
