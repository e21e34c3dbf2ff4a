/**
 * A small Prometheus registry: counters, gauges (set or computed at scrape
 * time) and histograms, with labels, rendered in the text exposition format
 * (version 0.0.4) for GET /metrics. The HTTP layer and engines register their
 * own metrics in one registry.
 */

/** Label names to values. */
export type Labels = Record<string, string>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${esc(labels[k])}"`).join(",")}}`;
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  lines(): string[];
}

/** Series computed at scrape time: one unlabelled value or labelled values. */
export type Collect = () => number | { labels: Labels; value: number }[];

function collected(name: string, collect: Collect | undefined): string[] {
  const c = collect?.();
  if (c === undefined) return [];
  if (typeof c === "number") return [`${name} ${num(c)}`];
  return c.map((s) => `${name}${labelKey(s.labels)} ${num(s.value)}`);
}

/** A monotonically increasing count per label set (kept here, or read from its owner). */
export class Counter implements Metric {
  readonly type = "counter";
  readonly #values = new Map<string, number>();
  /**
   * @param name metric name
   * @param help one-line description
   * @param collect optional function returning the count(s) at scrape time
   */
  constructor(readonly name: string, readonly help: string, readonly collect?: Collect) {}

  /** Add `by` (default 1, must be >= 0) to the series of `labels`. */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`Cannot increment counter ${this.name} by ${by}`);
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }

  /** Current value of a series (0 when never incremented). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }

  /** Exposition lines. */
  lines(): string[] {
    const out = [...this.#values].map(([k, v]) => `${this.name}${k} ${num(v)}`);
    return out.concat(collected(this.name, this.collect));
  }
}

/** A value that goes up and down: set directly, or computed at scrape time. */
export class Gauge implements Metric {
  readonly type = "gauge";
  readonly #values = new Map<string, number>();
  /**
   * @param name metric name
   * @param help one-line description
   * @param collect optional function returning the series at scrape time
   */
  constructor(readonly name: string, readonly help: string, readonly collect?: Collect) {}

  /** Set the series of `labels`. */
  set(value: number, labels: Labels = {}): void {
    this.#values.set(labelKey(labels), value);
  }

  /** Exposition lines. */
  lines(): string[] {
    const out = [...this.#values].map(([k, v]) => `${this.name}${k} ${num(v)}`);
    return out.concat(collected(this.name, this.collect));
  }
}

/** Observations counted into cumulative buckets, with sum and count. */
export class Histogram implements Metric {
  readonly type = "histogram";
  readonly #series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; n: number }
  >();
  readonly buckets: readonly number[];
  /**
   * @param name metric name
   * @param help one-line description
   * @param buckets upper bounds, ascending (+Inf is implied)
   */
  constructor(readonly name: string, readonly help: string, buckets: readonly number[]) {
    if (buckets.some((b, i) => i > 0 && b <= buckets[i - 1])) {
      throw new RangeError(`Cannot create histogram ${name}: buckets must ascend`);
    }
    this.buckets = buckets;
  }

  /** Record one observation. */
  observe(value: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.#series.get(k);
    if (!s) this.#series.set(k, s = { labels, counts: this.buckets.map(() => 0), sum: 0, n: 0 });
    this.buckets.forEach((b, i) => {
      if (value <= b) s!.counts[i]++;
    });
    s.sum += value;
    s.n++;
  }

  /** Exposition lines. */
  lines(): string[] {
    const out: string[] = [];
    for (const s of this.#series.values()) {
      this.buckets.forEach((b, i) => {
        out.push(`${this.name}_bucket${labelKey({ ...s.labels, le: num(b) })} ${s.counts[i]}`);
      });
      out.push(`${this.name}_bucket${labelKey({ ...s.labels, le: "+Inf" })} ${s.n}`);
      out.push(`${this.name}_sum${labelKey(s.labels)} ${num(s.sum)}`);
      out.push(`${this.name}_count${labelKey(s.labels)} ${s.n}`);
    }
    return out;
  }
}

/** All metrics of one server. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();

  #add<M extends Metric>(metric: M): M {
    if (!NAME.test(metric.name)) {
      throw new TypeError(`Cannot register metric '${metric.name}': invalid Prometheus name`);
    }
    if (this.#metrics.has(metric.name)) {
      throw new TypeError(`Cannot register metric '${metric.name}': the name is already taken`);
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  /** Register a counter, optionally read from its owner at scrape time by `collect`. */
  counter(name: string, help: string, collect?: Collect): Counter {
    return this.#add(new Counter(name, help, collect));
  }

  /** Register a gauge, optionally computed at scrape time by `collect`. */
  gauge(name: string, help: string, collect?: Collect): Gauge {
    return this.#add(new Gauge(name, help, collect));
  }

  /** Register a histogram with the given bucket upper bounds. */
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.#add(new Histogram(name, help, buckets));
  }

  /** The Prometheus text exposition of every metric. */
  render(): string {
    const out: string[] = [];
    for (const m of this.#metrics.values()) {
      out.push(`# HELP ${m.name} ${m.help.replace(/\n/g, " ")}`, `# TYPE ${m.name} ${m.type}`);
      out.push(...m.lines());
    }
    return out.join("\n") + "\n";
  }
}
