import assert from "node:assert/strict";
import { BundleFormatError } from "../src/errors.ts";
import { compareUnits, groupTensorsByUnit, parseUnit, unitOfTensor } from "../src/merge/units.ts";

Deno.test("unitOfTensor: maps Llama tensor names to units", () => {
  assert.equal(unitOfTensor("model.embed_tokens.weight"), "embed");
  assert.equal(unitOfTensor("model.layers.0.self_attn.q_proj.weight"), "layer.0");
  assert.equal(unitOfTensor("model.layers.17.mlp.down_proj.weight"), "layer.17");
  assert.equal(unitOfTensor("model.layers.3.input_layernorm.weight"), "layer.3");
  assert.equal(unitOfTensor("model.norm.weight"), "final_norm");
  assert.equal(unitOfTensor("lm_head.weight"), "lm_head");
});

Deno.test("unitOfTensor: rejects unknown names with BundleFormatError", () => {
  for (
    const name of [
      "transformer.h.0.attn.c_attn.weight",
      "model.layers.x.mlp.up_proj.weight",
      "model.layers.01.mlp.up_proj.weight",
      "model.layers.2",
      "model.normalizer.weight",
      "",
    ]
  ) {
    assert.throws(() => unitOfTensor(name), BundleFormatError, name);
  }
  assert.throws(() => unitOfTensor("model.rotary.inv_freq"), /Cannot map tensor 'model\.rotary/);
});

Deno.test("parseUnit: parses unit names and rejects others", () => {
  assert.deepEqual(parseUnit("layer.12"), { kind: "layer", index: 12 });
  assert.deepEqual(parseUnit("embed"), { kind: "embed", index: -1 });
  assert.throws(() => parseUnit("layer.-1"), RangeError);
  assert.throws(() => parseUnit("block.1"), RangeError);
});

Deno.test("compareUnits: orders embed, layers numerically, final_norm, lm_head", () => {
  const units = ["lm_head", "layer.10", "final_norm", "layer.2", "embed", "layer.0"];
  assert.deepEqual(units.sort(compareUnits), [
    "embed",
    "layer.0",
    "layer.2",
    "layer.10",
    "final_norm",
    "lm_head",
  ]);
});

Deno.test("groupTensorsByUnit: groups names per unit in model order", () => {
  const groups = groupTensorsByUnit([
    "lm_head.weight",
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.1.self_attn.q_proj.weight",
    "model.embed_tokens.weight",
  ]);
  assert.deepEqual([...groups.keys()], ["embed", "layer.0", "layer.1", "lm_head"]);
  assert.deepEqual(groups.get("layer.1"), [
    "model.layers.1.mlp.up_proj.weight",
    "model.layers.1.self_attn.q_proj.weight",
  ]);
});
