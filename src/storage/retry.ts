/**
 * Fault handling shared by the remote storages (HTTP(S) and S3): a timeout per
 * request, bounded retries with exponential backoff and jitter on 5xx, 429 and
 * network failures, request/byte counters, and an optional per-request hook.
 */
import { StorageError } from "../errors.ts";

/** One HTTP attempt, reported to `onFetch` whether it succeeded or not. */
export interface FetchEvent {
  /** HTTP method ("GET", "HEAD", "PUT", ...). */
  method: string;
  /** Storage-relative path ("" for bucket-level requests such as listings). */
  path: string;
  /** First byte asked for (0 for whole-file and metadata requests). */
  offset: number;
  /** Bytes asked for; for whole-file reads, bytes received; 0 for metadata requests. */
  length: number;
  /** Milliseconds from sending the request to reading the whole body. */
  ms: number;
  /** HTTP status, or 0 when no answer came (network error or timeout). */
  status: number;
  /** 1 for the first try, 2 for the first retry, ... */
  attempt: number;
  /** Whether this attempt delivered the operation's result. */
  ok: boolean;
}

/** Counters a remote storage keeps for metrics. */
export interface StorageStats {
  /** HTTP requests sent, retries included. */
  requests: number;
  /** Body bytes received by successful requests. */
  bytes: number;
  /** Requests that were repeats of a failed one. */
  retries: number;
  /** Operations that failed for good (thrown to the caller). */
  errors: number;
  /** Latencies of the most recent requests in ms, oldest first (bounded ring). */
  latencyMs: number[];
}

/** Timeout, retry and observation settings of a remote storage. */
export interface RetryOptions {
  /** Attempts per operation, first try included (default 4). */
  attempts?: number;
  /** Timeout per attempt in ms, body included (default 30000). */
  timeoutMs?: number;
  /** First backoff delay in ms; doubles per retry, with jitter (default 100). */
  baseDelayMs?: number;
  /** Largest backoff delay in ms (default 5000). */
  maxDelayMs?: number;
  /** How many latencies `stats.latencyMs` keeps (default 1024). */
  latencyWindow?: number;
  /** Called after every HTTP attempt. */
  onFetch?: (event: FetchEvent) => void;
}

/** What one operation is, for events and error messages. */
export interface Operation {
  /** HTTP method. */
  method: string;
  /** Storage-relative path. */
  path: string;
  /** First byte asked for. */
  offset: number;
  /** Bytes asked for (0 when not a range). */
  length: number;
  /** Phrase completing "Cannot ...", e.g. "read bytes 0-99 of a.bin from s3://b/p". */
  doing: string;
}

/** A server answer that the operation does not accept. */
export interface RefusedAnswer {
  /** HTTP status. */
  status: number;
  /** Status text, e.g. "Forbidden". */
  statusText: string;
  /** Extra detail from the body (an S3 error code), if any. */
  detail?: string;
}

/** Adds "how to fix" advice to a refused answer; returns "" for none. */
export type AdviceFn = (answer: RefusedAnswer, op: Operation) => string;

/** Thrown by an answer handler when the body was wrong in a way worth retrying. */
export class RetryableBodyError extends Error {
  /** @param message what was wrong with the body */
  constructor(message: string) {
    super(message);
    this.name = "RetryableBodyError";
  }
}

/** New zeroed counters. */
export function createStats(): StorageStats {
  return { requests: 0, bytes: 0, retries: 0, errors: 0, latencyMs: [] };
}

/** Whether a status is worth retrying: 5xx and 429 (too many requests). */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429;
}

/** Backoff before retry `retry` (1-based): base * 2^(retry-1), capped, times a jitter in [0.5, 1). */
export function backoffDelayMs(retry: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (retry - 1));
  return ceiling * (0.5 + Math.random() / 2);
}

/**
 * Runs HTTP operations with a per-attempt timeout and bounded retries, and keeps
 * `stats`. `send` makes one request (it must pass the signal to `fetch`);
 * `accept` turns an acceptable response into the result, reading its body.
 */
export class RetryingFetcher {
  /** Counters for metrics. */
  readonly stats: StorageStats = createStats();
  readonly #attempts: number;
  readonly #timeoutMs: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #window: number;
  readonly #onFetch?: (event: FetchEvent) => void;
  readonly #advice: AdviceFn;

  /**
   * @param options timeout and retry settings
   * @param advice adds a fix hint to refused answers (e.g. which credential to check)
   */
  constructor(options: RetryOptions = {}, advice: AdviceFn = () => "") {
    this.#attempts = positiveInt(options.attempts ?? 4, "attempts");
    this.#timeoutMs = positiveInt(options.timeoutMs ?? 30_000, "timeoutMs");
    this.#baseDelayMs = Math.max(0, options.baseDelayMs ?? 100);
    this.#maxDelayMs = Math.max(0, options.maxDelayMs ?? 5_000);
    this.#window = positiveInt(options.latencyWindow ?? 1024, "latencyWindow");
    this.#onFetch = options.onFetch;
    this.#advice = advice;
  }

