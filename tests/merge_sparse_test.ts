import assert from "node:assert/strict";
import type { SparseMatrixData } from "../src/backends/backend.ts";
import { BundleFormatError } from "../src/errors.ts";
import { createRng } from "../src/merge/prng.ts";
import { checkLadder, MagnitudeProfile } from "../src/merge/magnitude_profile.ts";
import { DEFAULT_DENSITY_LADDER, sparsifyTensor, storedError } from "../src/merge/sparse.ts";
import {
  decodeSparse,
  encodeSparse,
  readSparseHeader,
  sparseEncodedSizes,
} from "../src/merge/sparse_codec.ts";
import { denseExpert } from "../src/merge/vectors.ts";
import { bf16ToF32 } from "../src/tensor/dtype.ts";

/** Heavy-tailed values (like weight deltas) with some exact zeros and ties. */
function randomResidual(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => {
    const u = rng.next();
    if (u < 0.05) return 0;
    if (u < 0.1) return 0.25;
    return (rng.next() - 0.5) * Math.exp(4 * rng.next());
  });
}

/** Exact error of keeping the k largest magnitudes of `values`. */
function exactError(values: Float32Array, k: number): number {
  const m = Array.from(values, Math.abs).sort((a, b) => b - a);
  const total = m.reduce((s, x) => s + x * x, 0);
  const kept = m.slice(0, k).reduce((s, x) => s + x * x, 0);
  return total > 0 ? Math.sqrt((total - kept) / total) : 0;
}

Deno.test("MagnitudeProfile.errorAt: matches the exact top-k error within the bin width", () => {
  const a = randomResidual(16 * 24, 1), b = randomResidual(24 * 40, 3);
  const p = new MagnitudeProfile();
  p.add(a);
  p.add(b);
  const all = new Float32Array([...a, ...b]);
  assert.equal(p.size, all.length);
  for (const d of DEFAULT_DENSITY_LADDER) {
    const exact = exactError(all, p.keptAt(d));
    assert.ok(Math.abs(p.errorAt(d) - exact) < 0.02, `density ${d}: ${p.errorAt(d)} vs ${exact}`);
  }
});

Deno.test("MagnitudeProfile.errorAt: does not increase with density", () => {
  const p = new MagnitudeProfile();
  p.add(randomResidual(5000, 9));
  const curve = DEFAULT_DENSITY_LADDER.map((d) => p.errorAt(d));
  for (let i = 1; i < curve.length; i++) assert.ok(curve[i] <= curve[i - 1] + 1e-12);
  assert.equal(p.errorAt(1), 0);
});

Deno.test("thresholdAt + sparsifyTensor: keep about rho of the values, all the largest", () => {
  const r = randomResidual(48 * 64, 5);
  const p = new MagnitudeProfile();
  p.add(r);
  for (const d of [0.01, 0.1, 0.3, 0.5, 0.7]) {
    const s = sparsifyTensor(r, 48, 64, p.thresholdAt(d), "bf16");
    const want = p.keptAt(d);
    // Ties (the many 0.25 values) and the bin width make the count approximate.
    assert.ok(
      Math.abs(s.values.length - want) <= 0.02 * r.length + 160,
      `density ${d}: ${s.values.length} vs ${want}`,
    );
    let minKept = Infinity, maxDropped = 0;
    const kept = new Set<number>();
    for (let row = 0; row < 48; row++) {
      for (let j = s.rowPtr[row]; j < s.rowPtr[row + 1]; j++) kept.add(row * 64 + s.colIdx[j]);
    }
    r.forEach((v, i) => {
      if (kept.has(i)) minKept = Math.min(minKept, Math.abs(v));
      else maxDropped = Math.max(maxDropped, Math.abs(v));
    });
    assert.ok(minKept >= maxDropped, `density ${d}: kept ${minKept} < dropped ${maxDropped}`);
  }
});

Deno.test("MagnitudeProfile.chooseDensity: picks the smallest ladder density under max_error", () => {
  const p = new MagnitudeProfile();
  p.add(randomResidual(4000, 11));
  const c = p.chooseDensity(DEFAULT_DENSITY_LADDER, 0.3);
  assert.ok(c.met && c.error <= 0.3);
  const i = DEFAULT_DENSITY_LADDER.indexOf(c.density);
  if (i > 0) assert.ok(p.errorAt(DEFAULT_DENSITY_LADDER[i - 1]) > 0.3);
  const none = p.chooseDensity([0.01, 0.02], 0);
  assert.equal(none.met, false);
  assert.equal(none.density, 0.02);
  assert.throws(() => p.chooseDensity([0.5, 0.2], 0.3), RangeError);
  assert.throws(() => checkLadder([]), RangeError);
  assert.throws(() => checkLadder([0, 0.5]), RangeError);
});

Deno.test("sparsifyTensor: zero residuals store nothing and have zero error", () => {
  const p = new MagnitudeProfile();
  const zero = new Float32Array(12);
  p.add(zero);
  assert.equal(p.errorAt(0.5), 0);
  const s = sparsifyTensor(zero, 3, 4, p.thresholdAt(0.5), "q4");
  assert.equal(s.values.length, 0);
  assert.deepEqual(storedError(zero, s), { total: 0, lost: 0 });
});

Deno.test("storedError: equals ||r - S||^2 computed densely", () => {
  const r = randomResidual(20 * 30, 13);
  const s = sparsifyTensor(r, 20, 30, 1, "bf16");
  const dense = new Float32Array(r.length);
  for (let row = 0; row < 20; row++) {
    for (let j = s.rowPtr[row]; j < s.rowPtr[row + 1]; j++) {
      dense[row * 30 + s.colIdx[j]] = bf16ToF32(s.values[j]);
    }
  }
  let lost = 0, total = 0;
  r.forEach((v, i) => {
    lost += (v - dense[i]) ** 2;
    total += v * v;
  });
  const e = storedError(r, s);
  assert.ok(Math.abs(e.lost - lost) <= 1e-6 * total);
  assert.ok(Math.abs(e.total - total) <= 1e-9 * total);
});

Deno.test("denseExpert: D = B + mean tau", () => {
  const b = new Float32Array([1, 2, 3]);
  const d = denseExpert(b, [new Float32Array([1, 0, -3]), new Float32Array([-1, 2, 0])]);
  assert.deepEqual([...d], [1, 3, 1.5]);
  assert.throws(() => denseExpert(b, [new Float32Array(2)]), RangeError);
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
