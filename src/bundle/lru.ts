/**
 * A byte-bounded LRU cache with pinning and in-flight de-duplication.
 * `acquire` returns a cached value or loads it (concurrent acquires of one key
 * share one load) and pins it; `release` unpins. Only unpinned entries are
 * evicted, least recently used first, whenever the total exceeds the budget,
 * so a value in use by a running request is never freed under it.
 */

/** Counters exposed to /health and /metrics. */
export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  bytes: number;
  capacityBytes: number;
  entries: number;
}

interface Entry<V> {
  value: V;
  bytes: number;
  pins: number;
}

/** Byte-bounded LRU cache of asynchronously loaded values. */
export class ByteLru<V> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #loading = new Map<string, Promise<Entry<V>>>();
  readonly #free: (v: V) => void;
  /** Live counters. */
  readonly stats: CacheStats;

  /**
   * @param capacityBytes budget for unpinned entries
   * @param free called when an entry leaves the cache (frees backend memory)
   */
  constructor(capacityBytes: number, free: (v: V) => void = () => {}) {
    if (!(capacityBytes >= 0)) {
      throw new RangeError(
        `Cannot create cache: capacity must be >= 0 bytes, got ${capacityBytes}`,
      );
    }
    this.#free = free;
    this.stats = { hits: 0, misses: 0, evictions: 0, bytes: 0, capacityBytes, entries: 0 };
  }

  /** Whether `key` is cached (does not load or touch recency). */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** The value for `key`, loading it once if needed; pinned until `release(key)`. */
  async acquire(key: string, load: () => Promise<{ value: V; bytes: number }>): Promise<V> {
    const hit = this.#entries.get(key);
    if (hit) {
      this.stats.hits++;
      hit.pins++;
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return hit.value;
    }
    let pending = this.#loading.get(key);
    if (pending) {
      this.stats.hits++;
    } else {
      this.stats.misses++;
      pending = load().then(({ value, bytes }) => {
        const entry = { value, bytes, pins: 0 };
        this.#entries.set(key, entry);
        this.stats.bytes += bytes;
        this.stats.entries = this.#entries.size;
        return entry;
      }).finally(() => this.#loading.delete(key));
      this.#loading.set(key, pending);
    }
    const entry = await pending;
    entry.pins++;
    this.#evict();
    return entry.value;
  }

  /** Unpin a value acquired earlier; it may be evicted from now on. */
  release(key: string): void {
    const e = this.#entries.get(key);
    if (!e || e.pins === 0) {
      throw new Error(`Cannot release cache entry '${key}': it is not pinned`);
    }
    e.pins--;
    this.#evict();
  }

  #evict(): void {
    if (this.stats.bytes <= this.stats.capacityBytes) return;
    for (const [key, e] of this.#entries) {
      if (this.stats.bytes <= this.stats.capacityBytes) break;
      if (e.pins > 0) continue;
      this.#entries.delete(key);
      this.stats.bytes -= e.bytes;
      this.stats.evictions++;
      this.#free(e.value);
    }
    this.stats.entries = this.#entries.size;
  }

  /** Drop every entry (calling `free`), pinned or not: for shutdown only. */
  clear(): void {
    for (const e of this.#entries.values()) this.#free(e.value);
    this.#entries.clear();
    this.stats.bytes = 0;
    this.stats.entries = 0;
  }
}
