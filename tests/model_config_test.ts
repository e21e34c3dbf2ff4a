/** parseHfConfig: Llama, Qwen2 and Mistral configs map onto one ModelConfig. */
import assert from "node:assert/strict";
import { BundleFormatError } from "../src/errors.ts";
import { parseHfConfig } from "../src/model/config.ts";
import { FAMILY, FIXTURES } from "./helpers/fixtures.ts";

const read = (p: string) => JSON.parse(Deno.readTextFileSync(p));

Deno.test("parseHfConfig: the Qwen2 fixture (rope_parameters, tied, QKV bias, GQA)", () => {
  const c = parseHfConfig(read(`${FAMILY}/base/config.json`));
  assert.equal(c.modelType, "qwen2");
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.attentionBias, true);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.numHeads / c.numKvHeads, 2);
  assert.equal(c.headDim, c.hiddenSize / c.numHeads);
  assert.deepEqual(c.eosTokenIds, [1]);
  assert.equal(c.slidingWindow, null, "use_sliding_window false means full attention");
});

Deno.test("parseHfConfig: the Llama fixture has no bias and untied embeddings", () => {
  const c = parseHfConfig(read(`${FIXTURES}llama-tiny/config.json`));
  assert.equal(c.modelType, "llama");
  assert.equal(c.attentionBias, false);
  assert.equal(c.tieWordEmbeddings, false);
});

Deno.test("parseHfConfig: top-level rope_theta, explicit head_dim, eos lists, Mistral window", () => {
  const c = parseHfConfig({
    model_type: "mistral",
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 32,
    intermediate_size: 128,
    vocab_size: 100,
    rope_theta: 1e6,
    eos_token_id: [2, 7],
    sliding_window: 4096,
  });
  assert.equal(c.ropeTheta, 1e6);
  assert.equal(c.headDim, 32);
  assert.deepEqual(c.eosTokenIds, [2, 7]);
  assert.equal(c.slidingWindow, 4096);
  assert.equal(c.attentionBias, false);
});

Deno.test("parseHfConfig: unsupported types, rope scaling and bad fields are refused clearly", () => {
  const base = read(`${FAMILY}/base/config.json`);
  assert.throws(
    () => parseHfConfig({ ...base, model_type: "gpt2" }),
    /model_type 'gpt2' is not supported/,
  );
  assert.throws(
    () => parseHfConfig({ ...base, rope_parameters: { rope_type: "yarn", rope_theta: 1 } }),
    /rope scaling 'yarn' is not supported/,
  );
  assert.throws(() => parseHfConfig({ ...base, hidden_size: "96" }), BundleFormatError);
  assert.throws(() => parseHfConfig({ ...base, num_key_value_heads: 3 }), /multiple of KV heads/);
  assert.throws(() => parseHfConfig([]), /expected a JSON object/);
});
