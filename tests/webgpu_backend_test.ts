/**
 * WebGPU backend tests: the shared conformance suite (against the reference backend), plus
 * what is specific to this backend: chunked weights and sparse matrices, exact scatter-add
 * rounding, recording order within one submission, large grids, and the embedded kernels.
 *
 * Needs a WebGPU adapter; without a GPU, scripts/install_vulkan.sh installs Mesa's software
 * one. Set MEDIATOR_SKIP_WEBGPU=1 to skip these tests where no adapter can exist, and
 * MEDIATOR_SKIP_WEBGPU_HUGE=1 to skip only the weight larger than one storage binding (2 GiB
 * of uploads on adapters with a 2 GiB binding limit, minutes on some drivers).
 */
import assert from "node:assert/strict";
import type { Backend, Tensor, Weight } from "../src/backends/backend.ts";
import { ReferenceBackend } from "../src/backends/reference.ts";
import { createWebGpuBackend, type WebGpuBackendOptions } from "../src/backends/webgpu.ts";
import { requestGpuAdapter } from "../src/backends/webgpu_device.ts";
import { WGSL_SOURCE_HASH, WGSL_SOURCES } from "../src/backends/webgpu_wgsl.gen.ts";
import { hashWgslSources, readWgslSources } from "../scripts/build_wgsl.ts";
import { type DType, encodeFromF32 } from "../src/tensor/dtype.ts";
import { generate } from "../src/model/generate.ts";
import { openHfCheckpoint } from "../src/model/checkpoint.ts";
import { Transformer } from "../src/model/forward.ts";
import { freeModelWeights, loadModelWeights } from "../src/model/weights.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { fixtureModels, readReference } from "./helpers/fixtures.ts";
import {
  DEFAULT_TOLERANCE,
  makeRng,
  randomF32,
  randomSparse,
  runBackendSuite,
} from "./backend_suite.ts";

const skip = Deno.env.get("MEDIATOR_SKIP_WEBGPU") === "1";
const skipHuge = skip || Deno.env.get("MEDIATOR_SKIP_WEBGPU_HUGE") === "1";
const NO_ADAPTER = "No WebGPU adapter: run scripts/install_vulkan.sh (Mesa's software Vulkan) " +
  "or set MEDIATOR_SKIP_WEBGPU=1 to skip the WebGPU tests";

/**
 * A backend for one test. Early read-back is off unless asked for: it leaves a mapping
 * promise pending for ~10 ms after a read, which the op sanitizer would report when a test
 * disposes right after its last read (the early read-back test settles first).
 */
async function makeBackend(opts: WebGpuBackendOptions = {}) {
  if (!(await requestGpuAdapter())) throw new Error(NO_ADAPTER);
  return await createWebGpuBackend({ earlyReadback: false, ...opts });
}

/**
 * The shared conformance suite, at the default tolerance, submitting after every dispatch
 * (so each op's own submissions are exercised).
 */
runBackendSuite(
  "webgpu",
  () => makeBackend({ submitEvery: 1 }),
  DEFAULT_TOLERANCE,
  { ignore: skip },
);

function gpuTest(name: string, fn: () => Promise<void>, ignore = skip): void {
  Deno.test({ name, ignore, sanitizeOps: true, sanitizeResources: true, fn });
}

function maxRelError(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let maxRef = 1e-6, maxErr = 0;
  for (let i = 0; i < want.length; i++) {
    assert.ok(Number.isFinite(got[i]), `non-finite value ${got[i]} at ${i}`);
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
  }
  return maxErr / maxRef;
}

/** Uploads the same tensor to both backends. */
function both(gpu: Backend, ref: Backend, values: Float32Array): [Tensor, Tensor] {
  const a = gpu.alloc(values.length), b = ref.alloc(values.length);
  gpu.write(a, values);
  ref.write(b, values);
  return [a, b];
}

function bothWeight(
  gpu: Backend,
  ref: Backend,
  values: Float32Array,
  dtype: DType,
  rows: number,
  cols: number,
): [Weight, Weight] {
  const bytes = encodeFromF32(values, dtype);
  return [gpu.uploadWeight(bytes, dtype, rows, cols), ref.uploadWeight(bytes, dtype, rows, cols)];
}

