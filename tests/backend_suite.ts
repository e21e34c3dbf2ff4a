/**
 * The one conformance suite, run against every backend: each op at edge
 * shapes (1, 3, 31, 32, 33, 4096+7 and odd rows/cols) on random data, compared
 * with the reference backend (the oracle) within a tolerance per dtype.
 *
 * Usage from a backend's test file:
 *   runBackendSuite("wasm", () => createWasmBackend({ threads: 2 }));
 */
import assert from "node:assert/strict";
import type { Backend, SparseMatrixData, Tensor, Weight } from "../src/backends/backend.ts";
import { ReferenceBackend } from "../src/backends/reference.ts";
import { type DType, encodeFromF32, f32ToBf16, f32ToF16 } from "../src/tensor/dtype.ts";

/** Relative tolerances: max |a - b| <= tol * (max |ref| + 1e-6) per op result. */
export interface SuiteTolerance {
  f32: number;
  bf16: number;
  f16: number;
}

/** Default tolerance: f32 accumulation order differs across kernels. */
export const DEFAULT_TOLERANCE: SuiteTolerance = { f32: 1e-5, bf16: 1e-5, f16: 1e-5 };

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform values in [-scale, scale). */
export function randomF32(n: number, rng: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng() * 2 - 1) * scale;
  return out;
}

/** Random CSR matrix with the given density and 16-bit values. */
export function randomSparse(
  rows: number,
  cols: number,
  density: number,
  rng: () => number,
  valueDtype: "bf16" | "f16" = "bf16",
): SparseMatrixData {
  const rowPtr = new Uint32Array(rows + 1);
  const colIdx: number[] = [];
  const values: number[] = [];
  const conv = valueDtype === "bf16" ? f32ToBf16 : f32ToF16;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (rng() < density) {
        colIdx.push(c);
        values.push(conv((rng() * 2 - 1) * 0.5));
      }
    }
    rowPtr[r + 1] = colIdx.length;
  }
  return {
    rows,
    cols,
    rowPtr,
    colIdx: Uint32Array.from(colIdx),
    values: Uint16Array.from(values),
    valueDtype,
  };
}

function assertClose(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let maxRef = 0, maxErr = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(got[i])) assert.fail(`${what}: non-finite value ${got[i]} at ${i}`);
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    const e = Math.abs(got[i] - want[i]);
    if (e > maxErr) {
      maxErr = e;
      at = i;
    }
  }
  const bound = tol * (maxRef + 1e-6);
  assert.ok(
    maxErr <= bound,
    `${what}: max error ${maxErr} at ${at} (got ${got[at]}, want ${want[at]}) over bound ${bound}`,
  );
}

/** A pair of backends under test: the candidate and the reference oracle. */
interface Pair {
  be: Backend;
  ref: ReferenceBackend;
}

function upload(p: Pair, values: Float32Array): [Tensor, Tensor] {
  const a = p.be.alloc(values.length), b = p.ref.alloc(values.length);
  p.be.write(a, values);
  p.ref.write(b, values);
  return [a, b];
}

function uploadW(p: Pair, values: Float32Array, dtype: DType, rows: number, cols: number) {
  const bytes = encodeFromF32(values, dtype);
  return [
    p.be.uploadWeight(bytes, dtype, rows, cols),
    p.ref.uploadWeight(bytes, dtype, rows, cols),
  ] as [Weight, Weight];
}

async function compare(p: Pair, a: Tensor, b: Tensor, tol: number, what: string) {
  assertClose(await p.be.read(a), await p.ref.read(b), tol, what);
}

/** Shapes [m, rows, cols] for matmul cases: tile, below, above, odd, long tails. */
export const MATMUL_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 3, 3],
  [1, 31, 33],
  [1, 32, 32],
  [1, 33, 31],
  [3, 17, 4096 + 7],
  [1, 129, 896],
  [5, 64, 257],
  [33, 40, 96],
];

/**
 * Register the conformance tests for one backend. `make` is called per test;
 * the backend is disposed after each one so leaks show up in the sanitizers.
 */
