import assert from "node:assert/strict";
import type { SparseMatrixData } from "../src/backends/backend.ts";
import { BundleFormatError } from "../src/errors.ts";
import { createRng } from "../src/merge/prng.ts";
import {
  checkLadder,
  DEFAULT_DENSITY_LADDER,
  relativeError,
  type ResidualTensor,
  UnitResiduals,
} from "../src/merge/sparse.ts";
import {
  decodeSparse,
  encodeSparse,
  readSparseHeader,
  sparseEncodedSizes,
} from "../src/merge/sparse_codec.ts";
import { denseExpert, residual, taskVector } from "../src/merge/vectors.ts";
import { f32ToBf16 } from "../src/tensor/dtype.ts";

function randomTensor(name: string, rows: number, cols: number, seed: number): ResidualTensor {
  const rng = createRng(seed);
  // Heavy-tailed values (like weight deltas) with some exact zeros and ties.
  const r = Float32Array.from({ length: rows * cols }, () => {
    const u = rng.next();
    if (u < 0.05) return 0;
    if (u < 0.1) return 0.25;
    return (rng.next() - 0.5) * Math.exp(4 * rng.next());
  });
  return { name, rows, cols, residual: r };
}

const unitTensors = () => [
  randomTensor("q", 16, 24, 1),
  randomTensor("norm", 1, 24, 2),
  randomTensor("down", 24, 40, 3),
];

/** Reference: indices (tensor, element) of the k largest |r|, ties by tensor then index. */
function naiveTopK(tensors: ResidualTensor[], k: number): Set<string> {
  const all: { key: string; m: number; order: number }[] = [];
  let order = 0;
  tensors.forEach((t, ti) =>
    t.residual.forEach((v, i) => {
      if (v !== 0) all.push({ key: `${ti}:${i}`, m: Math.abs(v), order: order++ });
    })
  );
  all.sort((a, b) => b.m - a.m || a.order - b.order);
  return new Set(all.slice(0, k).map((e) => e.key));
}

function keysOf(cutTensors: SparseMatrixData[]): Set<string> {
  const keys = new Set<string>();
  cutTensors.forEach((s, ti) => {
    for (let r = 0; r < s.rows; r++) {
      for (let j = s.rowPtr[r]; j < s.rowPtr[r + 1]; j++) {
        keys.add(`${ti}:${r * s.cols + s.colIdx[j]}`);
      }
    }
  });
  return keys;
}

Deno.test("UnitResiduals.extract: keeps exactly the unit's top values by magnitude", () => {
  const tensors = unitTensors();
  const unit = UnitResiduals.from("layer.0", tensors);
  for (const density of [0, 0.01, 0.05, 0.3, 0.9, 1]) {
    const cut = unit.cut(density);
    const sparse = tensors.map((_, i) => unit.extract(cut, i));
    const want = Math.min(Math.round(density * unit.size), unit.nonZero);
    assert.equal(cut.kept, want);
    assert.equal(sparse.reduce((s, m) => s + m.colIdx.length, 0), want);
    assert.deepEqual(keysOf(sparse), naiveTopK(tensors, want));
    sparse.forEach((s, i) => assert.equal(s.colIdx.length, cut.tensors[i].nnz));
    // Values are the bf16 roundings of the residuals.
    const s = sparse[2];
    for (let j = 0; j < s.colIdx.length; j++) {
      const row = s.rowPtr.findLastIndex((p, r) => r < s.rows && p <= j);
      assert.equal(s.values[j], f32ToBf16(tensors[2].residual[row * s.cols + s.colIdx[j]]));
    }
  }
});

Deno.test("UnitResiduals.errorCurve: equals the direct error of the extracted tensors", () => {
  const tensors = unitTensors();
  for (const dtype of ["bf16", "f16"] as const) {
    const unit = UnitResiduals.from("layer.0", tensors, dtype);
    const curve = unit.errorCurve(DEFAULT_DENSITY_LADDER);
    DEFAULT_DENSITY_LADDER.forEach((density, i) => {
      const cut = unit.cut(density);
      const direct = relativeError(
        tensors.map((t) => t.residual),
        tensors.map((_, j) => unit.extract(cut, j)),
      );
      assert.ok(
        Math.abs(curve[i] - direct) < 1e-9,
        `${dtype} ${density}: ${curve[i]} vs ${direct}`,
      );
      assert.equal(cut.error, curve[i]);
    });
    // Density 1 leaves only the rounding error, which is tiny but not zero.
    const last = curve[curve.length - 1];
    assert.ok(last > 0 && last < (dtype === "bf16" ? 4e-3 : 5e-4), `${last}`);
  }
});

Deno.test("UnitResiduals.errorCurve: does not increase with density", () => {
  const unit = UnitResiduals.from("layer.0", unitTensors());
  const densities = Array.from({ length: 101 }, (_, i) => i / 100);
  const curve = unit.errorCurve([...densities].reverse()).reverse();
  assert.equal(curve[0], 1);
  for (let i = 1; i < curve.length; i++) assert.ok(curve[i] <= curve[i - 1], `at ${densities[i]}`);
});