gpuTest("createWebGpuBackend: finds an adapter and names it", async () => {
  const adapter = await requestGpuAdapter();
  assert.ok(adapter, NO_ADAPTER);
  const gpu = await createWebGpuBackend({ adapter });
  try {
    assert.equal(gpu.info.name, "webgpu");
    assert.ok(gpu.info.device.length > 0);
    if (/llvmpipe/.test(gpu.info.device)) assert.match(gpu.info.device, /\(fallback\)$/);
  } finally {
    gpu.dispose();
  }
});

gpuTest("webgpu kernels: the embedded WGSL matches kernels/wgsl", async () => {
  const onDisk = await readWgslSources();
  assert.deepEqual(Object.keys(WGSL_SOURCES).sort(), Object.keys(onDisk).sort());
  assert.equal(
    WGSL_SOURCE_HASH,
    await hashWgslSources(onDisk),
    "src/backends/webgpu_wgsl.gen.ts is stale: run scripts/build_wgsl.ts",
  );
});

gpuTest("WebGpuBackend: chunked weights and sparse matrices match the reference", async () => {
  // 1 KiB chunks: a 40 x 96 bf16 weight becomes 8 chunks, a 64-row sparse several.
  const gpu = await makeBackend({ weightChunkBytes: 1024 });
  const ref = new ReferenceBackend();
  const rng = makeRng(7);
  try {
    for (const dtype of ["f32", "bf16", "f16"] as DType[]) {
      for (
        const [m, rows, cols] of [
          [1, 40, 96],
          [3, 41, 64],
          [5, 40, 96],
          [8, 24, 64],
          [33, 40, 96],
          [2, 37, 33],
        ]
      ) {
        const [w1, w2] = bothWeight(gpu, ref, randomF32(rows * cols, rng), dtype, rows, cols);
        const [x1, x2] = both(gpu, ref, randomF32(m * cols, rng));
        const [b1, b2] = both(gpu, ref, randomF32(rows, rng));
        const o1 = gpu.alloc(m * rows), o2 = ref.alloc(m * rows);
        gpu.matmul(o1, x1, w1, m, { bias: b1 });
        ref.matmul(o2, x2, w2, m, { bias: b2 });
        const err = maxRelError(await gpu.read(o1), await ref.read(o2));
        assert.ok(err < 2e-5, `matmul ${dtype} m=${m} ${rows}x${cols}: error ${err}`);
        // Every chunk's launch normalizes (or gates) its input itself and accumulates.
        const [g1, g2] = both(gpu, ref, randomF32(m * cols, rng, 3));
        const [n1, n2] = both(gpu, ref, randomF32(cols, rng));
        for (const input of ["norm", "gate"] as const) {
          const opts = (g: Tensor, n: Tensor) =>
            input === "norm"
              ? { accumulate: true, norm: { gamma: n, eps: 1e-6 } }
              : { accumulate: true, gate: g };
          gpu.matmul(o1, x1, w1, m, opts(g1, n1));
          ref.matmul(o2, x2, w2, m, opts(g2, n2));
          const e = maxRelError(await gpu.read(o1), await ref.read(o2));
          assert.ok(e < 5e-5, `matmul ${dtype} ${input} m=${m} ${rows}x${cols}: error ${e}`);
        }
        gpu.free(g1);
        gpu.free(n1);
        const ids = Int32Array.from([rows - 1, 0, Math.floor(rows / 2), 5]);
        const e1 = gpu.alloc(ids.length * cols), e2 = ref.alloc(ids.length * cols);
        gpu.embed(e1, w1, ids);
        ref.embed(e2, w2, ids);
        assert.deepEqual(await gpu.read(e1), await ref.read(e2), `embed ${dtype} ${rows}x${cols}`);
        for (const r of [w1, x1, b1, o1, e1]) gpu.free(r);
      }
    }
    for (const valueDtype of ["bf16", "f16"] as const) {
      const [m, rows, cols] = [5, 64, 70];
      const sd = randomSparse(rows, cols, 0.5, rng, valueDtype);
      const s1 = gpu.uploadSparse(sd), s2 = ref.uploadSparse(sd);
      const [x1, x2] = both(gpu, ref, randomF32((m + 1) * cols, rng));
      const [o1, o2] = both(gpu, ref, randomF32((m + 1) * rows, rng));
      gpu.sparseMatmulAdd(o1, x1, s1, 1.5, 1, m);
      ref.sparseMatmulAdd(o2, x2, s2, 1.5, 1, m);
      const err = maxRelError(await gpu.read(o1), await ref.read(o2));
      assert.ok(err < 2e-5, `chunked sparse ${valueDtype}: error ${err}`);
      for (const r of [s1, x1, o1]) gpu.free(r);
    }
  } finally {
    gpu.dispose();
  }
});

