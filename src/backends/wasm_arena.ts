/**
 * A free-list allocator over one growable WebAssembly memory: every tensor, weight,
 * sparse matrix and cache of the WASM backend is a block of this arena. Blocks are
 * 64-byte aligned (a cache line); freed blocks merge with free neighbours and are reused,
 * and a freed block at the top lowers the top. The memory itself never shrinks (wasm
 * cannot), but freed bytes are available to the next allocation.
 */
import { WASM_PAGE_BYTES } from "./wasm_module.ts";

const ALIGN = 64;

interface FreeBlock {
  ptr: number;
  size: number;
}

/** Allocator of byte ranges in `memory`, above `base`. */
export class WasmArena {
  readonly #memory: WebAssembly.Memory;
  readonly #maxBytes: number;
  #top: number;
  /** Free blocks below `top`, sorted by address, never adjacent to each other. */
  #free: FreeBlock[] = [];
  /** Size of each live block, by address. */
  #live = new Map<number, number>();

  /**
   * @param memory the shared memory (grown on demand)
   * @param base first usable byte (above the module's own data)
   * @param maxBytes the memory's maximum size in bytes
   */
  constructor(memory: WebAssembly.Memory, base: number, maxBytes: number) {
    this.#memory = memory;
    this.#maxBytes = maxBytes;
    this.#top = Math.ceil(base / ALIGN) * ALIGN;
  }

  /** Bytes currently handed out. */
  get liveBytes(): number {
    let sum = 0;
    for (const size of this.#live.values()) sum += size;
    return sum;
  }

  /** Number of live blocks. */
  get liveBlocks(): number {
    return this.#live.size;
  }

  /** End of the highest block ever kept (the arena's footprint). */
  get top(): number {
    return this.#top;
  }

  /** A block of at least `bytes` bytes, 64-byte aligned. Contents are not cleared. */
  alloc(bytes: number): number {
    if (!Number.isFinite(bytes) || bytes < 0) {
      throw new RangeError(`Cannot allocate ${bytes} bytes in the wasm arena: size is invalid`);
    }
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.#free.length; i++) {
      const block = this.#free[i];
      if (block.size < size) continue;
      const ptr = block.ptr;
      if (block.size === size) this.#free.splice(i, 1);
      else {
        block.ptr += size;
        block.size -= size;
      }
      this.#live.set(ptr, size);
      return ptr;
    }
    const ptr = this.#top;
    this.#ensure(ptr + size);
    this.#top = ptr + size;
    this.#live.set(ptr, size);
    return ptr;
  }

  /** Returns the block at `ptr` to the arena. */
  free(ptr: number): void {
    const size = this.#live.get(ptr);
    if (size === undefined) {
      throw new RangeError(`Cannot free wasm arena block at ${ptr}: it is not allocated`);
    }
    this.#live.delete(ptr);
    let lo = 0;
    let hi = this.#free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#free[mid].ptr < ptr) lo = mid + 1;
      else hi = mid;
    }
    const block: FreeBlock = { ptr, size };
    const next = this.#free[lo];
    if (next && ptr + size === next.ptr) {
      block.size += next.size;
      this.#free.splice(lo, 1);
    }
    const prev = this.#free[lo - 1];
    if (prev && prev.ptr + prev.size === ptr) {
      prev.size += block.size;
      this.#collapseTop(lo - 1);
      return;
    }
    this.#free.splice(lo, 0, block);
    this.#collapseTop(lo);
  }

  /** If the free block at index `i` ends at the top, give it back to the top. */
  #collapseTop(i: number): void {
    const block = this.#free[i];
    if (block.ptr + block.size === this.#top) {
      this.#top = block.ptr;
      this.#free.splice(i, 1);
    }
  }

  /** Grows the memory so that bytes [0, end) exist. */
  #ensure(end: number): void {
    const have = this.#memory.buffer.byteLength;
    if (end <= have) return;
    if (end > this.#maxBytes) {
      throw new RangeError(
        `Cannot allocate in the wasm arena: ${end} bytes needed, the memory limit is ` +
          `${this.#maxBytes} bytes; free unused weights or caches, or use a smaller model`,
      );
    }
    const pages = Math.ceil((end - have) / WASM_PAGE_BYTES);
    const growBy = Math.min(
      Math.max(pages, Math.ceil(have / WASM_PAGE_BYTES / 8)),
      this.#maxBytes / WASM_PAGE_BYTES - have / WASM_PAGE_BYTES,
    );
    this.#memory.grow(growBy);
  }
}
