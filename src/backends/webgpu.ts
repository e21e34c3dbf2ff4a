/**
 * WebGPU backend: WGSL kernels (kernels/wgsl) recorded into command encoders.
 *
 * Ops only record; the recorder submits every `submitEvery` dispatches so the GPU works while
 * the host records the rest of a step, and `read()` submits what is left, copies the
 * requested range to a staging buffer and returns it as soon as it is mapped (see
 * webgpu_readback.ts). Buffers, bind groups and pipelines are reused across steps. Large
 * weights are split into row chunks that each fit one storage binding (151936 x 896 bf16 =
 * 272 MB is three chunks under a 128 MiB limit).
 */
import type {
  Backend,
  BackendInfo,
  KvCache,
  SparseMatrixData,
  SparseWeight,
  Tensor,
  Weight,
} from "./backend.ts";
import { type DType, dtypeBytes } from "../tensor/dtype.ts";
import { UnsupportedOpError } from "../errors.ts";
import { describeAdapter, openComputeDevice, requestGpuAdapter } from "./webgpu_device.ts";
import { PipelineCache } from "./webgpu_kernels.ts";
import { CommandRecorder } from "./webgpu_recorder.ts";
import {
  alignedSize,
  GpuKvCache,
  GpuSparse,
  GpuTensor,
  GpuWeight,
  uploadSparseChunks,
  uploadWeightChunks,
  validateSparse,
} from "./webgpu_resources.ts";
import { RopeTables } from "./webgpu_rope_table.ts";
import { WebGpuOps } from "./webgpu_ops.ts";
import { GpuTimer, type KernelTime } from "./webgpu_timer.ts";

/** Options of `createWebGpuBackend`. */
export interface WebGpuBackendOptions {
  /** Adapter to use; by default a high-performance adapter is requested. */
  adapter?: GPUAdapter;
  /** Accept a software (fallback) adapter such as llvmpipe; default true. */
  allowFallback?: boolean;
  /**
   * Largest row chunk of a dense or sparse weight, in bytes; defaults to (and is capped at)
   * the device's maxStorageBufferBindingSize. Smaller values force chunking (tests).
   */
  weightChunkBytes?: number;
  /** Threads per weight row in the GEMV kernel (power of two, 1..256); default by shape. */
  gemvThreadsPerRow?: number;
  /**
   * Weight words each GEMV thread loads per loop iteration (1, 2 or 4); default 2 with 16 or
   * fewer threads per row, else 1.
   */
  gemvUnroll?: number;
  /**
   * Submit recorded work every this many dispatches (0: only at reads and flushes), so the
   * GPU starts while the host records; default 48.
   */
  submitEvery?: number;
  /**
   * Return read-back data as soon as it is mapped instead of when the runtime's mapping
   * promise settles (about 10 ms later in Deno); the promise is still awaited in the
   * background (`settle()`). Default: true on hardware adapters, false on software ones.
   */
  earlyReadback?: boolean;
  /**
   * Time every kernel launch with timestamp queries (needs the adapter's "timestamp-query"
   * feature); read them with `launchTimes()` after each read. For profiling only: every
   * launch gets a compute pass of its own.
   */
  profile?: boolean;
}

/** Default of `WebGpuBackendOptions.submitEvery`. */
export const DEFAULT_SUBMIT_EVERY = 48;

const POOL_LIMIT_BYTES = 256 * 1024 * 1024;

/** The WebGPU implementation of `Backend`. */
export class WebGpuBackend extends WebGpuOps implements Backend {
  /** Name "webgpu" and the adapter name ("(fallback)" for software adapters). */
  readonly info: BackendInfo;
  #pool = new Map<number, GPUBuffer[]>();
  #pooledBytes = 0;
  #live = new Set<GpuTensor | GpuWeight | GpuSparse | GpuKvCache>();
  #disposed = false;

