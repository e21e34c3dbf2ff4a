/**
 * Records the WebGPU backend's work into one command encoder and submits it on demand.
 *
 * Dispatches go into compute passes, copies and clears between them; nothing reaches the GPU
 * until `submit()`, which uploads the arena (uniform parameters, host arrays, staged writes),
 * submits once, optionally copies a range into a mappable staging buffer and waits for it.
 * A whole decode step is therefore one submission. Validation and out-of-memory errors of a
 * batch are collected with error scopes and thrown by the `submit()` that ends it.
 */
import { UnsupportedOpError } from "../errors.ts";
import { type ArenaSlice, HostArena, WINDOW_BYTES } from "./webgpu_arena.ts";
import {
  type KernelConstants,
  type KernelName,
  KERNELS,
  packParams,
  PARAMS_BYTES,
  type PipelineCache,
} from "./webgpu_kernels.ts";

/** A buffer bound whole, or an arena slice (for `data` bindings). */
export type BindingResource = GPUBuffer | ArenaSlice;

/** One kernel launch. */
export interface Dispatch {
  kernel: KernelName;
  constants?: KernelConstants;
  /** Values of the kernel's Params fields. */
  params: Readonly<Record<string, number>>;
  /** Resources of bindings 1.. in order (binding 0 is the params block). */
  resources: readonly BindingResource[];
  /** Workgroup counts [x, y, z]. */
  grid: readonly [number, number, number];
}

