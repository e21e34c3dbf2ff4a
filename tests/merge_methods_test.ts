import assert from "node:assert/strict";
import { generalizedTaskArithmetic } from "../src/merge/generalized.ts";
import { getMergeMethod, MERGE_METHODS } from "../src/merge/methods.ts";
import { createRng, rngForTensor } from "../src/merge/prng.ts";

const f32 = (xs: number[]) => new Float32Array(xs);

function randomVector(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

function assertClose(actual: Float32Array, expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  expected.forEach((e, i) =>
    assert.ok(
      Math.abs(actual[i] - e) <= tol * Math.max(1, Math.abs(e)),
      `[${i}] ${actual[i]} != ${e}`,
    )
  );
}

const base = randomVector(64, 1);
const taus = [randomVector(64, 2), randomVector(64, 3), randomVector(64, 4)];

Deno.test("MERGE_METHODS: every method has a paper, described params and valid defaults", () => {
  assert.deepEqual([...MERGE_METHODS.keys()], [
    "average",
    "task_arithmetic",
    "ties",
    "dare",
    "dare_ties",
  ]);
  for (const m of MERGE_METHODS.values()) {
    assert.match(m.reference, /20\d\d/);
    assert.ok(m.description.length > 10);
    const resolved = m.resolve();
    for (const p of m.params) assert.equal(resolved[p.name], p.default);
  }
  assert.equal(getMergeMethod("dare").random, true);
  assert.equal(getMergeMethod("ties").random, false);
});

Deno.test("average: equals the base plus the mean task vector", () => {
  const out = getMergeMethod("average").apply(base, taus);
  assertClose(out, Array.from(base, (b, i) => b + (taus[0][i] + taus[1][i] + taus[2][i]) / 3));
});

Deno.test("task_arithmetic: equals the base plus lambda times the summed task vectors", () => {
  const sum = (i: number) => taus[0][i] + taus[1][i] + taus[2][i];
  const method = getMergeMethod("task_arithmetic");
  assertClose(method.apply(base, taus), Array.from(base, (b, i) => b + 0.5 * sum(i)));
  assertClose(
    method.apply(base, taus, { lambda: 0.3 }),
    Array.from(base, (b, i) => b + 0.3 * sum(i)),
  );
});

Deno.test("ties: matches a worked example", () => {
  // Density 0.4 keeps 2 of 5 per expert:
  //   t1 -> {0: 3, 3: 2}, t2 -> {1: 4, 2: -3}, t3 -> {1: 5, 0: -2}.
  // Elected signs: idx0 3 - 2 > 0, idx1 +, idx2 -, idx3 +, idx4 nothing kept.
  // Disjoint means: idx0 3 (only t1 agrees), idx1 (4 + 5) / 2, idx2 -3, idx3 2, idx4 0.
  const t1 = f32([3, -1, 0.5, 2, 0]);
  const t2 = f32([1, 4, -3, 0.1, 0]);
  const t3 = f32([-2, 5, 0, 0, 0.2]);
  const b = f32([1, 1, 1, 1, 1]);
  const ties = getMergeMethod("ties");
  assertClose(ties.apply(b, [t1, t2, t3], { density: 0.4 }), [4, 5.5, -2, 3, 1]);
  assertClose(ties.apply(b, [t1, t2, t3], { density: 0.4, lambda: 0.5 }), [2.5, 3.25, -0.5, 2, 1]);
  // Density 1: nothing trimmed; idx2 elects 0.5 - 3 < 0 so only t2's -3 counts.
  assertClose(ties.apply(b, [t1, t2, t3], { density: 1 }), [
    1 + (3 + 1) / 2,
    1 + (4 + 5) / 2,
    1 - 3,
    1 + (2 + 0.1) / 2,
    1 + 0.2,
  ]);
});

Deno.test("dare: drop rate 0 equals task arithmetic", () => {
  const dare = getMergeMethod("dare");
  const ta = getMergeMethod("task_arithmetic");
  for (const lambda of [0.5, 1]) {
    const expected = ta.apply(base, taus, { lambda });
    assert.deepEqual(dare.apply(base, taus, { drop_rate: 0, lambda }, createRng(9)), expected);
  }
  assert.deepEqual(
    getMergeMethod("dare_ties").apply(base, taus, { drop_rate: 0 }, createRng(9)),
    getMergeMethod("ties").apply(base, taus, { density: 1 }),
  );
});

Deno.test("dare: drops a share p of values and rescales the rest by 1/(1-p)", () => {
  const n = 20000;
  const ones = new Float32Array(n).fill(1);
  const out = getMergeMethod("dare").apply(
    new Float32Array(n),
    [ones],
    { drop_rate: 0.7, lambda: 1 },
    createRng(5),
  );
  const kept = out.filter((v) => v !== 0);
  for (const v of kept) assert.ok(Math.abs(v - 1 / 0.3) < 1e-6);
  // Binomial(n, 0.3): std = sqrt(n * 0.21) ~ 65; allow 5 std.
  assert.ok(Math.abs(kept.length - 0.3 * n) < 5 * Math.sqrt(n * 0.21), `${kept.length}`);
});

Deno.test("dare: its expectation over seeds is task arithmetic", () => {
  const n = 16;
  const b = randomVector(n, 21);
  const ts = [randomVector(n, 22), randomVector(n, 23)];
  const p = 0.5, lambda = 0.5, samples = 3000;
  const mean = new Float64Array(n);
  const dare = getMergeMethod("dare");
  for (let s = 0; s < samples; s++) {
    const out = dare.apply(b, ts, { drop_rate: p, lambda }, createRng(1000 + s));
    for (let i = 0; i < n; i++) mean[i] += out[i] / samples;
  }
  const expected = getMergeMethod("task_arithmetic").apply(b, ts, { lambda });
  for (let i = 0; i < n; i++) {
    // Var of one sample: lambda^2 * sum_t tau_t^2 * p / (1 - p).
    const sd = lambda * Math.sqrt((ts[0][i] ** 2 + ts[1][i] ** 2) * p / (1 - p) / samples);
    assert.ok(
      Math.abs(mean[i] - expected[i]) <= 5 * sd + 1e-6,
      `[${i}] ${mean[i]} vs ${expected[i]}`,
    );
  }
});

Deno.test("dare: is reproducible per seed and tensor name", () => {
  const dare = getMergeMethod("dare");
  const a = dare.apply(base, taus, {}, rngForTensor(7, "model.layers.0.mlp.up_proj.weight"));
  const b = dare.apply(base, taus, {}, rngForTensor(7, "model.layers.0.mlp.up_proj.weight"));
  const c = dare.apply(base, taus, {}, rngForTensor(7, "model.layers.1.mlp.up_proj.weight"));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("generalizedTaskArithmetic: mean combination divides by the expert count", () => {
  const out = generalizedTaskArithmetic(f32([0, 0]), [f32([2, -1]), f32([4, 0])], {
    sparsify: "none",
    density: 1,
    consensus: "none",
    combine: "mean",
    lambda: 2,
  });
  assertClose(out, [6, -1]);
});

Deno.test("MergeMethod.apply: validates parameters and inputs", () => {
  const ties = getMergeMethod("ties");
  assert.throws(
    () => ties.apply(base, taus, { dens: 0.2 }),
    /unknown parameter 'dens'; known parameters: density, lambda/,
  );
  assert.throws(() => ties.apply(base, taus, { density: 0 }), RangeError);
  assert.throws(() => ties.apply(base, taus, { density: "0.2" }), TypeError);
  assert.throws(
    () => ties.apply(base, taus, { lambda: -1 }),
    /'lambda' is -1; it must be in \[0, inf\)/,
  );
  assert.throws(
    () => getMergeMethod("dare").apply(base, taus, { drop_rate: 1 }, createRng(1)),
    RangeError,
  );
  assert.throws(
    () => getMergeMethod("dare").apply(base, taus, { combine: "max" }, createRng(1)),
    /use one of sum, mean/,
  );
  assert.throws(() => getMergeMethod("dare").apply(base, taus), /pass an Rng/);
  assert.throws(
    () => getMergeMethod("average").apply(base, [f32([1])]),
    /task vector 0 has 1 elements/,
  );
  assert.throws(() => getMergeMethod("average").apply(base, []), /no task vectors/);
  assert.throws(() => getMergeMethod("slerp"), /use one of average, task_arithmetic/);
});

Deno.test("createRng: is deterministic and uniform on [0, 1)", () => {
  const a = createRng(42);
  const b = createRng(42);
  let sum = 0;
  const n = 100000;
  const buckets = new Array(10).fill(0);
  for (let i = 0; i < n; i++) {
    const x = a.next();
    assert.equal(x, b.next());
    assert.ok(x >= 0 && x < 1);
    sum += x;
    buckets[Math.floor(x * 10)]++;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.005);
  for (const c of buckets) assert.ok(Math.abs(c - n / 10) < 5 * Math.sqrt(n * 0.09));
  assert.notEqual(createRng(1).next(), createRng(2).next());
  assert.throws(() => createRng(1.5), TypeError);
});
