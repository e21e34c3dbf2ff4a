/** Read-only storage over HTTP(S): files under a base URL, read by byte range. */
import { commonAdvice, type RemoteRequest, RemoteStorage } from "./remote.ts";
import type { Operation, RefusedAnswer, RetryOptions } from "./retry.ts";

/** Settings of an HttpStorage. */
export interface HttpStorageOptions extends RetryOptions {
  /** Headers sent with every request (e.g. Authorization). */
  headers?: Record<string, string>;
}

/**
 * Files under a base URL such as "https://host/models/bundle": `read` sends
 * `Range: bytes=a-b` and checks the 206 answer; `size` uses HEAD.
 */
export class HttpStorage extends RemoteStorage {
  /** The base URL, without a trailing slash. */
  readonly location: string;
  readonly #base: URL;
  readonly #headers: Record<string, string>;

  /**
   * @param baseUrl an http:// or https:// URL of the folder holding the files
   * @param options headers, timeout, retry and observation settings
   */
  constructor(baseUrl: string | URL, options: HttpStorageOptions = {}) {
    super(options, httpAdvice);
    const url = new URL(baseUrl);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(
        `Cannot use ${url.href} as HTTP storage: the URL must start with http:// or https://`,
      );
    }
    if (url.search || url.hash) {
      throw new TypeError(
        `Cannot use ${url.href} as HTTP storage: a base URL with a query or fragment is not supported`,
      );
    }
    url.pathname = url.pathname.replace(/\/*$/, "/");
    this.#base = url;
    this.location = url.href.replace(/\/$/, "");
    this.#headers = { ...options.headers };
  }

  /** The URL of a storage-relative path (each segment percent-encoded). */
  urlOf(path: string): URL {
    const encoded = path.split("/").map(encodeURIComponent).join("/");
    return new URL(encoded, this.#base);
  }

  /** @inheritdoc */
  protected send(req: RemoteRequest, signal: AbortSignal): Promise<Response> {
    const url = this.urlOf(req.path);
    for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
    return fetch(url, {
      method: req.method,
      headers: { ...this.#headers, ...req.headers },
      body: req.body,
      signal,
    });
  }
}

function httpAdvice(answer: RefusedAnswer, op: Operation): string {
  if (answer.status === 401 || answer.status === 403) {
    return "the server refused access; pass the needed Authorization header in the storage options";
  }
  return commonAdvice(answer, op);
}
