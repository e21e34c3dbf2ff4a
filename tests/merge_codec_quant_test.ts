/** Quantized sparse values (q8, q4): exact structure, bounded value error, fewer bytes. */
import assert from "node:assert/strict";
import { decodeSparse, encodeSparse, readSparseHeader } from "../src/merge/sparse_codec.ts";
import { bf16ToF32 } from "../src/tensor/dtype.ts";
import { makeRng, randomSparse } from "./backend_suite.ts";

for (const [format, levels] of [["q8", 127], ["q4", 7]] as const) {
  Deno.test(`encodeSparse ${format}: indices exact, values within half a step of their row scale`, () => {
    const rng = makeRng(7);
    for (
      const [rows, cols, density] of [[1, 1, 1], [17, 31, 0.3], [64, 300, 0.05], [5, 9, 0]] as const
    ) {
      const m = randomSparse(rows, cols, density, rng);
      const enc = encodeSparse(m, undefined, format);
      const h = readSparseHeader(enc);
      assert.equal(h.valueFormat, format);
      // Per-row scales cost 4 bytes a row; with enough values per row it pays.
      if (m.values.length >= 8 * rows) {
        assert.ok(enc.byteLength < encodeSparse(m).byteLength, "quantized is smaller than bf16");
      }
      const back = decodeSparse(enc);
      assert.deepEqual(back.rowPtr, m.rowPtr);
      assert.deepEqual(back.colIdx, m.colIdx);
      for (let r = 0; r < rows; r++) {
        let max = 0;
        for (let j = m.rowPtr[r]; j < m.rowPtr[r + 1]; j++) {
          max = Math.max(max, Math.abs(bf16ToF32(m.values[j])));
        }
        const step = max / levels;
        for (let j = m.rowPtr[r]; j < m.rowPtr[r + 1]; j++) {
          const err = Math.abs(bf16ToF32(back.values[j]) - bf16ToF32(m.values[j]));
          // Half a quantization step plus bf16 rounding of the decoded value.
          assert.ok(
            err <= step / 2 + max * 2 ** -8,
            `row ${r} value ${j}: error ${err} > ${step / 2}`,
          );
        }
      }
    }
  });
}

Deno.test("decodeSparse: q4 value section cut short is reported as truncated", () => {
  const m = randomSparse(8, 40, 0.5, makeRng(3));
  const enc = encodeSparse(m, undefined, "q4");
  assert.throws(() => decodeSparse(enc.subarray(0, enc.byteLength - 1)), /truncated/);
});
