import assert from "node:assert/strict";
import { getPlanPolicy, PLAN_POLICIES, type UnitPlanInput } from "../src/merge/plan.ts";

const unit = (
  name: string,
  conflict: number,
  bytes: number[],
  routable?: boolean,
): UnitPlanInput => ({
  unit: name,
  conflict,
  expertBytes: bytes,
  routable,
});

// Conflict order: layer.2 (0.6), layer.0 (0.5), layer.3 (0.45), layer.1 (0.4), embed (0.3).
const units = [
  unit("embed", 0.3, [100, 100]),
  unit("layer.0", 0.5, [300, 300]),
  unit("layer.1", 0.4, [50, 50]),
  unit("layer.2", 0.6, [200, 200]),
  unit("layer.3", 0.45, [400, 400]),
];

Deno.test("PLAN_POLICIES: lists budget, threshold and top-k with resolvable defaults", () => {
  assert.deepEqual([...PLAN_POLICIES.keys()], ["budget", "threshold", "top-k"]);
  for (const p of PLAN_POLICIES.values()) {
    const resolved = p.resolve();
    for (const spec of p.params) assert.equal(resolved[spec.name], spec.default);
  }
});

Deno.test("budget: routes by decreasing conflict while sparse experts fit", () => {
  // Budget 1500: layer.2 (400) -> 400, layer.0 (600) -> 1000, layer.3 (800) does not fit
  // (500 left), layer.1 (100) -> 1100, embed (200) -> 1300.
  const plan = getPlanPolicy("budget").plan(units, { modelBytes: 1500 });
  assert.deepEqual(plan.routed, ["embed", "layer.0", "layer.1", "layer.2"]);
  assert.equal(plan.routedBytes, 1300);
  assert.equal(plan.budgetBytes, 1500);
  const l3 = plan.decisions.find((d) => d.unit === "layer.3")!;
  assert.equal(l3.routed, false);
  assert.match(l3.reason, /rank 3 by conflict 0\.450; sparse experts 800 B exceed the 500 B left/);
  assert.deepEqual(plan.decisions.map((d) => d.unit), units.map((u) => u.unit));
});

Deno.test("budget: budget_bytes overrides and budget_models scales one model's size", () => {
  const policy = getPlanPolicy("budget");
  // 450: layer.2 (400) fits; then nothing else fits in the 50 left.
  assert.deepEqual(policy.plan(units, { modelBytes: 1500 }, { budget_bytes: 450 }).routed, [
    "layer.2",
  ]);
  // 2 x 1000: layer.2, layer.0, layer.3 (1800), layer.1 (1900); embed would reach 2100.
  assert.deepEqual(policy.plan(units, { modelBytes: 1000 }, { budget_models: 2 }).routed, [
    "layer.0",
    "layer.1",
    "layer.2",
    "layer.3",
  ]);
  assert.equal(policy.plan(units, { modelBytes: 1000 }, { budget_models: 0 }).routed.length, 0);
});

Deno.test("budget: still routes the most conflicting units when conflict is high everywhere", () => {
  const flat = [0.47, 0.49, 0.48, 0.5, 0.46, 0.48].map((c, i) =>
    unit(`layer.${i}`, c, [100, 100, 100])
  );
  const budget = getPlanPolicy("budget").plan(flat, { modelBytes: 900 });
  // Three units fit: layer.3 (0.50), layer.1 (0.49), then layer.2 before layer.5 (tie at 0.48).
  assert.deepEqual(budget.routed, ["layer.1", "layer.2", "layer.3"]);
  const threshold = getPlanPolicy("threshold").plan(flat, { modelBytes: 900 });
  // mean 0.48 + std 0.0129 = 0.493: only layer.3 (0.50) is above it.
  assert.deepEqual(threshold.routed, ["layer.3"]);
});

Deno.test("threshold: routes units above mean + z std", () => {
  const us = [0.1, 0.1, 0.1, 0.5].map((c, i) => unit(`layer.${i}`, c, [10]));
  // mean 0.2, std sqrt((3 * 0.01 + 0.09) / 4) = 0.1732, limit 0.3732.
  const plan = getPlanPolicy("threshold").plan(us, { modelBytes: 1 });
  assert.deepEqual(plan.routed, ["layer.3"]);
  assert.match(plan.decisions[3].reason, /0\.500 > mean 0\.200 \+ 1 \* std 0\.173 = 0\.373/);
  assert.equal(plan.budgetBytes, null);
  // z = 3 puts the limit at 0.72: nothing routed.
  assert.deepEqual(getPlanPolicy("threshold").plan(us, { modelBytes: 1 }, { z: 3 }).routed, []);
  // Equal conflict everywhere: nothing is above the mean.
  const flat = [0.4, 0.4, 0.4].map((c, i) => unit(`layer.${i}`, c, [10]));
  assert.deepEqual(getPlanPolicy("threshold").plan(flat, { modelBytes: 1 }).routed, []);
});

Deno.test("top-k: routes the k most conflicting units, ties in input order", () => {
  const policy = getPlanPolicy("top-k");
  assert.deepEqual(policy.plan(units, { modelBytes: 1 }, { k: 2 }).routed, ["layer.0", "layer.2"]);
  assert.equal(policy.plan(units, { modelBytes: 1 }).routed.length, 3);
  assert.equal(policy.plan(units, { modelBytes: 1 }, { k: 99 }).routed.length, 5);
  const tied = [unit("layer.0", 0.5, [1]), unit("layer.1", 0.5, [1]), unit("layer.2", 0.5, [1])];
  assert.deepEqual(policy.plan(tied, { modelBytes: 1 }, { k: 2 }).routed, ["layer.0", "layer.1"]);
});

Deno.test("plan: never routes units marked not routable", () => {
  const us = [unit("embed", 0.9, [1], false), ...units.slice(1)];
  for (const policy of PLAN_POLICIES.values()) {
    const plan = policy.plan(us, { modelBytes: 1e9 }, policy.name === "top-k" ? { k: 99 } : {});
    assert.ok(!plan.routed.includes("embed"), policy.name);
    assert.match(plan.decisions[0].reason, /not routable/);
  }
});

Deno.test("plan: validates inputs and parameters", () => {
  const budget = getPlanPolicy("budget");
  assert.throws(() => budget.plan(units, { modelBytes: 0 }), /modelBytes 0/);
  assert.throws(() => budget.plan([...units, units[0]], { modelBytes: 1 }), /listed twice/);
  assert.throws(() => budget.plan([unit("embed", 1.5, [1])], { modelBytes: 1 }), /conflict 1\.5/);
  assert.throws(() => budget.plan([unit("embed", 0.5, [-1])], { modelBytes: 1 }), /expert bytes/);
  assert.throws(() => budget.plan(units, { modelBytes: 1 }, { budget_bytes: 1.5 }), RangeError);
  assert.throws(() => getPlanPolicy("top-k").plan(units, { modelBytes: 1 }, { k: -1 }), RangeError);
  assert.throws(() => getPlanPolicy("top-k").plan(units, { modelBytes: 1 }, { n: 2 }), TypeError);
  assert.throws(() => getPlanPolicy("random"), /use one of budget, threshold, top-k/);
});
