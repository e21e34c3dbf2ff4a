/**
 * Records the WebGPU backend's work into command encoders and submits it.
 *
 * Dispatches go into compute passes, copies and clears between them. Work reaches the GPU at
 * `submit()` (a read or a flush), and also at the first op boundary after every
 * `submitEvery` dispatches, so the GPU starts on the first layers of a step while the host
 * still records the last ones. Each
 * submission first uploads the arena (uniform parameters, host arrays, staged writes); queue
 * order keeps earlier submissions reading the values they were recorded with. Validation and
 * out-of-memory errors of a batch (the work between two `submit()` calls) are collected with
 * error scopes and thrown by the `submit()` that ends it.
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
import { StagingReader } from "./webgpu_readback.ts";
import type { GpuTimer, KernelTime } from "./webgpu_timer.ts";

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

/** How the recorder submits and reads back. */
export interface RecorderOptions {
  /** Submit after this many dispatches (0: only at reads and flushes). */
  submitEvery: number;
  /** Return read-back data as soon as it is mapped (see webgpu_readback.ts). */
  earlyReadback: boolean;
  /** Time every launch with timestamp queries (profiling). */
  timer?: GpuTimer;
}

/** Splits `groups` workgroups over x and y so that neither exceeds `maxPerDim`. */
export function splitGrid(groups: number, maxPerDim: number): [number, number] {
  if (groups <= maxPerDim) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

const MAX_CACHED_BIND_GROUPS = 4096;

/** "kernel[CONST=v,...] gx x gy x gz", naming a launch in profiles. */
export function launchLabel(d: Dispatch): string {
  let label: string = d.kernel;
  if (d.constants) {
    const parts: string[] = [];
    for (const k in d.constants) parts.push(`${k}=${Number(d.constants[k])}`);
    if (parts.length) label += `[${parts.join(",")}]`;
  }
  return `${label} ${d.grid[0]}x${d.grid[1]}x${d.grid[2]}`;
}

/** Command recording and submission for one device. */
export class CommandRecorder {
  #device: GPUDevice;
  #pipelines: PipelineCache;
  #arena: HostArena;
  #reader: StagingReader;
  #submitEvery: number;
  #timer: GpuTimer | undefined;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #passPipeline: GPUComputePipeline | null = null;
  #scopesOpen = false;
  #sinceSubmit = 0;
  #release: GPUBuffer[] = [];
  #bindGroups = new Map<string, GPUBindGroup>();
  #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  #uncaptured: string | null = null;
  #onError = (e: unknown) => {
    this.#uncaptured ??= (e as GPUUncapturedErrorEvent).error?.message ?? "unknown error";
  };
  /** Submissions made so far (partial ones included). */
  submissions = 0;

  /**
   * @param device the device to record for
   * @param pipelines pipeline cache of that device
   * @param options submission, read-back and timing behaviour
   */
  constructor(device: GPUDevice, pipelines: PipelineCache, options: RecorderOptions) {
    this.#device = device;
    this.#pipelines = pipelines;
    this.#arena = new HostArena(device);
    this.#reader = new StagingReader(device, options.earlyReadback);
    this.#submitEvery = options.submitEvery;
    this.#timer = options.timer;
    device.addEventListener("uncapturederror", this.#onError);
  }

  /** True when nothing is recorded since the last submission. */
  get idle(): boolean {
    return this.#encoder === null;
  }

  /** Reads that returned before their mapping promise settled. */
  get earlyReads(): number {
    return this.#reader.earlyReads;
  }

  /** A host data slice that lives until the work recorded so far is submitted. */
  hostSlice(byteLength: number): ArenaSlice {
    this.#begin();
    return this.#arena.alloc(byteLength);
  }

  /** Records one kernel launch. */
  dispatch(d: Dispatch): void {
    const encoder = this.#begin();
    const params = this.#arena.alloc(PARAMS_BYTES);
    packParams(d.kernel, d.params, params.bytes);
    const resources = d.resources;
    const offsets = [params.offset];
    for (let i = 0; i < resources.length; i++) {
      const r = resources[i];
      if (!(r instanceof GPUBuffer)) offsets.push(r.offset);
    }
    const pipeline = this.#pipelines.pipeline(d.kernel, d.constants);
    const group = this.#bindGroup(d.kernel, params, resources);
    const timed = this.#timer?.passDescriptor(launchLabel(d));
    if (timed) this.#endPass();
    let pass = this.#pass;
    if (!pass) {
      pass = this.#pass = encoder.beginComputePass(timed);
      this.#passPipeline = null;
    }
    if (this.#passPipeline !== pipeline) {
      pass.setPipeline(pipeline);
      this.#passPipeline = pipeline;
    }
    pass.setBindGroup(0, group, offsets);
    pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
    if (timed) this.#endPass();
    this.#sinceSubmit++;
  }

  /**
   * Marks the start of an op: submits the work recorded so far when `submitEvery` dispatches
   * have accumulated. Ops call it before recording anything, so that host slices an op binds
   * in several dispatches never straddle a submission.
   */
  boundary(): void {
    if (this.#submitEvery > 0 && this.#sinceSubmit >= this.#submitEvery) this.#submitEncoder();
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
   * Submits the recorded work and ends the batch; when `read` is given, also copies that byte
   * range into a staging buffer and returns its contents once the GPU is done.
   * @throws UnsupportedOpError when the device reported an error for this batch
   */
  async submit(read?: { buffer: GPUBuffer; offset: number; size: number }): Promise<Uint8Array> {
    const staging = read && read.size > 0 ? this.#reader.take(read.size) : null;
    if (staging) this.copy(read!.buffer, read!.offset, staging.buffer, 0, read!.size);
    if (this.#timer) this.#timer.resolve(this.#endPass());
    this.#submitEncoder();
    if (this.#scopesOpen) {
      this.#scopesOpen = false;
      const oom = this.#device.popErrorScope();
      const invalid = this.#device.popErrorScope();
      const errors = await Promise.all([invalid, oom]);
      const error = errors.find((e) => e !== null);
      if (error) this.#uncaptured ??= error.message;
    }
    if (this.#uncaptured !== null) {
      const message = this.#uncaptured;
      this.#uncaptured = null;
      if (staging) this.#reader.giveBack(staging);
      throw new UnsupportedOpError(
        `Cannot run WebGPU commands: the device reported '${message}'; ` +
          "check the ops recorded since the last read (shapes, aliased tensors)",
      );
    }
    if (!staging) return new Uint8Array(0);
    return await this.#reader.read(staging, read!.size);
  }

  /** Per-launch GPU times of the last batch (empty unless profiling); call after `submit()`. */
  async launchTimes(): Promise<{ launches: KernelTime[]; dropped: number }> {
    return this.#timer ? await this.#timer.collect() : { launches: [], dropped: 0 };
  }

  /** Waits until early reads have released their staging buffers. */
  async settle(): Promise<void> {
    await this.#reader.settle();
  }

  /** Destroys the arena and staging buffers and stops listening for errors. */
  destroy(): void {
    this.#pass = null;
    this.#encoder = null;
    for (const b of this.#release) b.destroy();
    this.#release = [];
    this.#reader.destroy();
    this.#arena.destroy();
    this.#timer?.destroy();
    this.#bindGroups.clear();
    this.#device.removeEventListener("uncapturederror", this.#onError);
  }

  #begin(): GPUCommandEncoder {
    if (!this.#encoder) {
      if (!this.#scopesOpen) {
        this.#device.pushErrorScope("validation");
        this.#device.pushErrorScope("out-of-memory");
        this.#scopesOpen = true;
      }
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

  /** Uploads the arena and submits the open encoder, if any. */
  #submitEncoder(): void {
    this.#sinceSubmit = 0;
    if (!this.#encoder) return;
    const encoder = this.#endPass();
    const released = this.#arena.upload(this.#device.queue);
    this.#device.queue.submit([encoder.finish()]);
    this.submissions++;
    this.#encoder = null;
    for (const b of released) b.destroy();
    for (const b of this.#release) b.destroy();
    this.#release = [];
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
    let key: string = kernel;
    key += ":" + this.#id(params.buffer);
    for (let i = 0; i < resources.length && key !== ""; i++) {
      const r = resources[i];
      if (r instanceof GPUBuffer) key += "," + this.#id(r);
      else if (r.windowed) key += "," + this.#id(r.buffer);
      else key = ""; // an oversized slice lives for one submission: not cacheable
    }
    const cached = key ? this.#bindGroups.get(key) : undefined;
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
    if (key) {
      if (this.#bindGroups.size >= MAX_CACHED_BIND_GROUPS) this.#bindGroups.clear();
      this.#bindGroups.set(key, group);
    }
    return group;
  }
}
