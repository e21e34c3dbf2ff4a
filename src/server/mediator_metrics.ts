/**
 * Prometheus view of a Mediator bundle engine: the expert cache (hits,
 * misses, evictions, bytes), expert block fetches (count, bytes, failures,
 * latency histogram), the storage's own request counters when it is remote
 * (HTTP(S), S3), and dense fallbacks. Routes by expert are counted by the
 * HTTP layer (`mediator_route_total`).
 */
import type { MediatorModel } from "../bundle/mediator_model.ts";
import type { StorageStats } from "../storage/retry.ts";
import type { MetricsRegistry } from "./metrics.ts";

const FETCH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What the metrics read: the bundle and the engine's fallback count. */
export interface MediatorMetricsSource {
  readonly bundle: MediatorModel;
  readonly fallbacks: number;
}

/** The request counters of a remote storage, or undefined for a local folder. */
export function storageStats(storage: unknown): StorageStats | undefined {
  const stats = (storage as { stats?: StorageStats }).stats;
  return stats && typeof stats.requests === "number" ? stats : undefined;
}

/** Register the bundle engine's metrics in `registry`. */
export function registerMediatorMetrics(
  registry: MetricsRegistry,
  source: MediatorMetricsSource,
): void {
  const experts = source.bundle.experts;
  const cache = () => experts.cacheStats;
  registry.counter(
    "mediator_expert_cache_hits_total",
    "Expert block requests served from the cache (or joining a fetch in flight).",
    () => cache().hits,
  );
  registry.counter(
    "mediator_expert_cache_misses_total",
    "Expert block requests that started a fetch.",
    () => cache().misses,
  );
  registry.counter(
    "mediator_expert_cache_evictions_total",
    "Expert blocks evicted from the cache.",
    () => cache().evictions,
  );
  registry.gauge(
    "mediator_expert_cache_bytes",
    "Backend bytes held by cached expert blocks.",
    () => cache().bytes,
  );
  registry.gauge(
    "mediator_expert_cache_capacity_bytes",
    "Byte budget of the expert cache.",
    () => cache().capacityBytes,
  );
  registry.gauge(
    "mediator_expert_cache_entries",
    "Expert blocks in the cache.",
    () => cache().entries,
  );
  registry.counter(
    "mediator_expert_fetches_total",
    "Expert blocks fetched and verified.",
    () => experts.fetchStats.fetches,
  );
  registry.counter(
    "mediator_expert_fetch_bytes_total",
    "Bytes of expert blocks fetched and verified.",
    () => experts.fetchStats.bytes,
  );
  registry.counter(
    "mediator_expert_fetch_failures_total",
    "Expert block fetches that failed (storage error or sha256 mismatch).",
    () => experts.fetchStats.failures,
  );
  const latency = registry.histogram(
    "mediator_expert_fetch_seconds",
    "Seconds to fetch and verify one expert block, by outcome.",
    FETCH_BUCKETS,
  );
  // Fetches before registration (normally none: the app registers at start-up) are replayed.
  for (const ms of experts.fetchStats.latencyMs) latency.observe(ms / 1000, { outcome: "ok" });
  const previous = experts.onFetch;
  experts.onFetch = (f) => {
    previous?.(f);
    latency.observe(f.ms / 1000, { outcome: f.ok ? "ok" : "error" });
  };
  registry.counter(
    "mediator_route_fallbacks_total",
    "Requests served by the dense expert because their experts could not be loaded.",
    () => source.fallbacks,
  );
  const stats = storageStats(source.bundle.storage);
  if (!stats) return;
  registry.counter(
    "mediator_storage_requests_total",
    "HTTP requests sent to the bundle's storage, retries included.",
    () => stats.requests,
  );
  registry.counter(
    "mediator_storage_bytes_total",
    "Body bytes received from the bundle's storage.",
    () => stats.bytes,
  );
  registry.counter(
    "mediator_storage_retries_total",
    "Storage requests that repeated a failed one.",
    () => stats.retries,
  );
  registry.counter(
    "mediator_storage_errors_total",
    "Storage operations that failed for good.",
    () => stats.errors,
  );
  registry.gauge(
    "mediator_storage_latency_seconds",
    "Latency of recent storage requests (bounded window), by quantile.",
    () =>
      [0.5, 0.99].map((q) => ({
        labels: { quantile: String(q) },
        value: quantile(stats.latencyMs, q) / 1000,
      })),
  );
}

/** The q-quantile (nearest rank) of `xs`; NaN when empty. */
function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
