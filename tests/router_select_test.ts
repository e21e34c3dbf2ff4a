import assert from "node:assert/strict";
import {
  normalizedEntropy,
  selectFromLogits,
  selectFromProbabilities,
  softmax,
} from "../src/router/select.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

/** Entropy / log(T), written out independently of the implementation. */
function entropyRatio(p: number[]): number {
  return -p.reduce((s, v) => s + (v > 0 ? v * Math.log(v) : 0), 0) / Math.log(p.length);
}

test("normalizedEntropy: uniform p gives 1, one-hot gives 0, T = 1 gives 0", () => {
  for (const T of [2, 3, 7]) {
    assert.ok(Math.abs(normalizedEntropy(new Array(T).fill(1 / T)) - 1) < 1e-12);
    const oneHot = new Array(T).fill(0);
    oneHot[T - 1] = 1;
    assert.equal(normalizedEntropy(oneHot), 0);
  }
  assert.equal(normalizedEntropy([1]), 0);
  const p = [0.5, 0.3, 0.2];
  assert.ok(Math.abs(normalizedEntropy(p) - entropyRatio(p)) < 1e-12);
});

test("selectFromLogits: equal logits route to a 2-expert mixture with u = 1", () => {
  const r = selectFromLogits([0.7, 0.7, 0.7, 0.7]);
  assert.equal(r.mode, "mixture");
  assert.ok(Math.abs(r.uncertainty - 1) < 1e-12);
  assert.deepEqual(r.experts, [0, 1]); // ties go to the lower index
  assert.deepEqual(r.weights, [0.5, 0.5]);
});

test("selectFromLogits: a confident router picks the top expert with weight 1", () => {
  const logits = [0, 9, 1, 0.5];
  const r = selectFromLogits(logits);
  const e = logits.map(Math.exp), z = e.reduce((a, b) => a + b, 0);
  const p = e.map((v) => v / z);
  assert.ok(entropyRatio(p) <= 0.3);
  assert.equal(r.mode, "top1");
  assert.deepEqual(r.experts, [1]);
  assert.deepEqual(r.weights, [1]);
  r.probabilities.forEach((v, i) => assert.ok(Math.abs(v - p[i]) < 1e-12));
  assert.ok(Math.abs(r.uncertainty - entropyRatio(p)) < 1e-12);
});

test("selectFromProbabilities: u above u_low renormalises the top-m probabilities", () => {
  const p = [0.1, 0.45, 0.15, 0.3];
  assert.ok(entropyRatio(p) > 0.3);
  const two = selectFromProbabilities(p);
  assert.deepEqual(two.experts, [1, 3]);
  assert.ok(Math.abs(two.weights[0] - 0.45 / 0.75) < 1e-12);
  assert.ok(Math.abs(two.weights[1] - 0.3 / 0.75) < 1e-12);
  const three = selectFromProbabilities(p, { topM: 3 });
  assert.deepEqual(three.experts, [1, 3, 2]);
  assert.ok(Math.abs(three.weights.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert.ok(Math.abs(three.weights[2] - 0.15 / 0.9) < 1e-12);
  // m larger than T is capped at T.
  assert.deepEqual(selectFromProbabilities(p, { topM: 9 }).experts, [1, 3, 2, 0]);
  // m = 1 keeps one expert even when uncertain.
  const one = selectFromProbabilities(p, { topM: 1 });
  assert.deepEqual([one.experts, one.weights, one.mode], [[1], [1], "top1"]);
});

test("selectFromProbabilities: the u_low threshold decides top-1 versus mixture", () => {
  const p = [0.1, 0.45, 0.15, 0.3];
  const u = entropyRatio(p);
  assert.equal(selectFromProbabilities(p, { uLow: u + 1e-9 }).mode, "top1");
  assert.equal(selectFromProbabilities(p, { uLow: u - 1e-9 }).mode, "mixture");
  assert.equal(selectFromProbabilities(p, { uLow: 1 }).mode, "top1");
  assert.equal(selectFromProbabilities([0, 1, 0], { uLow: 0 }).mode, "top1");
});

test("selectFromProbabilities: min_confidence falls back to the dense expert alone", () => {
  const p = [0.1, 0.45, 0.15, 0.3];
  const dense = selectFromProbabilities(p, { minConfidence: 0.5 });
  assert.deepEqual([dense.experts, dense.weights, dense.mode], [[], [], "dense"]);
  assert.ok(Math.abs(dense.uncertainty - entropyRatio(p)) < 1e-12);
  assert.equal(selectFromProbabilities(p, { minConfidence: 0.45 }).mode, "mixture");
  assert.equal(selectFromProbabilities([0.9, 0.1], { minConfidence: 0.95 }).mode, "dense");
});

test("selectFromLogits: a higher temperature flattens p and raises u", () => {
  const logits = [2, 0, -1];
  const cold = selectFromLogits(logits, { temperature: 0.5 });
  const warm = selectFromLogits(logits, { temperature: 4 });
  assert.ok(cold.uncertainty < warm.uncertainty);
  assert.equal(cold.mode, "top1");
  assert.equal(warm.mode, "mixture");
  const expected = softmax(logits.map((v) => v / 4));
  warm.probabilities.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-12));
  assert.ok(warm.probabilities[0] < cold.probabilities[0]);
});

test("selectFromLogits: one expert (T = 1) is always chosen with u = 0", () => {
  const r = selectFromLogits([-3.5], { minConfidence: 1 });
  assert.deepEqual([r.experts, r.weights, r.uncertainty, r.mode], [[0], [1], 0, "top1"]);
});

test("selectFromLogits: bad options throw RangeError naming the field", () => {
  const cases: [Record<string, number>, RegExp][] = [
    [{ temperature: 0 }, /temperature/],
    [{ temperature: Infinity }, /temperature/],
    [{ uLow: -0.1 }, /u_low/],
    [{ uLow: 1.5 }, /u_low/],
    [{ topM: 0 }, /top_m/],
    [{ topM: 1.5 }, /top_m/],
    [{ minConfidence: 2 }, /min_confidence/],
    [{ minConfidence: NaN }, /min_confidence/],
  ];
  for (const [opts, re] of cases) {
    assert.throws(
      () => selectFromLogits([1, 2], opts),
      (e: Error) => e instanceof RangeError && re.test(e.message),
      JSON.stringify(opts),
    );
  }
  assert.throws(() => selectFromLogits([]), RangeError);
  assert.throws(() => selectFromLogits([1, NaN]), /logit 1 is NaN/);
});
