import assert from "node:assert/strict";
import type { LinearDelta, RouteDeltas, Transformer } from "../src/model/forward.ts";
import { generate } from "../src/model/generate.ts";
import type { Projection } from "../src/model/weights.ts";
import { createApp } from "../src/server/app.ts";
import { BatchedEngine } from "../src/server/batched_engine.ts";
import { engineTokenizer } from "../src/server/dense_engine.ts";
import type { RouteInfo, RouteResolver } from "../src/server/engine.ts";
import { makeRng, randomSparse } from "./backend_suite.ts";
import { byteTokenizer, RANDOM_MODEL_CONFIG, randomModel } from "./helpers/server_model.ts";

const tokenizer = byteTokenizer();
const EOS = [RANDOM_MODEL_CONFIG.eos_token_id];

/** Sparse deltas on a few projections, as one expert of a bundle would bring. */
function expertDeltas(model: Transformer, seed: number): RouteDeltas {
  const rng = makeRng(seed);
  const table = new Map<string, LinearDelta[]>();
  for (const [layer, proj] of [[0, "v"], [1, "up"]] as [number, Projection][]) {
    const w = model.weights.layers[layer].linear[proj];
    table.set(`${layer}.${proj}`, [{
      sparse: model.backend.uploadSparse(randomSparse(w.rows, w.cols, 0.3, rng)),
      scale: 1,
    }]);
  }
  return { get: (layer, proj) => table.get(`${layer}.${proj}`) };
}

Deno.test({
  name: "createApp: routes reach the engine and come back in body, headers and metrics",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const model = await randomModel();
    const deltas = { add: expertDeltas(model, 1), reverse: expertDeltas(model, 2) };
    const seen: (string | undefined)[] = [];
    // A router stand-in: "auto" picks "reverse" with some uncertainty; a forced expert wins.
    const resolveRoute: RouteResolver = (_ids, forced) => {
      seen.push(forced);
      const expert = (forced ?? "reverse") as keyof typeof deltas;
      const route: RouteInfo = {
        experts: [expert],
        weights: [1],
        uncertainty: forced ? 0 : 0.25,
        forced: forced !== undefined,
      };
      return Promise.resolve({ route, deltas: deltas[expert] });
    };
    const engine = new BatchedEngine({
      name: "bundle",
      model,
      tokenizer: engineTokenizer(tokenizer),
      eosTokenIds: EOS,
      backendChoice: "reference",
      resolveRoute,
      experts: ["add", "reverse"],
      health: () => ({ kind: "test-bundle" }),
    });
    try {
      const app = createApp(engine);
      const models = await (await app.request("/v1/models")).json();
      assert.deepEqual(models.data.map((m: { id: string }) => m.id), [
        "bundle",
        "bundle:add",
        "bundle:reverse",
      ]);
      const ask = (model: string) =>
        app.request("/v1/completions", {
          method: "POST",
          body: JSON.stringify({ model, prompt: "abc", max_tokens: 8, temperature: 0 }),
        });
      const forced = await ask("bundle:add");
      assert.equal(forced.status, 200);
      assert.equal(forced.headers.get("x-mediator-experts"), "add");
      assert.equal(forced.headers.get("x-mediator-forced"), "true");
      const forcedBody = await forced.json();
      assert.deepEqual(forcedBody.mediator, {
        experts: ["add"],
        weights: [1],
        uncertainty: 0,
        forced: true,
      });
      assert.equal(forcedBody.model, "bundle:add");
      const ids = tokenizer.encode("abc");
      const expected = await generate(model, ids, {
        maxTokens: 8,
        eosTokenIds: EOS,
        deltas: deltas.add,
      });
      assert.equal(forcedBody.choices[0].text, tokenizer.decode(expected.outputIds));

      const routed = await ask("auto");
      const routedBody = await routed.json();
      assert.equal(routed.headers.get("x-mediator-uncertainty"), "0.250000");
      assert.deepEqual(routedBody.mediator.experts, ["reverse"]);
      assert.equal(routedBody.model, "bundle");
      const viaRouter = await generate(model, ids, {
        maxTokens: 8,
        eosTokenIds: EOS,
        deltas: deltas.reverse,
      });
      assert.equal(routedBody.choices[0].text, tokenizer.decode(viaRouter.outputIds));

      assert.equal((await ask("bundle:missing")).status, 404);
      assert.deepEqual(seen, ["add", undefined], "the 404 never reached the engine");

      const health = await (await app.request("/health")).json();
      assert.equal(health.kind, "test-bundle");
      assert.deepEqual(health.experts, ["add", "reverse"]);
      const metrics = await (await app.request("/metrics")).text();
      assert.match(metrics, /mediator_route_total\{expert="add",how="forced"\} 1/);
      assert.match(metrics, /mediator_route_total\{expert="reverse",how="routed"\} 1/);
      assert.match(metrics, /mediator_route_uncertainty_bucket\{le="0.3"\} 1/);
    } finally {
      await engine.close();
    }
  },
});
