/**
 * WASM SIMD backend: the shared conformance suite (1 and 2 threads) plus cases the suite
 * does not reach: 3-thread splits at model shapes, every sparse kernel path (staged decode,
 * row pairs, u32 offsets, skewed rows, f16 values), scatterAdd into f16 weights, arena
 * reuse, resource errors, and the bandwidth probe kernel.
 */
import assert from "node:assert/strict";
import {
  makeRng,
  randomF32,
  randomSparse,
  runBackendSuite,
  type SuiteTolerance,
} from "./backend_suite.ts";
import { createWasmBackend, type WasmBackend } from "../src/backends/wasm.ts";
import { ReferenceBackend } from "../src/backends/reference.ts";
import type { Backend, SparseMatrixData, Tensor } from "../src/backends/backend.ts";
import { type DType, encodeFromF32, f32ToBf16 } from "../src/tensor/dtype.ts";
import {
  compileKernels,
  createSharedMemory,
  instantiateKernels,
} from "../src/backends/wasm_module.ts";

runBackendSuite("wasm-simd x1", () => createWasmBackend({ threads: 1 }));
runBackendSuite("wasm-simd x2", () => createWasmBackend({ threads: 2, parallelMinBytes: 0 }));

const TOL: SuiteTolerance = { f32: 1e-5, bf16: 1e-5, f16: 1e-5 };

/** Deno.test with sanitizers on and a backend disposed afterwards. */
function wasmTest(
  name: string,
  opts: Parameters<typeof createWasmBackend>[0],
  fn: (be: WasmBackend, ref: ReferenceBackend, rng: () => number) => Promise<void>,
): void {
  Deno.test({
    name,
    sanitizeOps: true,
    sanitizeResources: true,
    fn: async () => {
      const be = await createWasmBackend(opts);
      try {
        await fn(be, new ReferenceBackend(), makeRng(name.length * 131 + 7));
      } finally {
        be.dispose();
      }
    },
  });
}

function pair(be: Backend, ref: Backend, values: Float32Array): [Tensor, Tensor] {
  const a = be.alloc(values.length), b = ref.alloc(values.length);
  be.write(a, values);
  ref.write(b, values);
  return [a, b];
}

async function assertMatches(
  be: Backend,
  ref: Backend,
  a: Tensor,
  b: Tensor,
  tol: number,
  what: string,
): Promise<void> {
  const got = await be.read(a), want = await ref.read(b);
  let maxRef = 0, maxErr = 0;
  for (let i = 0; i < want.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
  }
  assert.ok(maxErr <= tol * (maxRef + 1e-6), `${what}: max error ${maxErr}, max |ref| ${maxRef}`);
}

wasmTest(
  "WasmBackend: matmul split across 3 threads matches at model shapes",
  { threads: 3, parallelMinBytes: 0 },
  async (be, ref, rng) => {
    assert.equal(be.info.device, "wasm-simd x3 threads");
    for (const dtype of ["bf16", "f32"] as DType[]) {
      // Rows per thread not a multiple of 4 (leftover rows), long and odd column counts, and
      // thread ranges over 8 MiB (several row chunks per thread).
      const shapes = [[1, 4864, 896], [2, 899, 4864 + 3], [5, 130, 1031], [1, 13001, 1031]];
      for (const [m, rows, cols] of shapes) {
        const bytes = encodeFromF32(randomF32(rows * cols, rng), dtype);
        const w1 = be.uploadWeight(bytes, dtype, rows, cols);
        const w2 = ref.uploadWeight(bytes, dtype, rows, cols);
        const [x1, x2] = pair(be, ref, randomF32(m * cols, rng));
        const [b1, b2] = pair(be, ref, randomF32(rows, rng));
        const o1 = be.alloc(m * rows), o2 = ref.alloc(m * rows);
        be.matmul(o1, x1, w1, m, { bias: b1 });
        ref.matmul(o2, x2, w2, m, { bias: b2 });
        await assertMatches(be, ref, o1, o2, TOL[dtype], `${dtype} ${m}x${rows}x${cols}`);
        for (const r of [w1, x1, b1, o1]) be.free(r);
      }
    }
  },
);