gpuTest("WebGpuBackend: sparse matrices wider than 65536 columns", async () => {
  // Columns no longer fit the 16 bits of the packed format: the column-array format is used.
  const gpu = await makeBackend();
  const ref = new ReferenceBackend();
  const rng = makeRng(13);
  try {
    // cols % 8 == 0, so matmul takes the GEMV path and fuses the deltas below.
    const [m, rows, cols] = [2, 3, 70_008];
    const sd = randomSparse(rows, cols, 0.01, rng, "f16");
    const s1 = gpu.uploadSparse(sd), s2 = ref.uploadSparse(sd);
    const [x1, x2] = both(gpu, ref, randomF32(m * cols, rng));
    const [o1, o2] = both(gpu, ref, randomF32(m * rows, rng));
    gpu.sparseMatmulAdd(o1, x1, s1, -2, 0, m);
    ref.sparseMatmulAdd(o2, x2, s2, -2, 0, m);
    const err = maxRelError(await gpu.read(o1), await ref.read(o2));
    assert.ok(err < 2e-5, `wide sparse delta: error ${err}`);
    const [w1, w2] = bothWeight(gpu, ref, randomF32(rows * cols, rng), "bf16", rows, cols);
    const sd2 = randomSparse(rows, cols, 0.003, rng, "bf16");
    const t1 = gpu.uploadSparse(sd2), t2 = ref.uploadSparse(sd2);
    const deltas = (a: typeof s1, b: typeof s1) => [
      { sparse: a, scale: 0.5, rowOffset: 0, m },
      { sparse: b, scale: -1, rowOffset: 1, m: 1 },
    ];
    gpu.matmul(o1, x1, w1, m, { deltas: deltas(s1, t1) });
    ref.matmul(o2, x2, w2, m, { deltas: deltas(s2, t2) });
    const fusedErr = maxRelError(await gpu.read(o1), await ref.read(o2));
    assert.ok(fusedErr < 1e-4, `wide sparse deltas fused into the matmul: error ${fusedErr}`);
    gpu.scatterAdd(w1, s1, 0.5);
    ref.scatterAdd(w2, s2, 0.5);
    const ids = Int32Array.from([0, 1, 2]);
    const e1 = gpu.alloc(rows * cols), e2 = ref.alloc(rows * cols);
    gpu.embed(e1, w1, ids);
    ref.embed(e2, w2, ids);
    assert.deepEqual(await gpu.read(e1), await ref.read(e2));
  } finally {
    gpu.dispose();
  }
});

gpuTest("WebGpuBackend.scatterAdd: rounds like the reference, bit for bit", async () => {
  // Dense sparse rows put non-zeros in both halves of most packed 16-bit words; odd column
  // counts pad each row; small chunks split weight and sparse rows differently. The scale is
  // exact in f32, so w + scale * v is exact before the one rounding to w's dtype (the
  // reference computes in f64: with an inexact scale a tie could round the other way).
  for (const weightChunkBytes of [undefined, 512]) {
    const gpu = await makeBackend({ weightChunkBytes });
    const ref = new ReferenceBackend();
    const rng = makeRng(11);
    try {
      for (const dtype of ["f32", "bf16", "f16"] as DType[]) {
        for (const valueDtype of ["bf16", "f16"] as const) {
          for (const [rows, cols, density] of [[9, 31, 0.9], [20, 64, 0.5], [3, 3, 1]]) {
            const [w1, w2] = bothWeight(gpu, ref, randomF32(rows * cols, rng), dtype, rows, cols);
            const sd = randomSparse(rows, cols, density, rng, valueDtype);
            const s1 = gpu.uploadSparse(sd), s2 = ref.uploadSparse(sd);
            gpu.scatterAdd(w1, s1, -0.375);
            ref.scatterAdd(w2, s2, -0.375);
            const ids = Int32Array.from({ length: rows }, (_, i) => i);
            const e1 = gpu.alloc(rows * cols), e2 = ref.alloc(rows * cols);
            gpu.embed(e1, w1, ids);
            ref.embed(e2, w2, ids);
            const what = `${dtype} += ${valueDtype} ${rows}x${cols} chunk=${weightChunkBytes}`;
            assert.deepEqual(await gpu.read(e1), await ref.read(e2), what);
            for (const r of [w1, s1, e1]) gpu.free(r);
          }
        }
      }
    } finally {
      gpu.dispose();
    }
  }
});

