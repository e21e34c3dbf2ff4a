/**
 * Cos/sin tables for the rope kernel, one per (theta, headDim), grown on demand.
 *
 * Values follow the Hugging Face computation: inv_freq[j] = f32(1 / theta^(2j / headDim)),
 * angle = f32(pos * inv_freq[j]), then cos/sin of that angle (the reference backend does the
 * same). Computing them on the host keeps large angles accurate: GPU cos/sin are only
 * specified near [-pi, pi].
 */

const f32 = Math.fround;
const MIN_POSITIONS = 256;

/** Host-side (cos, sin) pairs for positions [0, count), laid out [pos][headDim / 2][2]. */
export function ropeTable(theta: number, headDim: number, count: number): Float32Array {
  const half = headDim / 2;
  const invFreq = new Float64Array(half);
  for (let j = 0; j < half; j++) invFreq[j] = f32(1 / theta ** ((2 * j) / headDim));
  const out = new Float32Array(count * half * 2);
  for (let pos = 0; pos < count; pos++) {
    for (let j = 0; j < half; j++) {
      const angle = f32(pos * invFreq[j]);
      const i = (pos * half + j) * 2;
      out[i] = Math.cos(angle);
      out[i + 1] = Math.sin(angle);
    }
  }
  return out;
}

interface Entry {
  buffer: GPUBuffer;
  positions: number;
}

/** GPU copies of rope tables, keyed by (theta, headDim). */
export class RopeTables {
  #device: GPUDevice;
  #release: (b: GPUBuffer) => void;
  #maxBytes: number;
  #entries = new Map<string, Entry>();

  /**
   * @param device device that owns the tables
   * @param release called with a table buffer that is being replaced by a larger one
   * @param maxBytes largest table (the storage binding limit)
   */
  constructor(device: GPUDevice, release: (b: GPUBuffer) => void, maxBytes: number) {
    this.#device = device;
    this.#release = release;
    this.#maxBytes = maxBytes;
  }

  /**
   * A table covering positions [0, maxPosition]; grows (doubling) when needed.
   * @throws RangeError when the table would exceed the storage binding limit
   */
  table(theta: number, headDim: number, maxPosition: number): GPUBuffer {
    const key = `${theta}/${headDim}`;
    const entry = this.#entries.get(key);
    if (entry && entry.positions > maxPosition) return entry.buffer;
    let positions = Math.max(MIN_POSITIONS, entry?.positions ?? 0);
    while (positions <= maxPosition) positions *= 2;
    const bytesPerPosition = headDim * 4;
    if (positions * bytesPerPosition > this.#maxBytes) {
      positions = Math.floor(this.#maxBytes / bytesPerPosition);
      if (positions <= maxPosition) {
        throw new RangeError(
          `Cannot apply rope at position ${maxPosition}: the cos/sin table for head dim ` +
            `${headDim} would exceed the storage binding limit; use shorter sequences`,
        );
      }
    }
    const data = ropeTable(theta, headDim, positions);
    const buffer = this.#device.createBuffer({
      size: data.byteLength,
      usage: GPUBufferUsage.STORAGE,
      mappedAtCreation: true,
      label: `rope table ${key}`,
    });
    new Float32Array(buffer.getMappedRange()).set(data);
    buffer.unmap();
    if (entry) this.#release(entry.buffer);
    this.#entries.set(key, { buffer, positions });
    return buffer;
  }

  /** Destroys every table. */
  destroy(): void {
    for (const e of this.#entries.values()) e.buffer.destroy();
    this.#entries.clear();
  }
}