Deno.test("UnitResiduals.chooseDensity: picks the smallest ladder density under max_error", () => {
  const unit = UnitResiduals.from("layer.0", unitTensors());
  for (const maxError of [0.05, 0.3, 0.5, 0.8]) {
    const choice = unit.chooseDensity({ maxError });
    const errors = unit.errorCurve(DEFAULT_DENSITY_LADDER);
    const first = errors.findIndex((e) => e <= maxError);
    assert.equal(choice.density, DEFAULT_DENSITY_LADDER[first]);
    assert.ok(choice.met);
    if (first > 0) assert.ok(errors[first - 1] > maxError);
  }
  const strict = unit.chooseDensity({ maxError: 0, ladder: [0.1, 0.5] });
  assert.equal(strict.met, false);
  assert.equal(strict.density, 0.5);
  // Values exact in bf16 reconstruct exactly at density 1.
  const exact = UnitResiduals.from("embed", [{
    name: "e",
    rows: 2,
    cols: 2,
    residual: new Float32Array([1, -2, 0.5, 3]),
  }]);
  assert.deepEqual(exact.chooseDensity({ maxError: 0, ladder: [0.5, 1] }), {
    density: 1,
    error: 0,
    met: true,
    curve: [{ density: 0.5, error: Math.sqrt(1 + 0.25) / Math.sqrt(1 + 4 + 0.25 + 9) }, {
      density: 1,
      error: 0,
    }],
  });
  assert.throws(() => unit.chooseDensity({ ladder: [0.5, 0.2] }), /must ascend/);
  assert.throws(() => checkLadder([]), RangeError);
});

Deno.test("UnitResiduals.cut: splits ties at the threshold in tensor order", () => {
  const a = { name: "a", rows: 1, cols: 4, residual: new Float32Array([1, 0, -1, 5]) };
  const b = { name: "b", rows: 2, cols: 2, residual: new Float32Array([1, 1, 0, -6]) };
  const unit = UnitResiduals.from("layer.2", [a, b]);
  const cut = unit.cut(0.5); // 4 of 8: 6, 5, then two of the four 1s (a's first).
  assert.equal(cut.threshold, 1);
  assert.deepEqual(cut.tensors.map((t) => t.nnz), [3, 1]);
  assert.deepEqual([...unit.extract(cut, 0).colIdx], [0, 2, 3]);
  assert.deepEqual([...unit.extract(cut, 1).colIdx], [1]);
  const all = unit.cut(1); // only the 6 non-zeros are stored
  assert.equal(all.kept, 6);
  assert.deepEqual(all.tensors.map((t) => t.nnz), [3, 3]);
});

Deno.test("UnitResiduals: zero residuals store nothing and have zero error", () => {
  const unit = UnitResiduals.from("final_norm", [{
    name: "n",
    rows: 1,
    cols: 8,
    residual: new Float32Array(8),
  }]);
  assert.deepEqual(unit.errorCurve([0.1, 1]), [0, 0]);
  const cut = unit.cut(1);
  assert.equal(cut.kept, 0);
  assert.equal(unit.extract(cut, 0).colIdx.length, 0);
  assert.throws(
    () => UnitResiduals.from("x", [{ name: "w", rows: 2, cols: 3, residual: new Float32Array(5) }]),
    /shape \[2, 3\] does not match its 5 values/,
  );
});

Deno.test("UnitResiduals.cutBytes: equals the length of the encoded tensors", () => {
  const tensors = unitTensors();
  const unit = UnitResiduals.from("layer.0", tensors);
  for (const density of [0.02, 0.3]) {
    const cut = unit.cut(density);
    assert.deepEqual(
      unit.cutBytes(cut),
      tensors.map((_, i) => encodeSparse(unit.extract(cut, i)).length),
    );
  }
});

Deno.test("denseExpert and residual: D = B + mean tau and r = E - D", () => {
  const b = new Float32Array([1, 2, 3]);
  const e1 = new Float32Array([2, 2, 0]);
  const e2 = new Float32Array([0, 4, 3]);
  const d = denseExpert(b, [taskVector(e1, b), taskVector(e2, b)]);
  assert.deepEqual([...d], [1, 3, 1.5]);
  assert.deepEqual([...residual(e1, d)], [1, -1, -1.5]);
  assert.throws(() => residual(e1, new Float32Array(2)), RangeError);
});

