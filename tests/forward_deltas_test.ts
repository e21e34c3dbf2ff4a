/**
 * The Mediator delta path through the whole forward pass: a batch whose entries carry
 * different routes (two experts, which a GPU backend fuses into its matmul launches; three
 * experts, one more than it fuses; no route), prefill of different lengths then decode
 * steps, on each fast backend against the reference backend given the same weights and
 * deltas. Also: the deltas change the logits, so the comparison is not vacuous.
 */
import assert from "node:assert/strict";
import type { Backend } from "../src/backends/backend.ts";
import { createReferenceBackend } from "../src/backends/reference.ts";
import { createWasmBackend } from "../src/backends/wasm.ts";
import { createWebGpuBackend } from "../src/backends/webgpu.ts";
import type { BatchEntry, LinearDelta, RouteDeltas, Transformer } from "../src/model/forward.ts";
import { loadHfModel } from "../src/model/hf.ts";
import { PROJECTIONS } from "../src/model/weights.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { makeRng, randomSparse } from "./backend_suite.ts";
import { fixtureModels } from "./helpers/fixtures.ts";

const BASE = fixtureModels().find((m) => m.name === "base")!.dir;

/** A route of `experts` random sparse experts on every projection of every layer. */
function route(model: Transformer, experts: number, seed: number): RouteDeltas {
  const rng = makeRng(seed);
  const table = new Map<string, LinearDelta[]>();
  model.weights.layers.forEach((layer, l) => {
    for (const p of PROJECTIONS) {
      const w = layer.linear[p];
      const list: LinearDelta[] = [];
      for (let e = 0; e < experts; e++) {
        const data = randomSparse(w.rows, w.cols, 0.1, rng, e % 2 ? "f16" : "bf16");
        list.push({ sparse: model.backend.uploadSparse(data), scale: 1 / experts });
      }
      table.set(`${l}.${p}`, list);
    }
  });
  return { get: (l, p) => table.get(`${l}.${p}`) };
}

/** Logits of every entry over a prefill and three decode steps (entries in one batch). */
async function run(backend: Backend, withRoutes: boolean): Promise<Float32Array[]> {
  const { model } = await loadHfModel(new LocalStorage(BASE), backend);
  try {
    const routes = withRoutes ? [route(model, 2, 1), route(model, 3, 2), undefined] : [];
    const prompts = [[5, 17, 29, 3], [8, 2], [40, 41, 42]];
    const caches = prompts.map(() => model.newCache(16));
    const out: Float32Array[] = [];
    let entries: BatchEntry[] = prompts.map((ids, i) => ({
      ids: Int32Array.from(ids),
      cache: caches[i],
      startPos: 0,
      deltas: routes[i],
    }));
    for (let step = 0; step < 4; step++) {
      const logits = await model.step(entries);
      out.push(...logits.map((x) => x!));
      entries = entries.map((e, i) => ({
        ...e,
        ids: Int32Array.of((step * 7 + i * 3 + 1) % 50),
        startPos: e.startPos + e.ids.length,
      }));
    }
    for (const c of caches) backend.free(c);
    return out;
  } finally {
    model.dispose();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const FAST: { name: string; make: () => Promise<Backend> }[] = [
  { name: "wasm", make: () => createWasmBackend({ threads: 2 }) },
  { name: "webgpu", make: () => createWebGpuBackend({ allowFallback: true }) },
];

for (const be of FAST) {
  Deno.test({
    name:
      `forward (${be.name}): routes of 2 and 3 experts and none in one batch match the reference`,
    sanitizeOps: true,
    sanitizeResources: true,
    fn: async () => {
      const ref = createReferenceBackend();
      const backend = await be.make();
      try {
        const want = await run(ref, true);
        const got = await run(backend, true);
        const plain = await run(ref, false);
        assert.equal(got.length, want.length);
        for (let i = 0; i < want.length; i++) {
          const err = maxAbsDiff(got[i], want[i]);
          assert.ok(err < 2e-3, `step ${Math.floor(i / 3)} entry ${i % 3}: max error ${err}`);
        }
        // Entries 0 and 1 are routed: their logits move; entry 2 has no route.
        for (let i = 0; i < want.length; i++) {
          const moved = maxAbsDiff(want[i], plain[i]);
          if (i % 3 === 2) assert.ok(moved < 1e-6, `unrouted entry moved by ${moved}`);
          else assert.ok(moved > 1e-2, `routed entry ${i % 3} moved only ${moved}`);
        }
      } finally {
        backend.dispose();
        ref.dispose();
      }
    },
  });
}
