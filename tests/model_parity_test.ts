/**
 * End-to-end parity with PyTorch transformers: every fixture model (Qwen2 base,
 * each expert, the Llama model) must give last-position logits within 2e-3 and
 * identical greedy continuations, on every backend that runs here.
 */
import assert from "node:assert/strict";
import type { Backend } from "../src/backends/backend.ts";
import { createReferenceBackend } from "../src/backends/reference.ts";
import { createWasmBackend } from "../src/backends/wasm.ts";
import { createWebGpuBackend } from "../src/backends/webgpu.ts";
import { generate } from "../src/model/generate.ts";
import { loadHfModel } from "../src/model/hf.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { fixtureModels, readReference } from "./helpers/fixtures.ts";

/** Backends checked end to end; each is created per model and disposed after. */
export const PARITY_BACKENDS: { name: string; make: () => Promise<Backend> }[] = [
  { name: "reference", make: () => Promise.resolve(createReferenceBackend()) },
  { name: "wasm", make: () => createWasmBackend({ threads: 2 }) },
  { name: "webgpu", make: () => createWebGpuBackend({ allowFallback: true }) },
];

/** Check one model's references on one backend. */
export async function checkParity(make: () => Promise<Backend>, dir: string, reference: string) {
  const ref = readReference(reference);
  const backend = await make();
  try {
    const { model } = await loadHfModel(new LocalStorage(dir), backend);
    for (const p of ref.prompts) {
      // The reference continuations run a fixed 16 tokens without stopping at EOS.
      const result = await generate(model, p.input_ids, { maxTokens: p.greedy_ids.length });
      assert.equal(result.lastLogits.length, p.last_logits.length, "vocabulary size");
      let maxErr = 0;
      for (let i = 0; i < p.last_logits.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(result.lastLogits[i] - p.last_logits[i]));
      }
      assert.ok(maxErr <= 2e-3, `${JSON.stringify(p.text)}: max |logit error| ${maxErr} > 2e-3`);
      assert.deepEqual(result.outputIds, p.greedy_ids, `greedy ids for ${JSON.stringify(p.text)}`);
    }
    model.dispose();
  } finally {
    backend.dispose();
  }
}

for (const be of PARITY_BACKENDS) {
  for (const m of fixtureModels()) {
    Deno.test({
      name: `forward (${be.name}): ${m.name} matches PyTorch logits and greedy ids`,
      sanitizeOps: true,
      sanitizeResources: true,
      fn: () => checkParity(be.make, m.dir, m.reference),
    });
  }
}