  /**
   * Run one operation. Statuses in `okStatuses` go to `accept`; 5xx, 429,
   * network errors, timeouts and `RetryableBodyError`s are retried; any other
   * status ends the operation with a StorageError carrying that status.
   */
  async run<T>(
    op: Operation,
    okStatuses: readonly number[],
    send: (signal: AbortSignal) => Promise<Response>,
    accept: (res: Response) => Promise<{ value: T; bytes: number }>,
  ): Promise<T> {
    let lastProblem = "";
    let lastStatus: number | undefined;
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      if (attempt > 1) {
        this.stats.retries++;
        await sleep(backoffDelayMs(attempt - 1, this.#baseDelayMs, this.#maxDelayMs));
      }
      this.stats.requests++;
      const start = performance.now();
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(timeoutError(this.#timeoutMs)), this.#timeoutMs);
      let status = 0;
      try {
        const res = await send(abort.signal);
        status = res.status;
        if (okStatuses.includes(res.status)) {
          const { value, bytes } = await accept(res);
          this.stats.bytes += bytes;
          this.#record(op, attempt, start, status, op.length || bytes, true);
          return value;
        }
        const answer: RefusedAnswer = {
          status: res.status,
          statusText: res.statusText,
          detail: await errorDetail(res),
        };
        this.#record(op, attempt, start, status, op.length, false);
        const problem = `server answered ${describeAnswer(answer)}`;
        if (!isRetryableStatus(res.status)) {
          const advice = this.#advice(answer, op);
          throw new StorageError(
            `Cannot ${op.doing}: ${problem}${advice ? `; ${advice}` : ""}`,
            res.status,
          );
        }
        lastStatus = res.status;
        lastProblem = problem;
      } catch (e) {
        const retryable = !(e instanceof StorageError) &&
          (status === 0 || e instanceof RetryableBodyError || isNetworkError(e));
        if (!retryable) {
          this.stats.errors++;
          throw e;
        }
        this.#record(op, attempt, start, status, op.length, false);
        lastStatus = undefined;
        lastProblem = describeFailure(e, this.#timeoutMs);
      } finally {
        clearTimeout(timer);
      }
    }
    this.stats.errors++;
    const fix = lastStatus === undefined
      ? "check that the server is reachable, or raise timeoutMs/attempts"
      : "the server is failing or overloaded; try again later";
    throw new StorageError(
      `Cannot ${op.doing}: ${lastProblem} (after ${plural(this.#attempts, "attempt")}); ${fix}`,
      lastStatus,
    );
  }

  #record(
    op: Operation,
    attempt: number,
    start: number,
    status: number,
    length: number,
    ok: boolean,
  ): void {
    const ms = performance.now() - start;
    const lat = this.stats.latencyMs;
    lat.push(ms);
    if (lat.length > this.#window) lat.splice(0, lat.length - this.#window);
    this.#onFetch?.({
      method: op.method,
      path: op.path,
      offset: op.offset,
      length,
      ms,
      status,
      attempt,
      ok,
    });
  }
}

/** "403 Forbidden (SignatureDoesNotMatch)". */
export function describeAnswer(answer: RefusedAnswer): string {
  const text = answer.statusText ? ` ${answer.statusText}` : "";
  return `${answer.status}${text}${answer.detail ? ` (${answer.detail})` : ""}`;
}

function timeoutError(ms: number): DOMException {
  return new DOMException(`no answer within ${ms} ms`, "TimeoutError");
}

function describeFailure(e: unknown, timeoutMs: number): string {
  if (e instanceof DOMException && (e.name === "TimeoutError" || e.name === "AbortError")) {
    return `no complete answer within ${timeoutMs} ms`;
  }
  if (e instanceof RetryableBodyError) return e.message;
  const msg = e instanceof Error ? e.message : String(e);
  return `the connection failed (${msg})`;
}

function isNetworkError(e: unknown): boolean {
  // fetch rejects with TypeError on network failures; body reads may throw other
  // errors when the connection drops mid-stream.
  return e instanceof TypeError || e instanceof DOMException ||
    (e instanceof Error && /connection|reset|closed|broken pipe|eof/i.test(e.message));
}

/** Reads (a bounded prefix of) an error body and returns an S3-style <Code>, if any. */
async function errorDetail(res: Response): Promise<string | undefined> {
  if (!res.body) return undefined;
  try {
    const text = (await res.text()).slice(0, 4096);
    const code = /<Code>([^<]{1,100})<\/Code>/.exec(text);
    return code ? code[1] : undefined;
  } catch {
    return undefined;
  }
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Cannot use ${name} ${value}: it must be a positive integer`);
  }
  return value;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