  /**
   * Use `createWebGpuBackend` instead.
   * @param device an open device
   * @param info backend name and device description
   * @param options binding limit, kernel tuning, submission and read-back behaviour
   */
  constructor(
    device: GPUDevice,
    info: BackendInfo,
    options: {
      maxBindingBytes: number;
      weightChunkBytes: number;
      gemvThreadsPerRow?: number;
      gemvUnroll?: number;
      submitEvery: number;
      earlyReadback: boolean;
      profile: boolean;
    },
  ) {
    const pipelines = new PipelineCache(device);
    const recorder = new CommandRecorder(device, pipelines, {
      submitEvery: options.submitEvery,
      earlyReadback: options.earlyReadback,
      timer: options.profile ? new GpuTimer(device) : undefined,
    });
    const ropeTables = new RopeTables(
      device,
      (b) => recorder.release(b),
      options.maxBindingBytes,
    );
    super(device, recorder, ropeTables, options.gemvThreadsPerRow, options.gemvUnroll);
    this.info = info;
    this.maxBindingBytes = options.maxBindingBytes;
    this.weightChunkBytes = options.weightChunkBytes;
  }

  /** Largest buffer bound at once (bytes): the device's maxStorageBufferBindingSize. */
  readonly maxBindingBytes: number;
  /** Largest row chunk of an uploaded weight or sparse matrix (bytes). */
  readonly weightChunkBytes: number;

