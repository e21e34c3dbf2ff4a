/**
 * Reads GPU results back to the host through mappable staging buffers.
 *
 * Deno's `mapAsync` (wgpu underneath) waits for the GPU inside the call, so the buffer is
 * mapped by the time the call returns, but its promise resolves only after a further fixed
 * sleep of about 10 ms. A decode step that reads its logits every token would spend that
 * sleep on every token. With `early` set, the reader therefore tries `getMappedRange` right
 * after calling `mapAsync`: when the mapping is already in place it copies the range and
 * returns at once, and unmaps the buffer (returning it to the pool) when the promise settles.
 * When the mapping is not yet in place the call throws, and the reader awaits the promise
 * as usual. A buffer takes the early path only after one ordinary, awaited mapping, so the
 * runtime has recorded its map mode.
 *
 * Early reads leave a mapping promise pending for those milliseconds; `settle()` waits for
 * them (call it before a test ends, or the op sanitizer reports the pending promise).
 */

/** A staging buffer of the pool. */
export interface Staging {
  buffer: GPUBuffer;
  /** True once the buffer completed an ordinary, awaited mapping. */
  primed: boolean;
}

const MAX_IDLE = 4;

/** Pool of MAP_READ staging buffers and the read-back paths. */
export class StagingReader {
  #device: GPUDevice;
  #early: boolean;
  #idle: Staging[] = [];
  #pending = new Set<Promise<void>>();
  #destroyed = false;
  /** Reads that returned before their mapping promise settled (for benchmarks and tests). */
  earlyReads = 0;

  /**
   * @param device the device that owns the buffers
   * @param early return mapped data before the mapping promise settles, when possible
   */
  constructor(device: GPUDevice, early: boolean) {
    this.#device = device;
    this.#early = early;
  }

  /** An idle staging buffer of at least `size` bytes (a primed one when there is a choice). */
  take(size: number): Staging {
    let best = -1;
    for (let i = 0; i < this.#idle.length; i++) {
      const s = this.#idle[i];
      if (s.buffer.size < size || s.buffer.size > 4 * size + 4096) continue;
      if (best < 0 || (s.primed && !this.#idle[best].primed)) best = i;
    }
    if (best >= 0) return this.#idle.splice(best, 1)[0];
    const buffer = this.#device.createBuffer({
      size: Math.ceil(size / 256) * 256,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: "read staging",
    });
    return { buffer, primed: false };
  }

  /** Returns an unused staging buffer to the pool. */
  giveBack(staging: Staging): void {
    if (this.#destroyed) {
      staging.buffer.destroy();
      return;
    }
    this.#idle.push(staging);
    if (this.#idle.length > MAX_IDLE) this.#idle.shift()!.buffer.destroy();
  }

  /**
   * Maps `staging` (whose copy was just submitted) and returns a copy of its first `size`
   * bytes; the buffer goes back to the pool once unmapped.
   */
  async read(staging: Staging, size: number): Promise<Uint8Array> {
    const mapped = staging.buffer.mapAsync(GPUMapMode.READ, 0, size);
    if (this.#early && staging.primed) {
      const bytes = tryCopyMapped(staging.buffer, size);
      if (bytes) {
        this.earlyReads++;
        const settled: Promise<void> = mapped.then(
          () => this.#unmapAndGiveBack(staging),
          () => staging.buffer.destroy(),
        ).finally(() => this.#pending.delete(settled));
        this.#pending.add(settled);
        return bytes;
      }
    }
    try {
      await mapped;
    } catch (e) {
      staging.buffer.destroy();
      throw e;
    }
    const out = new Uint8Array(staging.buffer.getMappedRange(0, size).slice(0));
    staging.primed = true;
    this.#unmapAndGiveBack(staging);
    return out;
  }

  /** Waits until every early read's mapping promise has settled. */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Destroys idle buffers now and the others once their mappings settle. */
  destroy(): void {
    this.#destroyed = true;
    for (const s of this.#idle) s.buffer.destroy();
    this.#idle = [];
  }

  #unmapAndGiveBack(staging: Staging): void {
    try {
      staging.buffer.unmap();
    } catch {
      // The device was destroyed meanwhile: nothing left to unmap.
    }
    this.giveBack(staging);
  }
}

/** A copy of the mapped range, or null when the buffer is not mapped yet. */
function tryCopyMapped(buffer: GPUBuffer, size: number): Uint8Array | null {
  try {
    return new Uint8Array(buffer.getMappedRange(0, size).slice(0));
  } catch {
    return null;
  }
}