gpuTest("WebGpuBackend: work recorded before a write sees the old values", async () => {
  const gpu = await makeBackend();
  try {
    const a = gpu.alloc(4), b = gpu.alloc(4), sum1 = gpu.alloc(4), sum2 = gpu.alloc(4);
    gpu.write(a, Float32Array.from([1, 2, 3, 4]));
    gpu.write(b, Float32Array.from([10, 20, 30, 40]));
    gpu.add(sum1, a, b, 4);
    gpu.write(a, Float32Array.from([100, 200, 300, 400])); // recorded after the first add
    gpu.add(sum2, a, b, 4);
    // A freed tensor's buffer comes back zero-filled even inside the same submission.
    gpu.free(b);
    const c = gpu.alloc(4);
    gpu.add(c, c, a, 4);
    assert.deepEqual(Array.from(await gpu.read(sum1)), [11, 22, 33, 44]);
    assert.deepEqual(Array.from(await gpu.read(sum2)), [110, 220, 330, 440]);
    assert.deepEqual(Array.from(await gpu.read(c)), [100, 200, 300, 400]);
    gpu.copy(a, 1, a, 0, 2); // same-tensor copy of overlapping ranges
    assert.deepEqual(Array.from(await gpu.read(a)), [100, 100, 200, 400]);
    assert.throws(() => gpu.add(sum1, b, a, 4), TypeError);
  } finally {
    gpu.dispose();
  }
});

gpuTest("WebGpuBackend: grids past the per-dimension workgroup limit", async () => {
  const gpu = await makeBackend();
  const ref = new ReferenceBackend();
  const rng = makeRng(3);
  try {
    const m = 70_000; // one rmsNorm workgroup per row: > 65535 workgroups
    const [x1, x2] = both(gpu, ref, randomF32(m * 3, rng));
    const [g1, g2] = both(gpu, ref, randomF32(3, rng));
    const o1 = gpu.alloc(m * 3), o2 = ref.alloc(m * 3);
    gpu.rmsNorm(o1, x1, g1, m, 1e-5);
    ref.rmsNorm(o2, x2, g2, m, 1e-5);
    assert.ok(maxRelError(await gpu.read(o1), await ref.read(o2)) < 1e-5);
  } finally {
    gpu.dispose();
  }
  // One GEMV workgroup per weight row over 70000 rows.
  const gemv = await makeBackend({ gemvThreadsPerRow: 256 });
  try {
    const [rows, cols] = [70_000, 8];
    const [w1, w2] = bothWeight(gemv, ref, randomF32(rows * cols, rng), "bf16", rows, cols);
    const [x1, x2] = both(gemv, ref, randomF32(2 * cols, rng));
    const o1 = gemv.alloc(2 * rows), o2 = ref.alloc(2 * rows);
    gemv.matmul(o1, x1, w1, 2);
    ref.matmul(o2, x2, w2, 2);
    assert.ok(maxRelError(await gemv.read(o1), await ref.read(o2)) < 1e-5);
  } finally {
    gemv.dispose();
  }
});

