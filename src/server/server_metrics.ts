/**
 * The HTTP layer's metrics: requests by path and status, prompt and
 * completion tokens, time to first token, request duration, and routes by
 * expert. Engine metrics (scheduler, caches, storage) are registered by the
 * engine into the same registry.
 */
import type { GenerationResult, RouteInfo } from "./engine.ts";
import type { Counter, Histogram, MetricsRegistry } from "./metrics.ts";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Metrics recorded by the HTTP handlers. */
export class ServerMetrics {
  readonly requests: Counter;
  readonly promptTokens: Counter;
  readonly completionTokens: Counter;
  readonly finished: Counter;
  readonly routes: Counter;
  readonly timeToFirstToken: Histogram;
  readonly duration: Histogram;
  readonly uncertainty: Histogram;

  /** @param registry where the metrics are registered */
  constructor(readonly registry: MetricsRegistry) {
    this.requests = registry.counter(
      "mediator_http_requests_total",
      "HTTP requests by path and status code.",
    );
    this.promptTokens = registry.counter(
      "mediator_prompt_tokens_total",
      "Prompt tokens of finished requests.",
    );
    this.completionTokens = registry.counter(
      "mediator_completion_tokens_total",
      "Generated tokens of finished requests.",
    );
    this.finished = registry.counter(
      "mediator_requests_finished_total",
      "Generation requests by finish reason (stop, length, cancelled, error).",
    );
    this.routes = registry.counter(
      "mediator_route_total",
      "Requests routed to each expert ('dense' when no expert ran), by forced or routed.",
    );
    this.timeToFirstToken = registry.histogram(
      "mediator_time_to_first_token_seconds",
      "Seconds from submission to the first generated token.",
      LATENCY_BUCKETS,
    );
    this.duration = registry.histogram(
      "mediator_request_duration_seconds",
      "Seconds from submission to the end of generation.",
      LATENCY_BUCKETS,
    );
    this.uncertainty = registry.histogram(
      "mediator_route_uncertainty",
      "Router uncertainty u (normalised entropy) per routed request.",
      [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1],
    );
  }

  /** Count a route once it is chosen. */
  routeChosen(route: RouteInfo): void {
    const how = route.forced ? "forced" : "routed";
    if (route.experts.length === 0) this.routes.inc({ expert: "dense", how });
    for (const expert of route.experts) this.routes.inc({ expert, how });
    if (!route.forced && route.experts.length > 0) this.uncertainty.observe(route.uncertainty);
  }

  /** Record a finished generation. */
  generationFinished(result: GenerationResult): void {
    this.finished.inc({ reason: result.finishReason });
    this.promptTokens.inc({}, result.usage.promptTokens);
    this.completionTokens.inc({}, result.usage.completionTokens);
    if (result.timeToFirstTokenMs !== undefined) {
      this.timeToFirstToken.observe(result.timeToFirstTokenMs / 1000);
    }
    this.duration.observe(result.totalMs / 1000);
  }

  /** Record a generation that failed after submission. */
  generationFailed(): void {
    this.finished.inc({ reason: "error" });
  }
}
