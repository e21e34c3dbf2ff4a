/**
 * The read side shared by HTTP(S) and S3 storage: size by HEAD (or a 1-byte
 * range), byte ranges by `Range: bytes=a-b` with the answer checked, whole
 * files, existence. Subclasses say how to build and sign one request.
 */
import { StorageError } from "../errors.ts";
import {
  type AdviceFn,
  type Operation,
  type RefusedAnswer,
  RetryableBodyError,
  RetryingFetcher,
  type RetryOptions,
  type StorageStats,
} from "./retry.ts";
import { type ByteStorage, checkRelativePath } from "./storage.ts";

/** The request a remote storage sends for one attempt. */
export interface RemoteRequest {
  /** HTTP method. */
  method: string;
  /** Storage-relative path, already checked ("" for the root). */
  path: string;
  /** Extra headers (Range, Content-Type, ...). */
  headers?: Record<string, string>;
  /** Request body. */
  body?: Uint8Array<ArrayBuffer>;
  /** Query parameters. */
  query?: Record<string, string>;
}

/** Base class of the remote storages; owns retries and statistics. */
export abstract class RemoteStorage implements ByteStorage {
  /** Human-readable location ("https://host/dir", "s3://bucket/prefix"). */
  abstract readonly location: string;
  /** Runs requests with timeout and retries; holds `stats`. */
  protected readonly fetcher: RetryingFetcher;

  /**
   * @param options timeout, retry and observation settings
   * @param advice adds a fix hint to refused answers
   */
  constructor(options: RetryOptions, advice: AdviceFn) {
    this.fetcher = new RetryingFetcher(options, advice);
  }

  /** Request, byte, retry and error counters and recent latencies. */
  get stats(): StorageStats {
    return this.fetcher.stats;
  }

  /** Send one attempt of `req`; implementations must pass `signal` to fetch. */
  protected abstract send(req: RemoteRequest, signal: AbortSignal): Promise<Response>;

  /** Size from HEAD's Content-Length, else from the Content-Range of a 1-byte range. */
  async size(path: string): Promise<number> {
    checkRelativePath(path);
    const op = this.#op("HEAD", path, 0, 0, `find the size of ${path} in ${this.location}`);
    const head = await this.fetcher.run(
      op,
      [200, 405, 501],
      (signal) => this.send({ method: "HEAD", path }, signal),
      (res) => Promise.resolve({ value: res.status === 200 ? contentLength(res) : null, bytes: 0 }),
    );
    if (head !== null) return head;
    return await this.fetcher.run(
      { ...op, method: "GET", length: 1 },
      [200, 206, 416],
      (signal) => this.send({ method: "GET", path, headers: { Range: "bytes=0-0" } }, signal),
      async (res) => {
        const total = res.status === 200 ? contentLength(res) : totalFromContentRange(res);
        if (total === null) {
          if (res.status !== 200) throw badAnswer(op, "its Content-Range has no total size");
          const body = await bodyBytes(res);
          return { value: body.length, bytes: body.length };
        }
        await res.body?.cancel();
        return { value: total, bytes: 0 };
      },
    );
  }

  /** Whether `path` exists (HEAD: 200 yes, 404 no, anything else an error). */
  async exists(path: string): Promise<boolean> {
    checkRelativePath(path);
    const op = this.#op("HEAD", path, 0, 0, `check whether ${path} exists in ${this.location}`);
    return await this.fetcher.run(
      op,
      [200, 404],
      (signal) => this.send({ method: "HEAD", path }, signal),
      async (res) => {
        await res.body?.cancel();
        return { value: res.status === 200, bytes: 0 };
      },
    );
  }