/** Random CSR with about `density` of the entries set, 16-bit value bits random. */
function randomCsr(
  rows: number,
  cols: number,
  density: number,
  seed: number,
  dtype: "bf16" | "f16" = "bf16",
): SparseMatrixData {
  const rng = createRng(seed);
  const rowPtr = new Uint32Array(rows + 1);
  const cols2: number[] = [];
  const vals: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (rng.next() < density) {
        cols2.push(c);
        vals.push(Math.floor(rng.next() * 65536));
      }
    }
    rowPtr[r + 1] = cols2.length;
  }
  return {
    rows,
    cols,
    rowPtr,
    colIdx: new Uint32Array(cols2),
    values: new Uint16Array(vals),
    valueDtype: dtype,
  };
}

Deno.test("encodeSparse: round trips through both layouts at edge shapes", () => {
  let seed = 1;
  for (const [rows, cols] of [[1, 1], [3, 31], [32, 33], [7, 4103], [0, 5], [5, 0]]) {
    for (const density of [0, 0.01, 0.2, 0.9, 1]) {
      for (const dtype of ["bf16", "f16"] as const) {
        const m = randomCsr(rows, cols, density, seed++, dtype);
        for (const force of [undefined, "bitmap", "indices"] as const) {
          const bytes = encodeSparse(m, force);
          assert.deepEqual(decodeSparse(bytes), m, `${rows}x${cols} ${density} ${force}`);
        }
      }
    }
  }
});

Deno.test("encodeSparse: picks indices at low density and the bitmap at high density", () => {
  const sparse = randomCsr(64, 512, 0.01, 3);
  const dense = randomCsr(64, 512, 0.5, 4);
  const lo = readSparseHeader(encodeSparse(sparse));
  const hi = readSparseHeader(encodeSparse(dense));
  assert.equal(lo.encoding, "indices");
  assert.equal(hi.encoding, "bitmap");
  // Sizes agree with the layout: 24-byte header, padded index section, 2 bytes per value.
  const sizes = sparseEncodedSizes(dense);
  assert.equal(hi.bytes, sizes.bitmap);
  assert.equal(sizes.bitmap, 24 + (64 * 512) / 8 + 2 * dense.colIdx.length);
  assert.equal(hi.bytesPerNonZero, hi.bytes / dense.colIdx.length);
  assert.ok(
    hi.bytesPerNonZero < 2.3 && lo.bytesPerNonZero < 3.5,
    `${hi.bytesPerNonZero} ${lo.bytesPerNonZero}`,
  );
  // Wide rows with few values use multi-byte gaps.
  const wide: SparseMatrixData = {
    rows: 2,
    cols: 300000,
    rowPtr: new Uint32Array([0, 2, 3]),
    colIdx: new Uint32Array([5, 299999, 200000]),
    values: new Uint16Array([1, 2, 3]),
    valueDtype: "bf16",
  };
  const w = encodeSparse(wide);
  assert.equal(readSparseHeader(w).encoding, "indices");
  assert.deepEqual(decodeSparse(w), wide);
});

Deno.test("decodeSparse: rejects corrupt input with BundleFormatError", () => {
  const bitmap = encodeSparse(randomCsr(8, 40, 0.5, 5), "bitmap");
  const indices = encodeSparse(randomCsr(8, 40, 0.05, 6), "indices");
  const mutate = (bytes: Uint8Array, f: (b: Uint8Array, v: DataView) => void) => {
    const copy = bytes.slice();
    f(copy, new DataView(copy.buffer));
    return copy;
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ["truncated header", bitmap.subarray(0, 10), /shorter than the 24-byte header/],
    ["truncated values", bitmap.subarray(0, bitmap.length - 2), /truncated/],
    ["trailing bytes", new Uint8Array([...indices, 0, 0]), /trailing bytes/],
    ["magic", mutate(bitmap, (b) => (b[0] = 0x41)), /magic/],
    ["version", mutate(bitmap, (b) => (b[4] = 2)), /layout version 2/],
    ["encoding", mutate(bitmap, (b) => (b[5] = 7)), /unknown encoding/],
    ["bitmap count", mutate(bitmap, (b) => (b[24] ^= 1)), /bitmap marks/],
    ["bitmap size", mutate(bitmap, (_b, v) => v.setUint32(12, 41, true)), /bitmap section/],
    ["index count", mutate(indices, (b) => (b[24] += 1)), /nnz|index section|cols/],
    [
      "nnz too large",
      mutate(indices, (_b, v) => v.setUint32(16, 1000, true)),
      /exceeds rows \* cols/,
    ],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(() => decodeSparse(bytes, "experts/add.bin layer 3"), (e: unknown) => {
      assert.ok(e instanceof BundleFormatError, what);
      assert.match(e.message, message, what);
      assert.match(e.message, /^Cannot decode experts\/add\.bin layer 3/);
      return true;
    });
  }
});

Deno.test("encodeSparse: rejects an inconsistent CSR", () => {
  const m = randomCsr(4, 10, 0.5, 8);
  assert.throws(() => encodeSparse({ ...m, values: m.values.subarray(1) }), RangeError);
  const unordered = { ...m, colIdx: m.colIdx.slice().reverse() };
  assert.throws(() => encodeSparse(unordered), /out of order/);
});
