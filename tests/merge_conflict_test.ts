import assert from "node:assert/strict";
import { ConflictAccumulator, measureConflict } from "../src/merge/conflict.ts";
import { createRng } from "../src/merge/prng.ts";
import { magnitudeCut, sortedMagnitudes, topKCount, topKMask } from "../src/merge/topk.ts";

const f32 = (xs: number[]) => new Float32Array(xs);
const close = (a: number, b: number, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);

/** Random vector whose values come from a small set, so magnitudes tie often. */
function tieHeavy(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => Math.floor(rng.next() * 7) - 3);
}

function randomFloats(n: number): Float32Array {
  const rng = createRng(n);
  return Float32Array.from({ length: n }, () => (rng.next() - 0.5) * Math.exp(20 * rng.next()));
}

/** Reference top-k: sort indices by (|x| descending, index ascending). */
function naiveTopK(x: Float32Array, k: number): Set<number> {
  const idx = Array.from(x, (_, i) => i);
  idx.sort((a, b) => Math.abs(x[b]) - Math.abs(x[a]) || a - b);
  return new Set(idx.slice(0, k));
}

Deno.test("magnitudeCut: finds the k-th largest magnitude, even with many ties", () => {
  for (const n of [1, 3, 17, 31, 32, 33, 1000]) {
    for (
      const x of [tieHeavy(n, n), Float32Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * i)]
    ) {
      const sorted = Array.from(x, Math.abs).sort((a, b) => b - a);
      for (const k of [1, n >> 1, n]) {
        if (k === 0) continue;
        const cut = magnitudeCut(x, k);
        assert.equal(cut.threshold, sorted[k - 1]);
        const greater = sorted.filter((m) => m > cut.threshold).length;
        assert.equal(cut.keepAtThreshold, k - greater);
      }
    }
  }
  // Magnitudes that differ only in their lowest mantissa bits, and tiny subnormals.
  const fine = new Float32Array([1, 1 + 2 ** -23, -(1 + 2 ** -22), 1e-45, -3e-45, 0]);
  assert.equal(magnitudeCut(fine, 2).threshold, Math.fround(1 + 2 ** -23));
  assert.equal(magnitudeCut(fine, 5).threshold, Math.fround(1e-45));
  assert.deepEqual(magnitudeCut(new Float32Array(4096).fill(-2), 100), {
    k: 100,
    threshold: 2,
    keepAtThreshold: 100,
  });
});

Deno.test("sortedMagnitudes: sorts |x| of all parts ascending", () => {
  const parts = [tieHeavy(300, 3), new Float32Array([-1e-40, 3e38, -0, 0.5]), randomFloats(5000)];
  const want = parts.flatMap((p) => Array.from(p, Math.abs)).sort((a, b) => a - b);
  assert.deepEqual(Array.from(sortedMagnitudes(parts)), want);
  assert.throws(() => sortedMagnitudes([new Float32Array([1, NaN])]), /element 1 is NaN/);
});

Deno.test("topKMask: keeps exactly the k largest magnitudes, lowest indices on ties", () => {
  for (const n of [1, 5, 33, 257]) {
    const x = tieHeavy(n, 7 * n);
    for (const density of [0, 0.1, 0.2, 0.5, 1]) {
      const k = topKCount(n, density);
      const mask = topKMask(x, k);
      const want = naiveTopK(x, k);
      assert.equal(mask.reduce((s, m) => s + m, 0), k);
      for (let i = 0; i < n; i++) assert.equal(mask[i] === 1, want.has(i), `n=${n} k=${k} i=${i}`);
    }
  }
  assert.deepEqual([...topKMask(f32([1, -1, 1, 0]), 2)], [1, 1, 0, 0]);
});

Deno.test("magnitudeCut: rejects NaN and out-of-range k", () => {
  assert.throws(() => magnitudeCut(f32([1, NaN]), 1), /element 1 is NaN/);
  assert.throws(() => magnitudeCut(f32([1, 2]), 3), RangeError);
  assert.throws(() => topKCount(10, 1.5), RangeError);
  assert.deepEqual(magnitudeCut(f32([4, -5, 5]), 2), { k: 2, threshold: 5, keepAtThreshold: 2 });
});

Deno.test("ConflictAccumulator: identical task vectors have no conflict", () => {
  const tau = tieHeavy(200, 1);
  const r = measureConflict("layer.0", [[tau, tau.slice(), tau.slice()]]);
  assert.equal(r.conflict, 0);
  assert.ok(r.contested > 0);
  close(r.meanCosine, 1);
  close(r.averagingLoss, 0);
});

