/**
 * Shared plumbing of the WebGPU ops (resource checks, grid sizes) and the row-wise ops: copy,
 * add, siluMul, rmsNorm, rope and kvWrite. The matrix and attention ops are in webgpu_ops.ts.
 */
import type { KvCache, SparseWeight, Tensor, Weight } from "./backend.ts";
import type { CommandRecorder } from "./webgpu_recorder.ts";
import { splitGrid } from "./webgpu_recorder.ts";
import { GpuKvCache, GpuSparse, GpuTensor, GpuWeight } from "./webgpu_resources.ts";
import type { RopeTables } from "./webgpu_rope_table.ts";

/** Throws a RangeError when `t` has fewer than `elements` elements. */
export function need(t: GpuTensor, elements: number, what: string): void {
  if (t.size < elements) {
    throw new RangeError(`Cannot use ${what}: it has ${t.size} elements, the op needs ${elements}`);
  }
}

/** Throws a RangeError unless `n` is an integer >= 0. */
export function count(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`Cannot run the op: ${what} = ${n}, need an integer >= 0`);
  }
}

/** Resource checks, grid helpers and the row-wise ops over a device and a recorder. */
export abstract class WebGpuOpsBase {
  /** The device all resources live on. */
  protected readonly device: GPUDevice;
  /** Where ops are recorded. */
  protected readonly recorder: CommandRecorder;
  /** Cos/sin tables of `rope`. */
  protected readonly ropeTables: RopeTables;
  /** Largest workgroup count per grid dimension. */
  protected readonly maxPerDim: number;
  /** A small buffer bound where a kernel binding is unused (no bias, packed sparse). */
  protected readonly unusedBuffer: GPUBuffer;