export function runBackendSuite(
  name: string,
  make: () => Backend | Promise<Backend>,
  tol: SuiteTolerance = DEFAULT_TOLERANCE,
  options: { ignore?: boolean } = {},
): void {
  const test = (what: string, fn: (p: Pair, rng: () => number) => Promise<void>) =>
    Deno.test({
      name: `${name} backend: ${what}`,
      ignore: options.ignore,
      sanitizeOps: true,
      sanitizeResources: true,
      fn: async () => {
        const p = { be: await make(), ref: new ReferenceBackend() };
        try {
          await fn(p, makeRng(what.length * 7919 + 17));
        } finally {
          p.be.dispose();
        }
      },
    });

  for (const dtype of ["f32", "bf16", "f16"] as DType[]) {
    test(`matmul ${dtype} weights match the reference at edge shapes`, async (p, rng) => {
      for (const [m, rows, cols] of MATMUL_SHAPES) {
        const [w1, w2] = uploadW(p, randomF32(rows * cols, rng), dtype, rows, cols);
        const [x1, x2] = upload(p, randomF32(m * cols, rng));
        const [b1, b2] = upload(p, randomF32(rows, rng));
        const o1 = p.be.alloc(m * rows), o2 = p.ref.alloc(m * rows);
        p.be.matmul(o1, x1, w1, m, { bias: b1 });
        p.ref.matmul(o2, x2, w2, m, { bias: b2 });
        await compare(p, o1, o2, tol[dtype], `matmul ${dtype} m=${m} ${rows}x${cols}`);
        p.be.matmul(o1, x1, w1, m);
        p.ref.matmul(o2, x2, w2, m);
        await compare(p, o1, o2, tol[dtype], `matmul ${dtype} no bias m=${m} ${rows}x${cols}`);
        // Accumulate onto what is there (a residual connection): out = out + x w^T + bias.
        p.be.matmul(o1, x1, w1, m, { bias: b1, accumulate: true });
        p.ref.matmul(o2, x2, w2, m, { bias: b2, accumulate: true });
        await compare(p, o1, o2, tol[dtype], `matmul ${dtype} accumulate m=${m} ${rows}x${cols}`);
        // Gated input: silu(gate) * x (the gated MLP's down projection).
        const [g1, g2] = upload(p, randomF32(m * cols, rng, 4));
        p.be.matmul(o1, x1, w1, m, { gate: g1 });
        p.ref.matmul(o2, x2, w2, m, { gate: g2 });
        await compare(p, o1, o2, tol[dtype], `matmul ${dtype} gated m=${m} ${rows}x${cols}`);
        // Normalized input: rms_norm(x) * gamma (the pre-norm), with a bias.
        const [n1, n2] = upload(p, randomF32(cols, rng, 2));
        p.be.matmul(o1, x1, w1, m, { bias: b1, norm: { gamma: n1, eps: 1e-5 } });
        p.ref.matmul(o2, x2, w2, m, { bias: b2, norm: { gamma: n2, eps: 1e-5 } });
        await compare(p, o1, o2, tol[dtype], `matmul ${dtype} normed m=${m} ${rows}x${cols}`);
        for (const r of [w1, x1, b1, o1, g1, n1]) p.be.free(r);
      }
    });
  }

  test("embed gathers rows of bf16 and f32 tables", async (p, rng) => {
    for (const dtype of ["f32", "bf16"] as DType[]) {
      const [t1, t2] = uploadW(p, randomF32(50 * 33, rng), dtype, 50, 33);
      const ids = Int32Array.from([0, 49, 7, 7, 31]);
      const o1 = p.be.alloc(ids.length * 33), o2 = p.ref.alloc(ids.length * 33);
      p.be.embed(o1, t1, ids);
      p.ref.embed(o2, t2, ids);
      await compare(p, o1, o2, 0, `embed ${dtype}`);
    }
  });

  for (const valueDtype of ["bf16", "f16"] as const) {
    test(
      `sparseMatmulAdd (${valueDtype} values) matches at densities and row windows`,
      async (p, rng) => {
        for (
          const [m, rows, cols, density] of [
            [1, 1, 1, 1],
            [1, 31, 33, 0.1],
            [3, 33, 4096 + 7, 0.05],
            [4, 64, 896, 0.2],
            [2, 17, 31, 0],
          ] as const
        ) {
          const sd = randomSparse(rows, cols, density, rng, valueDtype);
          const s1 = p.be.uploadSparse(sd), s2 = p.ref.uploadSparse(sd);
          assert.equal(s1.nnz, sd.values.length);
          const [x1, x2] = upload(p, randomF32((m + 2) * cols, rng));
          const [o1, o2] = upload(p, randomF32((m + 2) * rows, rng));
          // Touch only rows [1, 1+m): rows 0 and m+1 must stay as they were.
          p.be.sparseMatmulAdd(o1, x1, s1, 0.75, 1, m);
          p.ref.sparseMatmulAdd(o2, x2, s2, 0.75, 1, m);
          await compare(p, o1, o2, tol.bf16, `sparse ${m}x${rows}x${cols} d=${density}`);
          for (const r of [s1, x1, o1]) p.be.free(r);
        }
      },
    );
  }

  test("matmul with sparse deltas on row windows matches", async (p, rng) => {
    // Decode-sized m (a backend may fuse a delta into the GEMV) and m past the GEMV limit;
    // deltas on disjoint windows, two on one window, one empty, f16 and bf16 values.
    for (const [m, rows, cols] of [[1, 33, 64], [3, 64, 896], [8, 17, 40], [11, 31, 72]]) {
      const [w1, w2] = uploadW(p, randomF32(rows * cols, rng), "bf16", rows, cols);
      const [x1, x2] = upload(p, randomF32(m * cols, rng));
      const [b1, b2] = upload(p, randomF32(rows, rng));
      const cut = Math.floor(m / 2);
      const specs = [
        { density: 0.2, dtype: "bf16", scale: 0.5, rowOffset: 0, m: cut },
        { density: 0.1, dtype: "f16", scale: -1.25, rowOffset: cut, m: m - cut },
        { density: 0.05, dtype: "bf16", scale: 2, rowOffset: cut, m: m - cut },
        { density: 0, dtype: "bf16", scale: 1, rowOffset: 0, m },
      ] as const;
      const pairs = specs.map((s) => {
        const sd = randomSparse(rows, cols, s.density, rng, s.dtype);
        return [p.be.uploadSparse(sd), p.ref.uploadSparse(sd)];
      });
      const deltas = (k: 0 | 1) =>
        specs.map((s, i) => ({
          sparse: pairs[i][k],
          scale: s.scale,
          rowOffset: s.rowOffset,
          m: s.m,
        }));
      const o1 = p.be.alloc(m * rows), o2 = p.ref.alloc(m * rows);
      p.be.matmul(o1, x1, w1, m, { bias: b1, deltas: deltas(0) });
      p.ref.matmul(o2, x2, w2, m, { bias: b2, deltas: deltas(1) });
      await compare(p, o1, o2, tol.bf16, `matmul + deltas m=${m} ${rows}x${cols}`);
      // The fused delta alone, on the last row only.
      const one = [{ sparse: pairs[1][0], scale: 3, rowOffset: m - 1, m: 1 }];
      p.be.matmul(o1, x1, w1, m, { deltas: one, accumulate: true });
      p.ref.matmul(o2, x2, w2, m, {
        deltas: [{ ...one[0], sparse: pairs[1][1] }],
        accumulate: true,
      });
      await compare(p, o1, o2, tol.bf16, `matmul + one delta m=${m} ${rows}x${cols}`);
      // A gated input seen by the deltas too: with one delta (fusable) and with all of them.
      const [g1, g2] = upload(p, randomF32(m * cols, rng, 4));
      p.be.matmul(o1, x1, w1, m, { deltas: one, gate: g1, accumulate: true });
      p.ref.matmul(o2, x2, w2, m, {
        deltas: [{ ...one[0], sparse: pairs[1][1] }],
        gate: g2,
        accumulate: true,
      });
      await compare(p, o1, o2, tol.bf16, `gated matmul + one delta m=${m} ${rows}x${cols}`);
      p.be.matmul(o1, x1, w1, m, { bias: b1, deltas: deltas(0), gate: g1 });
      p.ref.matmul(o2, x2, w2, m, { bias: b2, deltas: deltas(1), gate: g2 });
      await compare(p, o1, o2, tol.bf16, `gated matmul + deltas m=${m} ${rows}x${cols}`);
      // A normalized input seen by the deltas too (two deltas: fusable; all: not).
      const [n1, n2] = upload(p, randomF32(cols, rng, 2));
      const norm = (gamma: typeof n1) => ({ gamma, eps: 1e-6 });
      const two = (k: 0 | 1) => deltas(k).slice(0, 2);
      p.be.matmul(o1, x1, w1, m, { deltas: two(0), norm: norm(n1) });
      p.ref.matmul(o2, x2, w2, m, { deltas: two(1), norm: norm(n2) });
      await compare(p, o1, o2, tol.bf16, `normed matmul + 2 deltas m=${m} ${rows}x${cols}`);
      p.be.matmul(o1, x1, w1, m, { deltas: deltas(0), norm: norm(n1), accumulate: true });
      p.ref.matmul(o2, x2, w2, m, { deltas: deltas(1), norm: norm(n2), accumulate: true });
      await compare(p, o1, o2, tol.bf16, `normed matmul + deltas m=${m} ${rows}x${cols}`);
      assert.throws(
        () => p.be.matmul(o1, x1, w1, m, { gate: g1, norm: norm(n1) }),
        /both a gate and a norm/,
      );
      p.be.free(g1);
      p.be.free(n1);
      for (const r of [w1, x1, b1, o1, ...pairs.map((q) => q[0])]) p.be.free(r);
    }
    const w = p.be.uploadWeight(new Uint8Array(4 * 8 * 2), "bf16", 4, 8);
    const wrong = p.be.uploadSparse(randomSparse(8, 4, 0.5, rng));
    const x = p.be.alloc(8), o = p.be.alloc(4);
    const bad = [{ sparse: wrong, scale: 1, rowOffset: 0, m: 1 }];
    assert.throws(
      () => p.be.matmul(o, x, w, 1, { deltas: bad }),
      /sparse delta \[8, 4\].*\[4, 8\]/,
    );
    for (const r of [w, wrong, x, o]) p.be.free(r);
  });

  for (const dtype of ["f32", "bf16"] as DType[]) {
    test(`scatterAdd into ${dtype} weight then matmul matches`, async (p, rng) => {
      for (const [rows, cols] of [[3, 5], [33, 31], [64, 4096 + 7]]) {
        const [w1, w2] = uploadW(p, randomF32(rows * cols, rng), dtype, rows, cols);
        const c1 = p.be.cloneWeight(w1), c2 = p.ref.cloneWeight(w2);
        const sd = randomSparse(rows, cols, 0.1, rng);
        const s1 = p.be.uploadSparse(sd), s2 = p.ref.uploadSparse(sd);
        p.be.scatterAdd(c1, s1, -0.5);
        p.ref.scatterAdd(c2, s2, -0.5);
        const [x1, x2] = upload(p, randomF32(cols, rng));
        const o1 = p.be.alloc(rows), o2 = p.ref.alloc(rows);
        p.be.matmul(o1, x1, c1, 1);
        p.ref.matmul(o2, x2, c2, 1);
        await compare(p, o1, o2, tol[dtype], `scatterAdd ${dtype} ${rows}x${cols}`);
        // The original weight is untouched by a scatter into its clone.
        p.be.matmul(o1, x1, w1, 1);
        p.ref.matmul(o2, x2, w2, 1);
        await compare(p, o1, o2, tol[dtype], `clone independence ${dtype}`);
        for (const r of [w1, c1, s1, x1, o1]) p.be.free(r);
      }
    });
  }

  test("rmsNorm matches at odd widths", async (p, rng) => {
    for (const [m, n] of [[1, 1], [3, 31], [2, 896], [5, 4096 + 7]]) {
      const [x1, x2] = upload(p, randomF32(m * n, rng, 3));
      const [g1, g2] = upload(p, randomF32(n, rng));
      const o1 = p.be.alloc(m * n), o2 = p.ref.alloc(m * n);
      p.be.rmsNorm(o1, x1, g1, m, 1e-6);
      p.ref.rmsNorm(o2, x2, g2, m, 1e-6);
      await compare(p, o1, o2, 1e-5, `rmsNorm ${m}x${n}`);
    }
  });

  test("rope matches at several positions and head sizes", async (p, rng) => {
    for (
      const [m, heads, headDim, theta] of [[1, 1, 2, 10000], [3, 4, 16, 10000], [2, 14, 64, 1e6]]
    ) {
      const [x1, x2] = upload(p, randomF32(m * heads * headDim, rng));
      const pos = Int32Array.from({ length: m }, (_, i) => i * 37 + 5);
      p.be.rope(x1, m, heads, headDim, pos, theta);
      p.ref.rope(x2, m, heads, headDim, pos, theta);
      await compare(p, x1, x2, 1e-4, `rope ${m}x${heads}x${headDim}`);
    }
  });

  test("kvWrite + attention (GQA, causal, prefill and decode) match", async (p, rng) => {
    for (const [heads, kvHeads, headDim] of [[1, 1, 4], [4, 2, 16], [14, 2, 64]]) {
      const maxSeq = 40;
      const c1 = p.be.allocKvCache(2, maxSeq, kvHeads, headDim);
      const c2 = p.ref.allocKvCache(2, maxSeq, kvHeads, headDim);
      // Prefill 33 tokens on layer 1, then decode 1 token at position 33.
      for (const [start, m] of [[0, 33], [33, 1], [34, 3]]) {
        const rowOffset = 1; // one unrelated row before this sequence
        const rowsTotal = m + 2;
        const [q1, q2] = upload(p, randomF32(rowsTotal * heads * headDim, rng));
        const keys = randomF32(rowsTotal * kvHeads * headDim, rng);
        const [k1, k2] = upload(p, keys);
        const [v1, v2] = upload(p, randomF32(rowsTotal * kvHeads * headDim, rng));
        // Keys rotated on the way in (RoPE at positions start..) on every other call.
        const theta = start === 33 ? undefined : 10000;
        p.be.kvWrite(c1, 1, k1, v1, rowOffset, m, start, theta);
        p.ref.kvWrite(c2, 1, k2, v2, rowOffset, m, start, theta);
        assert.deepEqual(await p.be.read(k1), keys, "kvWrite leaves k unchanged");
        const [o1, o2] = upload(p, randomF32(rowsTotal * heads * headDim, rng));
        const args = {
          numHeads: heads,
          numKvHeads: kvHeads,
          headDim,
          layer: 1,
          rowOffset,
          m,
          startPos: start,
        };
        p.be.attention(o1, q1, { ...args, cache: c1 });
        p.ref.attention(o2, q2, { ...args, cache: c2 });
        await compare(
          p,
          o1,
          o2,
          1e-4,
          `attention h=${heads}/${kvHeads} d=${headDim} start=${start}`,
        );
      }
      p.be.free(c1);
    }
  });

  test("siluMul and add match", async (p, rng) => {
    for (const n of [1, 3, 31, 32, 33, 4096 + 7]) {
      const [a1, a2] = upload(p, randomF32(n, rng, 6));
      const [b1, b2] = upload(p, randomF32(n, rng));
      const o1 = p.be.alloc(n), o2 = p.ref.alloc(n);
      p.be.siluMul(o1, a1, b1, n);
      p.ref.siluMul(o2, a2, b2, n);
      await compare(p, o1, o2, 1e-5, `siluMul n=${n}`);
      p.be.add(a1, a1, b1, n);
      p.ref.add(a2, a2, b2, n);
      await compare(p, a1, a2, 1e-6, `add n=${n}`);
    }
  });

  test("copy moves element ranges between tensors", async (p, rng) => {
    const [a1, a2] = upload(p, randomF32(97, rng));
    const [b1, b2] = upload(p, randomF32(64, rng));
    p.be.copy(b1, 3, a1, 40, 33);
    p.ref.copy(b2, 3, a2, 40, 33);
    await compare(p, b1, b2, 0, "copy");
  });

  test("write/read honour offsets", async (p, rng) => {
    const x = p.be.alloc(100);
    const v = randomF32(40, rng);
    p.be.write(x, v, 33);
    const back = await p.be.read(x, 33, 40);
    assert.deepEqual(Array.from(back), Array.from(v));
    const zeros = await p.be.read(x, 0, 33);
    assert.ok(zeros.every((z) => z === 0), "alloc zero-fills");
  });
}
