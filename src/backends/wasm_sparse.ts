/**
 * Host-side conversion of a CSR sparse matrix into the SELL-4 layout of
 * kernels/wasm/spmm_sell4.ts: rows sorted by non-zero count (longest first), taken four
 * at a time into groups. Columns are cut into `blocks` equal column blocks of at most
 * BLOCK_COLS columns, and every block holds, for each group, as many slots as the group's
 * longest row has non-zeros in that block; slot s holds the s-th non-zero (within the
 * block) of each of the 4 rows (padding: offset 0, value 0) as 4 byte offsets (column * 4,
 * absolute; u16 when cols <= 16384, else u32) followed by 4 values. Slots are stored block
 * by block, group by group: (block b, group g) is slots groupPtr[b * groups + g] up to
 * groupPtr[b * groups + g + 1]. The kernels run block by block, so the x values one block
 * gathers stay in the L1 cache (4864 columns in one block ran 1.35x slower than two blocks of
 * 2432). Sorting keeps padding small even when row lengths vary. Values stay bf16, while
 * f16 values are widened to f32 (exact), since the kernels widen bf16 in registers with one
 * shift but f16 would need several ops.
 */
import type { SparseMatrixData } from "./backend.ts";
import { bf16ToF32, f16ToF32, f32ToF16 } from "../tensor/dtype.ts";
import type { WasmSparse } from "./wasm_resources.ts";

/** Marks a group lane without a row. */
export const NO_ROW = 0xffffffff;
/** Widest input (cols) whose byte offsets fit u16; also the staged x row size. */
export const MAX_U16_COLS = 16384;
/** Most columns of one column block (10 KiB of f32 x, well inside a 32 KiB L1 cache). */
export const BLOCK_COLS = 2560;

/** SELL-4 arrays of one sparse matrix, ready to copy into the wasm memory. */
export interface Sell4Matrix {
  rows: number;
  cols: number;
  nnz: number;
  groups: number;
  /** Column blocks (ceil(cols / BLOCK_COLS), at least 1). */
  blocks: number;
  slotCount: number;
  /** [groups * 4] row of each lane, NO_ROW when absent. */
  groupRows: Uint32Array;
  /** [blocks * groups + 1] first slot of each (block, group), block-major. */
  groupPtr: Uint32Array;
  /** slotCount * slotBytes bytes: per slot 4 offsets then 4 values. */
  slots: Uint8Array;
  /** 1 when offsets are u32 (else u16). */
  wideIdx: number;
  /** 1 when values are f32 (else bf16). */
  f32Vals: number;
}

/** Checks a CSR matrix's shape and indices; throws RangeError naming the bad field. */
export function validateCsr(data: SparseMatrixData): void {
  const { rows, cols, rowPtr, colIdx, values } = data;
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 0) {
    throw new RangeError(`Cannot upload sparse matrix: shape [${rows}, ${cols}] is invalid`);
  }
  if (data.valueDtype !== "bf16" && data.valueDtype !== "f16") {
    throw new TypeError(
      `Cannot upload sparse matrix: valueDtype "${data.valueDtype}" is not bf16 or f16`,
    );
  }
  if (rowPtr.length !== rows + 1 || rowPtr[0] !== 0) {
    throw new RangeError(
      `Cannot upload sparse matrix: rowPtr needs ${rows + 1} entries starting at 0, got ` +
        `${rowPtr.length}`,
    );
  }
  const nnz = rowPtr[rows];
  if (colIdx.length !== nnz || values.length !== nnz) {
    throw new RangeError(
      `Cannot upload sparse matrix: rowPtr[rows] = ${nnz} but colIdx has ${colIdx.length} and ` +
        `values ${values.length} entries`,
    );
  }
  for (let r = 0; r < rows; r++) {
    if (rowPtr[r + 1] < rowPtr[r]) {
      throw new RangeError(`Cannot upload sparse matrix: rowPtr decreases at row ${r}`);
    }
  }
  for (let e = 0; e < nnz; e++) {
    if (colIdx[e] >= cols) {
      throw new RangeError(
        `Cannot upload sparse matrix: colIdx[${e}] = ${colIdx[e]} is outside [0, ${cols})`,
      );
    }
  }
}

