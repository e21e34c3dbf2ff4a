/** Sampler: greedy, temperature, top-k, top-p, repetition penalty and seeds. */
import assert from "node:assert/strict";
import { argmax, checkSamplingOptions, Sampler } from "../src/model/sampling.ts";

const logits = Float32Array.from([2.0, 1.0, 0.5, -1.0, 1.9]);

Deno.test("Sampler: temperature 0 is greedy (argmax, first on ties)", () => {
  assert.equal(new Sampler().next(logits, []), 0);
  assert.equal(argmax(Float32Array.from([1, 3, 3])), 1);
});

Deno.test("Sampler: draws follow softmax(logits / T) (seeded, 20000 draws)", () => {
  const T = 0.7, n = 20000;
  const s = new Sampler({ temperature: T, seed: 42 });
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[s.next(logits, [])]++;
  const e = Array.from(logits, (l) => Math.exp(l / T));
  const z = e.reduce((a, b) => a + b, 0);
  e.forEach((v, i) => {
    const p = v / z, sd = Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(counts[i] / n - p) < 5 * sd + 1e-3, `token ${i}: ${counts[i] / n} vs ${p}`);
  });
});

Deno.test("Sampler: top-k and top-p keep only the head of the distribution", () => {
  const k2 = new Sampler({ temperature: 1, topK: 2, seed: 1 });
  const p = new Sampler({ temperature: 1, topP: 0.5, seed: 2 });
  for (let i = 0; i < 2000; i++) {
    assert.ok([0, 4].includes(k2.next(logits, [])), "top-2 keeps tokens 0 and 4");
    // p(0) ~ 0.37 < 0.5, p(0)+p(4) ~ 0.70: the nucleus is {0, 4}.
    assert.ok([0, 4].includes(p.next(logits, [])), "top-p 0.5 keeps tokens 0 and 4");
  }
});

Deno.test("Sampler: repetition penalty divides positive and multiplies negative logits", () => {
  const s = new Sampler({ repetitionPenalty: 2 });
  // 2.0 / 2 = 1.0 falls below 1.9: greedy now picks token 4.
  assert.equal(s.next(logits, [0]), 4);
  // Negative logits grow more negative: -1 * 2 = -2 < -1.5.
  assert.equal(s.next(Float32Array.from([-1, -1.5]), [0]), 1);
});

Deno.test("Sampler: the same seed gives the same tokens, another seed other ones", () => {
  const run = (seed: number) => {
    const s = new Sampler({ temperature: 1.5, seed });
    return Array.from({ length: 50 }, () => s.next(logits, []));
  };
  assert.deepEqual(run(7), run(7));
  assert.notDeepEqual(run(7), run(8));
});

Deno.test("checkSamplingOptions: out-of-range values name their field", () => {
  assert.throws(() => checkSamplingOptions({ temperature: -1 }), /temperature/);
  assert.throws(() => checkSamplingOptions({ topK: 1.5 }), /top_k/);
  assert.throws(() => checkSamplingOptions({ topP: 0 }), /top_p/);
  assert.throws(() => checkSamplingOptions({ repetitionPenalty: 0 }), /repetition_penalty/);
});
