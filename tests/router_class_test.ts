import assert from "node:assert/strict";
import { Router } from "../src/router/router.ts";
import { selectFromLogits, softmax } from "../src/router/select.ts";
import { makeBlobs } from "./helpers/blobs.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

const NAMES = ["add", "reverse", "sort"];

function trained(kind: "mlp" | "logreg" = "mlp"): { router: Router; x: Float32Array[] } {
  const b = makeBlobs({ classes: 3, perClass: 50, dim: 12, spread: 2, seed: 21 });
  const router = Router.train(b.features, b.labels, {
    expertNames: NAMES,
    routerLayer: 2,
    selection: { uLow: 0.25, topM: 2 },
  }, { kind, epochs: 40 });
  return { router, x: b.features };
}

test("Router.train: carries names, layer, selection defaults and the report", () => {
  const { router } = trained();
  assert.deepEqual(router.expertNames, NAMES);
  assert.equal(router.routerLayer, 2);
  assert.equal(router.numExperts, 3);
  assert.equal(router.inputSize, 12);
  assert.deepEqual(router.selection, {
    temperature: 1,
    uLow: 0.25,
    topM: 2,
    minConfidence: undefined,
  });
  assert.equal(router.report?.numClasses, 3);
  assert.ok(router.report!.holdoutAccuracy! > 0.9);
});

test("Router.select: applies the selection rule to the classifier's logits", () => {
  const { router, x } = trained();
  for (const f of x.slice(0, 12)) {
    const logits = router.logits(f);
    assert.deepEqual(router.select(f), selectFromLogits(logits, router.selection));
    const overridden = { temperature: 3, uLow: 0, topM: 3, minConfidence: 0.9 };
    assert.deepEqual(router.select(f, overridden), selectFromLogits(logits, overridden));
    // Undefined fields keep the router's defaults.
    assert.deepEqual(router.select(f, { temperature: undefined }), router.select(f));
  }
});

test("Router.probabilities: softmax of the logits at the given temperature", () => {
  const { router, x } = trained("logreg");
  const logits = router.logits(x[0]);
  assert.deepEqual(router.probabilities(x[0]), softmax(logits, 1));
  assert.deepEqual(router.probabilities(x[0], 2.5), softmax(logits, 2.5));
  assert.throws(() => router.probabilities(x[0], -1), /temperature/);
  assert.throws(() => router.logits(new Float32Array(5)), /expected 12 features, got 5/);
});

test("Router.expertIndex: finds names and lists them when unknown", () => {
  const { router } = trained("logreg");
  assert.equal(router.expertIndex("sort"), 2);
  assert.throws(() => router.expertIndex("mul"), /'mul'.*add, reverse, sort/);
});

test("Router: rejects settings that do not fit the classifier", () => {
  const { router } = trained("logreg");
  const p = router.params;
  assert.throws(
    () => new Router(p, { expertNames: ["a", "b"], routerLayer: 0 }),
    /2 expert names for 3 classes/,
  );
  assert.throws(
    () => new Router(p, { expertNames: ["a", "b", "a"], routerLayer: 0 }),
    /'a' appears twice/,
  );
  assert.throws(
    () => new Router(p, { expertNames: NAMES, routerLayer: -1 }),
    /router_layer/,
  );
  assert.throws(
    () => new Router(p, { expertNames: NAMES, routerLayer: 1, selection: { topM: 0 } }),
    /top_m/,
  );
  const broken = { ...p, mean: new Float32Array(4) };
  assert.throws(
    () => new Router(broken, { expertNames: NAMES, routerLayer: 1 }),
    /standardisation/,
  );
});