/** Converts validated CSR data into SELL-4 arrays. */
export function toSell4(data: SparseMatrixData): Sell4Matrix {
  const { rows, cols, rowPtr, colIdx, values } = data;
  const order = Array.from({ length: rows }, (_, r) => r);
  const len = (r: number) => rowPtr[r + 1] - rowPtr[r];
  order.sort((a, b) => len(b) - len(a) || a - b);
  const groups = Math.ceil(rows / 4);
  const blocks = Math.max(1, Math.ceil(cols / BLOCK_COLS));
  const width = Math.max(1, Math.ceil(cols / blocks));
  // Non-zeros of each row in each column block.
  const counts = new Uint32Array(rows * blocks);
  for (let r = 0; r < rows; r++) {
    for (let k = rowPtr[r]; k < rowPtr[r + 1]; k++) {
      counts[r * blocks + Math.floor(colIdx[k] / width)]++;
    }
  }
  const groupRows = new Uint32Array(groups * 4).fill(NO_ROW);
  for (let i = 0; i < rows; i++) groupRows[i] = order[i];
  const groupPtr = new Uint32Array(blocks * groups + 1);
  for (let b = 0; b < blocks; b++) {
    for (let g = 0; g < groups; g++) {
      let longest = 0;
      for (let l = 0; l < 4 && g * 4 + l < rows; l++) {
        longest = Math.max(longest, counts[order[g * 4 + l] * blocks + b]);
      }
      const at = b * groups + g;
      groupPtr[at + 1] = groupPtr[at] + longest;
    }
  }
  const slotCount = groupPtr[blocks * groups];
  const wideIdx = cols > MAX_U16_COLS ? 1 : 0;
  const f32Vals = data.valueDtype === "f16" ? 1 : 0;
  const idxBytes = wideIdx ? 4 : 2;
  const valBytes = f32Vals ? 4 : 2;
  const slotBytes = 4 * (idxBytes + valBytes);
  const slots = new Uint8Array(slotCount * slotBytes);
  const view = new DataView(slots.buffer);
  const cursor = new Float64Array(blocks);
  for (let g = 0; g < groups; g++) {
    for (let l = 0; l < 4; l++) {
      const r = groupRows[g * 4 + l];
      if (r === NO_ROW) continue;
      for (let b = 0; b < blocks; b++) cursor[b] = groupPtr[b * groups + g] * slotBytes;
      for (let k = rowPtr[r]; k < rowPtr[r + 1]; k++) {
        const b = Math.floor(colIdx[k] / width);
        const at = cursor[b];
        cursor[b] += slotBytes;
        if (wideIdx) view.setUint32(at + 4 * l, colIdx[k] * 4, true);
        else view.setUint16(at + 2 * l, colIdx[k] * 4, true);
        const v = at + 4 * idxBytes + valBytes * l;
        if (f32Vals) view.setFloat32(v, f16ToF32(values[k]), true);
        else view.setUint16(v, values[k], true);
      }
    }
  }
  return {
    rows,
    cols,
    nnz: rowPtr[rows],
    groups,
    blocks,
    slotCount,
    groupRows,
    groupPtr,
    slots,
    wideIdx,
    f32Vals,
  };
}

/**
 * Group cut points giving each of `threads` threads about the same number of slots over
 * all column blocks (plus a per-group cost): [start0, end0, start1, end1, ...]. A thread
 * runs its groups in every block, so threads never write the same output row.
 */
export function splitGroups(
  groupPtr: Uint32Array,
  groups: number,
  blocks: number,
  threads: number,
): number[] {
  // cost[g]: slots of groups [0, g) summed over blocks, plus g.
  const cost = new Float64Array(groups + 1);
  for (let g = 0; g <= groups; g++) {
    let c = g;
    for (let b = 0; b < blocks; b++) c += groupPtr[b * groups + g] - groupPtr[b * groups];
    cost[g] = c;
  }
  const total = cost[groups];
  const ranges: number[] = [];
  let start = 0;
  for (let t = 0; t < threads; t++) {
    let end = groups;
    if (t < threads - 1) {
      const target = (total * (t + 1)) / threads;
      let lo = start;
      let hi = groups;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cost[mid] < target) lo = mid + 1;
        else hi = mid;
      }
      end = lo;
    }
    ranges.push(start, end);
    start = end;
  }
  return ranges;
}

/**
 * W += scale * S for a weight declared f16 (stored as f32): each updated element is
 * rounded to f16 like a 16-bit store, as the reference backend does. Runs on the host
 * (the cost is per non-zero).
 */
export function scatterAddRoundF16(
  buffer: ArrayBufferLike,
  s: WasmSparse,
  wPtr: number,
  scale: number,
): void {
  const w = new Float32Array(buffer, wPtr, s.rows * s.cols);
  const groupRows = new Uint32Array(buffer, s.groupRowsPtr, s.groups * 4);
  const groupPtr = new Uint32Array(buffer, s.groupPtrPtr, s.blocks * s.groups + 1);
  const view = new DataView(buffer as ArrayBuffer);
  const idxBytes = s.wideIdx ? 4 : 2;
  const valBytes = s.f32Vals ? 4 : 2;
  const slotBytes = 4 * (idxBytes + valBytes);
  for (let bg = 0; bg < s.blocks * s.groups; bg++) {
    const g = bg % s.groups;
    for (let l = 0; l < 4; l++) {
      const row = groupRows[g * 4 + l];
      if (row === NO_ROW) continue;
      for (let slot = groupPtr[bg]; slot < groupPtr[bg + 1]; slot++) {
        const at = s.slotsPtr + slot * slotBytes;
        const vAt = at + 4 * idxBytes + valBytes * l;
        const v = s.f32Vals ? view.getFloat32(vAt, true) : bf16ToF32(view.getUint16(vAt, true));
        if (v === 0) continue;
        const off = s.wideIdx ? view.getUint32(at + 4 * l, true) : view.getUint16(at + 2 * l, true);
        const i = row * s.cols + off / 4;
        w[i] = f16ToF32(f32ToF16(w[i] + scale * v));
      }
    }
  }
}