/** Splits `groups` workgroups over x and y so that neither exceeds `maxPerDim`. */
export function splitGrid(groups: number, maxPerDim: number): [number, number] {
  if (groups <= maxPerDim) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

const MAX_CACHED_BIND_GROUPS = 4096;
const MAX_STAGING_BUFFERS = 4;

/** Command recording and submission for one device. */
export class CommandRecorder {
  #device: GPUDevice;
  #pipelines: PipelineCache;
  #arena: HostArena;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #release: GPUBuffer[] = [];
  #bindGroups = new Map<string, GPUBindGroup>();
  #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  #staging: GPUBuffer[] = [];
  #uncaptured: string | null = null;
  #onError = (e: unknown) => {
    this.#uncaptured ??= (e as GPUUncapturedErrorEvent).error?.message ?? "unknown error";
  };

  /**
   * @param device the device to record for
   * @param pipelines pipeline cache of that device
   */
  constructor(device: GPUDevice, pipelines: PipelineCache) {
    this.#device = device;
    this.#pipelines = pipelines;
    this.#arena = new HostArena(device);
    device.addEventListener("uncapturederror", this.#onError);
  }

  /** True when nothing is recorded since the last submission. */
  get idle(): boolean {
    return this.#encoder === null;
  }

  /** A host data slice that lives until the end of the current batch. */
  hostSlice(byteLength: number): ArenaSlice {
    this.#begin();
    return this.#arena.alloc(byteLength);
  }

  /** Records one kernel launch. */
  dispatch(d: Dispatch): void {
    const encoder = this.#begin();
    const params = this.#arena.alloc(PARAMS_BYTES);
    packParams(d.kernel, d.params, params.bytes);
    const offsets = [params.offset];
    for (const r of d.resources) if (!(r instanceof GPUBuffer)) offsets.push(r.offset);
    this.#pass ??= encoder.beginComputePass();
    this.#pass.setPipeline(this.#pipelines.pipeline(d.kernel, d.constants));
    this.#pass.setBindGroup(0, this.#bindGroup(d.kernel, params, d.resources), offsets);
    this.#pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
  }

  /** Records a buffer-to-buffer copy (offsets and size in bytes, multiples of 4). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    if (size === 0) return;
    this.#endPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  /** Records zero-filling `size` bytes of `buffer` from `offset`. */
  clear(buffer: GPUBuffer, offset = 0, size = buffer.size - offset): void {
    this.#endPass().clearBuffer(buffer, offset, size);
  }

  /** Destroys `buffer` once recorded work that may use it is submitted. */
  release(buffer: GPUBuffer): void {
    if (this.idle) buffer.destroy();
    else this.#release.push(buffer);
    this.#bindGroups.clear();
  }

  /**
   * Submits the recorded work; when `read` is given, also copies that byte range into a
   * staging buffer and returns its contents once the GPU is done.
   * @throws UnsupportedOpError when the device reported an error for this batch
   */
  async submit(read?: { buffer: GPUBuffer; offset: number; size: number }): Promise<Uint8Array> {
    let staging: GPUBuffer | null = null;
    if (read && read.size > 0) {
      staging = this.#takeStaging(read.size);
      this.copy(read.buffer, read.offset, staging, 0, read.size);
    }
    if (this.#encoder) {
      const encoder = this.#endPass();
      const released = this.#arena.upload(this.#device.queue);
      this.#device.queue.submit([encoder.finish()]);
      this.#encoder = null;
      for (const b of [...released, ...this.#release]) b.destroy();
      this.#release = [];
      const oom = this.#device.popErrorScope();
      const invalid = this.#device.popErrorScope();
      const errors = await Promise.all([invalid, oom]);
      const error = errors.find((e) => e !== null);
      if (error) this.#uncaptured ??= error.message;
    }
    if (this.#uncaptured !== null) {
      const message = this.#uncaptured;
      this.#uncaptured = null;
      if (staging) staging.destroy();
      throw new UnsupportedOpError(
        `Cannot run WebGPU commands: the device reported '${message}'; ` +
          "check the ops recorded since the last read (shapes, aliased tensors)",
      );
    }
    if (!staging || !read) return new Uint8Array(0);
    await staging.mapAsync(GPUMapMode.READ, 0, read.size);
    const out = new Uint8Array(staging.getMappedRange(0, read.size).slice(0));
    staging.unmap();
    this.#giveBackStaging(staging);
    return out;
  }

  /** Destroys the arena and staging buffers and stops listening for errors. */
  destroy(): void {
    this.#pass = null;
    this.#encoder = null;
    for (const b of this.#release) b.destroy();
    for (const b of this.#staging) b.destroy();
    this.#release = [];
    this.#staging = [];
    this.#arena.destroy();
    this.#bindGroups.clear();
    this.#device.removeEventListener("uncapturederror", this.#onError);
  }

  #begin(): GPUCommandEncoder {
    if (!this.#encoder) {
      this.#device.pushErrorScope("validation");
      this.#device.pushErrorScope("out-of-memory");
      this.#encoder = this.#device.createCommandEncoder();
    }
    return this.#encoder;
  }

  #endPass(): GPUCommandEncoder {
    const encoder = this.#begin();
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
    return encoder;
  }

  #id(buffer: GPUBuffer): number {
    let id = this.#bufferIds.get(buffer);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(buffer, id);
    }
    return id;
  }

  #bindGroup(
    kernel: KernelName,
    params: ArenaSlice,
    resources: readonly BindingResource[],
  ): GPUBindGroup {
    const cacheable = resources.every((r) => r instanceof GPUBuffer || r.windowed);
    const key = cacheable
      ? `${kernel}:${this.#id(params.buffer)}:${
        resources.map((r) => this.#id(r instanceof GPUBuffer ? r : r.buffer)).join(",")
      }`
      : "";
    const cached = cacheable ? this.#bindGroups.get(key) : undefined;
    if (cached) return cached;
    const kinds = KERNELS[kernel].bindings;
    if (resources.length !== kinds.length - 1) {
      throw new TypeError(
        `Cannot bind kernel '${kernel}': got ${resources.length} resources for ${
          kinds.length - 1
        } bindings`,
      );
    }
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: params.buffer, size: PARAMS_BYTES } },
    ];
    resources.forEach((r, i) => {
      const resource = r instanceof GPUBuffer
        ? { buffer: r }
        : { buffer: r.buffer, size: r.windowed ? WINDOW_BYTES : r.buffer.size };
      entries.push({ binding: i + 1, resource });
    });
    const group = this.#device.createBindGroup({
      layout: this.#pipelines.layout(kernel),
      entries,
    });
    if (cacheable) {
      if (this.#bindGroups.size >= MAX_CACHED_BIND_GROUPS) this.#bindGroups.clear();
      this.#bindGroups.set(key, group);
    }
    return group;
  }

  #takeStaging(size: number): GPUBuffer {
    const i = this.#staging.findIndex((b) => b.size >= size && b.size <= 4 * size + 4096);
    if (i >= 0) return this.#staging.splice(i, 1)[0];
    return this.#device.createBuffer({
      size: Math.ceil(size / 256) * 256,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: "read staging",
    });
  }

  #giveBackStaging(buffer: GPUBuffer): void {
    this.#staging.push(buffer);
    if (this.#staging.length > MAX_STAGING_BUFFERS) this.#staging.shift()!.destroy();
  }
}