/** CSR with rows of very different lengths: empty rows, one dense row, random rest. */
function skewedSparse(rows: number, cols: number, rng: () => number): SparseMatrixData {
  const rowPtr = new Uint32Array(rows + 1);
  const colIdx: number[] = [], values: number[] = [];
  for (let r = 0; r < rows; r++) {
    const density = r === 1 ? 1 : r % 3 === 0 ? 0 : 0.15;
    for (let c = 0; c < cols; c++) {
      if (rng() < density) {
        colIdx.push(c);
        values.push(f32ToBf16(rng() - 0.5));
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
    valueDtype: "bf16",
  };
}

for (const threads of [1, 2]) {
  wasmTest(
    `WasmBackend: sparseMatmulAdd covers every kernel path (${threads} thread(s))`,
    { threads, parallelMinBytes: 0 },
    async (be, ref, rng) => {
      const cases: [string, SparseMatrixData][] = [];
      for (const d of [0.01, 0.05, 0.1, 0.2, 0.5]) {
        cases.push([`bf16 d=${d}`, randomSparse(97, 203, d, rng)]);
      }
      cases.push(["f16 d=0.1", randomSparse(61, 129, 0.1, rng, "f16")]);
      cases.push(["skewed rows", skewedSparse(45, 300, rng)]);
      // More than BLOCK_COLS (2560) columns: three column blocks, u16 offsets, staged decode.
      cases.push(["column blocks", randomSparse(37, 2 * 2560 + 77, 0.05, rng)]);
      cases.push(["column blocks skewed", skewedSparse(22, 2560 + 1, rng)]);
      cases.push(["u32 offsets", randomSparse(6, 16384 + 9, 0.02, rng)]);
      cases.push(["u32 offsets f16", randomSparse(5, 20000, 0.01, rng, "f16")]);
      for (const [what, sd] of cases) {
        const s1 = be.uploadSparse(sd), s2 = ref.uploadSparse(sd);
        // m = 1 and 2 run the staged decode path, 3 and 5 the row-pair path with a leftover.
        for (const m of [1, 2, 3, 5]) {
          const rowOffset = m % 2;
          const total = rowOffset + m + 1;
          const [x1, x2] = pair(be, ref, randomF32(total * sd.cols, rng));
          const [o1, o2] = pair(be, ref, randomF32(total * sd.rows, rng));
          be.sparseMatmulAdd(o1, x1, s1, -1.25, rowOffset, m);
          ref.sparseMatmulAdd(o2, x2, s2, -1.25, rowOffset, m);
          await assertMatches(be, ref, o1, o2, 1e-5, `${what} m=${m}`);
          be.free(x1);
          be.free(o1);
        }
        be.free(s1);
      }
    },
  );
}

wasmTest(
  "WasmBackend: scatterAdd rounds f16 weights like a 16-bit store and handles u32 offsets",
  { threads: 2, parallelMinBytes: 0 },
  async (be, ref, rng) => {
    const shapes = [
      ["f16", 33, 70],
      ["f16", 9, 2 * 2560 + 3],
      ["bf16", 11, 6000],
      ["bf16", 3, 16384 + 5],
    ] as const;
    for (const [dtype, rows, cols] of shapes) {
      const bytes = encodeFromF32(randomF32(rows * cols, rng), dtype);
      const w1 = be.uploadWeight(bytes, dtype, rows, cols);
      const w2 = ref.uploadWeight(bytes, dtype, rows, cols);
      const sd = randomSparse(rows, cols, 0.2, rng, dtype === "f16" ? "f16" : "bf16");
      be.scatterAdd(w1, be.uploadSparse(sd), 0.3);
      ref.scatterAdd(w2, ref.uploadSparse(sd), 0.3);
      // Read the weights back through an identity-like probe: embed returns whole rows.
      const ids = Int32Array.from({ length: rows }, (_, i) => i);
      const o1 = be.alloc(rows * cols), o2 = ref.alloc(rows * cols);
      be.embed(o1, w1, ids);
      ref.embed(o2, w2, ids);
      assert.deepEqual(await be.read(o1), await ref.read(o2), `${dtype} weights after scatter`);
    }
  },
);

wasmTest("WasmBackend: free returns memory to the arena", { threads: 1 }, async (be) => {
  const base = be.liveBytes;
  const big = be.alloc(4 << 20);
  const grown = be.memory.buffer.byteLength;
  be.write(big, new Float32Array([1, 2, 3]));
  be.free(big);
  assert.equal(be.liveBytes, base);
  for (let i = 0; i < 3; i++) {
    const again = be.alloc(4 << 20);
    assert.deepEqual(Array.from(await be.read(again, 0, 3)), [0, 0, 0], "re-allocation is zeroed");
    be.free(again);
  }
  const parts = Array.from({ length: 8 }, () => be.alloc(1 << 19));
  for (const p of parts) be.free(p);
  assert.equal(be.memory.buffer.byteLength, grown, "freed space is reused, not grown");
  assert.equal(be.liveBytes, base);
});

wasmTest("WasmBackend: refuses freed, foreign and out-of-range inputs", { threads: 2 }, (be) => {
  const ref = new ReferenceBackend();
  const t = be.alloc(8);
  be.free(t);
  assert.throws(() => be.write(t, new Float32Array(1)), /was freed/);
  assert.throws(() => be.free(t), /was freed/);
  assert.throws(() => be.add(be.alloc(4), ref.alloc(4), be.alloc(4), 4), TypeError);
  const table = be.uploadWeight(new Uint8Array(4 * 3 * 2), "bf16", 4, 3);
  assert.throws(() => be.embed(be.alloc(6), table, Int32Array.from([0, 4])), RangeError);
  assert.throws(() => be.uploadWeight(new Uint8Array(10), "f32", 2, 2), RangeError);
  const cache = be.allocKvCache(1, 4, 1, 8);
  const k = be.alloc(5 * 8);
  assert.throws(() => be.kvWrite(cache, 0, k, k, 0, 5, 0), /maxSeq/);
  assert.throws(() => be.kvWrite(cache, 1, k, k, 0, 1, 0), /layer/);
  assert.throws(
    () =>
      be.uploadSparse({
        rows: 1,
        cols: 2,
        rowPtr: Uint32Array.from([0, 1]),
        colIdx: Uint32Array.from([2]),
        values: Uint16Array.from([1]),
        valueDtype: "bf16",
      }),
    /colIdx\[0\] = 2/,
  );
  be.dispose();
  assert.throws(() => be.alloc(1), /disposed/);
  return Promise.resolve();
});

Deno.test({
  name: "sumBytes: the bandwidth probe sums every float of its range",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const memory = createSharedMemory(16 * 16 + 8);
    const k = instantiateKernels(await compileKernels(), memory);
    const base = k.heapBase();
    const n = (8 << 20) / 4 + 1000; // one 8 MiB chunk plus a tail
    const values = new Float32Array(memory.buffer, base, n);
    const rng = makeRng(5);
    let want = 0;
    for (let i = 0; i < n; i++) {
      values[i] = Math.round(rng() * 8);
      want += values[i];
    }
    const got = k.sumBytes(base, 0, n * 4);
    assert.ok(Math.abs(got - want) <= want * 1e-6, `sum ${got} vs ${want}`);
  },
});