gpuTest("WebGpuBackend: a weight larger than one storage binding", async () => {
  const gpu = await makeBackend();
  const rng = makeRng(5);
  try {
    // bf16 rows of 1024 columns; enough rows to exceed maxStorageBufferBindingSize.
    const cols = 1024;
    const rows = Math.floor(gpu.maxBindingBytes / (cols * 2)) + 1000;
    const bits = new Uint16Array(rows * cols);
    for (let i = 0; i < bits.length; i++) bits[i] = 0x3c00 + ((i * 2654435761) >>> 20) % 0x800;
    const w = gpu.uploadWeight(new Uint8Array(bits.buffer), "bf16", rows, cols);
    const x = randomF32(cols, rng);
    const xt = gpu.alloc(cols), out = gpu.alloc(rows);
    gpu.write(xt, x);
    gpu.matmul(out, xt, w, 1);
    const ids = Int32Array.from([0, rows - 1, rows - 1000, rows - 1001]);
    const emb = gpu.alloc(ids.length * cols);
    gpu.embed(emb, w, ids);
    const got = await gpu.read(out);
    const gotEmb = await gpu.read(emb);
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    const value = (r: number, c: number) => {
      u[0] = bits[r * cols + c] << 16;
      return f[0];
    };
    for (const r of [0, 1, rows - 1001, rows - 1000, rows - 1]) {
      let want = 0;
      for (let c = 0; c < cols; c++) want += value(r, c) * x[c];
      assert.ok(Math.abs(got[r] - want) <= 1e-4 * (Math.abs(want) + 1), `row ${r}`);
    }
    ids.forEach((id, i) => {
      for (const c of [0, 1, cols - 1]) assert.equal(gotEmb[i * cols + c], value(id, c));
    });
  } finally {
    gpu.dispose();
  }
}, skipHuge);

gpuTest("WebGpuBackend.attention: long contexts split the keys and still match", async () => {
  const gpu = await makeBackend();
  const ref = new ReferenceBackend();
  const rng = makeRng(9);
  try {
    const [heads, kvHeads, headDim, maxSeq] = [4, 2, 32, 760];
    const c1 = gpu.allocKvCache(1, maxSeq, kvHeads, headDim);
    const c2 = ref.allocKvCache(1, maxSeq, kvHeads, headDim);
    // A 700-token prefill (one workgroup per pair), then decodes that split the keys.
    for (const [start, m] of [[0, 700], [700, 1], [701, 3], [704, 50]]) {
      const [q1, q2] = both(gpu, ref, randomF32(m * heads * headDim, rng, 2));
      const [k1, k2] = both(gpu, ref, randomF32(m * kvHeads * headDim, rng, 2));
      const [v1, v2] = both(gpu, ref, randomF32(m * kvHeads * headDim, rng));
      gpu.kvWrite(c1, 0, k1, v1, 0, m, start);
      ref.kvWrite(c2, 0, k2, v2, 0, m, start);
      const o1 = gpu.alloc(m * heads * headDim), o2 = ref.alloc(m * heads * headDim);
      const args = { numHeads: heads, numKvHeads: kvHeads, headDim, layer: 0, rowOffset: 0, m };
      gpu.attention(o1, q1, { ...args, startPos: start, cache: c1 });
      ref.attention(o2, q2, { ...args, startPos: start, cache: c2 });
      const err = maxRelError(await gpu.read(o1), await ref.read(o2));
      assert.ok(err < 1e-4, `attention start=${start} m=${m}: error ${err}`);
      for (const r of [q1, k1, v1, o1]) gpu.free(r);
    }
  } finally {
    gpu.dispose();
  }
});

gpuTest("WebGpuBackend: rejects bad arguments with clear errors", async () => {
  const gpu = await makeBackend();
  try {
    const sd = randomSparse(4, 5, 0.5, makeRng(1));
    assert.throws(
      () => gpu.uploadSparse({ ...sd, colIdx: sd.colIdx.slice().reverse() }),
      /not strictly ascending/,
    );
    const w = gpu.uploadWeight(new Uint8Array(2 * 3 * 2), "bf16", 2, 3);
    const out = gpu.alloc(6);
    assert.throws(() => gpu.embed(out, w, Int32Array.from([2])), RangeError);
    assert.throws(() => gpu.matmul(out, gpu.alloc(2), w, 1), /needs 3/);
    assert.throws(() => gpu.matmul(out, out, w, 1), /alias/);
    const cache = gpu.allocKvCache(1, 4, 1, 2);
    assert.throws(() => gpu.kvWrite(cache, 0, out, out, 0, 1, 4), /maxSeq is 4/);
  } finally {
    gpu.dispose();
  }
});

