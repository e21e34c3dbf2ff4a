import assert from "node:assert/strict";
import { createRng } from "../src/merge/prng.ts";
import {
  allocGradients,
  allocScratch,
  batchGradients,
  crossEntropy,
} from "../src/router/backprop.ts";
import {
  allocActivations,
  type ClassifierKind,
  classifierLogits,
  createClassifier,
  forwardStandardized,
} from "../src/router/classifier.ts";
import { argmax } from "../src/router/metrics.ts";
import { stratifiedSplit } from "../src/router/split.ts";
import { trainClassifier } from "../src/router/train.ts";
import { makeBlobs, nearestCenter, samplePoints } from "./helpers/blobs.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

const KINDS: ClassifierKind[] = ["mlp", "logreg"];

/** Accuracy of the trained classifier and of the nearest-centre rule on fresh points. */
function freshAccuracy(spread: number, kind: ClassifierKind, seed: number) {
  const blobs = makeBlobs({ classes: 4, perClass: 150, dim: 32, spread, seed });
  const { params, report } = trainClassifier(blobs.features, blobs.labels, 4, { kind, seed });
  const test = samplePoints(blobs.centers, 250, createRng(seed + 1000));
  let model = 0, oracle = 0;
  test.features.forEach((x, i) => {
    if (argmax(classifierLogits(params, x)) === test.labels[i]) model++;
    if (nearestCenter(blobs.centers, x) === test.labels[i]) oracle++;
  });
  const n = test.labels.length;
  return { model: model / n, oracle: oracle / n, report };
}

test("trainClassifier: mlp and logreg match the nearest-centre rule on separable blobs", () => {
  for (const kind of KINDS) {
    const r = freshAccuracy(1, kind, 1);
    assert.ok(r.oracle > 0.97, `blobs should be separable, oracle ${r.oracle}`);
    assert.ok(r.model >= r.oracle - 0.04, `${kind}: ${r.model} vs oracle ${r.oracle}`);
    assert.ok(r.report.holdoutAccuracy! >= 0.9, `${kind}: held-out ${r.report.holdoutAccuracy}`);
  }
});

test("trainClassifier: overlapping blobs score lower and never beat the nearest-centre rule", () => {
  for (const kind of KINDS) {
    const separable = freshAccuracy(1, kind, 2);
    const overlapping = freshAccuracy(0.12, kind, 2);
    assert.ok(overlapping.oracle < 0.8, `blobs should overlap, oracle ${overlapping.oracle}`);
    assert.ok(overlapping.model <= overlapping.oracle + 0.05, `${kind}: ${overlapping.model}`);
    assert.ok(overlapping.model > 0.28, `${kind}: still above chance, got ${overlapping.model}`);
    assert.ok(overlapping.report.holdoutAccuracy! < separable.report.holdoutAccuracy! - 0.1);
    // The held-out estimate agrees with accuracy on fresh points.
    assert.ok(Math.abs(overlapping.report.holdoutAccuracy! - overlapping.model) < 0.12);
  }
});

test("trainClassifier: the held-out confusion matrix counts each held-out example once", () => {
  const counts = [40, 25, 60];
  const features: Float32Array[] = [], labels: number[] = [];
  const rng = createRng(5);
  counts.forEach((n, t) => {
    for (let i = 0; i < n; i++) {
      features.push(Float32Array.from({ length: 6 }, (_, d) => (d === t ? 2 : 0) + rng.next()));
      labels.push(t);
    }
  });
  const { report } = trainClassifier(features, labels, 3, { holdout: 0.2, epochs: 30 });
  const rows = report.confusion!.map((row) => row.reduce((a, b) => a + b, 0));
  assert.deepEqual(rows, counts.map((n) => Math.round(n * 0.2)));
  assert.equal(report.examples.holdout, rows.reduce((a, b) => a + b, 0));
  assert.equal(
    report.examples.train + report.examples.validation + report.examples.holdout,
    labels.length,
  );
  assert.deepEqual(report.classCounts, counts);
  const diagonal = report.confusion!.reduce((s, row, t) => s + row[t], 0);
  assert.equal(report.holdoutAccuracy, diagonal / report.examples.holdout);
});

test("trainClassifier: one seed gives bit-identical weights, another seed differs", () => {
  const b = makeBlobs({ classes: 3, perClass: 60, dim: 16, spread: 0.5, seed: 9 });
  const run = (seed: number) => trainClassifier(b.features, b.labels, 3, { seed, epochs: 15 });
  const a1 = run(4), a2 = run(4), c = run(5);
  a1.params.layers.forEach((l, i) => {
    assert.deepEqual(l.weight, a2.params.layers[i].weight);
    assert.deepEqual(l.bias, a2.params.layers[i].bias);
  });
  assert.deepEqual(a1.report, a2.report);
  assert.notDeepEqual(a1.params.layers[0].weight, c.params.layers[0].weight);
});

