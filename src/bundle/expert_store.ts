/**
 * Lazily fetched sparse experts. A (unit, expert) block is fetched with one
 * Range request from the bundle's storage, verified against its sha256,
 * decoded, uploaded to the backend, and kept in a byte-bounded LRU cache;
 * concurrent requests for the same block share one fetch, and blocks in use by
 * a running request are pinned so eviction never frees them underneath it.
 */
import type { Backend, SparseWeight } from "../backends/backend.ts";
import { BundleFormatError, StorageError } from "../errors.ts";
import { decodeSparse } from "../merge/sparse_codec.ts";
import type { Projection } from "../model/weights.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { ByteLru, type CacheStats } from "./lru.ts";
import type { BundleManifest, SparseBlockEntry } from "./manifest.ts";
import { readVerified } from "./reader.ts";

/** The sparse tensors of one routed unit of one expert, by layer and projection. */
export interface UnitSparse {
  layer: number;
  tensors: { proj: Projection; sparse: SparseWeight }[];
  /** Backend bytes held (CSR arrays). */
  bytes: number;
}

const PROJ_RE = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj\.weight$/;

/** Layer and projection of a block tensor name. */
export function parseProjection(name: string): { layer: number; proj: Projection } {
  const m = PROJ_RE.exec(name);
  if (!m) {
    throw new BundleFormatError(
      `Cannot load sparse tensor '${name}': only block projection matrices can be sparse experts`,
    );
  }
  return { layer: Number(m[1]), proj: m[2] as Projection };
}

/** Counters of storage fetches for /metrics. */
export interface FetchStats {
  fetches: number;
  bytes: number;
  /** Recent fetch latencies in ms (bounded). */
  latencyMs: number[];
  failures: number;
}

/** One finished block fetch, reported to `ExpertStore.onFetch`. */
export interface ExpertFetch {
  expert: string;
  unit: string;
  /** Bytes of the block (asked for, whether they arrived or not). */
  bytes: number;
  /** Milliseconds from asking to holding verified bytes (or to the failure). */
  ms: number;
  /** Whether verified bytes arrived. */
  ok: boolean;
}

/** Lazily loads and caches sparse expert blocks. */
export class ExpertStore {
  readonly #blocks = new Map<string, { file: string; block: SparseBlockEntry }>();
  readonly #lru: ByteLru<UnitSparse>;
  /** Fetch counters. */
  readonly fetchStats: FetchStats = { fetches: 0, bytes: 0, latencyMs: [], failures: 0 };
  /** Called after every block fetch, successful or not (metrics histograms). */
  onFetch?: (fetch: ExpertFetch) => void;

  /**
   * @param storage where the bundle lives
   * @param manifest its validated manifest
   * @param backend where sparse tensors are uploaded
   * @param cacheBytes LRU budget for uploaded experts
   */
  constructor(
    readonly storage: ByteStorage,
    manifest: BundleManifest,
    readonly backend: Backend,
    cacheBytes: number,
  ) {
    for (const e of manifest.experts) {
      for (const b of e.blocks) this.#blocks.set(key(e.name, b.unit), { file: e.file, block: b });
    }
    this.#lru = new ByteLru<UnitSparse>(cacheBytes, (u) => {
      for (const t of u.tensors) backend.free(t.sparse);
    });
  }

  /** Cache counters (hits, misses, evictions, bytes). */
  get cacheStats(): CacheStats {
    return this.#lru.stats;
  }

  /** Whether the block is in the cache. */
  isCached(expert: string, unit: string): boolean {
    return this.#lru.has(key(expert, unit));
  }

  /** The sparse tensors of (expert, unit), fetched if needed, pinned until `release`. */
  acquire(expert: string, unit: string): Promise<UnitSparse> {
    const k = key(expert, unit);
    const entry = this.#blocks.get(k);
    if (!entry) {
      throw new BundleFormatError(
        `Cannot load expert '${expert}' unit ${unit}: the bundle has no such block`,
      );
    }
    return this.#lru.acquire(k, () => this.#load(expert, entry.file, entry.block));
  }

  /** Unpin a block acquired earlier. */
  release(expert: string, unit: string): void {
    this.#lru.release(key(expert, unit));
  }

  async #load(expert: string, file: string, block: SparseBlockEntry) {
    const t0 = performance.now();
    let bytes: Uint8Array;
    try {
      bytes = await readVerified(
        this.storage,
        file,
        block.offset,
        block.length,
        block.sha256,
        `expert '${expert}' unit ${block.unit}`,
      );
    } catch (e) {
      this.fetchStats.failures++;
      this.onFetch?.({
        expert,
        unit: block.unit,
        bytes: block.length,
        ms: performance.now() - t0,
        ok: false,
      });
      if (!(e instanceof StorageError)) throw e;
      // Storage messages name the file and range; say which expert and unit they belong to.
      throw new StorageError(
        `Cannot load expert '${expert}' unit ${block.unit}: ${lowerFirst(e.message)}`,
        e.status,
        { cause: e },
      );
    }
    const ms = performance.now() - t0;
    this.onFetch?.({ expert, unit: block.unit, bytes: bytes.byteLength, ms, ok: true });
    this.fetchStats.fetches++;
    this.fetchStats.bytes += bytes.byteLength;
    this.fetchStats.latencyMs.push(ms);
    if (this.fetchStats.latencyMs.length > 1024) this.fetchStats.latencyMs.shift();
    let layer = -1, held = 0;
    const tensors = block.tensors.map((t) => {
      const p = parseProjection(t.name);
      if (layer >= 0 && p.layer !== layer) {
        throw new BundleFormatError(
          `Cannot load expert '${expert}' unit ${block.unit}: tensors of several layers`,
        );
      }
      layer = p.layer;
      const data = decodeSparse(
        bytes.subarray(t.offset, t.offset + t.length),
        `${t.name} of expert '${expert}'`,
      );
      if (data.rows !== t.shape[0] || data.cols !== t.shape[1]) {
        throw new BundleFormatError(
          `Cannot load expert '${expert}' tensor ${t.name}: decoded shape [${data.rows}, ${data.cols}] differs from the manifest's [${t.shape}]`,
        );
      }
      held += data.values.byteLength + data.colIdx.byteLength + data.rowPtr.byteLength;
      return { proj: p.proj, sparse: this.backend.uploadSparse(data) };
    });
    return { value: { layer, tensors, bytes: held }, bytes: held };
  }

  /** Free every cached block (shutdown). */
  dispose(): void {
    this.#lru.clear();
  }
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

function key(expert: string, unit: string): string {
  return `${expert}\u0000${unit}`;
}
