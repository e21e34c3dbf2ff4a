/**
 * GPU time of each kernel launch, from timestamp queries (the "timestamp-query" feature).
 *
 * When a backend profiles, every dispatch runs in a compute pass of its own whose beginning
 * and end write timestamps; at the end of a batch the queries are resolved and copied into a
 * staging buffer, and `collect()` turns them into one entry per launch. Timing every launch
 * separately adds pass boundaries, so use it to see where GPU time goes, not to measure the
 * fastest configuration.
 */

/** GPU time of one kernel launch, in nanoseconds since the batch's first timed launch. */
export interface KernelTime {
  kernel: string;
  startNs: number;
  endNs: number;
}

/** Timestamp queries for up to `capacity` launches per batch. */
export class GpuTimer {
  #device: GPUDevice;
  #querySet: GPUQuerySet;
  #resolveBuffer: GPUBuffer;
  #staging: GPUBuffer;
  #capacity: number;
  #labels: string[] = [];
  #dropped = 0;
  #resolvedLabels: string[] = [];
  #resolvedDropped = 0;

  /**
   * @param device a device opened with the "timestamp-query" feature
   * @param capacity launches timed per batch, at most 2048 (4096 queries); later ones run
   *   untimed
   */
  constructor(device: GPUDevice, capacity = 2048) {
    this.#device = device;
    this.#capacity = capacity;
    this.#querySet = device.createQuerySet({ type: "timestamp", count: 2 * capacity });
    this.#resolveBuffer = device.createBuffer({
      size: 16 * capacity,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      label: "timestamps",
    });
    this.#staging = device.createBuffer({
      size: 16 * capacity,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: "timestamp staging",
    });
  }

  /** Pass descriptor timing one launch of `kernel`, or undefined when the batch is full. */
  passDescriptor(kernel: string): GPUComputePassDescriptor | undefined {
    const i = this.#labels.length;
    if (i >= this.#capacity) {
      this.#dropped++;
      return undefined;
    }
    this.#labels.push(kernel);
    return {
      timestampWrites: {
        querySet: this.#querySet,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      },
    };
  }

  /**
   * Ends the batch: records resolving its queries into the staging buffer, where they stay
   * until the next batch ends; the next launches start a new batch.
   */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.#labels.length;
    if (n > 0) {
      encoder.resolveQuerySet(this.#querySet, 0, 2 * n, this.#resolveBuffer, 0);
      encoder.copyBufferToBuffer(this.#resolveBuffer, 0, this.#staging, 0, 16 * n);
    }
    this.#resolvedLabels = this.#labels;
    this.#resolvedDropped = this.#dropped;
    this.#labels = [];
    this.#dropped = 0;
  }

  /**
   * The launches of the last batch ended by `resolve()` (call after its submission; once).
   * `dropped` counts its launches past the capacity, which ran untimed.
   */
  async collect(): Promise<{ launches: KernelTime[]; dropped: number }> {
    const labels = this.#resolvedLabels;
    const n = labels.length;
    const dropped = this.#resolvedDropped;
    this.#resolvedLabels = [];
    this.#resolvedDropped = 0;
    if (n === 0) return { launches: [], dropped };
    await this.#staging.mapAsync(GPUMapMode.READ, 0, 16 * n);
    const ticks = new BigUint64Array(this.#staging.getMappedRange(0, 16 * n).slice(0));
    this.#staging.unmap();
    const t0 = ticks[0];
    const launches: KernelTime[] = [];
    for (let i = 0; i < n; i++) {
      launches.push({
        kernel: labels[i],
        startNs: Number(ticks[2 * i] - t0),
        endNs: Number(ticks[2 * i + 1] - t0),
      });
    }
    return { launches, dropped };
  }

  /** Releases the query set and buffers. */
  destroy(): void {
    this.#querySet.destroy();
    this.#resolveBuffer.destroy();
    this.#staging.destroy();
  }
}