  /** New zero-filled tensor (a pooled buffer is cleared by a recorded command). */
  alloc(size: number): Tensor {
    this.#alive();
    if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(`Cannot allocate a tensor of ${size} elements: need an integer >= 0`);
    }
    const bytes = alignedSize(size * 4);
    if (bytes > this.maxBindingBytes) {
      throw new UnsupportedOpError(
        `Cannot allocate a tensor of ${size} elements on WebGPU: ${bytes} bytes exceed the ` +
          `storage binding limit of ${this.maxBindingBytes}; use smaller batches`,
      );
    }
    let buffer = this.#pool.get(bytes)?.pop();
    if (buffer) {
      this.#pooledBytes -= bytes;
      this.recorder.clear(buffer);
    } else {
      buffer = this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        label: "tensor",
      });
    }
    const t = new GpuTensor(size, buffer);
    this.#live.add(t);
    return t;
  }

  /** Copies `data` into `t` at `offset`, ordered after the work recorded so far. */
  write(t: Tensor, data: Float32Array, offset = 0): void {
    this.#alive();
    const dst = this.tensor(t, "write target");
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > dst.size) {
      throw new RangeError(
        `Cannot write ${data.length} elements at offset ${offset} into a tensor of ${dst.size}`,
      );
    }
    if (data.length === 0) return;
    if (this.recorder.idle) {
      this.device.queue.writeBuffer(dst.buffer, offset * 4, data as Float32Array<ArrayBuffer>);
      return;
    }
    // Recorded work may still read the old contents: stage the data and copy in order.
    const slice = this.recorder.hostSlice(data.byteLength);
    slice.bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.recorder.copy(slice.buffer, slice.offset, dst.buffer, offset * 4, data.byteLength);
  }

  /** Submits the recorded work and returns elements [offset, offset + length) of `t`. */
  async read(t: Tensor, offset = 0, length?: number): Promise<Float32Array> {
    this.#alive();
    const src = this.tensor(t, "read source");
    const n = length ?? src.size - offset;
    if (!Number.isInteger(offset) || offset < 0 || n < 0 || offset + n > src.size) {
      throw new RangeError(
        `Cannot read ${n} elements at offset ${offset} from a tensor of ${src.size}`,
      );
    }
    const bytes = await this.recorder.submit({
      buffer: src.buffer,
      offset: offset * 4,
      size: n * 4,
    });
    return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  }

  /**
   * Submits recorded work and waits until the GPU has finished it and every early read has
   * released its staging buffer (nothing is left pending afterwards).
   */
  async flush(): Promise<void> {
    this.#alive();
    await this.recorder.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.recorder.settle();
  }

  /** Waits until every early read has released its staging buffer (see `earlyReadback`). */
  async settle(): Promise<void> {
    await this.recorder.settle();
  }

  /**
   * GPU time of each launch of the batch ended by the last read or flush, with the `profile`
   * option; empty otherwise. Call once per batch, after its read.
   */
  async launchTimes(): Promise<{ launches: KernelTime[]; dropped: number }> {
    this.#alive();
    return await this.recorder.launchTimes();
  }

  /** Submissions and early reads so far (how the work reached the GPU and came back). */
  get stats(): { submissions: number; earlyReads: number } {
    return { submissions: this.recorder.submissions, earlyReads: this.recorder.earlyReads };
  }

  /** Uploads a dense weight (row chunks of at most `weightChunkBytes`). */
  uploadWeight(bytes: Uint8Array, dtype: DType, rows: number, cols: number): Weight {
    this.#alive();
    if (dtype !== "f32" && dtype !== "bf16" && dtype !== "f16") {
      throw new TypeError(`Cannot upload weight: dtype '${dtype}' is not f32, bf16 or f16`);
    }
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
      throw new RangeError(`Cannot upload weight [${rows}, ${cols}]: need positive integer sizes`);
    }
    if (bytes.byteLength !== rows * cols * dtypeBytes(dtype)) {
      throw new RangeError(
        `Cannot upload weight [${rows}, ${cols}] ${dtype}: got ${bytes.byteLength} bytes, ` +
          `expected ${rows * cols * dtypeBytes(dtype)}`,
      );
    }
    const { strideWords, chunks } = uploadWeightChunks(
      this.device,
      bytes,
      dtype,
      rows,
      cols,
      this.weightChunkBytes,
    );
    const w = new GpuWeight(rows, cols, dtype, strideWords, chunks);
    this.#live.add(w);
    return w;
  }

  /** Validates and uploads a CSR matrix (columns strictly ascending within each row). */
  uploadSparse(data: SparseMatrixData): SparseWeight {
    this.#alive();
    if (data.valueDtype !== "bf16" && data.valueDtype !== "f16") {
      throw new TypeError(`Cannot upload sparse matrix: valueDtype '${data.valueDtype}'`);
    }
    validateSparse(data);
    const { wide, chunks } = uploadSparseChunks(this.device, data, this.weightChunkBytes);
    const s = new GpuSparse(
      data.rows,
      data.cols,
      data.rowPtr[data.rows],
      data.valueDtype,
      wide,
      chunks,
    );
    this.#live.add(s);
    return s;
  }

  /** A copy of `w`, made by recorded buffer copies (so it sees earlier recorded updates). */
  cloneWeight(w: Weight): Weight {
    this.#alive();
    const src = this.weight(w, "clone source");
    const chunks = src.chunks.map((c) => {
      const buffer = this.device.createBuffer({
        size: c.buffer.size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        label: "weight",
      });
      this.recorder.copy(c.buffer, 0, buffer, 0, c.buffer.size);
      return { rowStart: c.rowStart, rows: c.rows, buffer };
    });
    const clone = new GpuWeight(src.rows, src.cols, src.dtype, src.strideWords, chunks);
    this.#live.add(clone);
    return clone;
  }

  /** New zeroed KV cache: one K and one V buffer per layer. */
  allocKvCache(numLayers: number, maxSeq: number, numKvHeads: number, headDim: number): KvCache {
    this.#alive();
    for (const [name, v] of Object.entries({ numLayers, maxSeq, numKvHeads, headDim })) {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`Cannot allocate a KV cache: ${name} = ${v}, need an integer >= 1`);
      }
    }
    const bytes = alignedSize(maxSeq * numKvHeads * headDim * 4);
    if (bytes > this.maxBindingBytes) {
      throw new UnsupportedOpError(
        `Cannot allocate a KV cache of ${maxSeq} positions x ${numKvHeads * headDim}: one ` +
          `layer (${bytes} bytes) exceeds the storage binding limit; lower maxSeq`,
      );
    }
    const make = (label: string) =>
      Array.from({ length: numLayers }, () =>
        this.device.createBuffer({
          size: bytes,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
          label,
        }));
    const cache = new GpuKvCache(numLayers, maxSeq, numKvHeads, headDim, make("k"), make("v"));
    this.#live.add(cache);
    return cache;
  }

  /** Releases `r`: tensor buffers go back to a pool, others are destroyed after submission. */
  free(r: Tensor | Weight | SparseWeight | KvCache): void {
    this.#alive();
    if (
      !(r instanceof GpuTensor || r instanceof GpuWeight || r instanceof GpuSparse ||
        r instanceof GpuKvCache) || !this.#live.has(r) || !r.markFreed()
    ) {
      throw new TypeError("Cannot free the resource: it is not a live resource of this backend");
    }
    this.#live.delete(r);
    if (r instanceof GpuTensor) {
      const bytes = r.buffer.size;
      if (this.#pooledBytes + bytes <= POOL_LIMIT_BYTES) {
        // Later work that reuses the buffer is recorded after the work that used it.
        const list = this.#pool.get(bytes) ?? [];
        list.push(r.buffer);
        this.#pool.set(bytes, list);
        this.#pooledBytes += bytes;
      } else {
        this.recorder.release(r.buffer);
      }
    } else if (r instanceof GpuWeight) {
      for (const c of r.chunks) this.recorder.release(c.buffer);
    } else if (r instanceof GpuSparse) {
      for (const c of r.chunks) this.recorder.release(c.buffer);
    } else {
      for (const b of [...r.keys, ...r.values]) this.recorder.release(b);
    }
  }

  /** Frees every resource and destroys the device. */
  dispose(): void {
    if (this.#disposed) return;
    for (const r of [...this.#live]) this.free(r);
    this.#disposed = true;
    this.recorder.destroy();
    this.ropeTables.destroy();
    this.destroyOpBuffers();
    for (const list of this.#pool.values()) for (const b of list) b.destroy();
    this.#pool.clear();
    this.device.destroy();
  }

  #alive(): void {
    if (this.#disposed) {
      throw new TypeError("Cannot use the WebGPU backend: it was disposed");
    }
  }
}

/**
 * Creates a WebGPU backend on `opts.adapter` or a newly requested adapter.
 * @throws UnsupportedOpError when there is no WebGPU, no adapter, or only a refused fallback
 */
export async function createWebGpuBackend(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const adapter = opts.adapter ?? await requestGpuAdapter();
  if (!adapter) {
    throw new UnsupportedOpError(
      "Cannot create the WebGPU backend: no GPU adapter was found; install a Vulkan driver " +
        "(scripts/install_vulkan.sh installs Mesa's software one) or use the wasm backend",
    );
  }
  const { name, software } = describeAdapter(adapter);
  if (software && opts.allowFallback === false) {
    throw new UnsupportedOpError(
      `Cannot create the WebGPU backend: the only adapter is a software one ('${name}'); ` +
        "pass allowFallback: true or use the wasm backend",
    );
  }
  const profile = opts.profile ?? false;
  if (profile && !adapter.features.has("timestamp-query")) {
    throw new UnsupportedOpError(
      `Cannot profile the WebGPU backend on '${name}': the adapter lacks the ` +
        "'timestamp-query' feature; run without the profile option",
    );
  }
  const submitEvery = opts.submitEvery ?? DEFAULT_SUBMIT_EVERY;
  if (!Number.isInteger(submitEvery) || submitEvery < 0) {
    throw new RangeError(
      `Cannot create the WebGPU backend: submitEvery = ${submitEvery}, need an integer >= 0`,
    );
  }
  const device = await openComputeDevice(adapter, profile ? ["timestamp-query"] : []);
  const limit = Math.floor(device.limits.maxStorageBufferBindingSize / 16) * 16;
  const chunk = opts.weightChunkBytes ?? limit;
  if (!Number.isInteger(chunk) || chunk < 64) {
    device.destroy();
    throw new RangeError(`Cannot create the WebGPU backend: weightChunkBytes = ${chunk}`);
  }
  return new WebGpuBackend(
    device,
    { name: "webgpu", device: software ? `${name} (fallback)` : name },
    {
      maxBindingBytes: limit,
      weightChunkBytes: Math.min(limit, Math.floor(chunk / 16) * 16),
      gemvThreadsPerRow: opts.gemvThreadsPerRow,
      gemvUnroll: opts.gemvUnroll,
      submitEvery,
      earlyReadback: opts.earlyReadback ?? !software,
      profile,
    },
  );
}