gpuTest("WebGpuBackend: GEMV thread and unroll variants match the reference", async () => {
  const ref = new ReferenceBackend();
  const rng = makeRng(17);
  const [rows, cols] = [37, 8 * 41]; // 41 vec4 words per bf16 row: uneven for every variant
  const values = randomF32(rows * cols, rng);
  for (const gemvThreadsPerRow of [4, 16, 64]) {
    for (const gemvUnroll of [1, 2, 4]) {
      const gpu = await makeBackend({ gemvThreadsPerRow, gemvUnroll });
      try {
        for (const m of [1, 6]) {
          const [w1, w2] = bothWeight(gpu, ref, values, "bf16", rows, cols);
          const [x1, x2] = both(gpu, ref, randomF32(m * cols, rng));
          const o1 = gpu.alloc(m * rows), o2 = ref.alloc(m * rows);
          gpu.matmul(o1, x1, w1, m);
          ref.matmul(o2, x2, w2, m);
          const err = maxRelError(await gpu.read(o1), await ref.read(o2));
          assert.ok(err < 2e-5, `tpr ${gemvThreadsPerRow} unroll ${gemvUnroll} m ${m}: ${err}`);
        }
      } finally {
        gpu.dispose();
      }
    }
  }
  await assert.rejects(() => makeBackend({ gemvUnroll: 3 }), /gemvUnroll 3/);
});

gpuTest("WebGpuBackend: early read-back and partial submissions keep PyTorch parity", async () => {
  // Submitting every 3 dispatches splits each step into many submissions whose host slices
  // (parameters, token ids, positions) reuse the same arena; early read-back returns the
  // logits before the mapping promise settles. Both must leave the results unchanged.
  const [base] = fixtureModels();
  const want = readReference(base.reference);
  const gpu = await makeBackend({ allowFallback: true, earlyReadback: true, submitEvery: 3 });
  try {
    // The checkpoint without its tokenizer: the prompts are token ids.
    const hf = await openHfCheckpoint(new LocalStorage(base.dir));
    const weights = await loadModelWeights(gpu, hf.config, hf.checkpoint);
    const model = new Transformer(gpu, hf.config, weights);
    let reads = 0;
    for (const p of want.prompts) {
      const result = await generate(model, p.input_ids, { maxTokens: p.greedy_ids.length });
      reads += p.greedy_ids.length;
      let maxErr = 0;
      for (let i = 0; i < p.last_logits.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(result.lastLogits[i] - p.last_logits[i]));
      }
      assert.ok(maxErr <= 2e-3, `${JSON.stringify(p.text)}: max |logit error| ${maxErr}`);
      assert.deepEqual(result.outputIds, p.greedy_ids, `greedy ids for ${JSON.stringify(p.text)}`);
    }
    model.dispose();
    freeModelWeights(gpu, weights);
    const { submissions, earlyReads } = gpu.stats;
    assert.ok(submissions > 3 * reads, `${submissions} submissions for ${reads} reads`);
    assert.ok(earlyReads > 0, "no read returned before its mapping promise settled");
    await gpu.settle();
  } finally {
    gpu.dispose();
  }
});

gpuTest("WebGpuBackend.launchTimes: one ordered entry per kernel launch", async () => {
  const adapter = await requestGpuAdapter();
  assert.ok(adapter, NO_ADAPTER);
  if (!adapter.features.has("timestamp-query")) {
    await assert.rejects(() => createWebGpuBackend({ adapter, profile: true }), /timestamp-query/);
    return;
  }
  const gpu = await createWebGpuBackend({ adapter, profile: true, earlyReadback: false });
  try {
    const a = gpu.alloc(1000), b = gpu.alloc(1000), g = gpu.alloc(1000);
    gpu.write(a, randomF32(1000, makeRng(2)));
    gpu.add(b, a, a, 1000);
    gpu.rmsNorm(g, b, a, 1, 1e-6);
    gpu.siluMul(b, g, a, 1000);
    await gpu.read(b);
    const { launches, dropped } = await gpu.launchTimes();
    assert.equal(dropped, 0);
    assert.deepEqual(launches.map((l) => l.kernel.split(" ")[0]), ["add", "rms_norm", "silu_mul"]);
    assert.equal(launches[0].kernel, "add 4x1x1");
    for (let i = 0; i < launches.length; i++) {
      assert.ok(launches[i].endNs >= launches[i].startNs, `launch ${i} ends before it starts`);
      if (i > 0) assert.ok(launches[i].startNs >= launches[i - 1].endNs, `launch ${i} overlaps`);
    }
    assert.deepEqual(await gpu.launchTimes(), { launches: [], dropped: 0 }, "a new batch");
  } finally {
    gpu.dispose();
  }
});