  /**
   * @param device the device
   * @param recorder recorder of that device
   * @param ropeTables rope tables of that device
   */
  constructor(device: GPUDevice, recorder: CommandRecorder, ropeTables: RopeTables) {
    this.device = device;
    this.recorder = recorder;
    this.ropeTables = ropeTables;
    this.maxPerDim = device.limits.maxComputeWorkgroupsPerDimension;
    this.unusedBuffer = device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.STORAGE,
      label: "unused",
    });
  }

  /** The GpuTensor behind `t`. */
  protected tensor(t: Tensor, what: string): GpuTensor {
    if (!(t instanceof GpuTensor)) throw new TypeError(`Cannot use ${what}: not a WebGPU tensor`);
    t.check(what);
    return t;
  }

  /** The GpuWeight behind `w`. */
  protected weight(w: Weight, what: string): GpuWeight {
    if (!(w instanceof GpuWeight)) throw new TypeError(`Cannot use ${what}: not a WebGPU weight`);
    w.check(what);
    return w;
  }

  /** The GpuSparse behind `s`. */
  protected sparse(s: SparseWeight, what: string): GpuSparse {
    if (!(s instanceof GpuSparse)) throw new TypeError(`Cannot use ${what}: not a WebGPU sparse`);
    s.check(what);
    return s;
  }

  /** The GpuKvCache behind `cache`, checked for layer and positions [startPos, startPos + m). */
  protected kvCache(cache: KvCache, layer: number, startPos: number, m: number): GpuKvCache {
    if (!(cache instanceof GpuKvCache)) {
      throw new TypeError("Cannot use the KV cache: not a WebGPU cache");
    }
    cache.check("KV cache");
    count(m, "m");
    count(startPos, "startPos");
    if (!Number.isInteger(layer) || layer < 0 || layer >= cache.numLayers) {
      throw new RangeError(`Cannot use KV cache layer ${layer}: the cache has ${cache.numLayers}`);
    }
    if (startPos + m > cache.maxSeq) {
      throw new RangeError(
        `Cannot use KV cache positions ${startPos}..${startPos + m - 1}: maxSeq is ` +
          `${cache.maxSeq}; allocate a longer cache`,
      );
    }
    return cache;
  }

  /** A grid of `groups` workgroups split over x and y. */
  protected linearGrid(groups: number): [number, number, number] {
    const [x, y] = splitGrid(groups, this.maxPerDim);
    return [x, y, 1];
  }

  /** Destroys buffers owned by the ops themselves. */
  protected destroyOpBuffers(): void {
    this.unusedBuffer.destroy();
  }

  /** out[i] = x[i] / rms(x[i]) * gamma over m rows of gamma.size columns. */
  rmsNorm(out: Tensor, x: Tensor, gamma: Tensor, m: number, eps: number): void {
    this.recorder.boundary();
    const o = this.tensor(out, "rmsNorm output");
    const xt = this.tensor(x, "rmsNorm input");
    const g = this.tensor(gamma, "rmsNorm gamma");
    count(m, "m");
    need(xt, m * g.size, "rmsNorm input");
    need(o, m * g.size, "rmsNorm output");
    if (m === 0 || g.size === 0) return;
    this.recorder.dispatch({
      kernel: "rms_norm",
      params: { cols: g.size, m, eps },
      resources: [xt.buffer, g.buffer, o.buffer],
      grid: this.linearGrid(m),
    });
  }

  /** Rotary embedding in place (rotate-half), row i at position positions[i]. */
  rope(
    x: Tensor,
    m: number,
    numHeads: number,
    headDim: number,
    positions: Int32Array,
    theta: number,
  ): void {
    this.recorder.boundary();
    const xt = this.tensor(x, "rope input");
    count(m, "m");
    count(numHeads, "numHeads");
    if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
      throw new RangeError(`Cannot apply rope: headDim ${headDim} must be a positive even integer`);
    }
    need(xt, m * numHeads * headDim, "rope input");
    if (positions.length < m) {
      throw new RangeError(`Cannot apply rope: ${positions.length} positions for ${m} rows`);
    }
    if (m === 0 || numHeads === 0) return;
    let maxPos = 0;
    for (let i = 0; i < m; i++) {
      if (positions[i] < 0) throw new RangeError(`Cannot apply rope: position ${positions[i]}`);
      maxPos = Math.max(maxPos, positions[i]);
    }
    const table = this.ropeTables.table(theta, headDim, maxPos);
    const posSlice = this.recorder.hostSlice(m * 4);
    posSlice.bytes.set(new Uint8Array(positions.buffer, positions.byteOffset, m * 4));
    this.recorder.dispatch({
      kernel: "rope",
      params: { m, num_heads: numHeads, head_dim: headDim },
      resources: [xt.buffer, posSlice, table],
      grid: this.linearGrid(Math.ceil((m * numHeads * headDim) / 2 / 256)),
    });
  }

  /**
   * Stores k/v rows [rowOffset, rowOffset + m) at cache positions startPos.. of `layer`, the
   * keys rotated by RoPE when `ropeTheta` is given: one launch (the keys' rope rides along).
   */
  kvWrite(
    cache: KvCache,
    layer: number,
    k: Tensor,
    v: Tensor,
    rowOffset: number,
    m: number,
    startPos: number,
    ropeTheta?: number,
  ): void {
    this.recorder.boundary();
    const c = this.kvCache(cache, layer, startPos, m);
    const kt = this.tensor(k, "kvWrite keys");
    const vt = this.tensor(v, "kvWrite values");
    count(rowOffset, "rowOffset");
    const kvDim = c.numKvHeads * c.headDim;
    need(kt, (rowOffset + m) * kvDim, "kvWrite keys");
    need(vt, (rowOffset + m) * kvDim, "kvWrite values");
    const rope = ropeTheta !== undefined;
    if (rope && c.headDim % 2 !== 0) {
      throw new RangeError(`Cannot rotate keys in kvWrite: head dim ${c.headDim} is odd`);
    }
    if (m === 0 || kvDim === 0) return;
    const table = rope
      ? this.ropeTables.table(ropeTheta, c.headDim, startPos + m - 1)
      : this.unusedBuffer;
    this.recorder.dispatch({
      kernel: "kv_write",
      constants: { ROPE: rope },
      params: {
        m,
        num_kv_heads: c.numKvHeads,
        head_dim: c.headDim,
        row_offset: rowOffset,
        start_pos: startPos,
      },
      resources: [kt.buffer, vt.buffer, c.keys[layer], c.values[layer], table],
      grid: this.linearGrid(Math.ceil((m * kvDim) / (rope ? 2 : 1) / 256)),
    });
  }

  /** out[i] = silu(gate[i]) * up[i] for i < n. */
  siluMul(out: Tensor, gate: Tensor, up: Tensor, n: number): void {
    this.#elementwise("silu_mul", out, gate, up, n);
  }

  /** out[i] = a[i] + b[i] for i < n (out may alias a). */
  add(out: Tensor, a: Tensor, b: Tensor, n: number): void {
    this.#elementwise("add", out, a, b, n);
  }

  /** dst[dstOffset + i] = src[srcOffset + i] for i < n. */
  copy(dst: Tensor, dstOffset: number, src: Tensor, srcOffset: number, n: number): void {
    this.recorder.boundary();
    const d = this.tensor(dst, "copy target");
    const s = this.tensor(src, "copy source");
    count(dstOffset, "dstOffset");
    count(srcOffset, "srcOffset");
    count(n, "n");
    need(d, dstOffset + n, "copy target");
    need(s, srcOffset + n, "copy source");
    if (n === 0) return;
    if (d.buffer !== s.buffer) {
      this.recorder.copy(s.buffer, srcOffset * 4, d.buffer, dstOffset * 4, n * 4);
      return;
    }
    // A buffer cannot be both source and destination of one copy: go through a scratch slice.
    const scratch = this.recorder.hostSlice(n * 4);
    this.recorder.copy(s.buffer, srcOffset * 4, scratch.buffer, scratch.offset, n * 4);
    this.recorder.copy(scratch.buffer, scratch.offset, d.buffer, dstOffset * 4, n * 4);
  }

  #elementwise(kernel: "add" | "silu_mul", out: Tensor, a: Tensor, b: Tensor, n: number): void {
    this.recorder.boundary();
    const o = this.tensor(out, `${kernel} output`);
    const at = this.tensor(a, `${kernel} input`);
    const bt = this.tensor(b, `${kernel} input`);
    count(n, "n");
    for (const t of [o, at, bt]) need(t, n, `${kernel} operand`);
    if (n === 0) return;
    this.recorder.dispatch({
      kernel,
      params: { n },
      resources: [at.buffer, bt.buffer, o.buffer],
      grid: this.linearGrid(Math.ceil(n / 256)),
    });
  }
}
