/**
 * Prometheus view of a scheduler: slots in use, queue length, tokens, steps,
 * and decode throughput while busy. Any engine built on `Scheduler` registers
 * these.
 */
import type { MetricsRegistry } from "./metrics.ts";
import type { SchedulerStats } from "./scheduler.ts";

/** Register scheduler metrics read from `stats` at scrape time. */
export function registerSchedulerMetrics(
  registry: MetricsRegistry,
  stats: () => SchedulerStats,
): void {
  registry.gauge("mediator_scheduler_running", "Sequences holding a slot.", () => stats().running);
  registry.gauge(
    "mediator_scheduler_waiting",
    "Requests waiting for a slot.",
    () => stats().waiting,
  );
  registry.gauge(
    "mediator_scheduler_max_batch",
    "Slots (most concurrent sequences).",
    () => stats().maxBatch,
  );
  registry.counter(
    "mediator_scheduler_steps_total",
    "Batched forward steps run.",
    () => stats().steps,
  );
  registry.counter(
    "mediator_scheduler_busy_seconds_total",
    "Seconds spent inside batched steps.",
    () => stats().busySeconds,
  );
  registry.counter(
    "mediator_scheduler_tokens_total",
    "Tokens processed by the scheduler, by kind (prompt, completion).",
    () => {
      const s = stats();
      return [
        { labels: { kind: "prompt" }, value: s.promptTokens },
        { labels: { kind: "completion" }, value: s.completionTokens },
      ];
    },
  );
  registry.gauge(
    "mediator_tokens_per_second",
    "Generated tokens per second of busy time (all sequences together).",
    () => {
      const s = stats();
      return s.busySeconds > 0 ? s.completionTokens / s.busySeconds : 0;
    },
  );
}