Deno.test("ConflictAccumulator: opposite task vectors conflict everywhere", () => {
  const tau = tieHeavy(200, 2);
  const neg = tau.map((v) => -v);
  const r = measureConflict("layer.0", [[tau, neg]]);
  assert.equal(r.conflict, 1);
  assert.equal(r.contested, r.disagreeing);
  close(r.meanCosine, -1);
  close(r.averagingLoss, 1); // the mean is zero, so ||tau - 0|| / ||tau|| = 1
});

Deno.test("ConflictAccumulator: worked example with three experts", () => {
  // Density 0.4 of 5 keeps 2 per expert:
  //   t1 keeps idx0 (3), idx3 (2); t2 keeps idx1 (4), idx2 (-3); t3 keeps idx1 (5), idx0 (-2).
  // idx0: 3 vs -2 contested and disagreeing; idx1: 4 and 5 contested, agreeing;
  // idx2 and idx3: one expert each. So d = 1 / 2.
  const t1 = f32([3, -1, 0.5, 2, 0]);
  const t2 = f32([1, 4, -3, 0.1, 0]);
  const t3 = f32([-2, 5, 0, 0, 0.2]);
  const r = measureConflict("layer.4", [[t1, t2, t3]], { density: 0.4 });
  assert.equal(r.contested, 2);
  assert.equal(r.disagreeing, 1);
  assert.equal(r.conflict, 0.5);
  // Dot products and squared norms by hand.
  const n1 = 14.25, n2 = 26.01, n3 = 29.04;
  const c12 = -2.3 / Math.sqrt(n1 * n2);
  const c13 = -11 / Math.sqrt(n1 * n3);
  const c23 = 18 / Math.sqrt(n2 * n3);
  close(r.pairCosine[0][1], c12);
  close(r.pairCosine[2][0], c13);
  close(r.meanCosine, (c12 + c13 + c23) / 3);
  // mean = [2/3, 8/3, -2.5/3, 2.1/3, 0.2/3]
  const mean = [2 / 3, 8 / 3, -2.5 / 3, 2.1 / 3, 0.2 / 3];
  const loss = (t: Float32Array, sq: number) =>
    Math.sqrt(mean.reduce((s, m, i) => s + (t[i] - m) ** 2, 0)) / Math.sqrt(sq);
  close(r.averagingLoss, (loss(t1, n1) + loss(t2, n2) + loss(t3, n3)) / 3);
});

Deno.test("ConflictAccumulator: geometry over tensors equals that of the concatenation", () => {
  const a = [tieHeavy(40, 11), tieHeavy(40, 12)];
  const b = [tieHeavy(25, 13), tieHeavy(25, 14)];
  const acc = new ConflictAccumulator("layer.1", 2);
  acc.add(a, "a");
  acc.add(b, "b");
  const streamed = acc.result();
  const whole = measureConflict("layer.1", [[
    f32([...a[0], ...b[0]]),
    f32([...a[1], ...b[1]]),
  ]]);
  close(streamed.meanCosine, whole.meanCosine, 1e-9);
  close(streamed.averagingLoss, whole.averagingLoss, 1e-9);
  const partA = measureConflict("layer.1", [a]);
  const partB = measureConflict("layer.1", [b]);
  assert.equal(streamed.contested, partA.contested + partB.contested);
  assert.equal(streamed.disagreeing, partA.disagreeing + partB.disagreeing);
  assert.equal(streamed.elements, 65);
  assert.equal(streamed.tensors, 2);
});

Deno.test("ConflictAccumulator: zero task vectors give zero cosine and are left out of the loss", () => {
  const tau = f32([1, 2, 3, 4]);
  const r = measureConflict("embed", [[tau, new Float32Array(4), tau]]);
  assert.equal(r.pairCosine[0][1], 0);
  close(r.meanCosine, 1 / 3);
  // mean = 2/3 tau, so each non-zero expert has loss 1/3.
  close(r.averagingLoss, 1 / 3);
  assert.equal(r.expertAveragingLoss[1], 0);
});

Deno.test("ConflictAccumulator: rejects bad arguments", () => {
  assert.throws(() => new ConflictAccumulator("layer.0", 1), /at least 2 are needed/);
  assert.throws(() => new ConflictAccumulator("layer.0", 2, { density: 0 }), RangeError);
  const acc = new ConflictAccumulator("layer.0", 2);
  assert.throws(() => acc.add([f32([1])], "q"), /1 task vectors given for 2 experts/);
  assert.throws(() => acc.add([f32([1]), f32([1, 2])], "q"), /task vector 1 must be/);
});