test("trainClassifier: standardisation holds the fitting set's mean and std", () => {
  const b = makeBlobs({ classes: 2, perClass: 30, dim: 5, spread: 2, seed: 3 }, 1.5, 10);
  const { params } = trainClassifier(b.features, b.labels, 2, {
    holdout: 0,
    validation: 0,
    epochs: 2,
  });
  for (let d = 0; d < 5; d++) {
    const xs = b.features.map((f) => f[d]);
    const mean = xs.reduce((a, v) => a + v, 0) / xs.length;
    const std = Math.sqrt(xs.reduce((a, v) => a + (v - mean) ** 2, 0) / xs.length);
    assert.ok(Math.abs(params.mean[d] - mean) < 1e-4, `mean[${d}]`);
    assert.ok(Math.abs(params.std[d] - std) < 1e-4, `std[${d}]`);
  }
});

test("batchGradients: matches central finite differences of the mean loss", () => {
  for (const kind of KINDS) {
    const rng = createRng(11);
    const params = createClassifier(kind, 7, 5, 3, rng);
    for (const l of params.layers) {
      for (let i = 0; i < l.weight.length; i++) l.weight[i] = rng.next() - 0.5;
      for (let i = 0; i < l.bias.length; i++) l.bias[i] = rng.next() - 0.5;
    }
    const inputs = Array.from(
      { length: 6 },
      () => Float32Array.from({ length: 7 }, () => rng.next() * 2 - 1),
    );
    const labels = [0, 1, 2, 2, 1, 0];
    const batch = [0, 1, 2, 3, 4, 5];
    const grads = allocGradients(params);
    batchGradients(params, inputs, labels, batch, grads, allocScratch(params, batch.length));
    const { act, pre } = allocActivations(params);
    const probs = new Float64Array(3);
    const meanLoss = () =>
      batch.reduce(
        (s, n) =>
          s + crossEntropy(forwardStandardized(params, inputs[n], act, pre), labels[n], probs),
        0,
      ) / batch.length;
    params.layers.forEach((layer, l) => {
      for (
        const [arr, g] of [[layer.weight, grads.weight[l]], [layer.bias, grads.bias[l]]] as const
      ) {
        for (let i = 0; i < arr.length; i += 3) {
          const w = arr[i], h = 1e-2;
          arr[i] = w + h;
          const up = meanLoss();
          arr[i] = w - h;
          const down = meanLoss();
          arr[i] = w;
          const numeric = (up - down) / (2 * h);
          assert.ok(
            Math.abs(numeric - g[i]) < 1e-3 + 1e-2 * Math.abs(numeric),
            `${kind} layer ${l}[${i}]: analytic ${g[i]} vs numeric ${numeric}`,
          );
        }
      }
    });
  }
});

test("trainClassifier: rejects bad options and data, naming the field", () => {
  const f = [new Float32Array([1, 2]), new Float32Array([2, 1])];
  const cases: [() => unknown, RegExp][] = [
    [() => trainClassifier(f, [0, 1], 2, { kind: "svm" as ClassifierKind }), /kind/],
    [() => trainClassifier(f, [0, 1], 2, { hiddenSize: 0 }), /hiddenSize/],
    [() => trainClassifier(f, [0, 1], 2, { learningRate: -1 }), /learningRate/],
    [() => trainClassifier(f, [0, 1], 2, { holdout: 1 }), /holdout/],
    [() => trainClassifier(f, [0, 1], 2, { seed: 0.5 }), /seed/],
    [() => trainClassifier(f, [0, 2], 2), /label 2 of example 1/],
    [() => trainClassifier(f, [0, 0], 2), /class 1 has no examples/],
    [() => trainClassifier([f[0], new Float32Array(3)], [0, 1], 2), /example 1 has 3 features/],
    [() => trainClassifier([f[0], new Float32Array([NaN, 0])], [0, 1], 2), /NaN/],
    [() => trainClassifier([], [], 2), /no examples/],
  ];
  for (const [fn, re] of cases) {
    assert.throws(fn, (e: Error) => e instanceof RangeError && re.test(e.message));
  }
});

test("stratifiedSplit: holds out each class's share and keeps one of each class", () => {
  const labels = [...new Array(50).fill(0), ...new Array(10).fill(1), 2, 3, 3];
  const { keep, held } = stratifiedSplit(labels, 0.2, createRng(1));
  const count = (idx: number[], c: number) => idx.filter((i) => labels[i] === c).length;
  assert.deepEqual([0, 1, 2, 3].map((c) => count(held, c)), [10, 2, 0, 0]);
  assert.deepEqual([0, 1, 2, 3].map((c) => count(keep, c)), [40, 8, 1, 2]);
  assert.deepEqual([...keep, ...held].sort((a, b) => a - b), labels.map((_, i) => i));
});