  /** Bytes [offset, offset + length) by one Range request; checks the answer's range and length. */
  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    checkRelativePath(path);
    checkRange(offset, length);
    if (length === 0) return new Uint8Array(0);
    const last = offset + length - 1;
    const op = this.#op(
      "GET",
      path,
      offset,
      length,
      `read bytes ${offset}-${last} of ${path} from ${this.location}`,
    );
    return await this.fetcher.run(
      op,
      [200, 206],
      (signal) =>
        this.send({ method: "GET", path, headers: { Range: `bytes=${offset}-${last}` } }, signal),
      async (res) => {
        const data = res.status === 206 ? await takePartial(res, op) : await takeFromWhole(res, op);
        return { value: data, bytes: data.length };
      },
    );
  }

  /** The whole file; checks the body against Content-Length. */
  async readAll(path: string): Promise<Uint8Array> {
    checkRelativePath(path);
    const op = this.#op("GET", path, 0, 0, `read ${path} from ${this.location}`);
    return await this.fetcher.run(
      op,
      [200],
      (signal) => this.send({ method: "GET", path }, signal),
      async (res) => {
        const expected = contentLength(res);
        const body = await bodyBytes(res);
        if (expected !== null && body.length !== expected) {
          throw new RetryableBodyError(
            `the body had ${body.length} bytes where Content-Length said ${expected}`,
          );
        }
        return { value: body, bytes: body.length };
      },
    );
  }

  /** Build an operation description for `fetcher.run`. */
  #op(method: string, path: string, offset: number, length: number, doing: string): Operation {
    return { method, path, offset, length, doing };
  }
}

/** Advice shared by all remote storages for statuses that mean the same everywhere. */
export function commonAdvice(answer: RefusedAnswer, op: Operation): string {
  switch (answer.status) {
    case 404:
      return op.path ? "no such file; check the path and that the file was uploaded" : "";
    case 416:
      return "the range lies beyond the end of the file; the file may be truncated";
    default:
      return "";
  }
}

/** Throw RangeError unless offset and length are non-negative safe integers. */
function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`Cannot read at offset ${offset}: it must be a non-negative integer`);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Cannot read ${length} bytes: the length must be a non-negative integer`);
  }
}

function contentLength(res: Response): number | null {
  const v = res.headers.get("content-length");
  if (v === null || !/^\d+$/.test(v.trim())) return null;
  return Number(v.trim());
}

/** "bytes 0-0/1234" -> 1234; "bytes *\/1234" -> 1234; null when absent or "*". */
function totalFromContentRange(res: Response): number | null {
  const m = /\/(\d+)\s*$/.exec(res.headers.get("content-range") ?? "");
  return m ? Number(m[1]) : null;
}

function badAnswer(op: Operation, why: string): StorageError {
  return new StorageError(`Cannot ${op.doing}: ${why}; the server does not follow HTTP ranges`);
}

async function bodyBytes(res: Response): Promise<Uint8Array> {
  return new Uint8Array(await res.arrayBuffer());
}

/** A 206 answer: the Content-Range must start at the offset and the body must have the length. */
async function takePartial(res: Response, op: Operation): Promise<Uint8Array> {
  const range = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)/.exec(res.headers.get("content-range") ?? "");
  if (range && Number(range[1]) !== op.offset) {
    await res.body?.cancel();
    throw badAnswer(op, `it answered with ${res.headers.get("content-range")}`);
  }
  const body = await bodyBytes(res);
  if (body.length === op.length) return body;
  const total = range && range[3] !== "*" ? Number(range[3]) : null;
  if (body.length < op.length && total !== null && op.offset + body.length >= total) {
    throw new StorageError(
      `Cannot ${op.doing}: the file ends after ${total} bytes (truncated?)`,
      416,
    );
  }
  throw new RetryableBodyError(
    `the answer had ${body.length} bytes where ${op.length} were asked for`,
  );
}

/**
 * A 200 answer to a Range request (the server ignored Range): read the stream
 * only up to the end of the range, cancel the rest, and slice.
 */
async function takeFromWhole(res: Response, op: Operation): Promise<Uint8Array> {
  const end = op.offset + op.length;
  const declared = contentLength(res);
  if (declared !== null && declared < end) {
    await res.body?.cancel();
    throw new StorageError(
      `Cannot ${op.doing}: the file ends after ${declared} bytes (truncated?)`,
      416,
    );
  }
  const out = new Uint8Array(op.length);
  let pos = 0; // bytes of the whole file seen so far
  const reader = res.body!.getReader();
  try {
    while (pos < end) {
      const { value, done } = await reader.read();
      if (done) break;
      const from = Math.max(0, op.offset - pos);
      const to = Math.min(value.length, end - pos);
      if (from < to) out.set(value.subarray(from, to), pos + from - op.offset);
      pos += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (pos < end) {
    if (declared === null) {
      throw new StorageError(
        `Cannot ${op.doing}: the file ends after ${pos} bytes (truncated?)`,
        416,
      );
    }
    throw new RetryableBodyError(`the answer ended after ${pos} of ${declared} bytes`);
  }
  return out;
}
