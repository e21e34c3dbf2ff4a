/**
 * Fixture parity on whatever WebGPU adapter exists (run on the H200 machine,
 * where the npm tokenizer is not available): loads each fixture checkpoint
 * without its tokenizer, runs the PyTorch reference prompts by id and prints
 * the max logit error and whether greedy ids match. Exit 1 on any mismatch.
 *
 *   deno run -A --no-config bench/gpu_parity.ts
 */
import { createWebGpuBackend } from "../src/backends/webgpu.ts";
import { generate } from "../src/model/generate.ts";
import { openHfCheckpoint } from "../src/model/checkpoint.ts";
import { Transformer } from "../src/model/forward.ts";
import { freeModelWeights, loadModelWeights } from "../src/model/weights.ts";
import { LocalStorage } from "../src/storage/local.ts";

const root = new URL("../fixtures/", import.meta.url).pathname;
const models: [string, string][] = [["base", `${root}family/base`], [
  "llama-tiny",
  `${root}llama-tiny`,
]];
for (const e of Deno.readDirSync(`${root}family/experts`)) {
  models.push([e.name, `${root}family/experts/${e.name}`]);
}
const backend = await createWebGpuBackend();
console.log(`adapter: ${backend.info.device}`);
let ok = true;
for (const [name, dir] of models) {
  const refPath = name === "llama-tiny"
    ? `${dir}/reference.json`
    : `${root}family/reference/${name}.json`;
  const ref = JSON.parse(await Deno.readTextFile(refPath));
  const hf = await openHfCheckpoint(new LocalStorage(dir));
  const weights = await loadModelWeights(backend, hf.config, hf.checkpoint);
  const model = new Transformer(backend, hf.config, weights);
  let maxErr = 0, same = true;
  for (const p of ref.prompts) {
    const r = await generate(model, p.input_ids, { maxTokens: p.greedy_ids.length });
    for (let i = 0; i < p.last_logits.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(r.lastLogits[i] - p.last_logits[i]));
    }
    same &&= r.outputIds.join() === p.greedy_ids.join();
  }
  ok &&= maxErr <= 2e-3 && same;
  console.log(
    `${name.padEnd(12)} max |logit error| ${maxErr.toExponential(2)}  greedy ${
      same ? "identical" : "DIFFERENT"
    }`,
  );
  model.dispose();
  freeModelWeights(backend, weights);
}
backend.dispose();
if (!ok) Deno.exit(1);
