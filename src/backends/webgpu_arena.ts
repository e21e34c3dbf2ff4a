/**
 * Per-submission host data for the WebGPU backend: uniform parameters of each dispatch, small
 * host arrays (token ids, positions) and staged copies of `write()` calls.
 *
 * Everything is packed into a few reusable GPU buffers ("chunks") whose contents are mirrored
 * in host memory while commands are recorded; `upload()` writes the mirrors with
 * queue.writeBuffer just before the submission, so each chunk is written once per submission
 * and reused by the next one (queue order makes the reuse safe). Slices start 256-byte
 * aligned below `WINDOW_BYTES`, so a binding of up to `WINDOW_BYTES` at any slice offset fits:
 * bind groups can use dynamic offsets and stay cached across submissions.
 */

/** Alignment of every slice (the largest minimum offset alignment WebGPU allows). */
export const SLICE_ALIGN = 256;
/** Bytes a dynamic-offset binding of a chunk may span. */
export const WINDOW_BYTES = 64 * 1024;
const CHUNK_BYTES = 2 * WINDOW_BYTES;

/** A region of an arena chunk. */
export interface ArenaSlice {
  buffer: GPUBuffer;
  offset: number;
  /** Host mirror of the region; fill it before the submission. */
  bytes: Uint8Array;
  /** True when the slice is bindable with a `WINDOW_BYTES` window (not an oversized chunk). */
  windowed: boolean;
}

interface Chunk {
  buffer: GPUBuffer;
  mirror: Uint8Array<ArrayBuffer>;
  used: number;
}

/** Bump allocator over reusable GPU buffers, reset at each submission. */
export class HostArena {
  #device: GPUDevice;
  #chunks: Chunk[] = [];
  #current = 0;
  #oversized: Chunk[] = [];

  /** @param device the device that owns the chunks */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** A fresh slice of `byteLength` bytes (zero-filled mirror). */
  alloc(byteLength: number): ArenaSlice {
    const size = Math.max(SLICE_ALIGN, Math.ceil(byteLength / SLICE_ALIGN) * SLICE_ALIGN);
    if (size > WINDOW_BYTES) {
      const chunk = this.#newChunk(size);
      chunk.used = size;
      this.#oversized.push(chunk);
      return { buffer: chunk.buffer, offset: 0, bytes: chunk.mirror, windowed: false };
    }
    let chunk = this.#chunks[this.#current];
    if (chunk && chunk.used + size > WINDOW_BYTES) {
      this.#current++;
      chunk = this.#chunks[this.#current];
    }
    if (!chunk) {
      chunk = this.#newChunk(CHUNK_BYTES);
      this.#chunks.push(chunk);
    }
    const offset = chunk.used;
    chunk.used += size;
    const bytes = chunk.mirror.subarray(offset, offset + size);
    bytes.fill(0);
    return { buffer: chunk.buffer, offset, bytes, windowed: true };
  }

  /**
   * Writes the used part of every chunk to the GPU and resets the allocator. Call right before
   * queue.submit; returns the oversized chunks, to destroy once the submission is queued.
   */
  upload(queue: GPUQueue): GPUBuffer[] {
    for (let i = 0; i <= this.#current && i < this.#chunks.length; i++) {
      const chunk = this.#chunks[i];
      if (chunk.used > 0) queue.writeBuffer(chunk.buffer, 0, chunk.mirror, 0, chunk.used);
      chunk.used = 0;
    }
    for (const chunk of this.#oversized) queue.writeBuffer(chunk.buffer, 0, chunk.mirror);
    const done = this.#oversized.map((c) => c.buffer);
    this.#oversized = [];
    this.#current = 0;
    return done;
  }

  /** Destroys every chunk. */
  destroy(): void {
    for (const chunk of [...this.#chunks, ...this.#oversized]) chunk.buffer.destroy();
    this.#chunks = [];
    this.#oversized = [];
  }

  #newChunk(size: number): Chunk {
    const buffer = this.#device.createBuffer({
      size,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST |
        GPUBufferUsage.COPY_SRC,
      label: "host arena",
    });
    return { buffer, mirror: new Uint8Array(size), used: 0 };
  }
}
