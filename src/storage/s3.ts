/**
 * S3 storage ("s3://bucket/prefix") for AWS and S3-compatible servers:
 * SigV4-signed GET with Range, HEAD, PUT, DELETE, ListObjectsV2, bucket creation.
 */
import { AwsV4Signer } from "aws4fetch";
import { StorageError } from "../errors.ts";
import { commonAdvice, type RemoteRequest, RemoteStorage } from "./remote.ts";
import type { Operation, RefusedAnswer, RetryOptions } from "./retry.ts";
import {
  parseS3Url,
  type ResolvedS3Settings,
  resolveS3Settings,
  type S3Location,
  type S3Settings,
} from "./s3_config.ts";
import { type ListPage, parseListObjectsV2 } from "./s3_xml.ts";
import { checkRelativePath, type WritableStorage } from "./storage.ts";

/** Settings of an S3Storage: endpoint, region, credentials, retries. */
export interface S3StorageOptions extends S3Settings, RetryOptions {}

/** One listed file, relative to the storage's prefix. */
export interface ListedFile {
  /** Storage-relative path. */
  path: string;
  /** Size in bytes. */
  size: number;
}

/** Objects under one bucket and key prefix, read by byte range and written whole. */
export class S3Storage extends RemoteStorage implements WritableStorage {
  /** "s3://bucket/prefix". */
  readonly location: string;
  /** Bucket and key prefix. */
  readonly where: S3Location;
  /** Endpoint, region, credentials and URL style in use. */
  readonly settings: ResolvedS3Settings;

  /**
   * @param url "s3://bucket" or "s3://bucket/prefix"
   * @param options endpoint, region, credentials (else AWS_* variables), retry settings
   */
  constructor(url: string, options: S3StorageOptions = {}) {
    const settings = resolveS3Settings(options);
    super(options, (answer, op) => s3Advice(answer, op, settings));
    this.where = parseS3Url(url);
    this.settings = settings;
    this.location = `s3://${this.where.bucket}${this.where.prefix ? `/${this.where.prefix}` : ""}`;
  }

  /** Object key of a storage-relative path. */
  keyOf(path: string): string {
    return this.where.prefix ? `${this.where.prefix}/${path}` : path;
  }

  /** Unsigned URL of a storage-relative path ("" for the bucket itself). */
  urlOf(path: string): URL {
    const key = path === "" ? "" : this.keyOf(path).split("/").map(encodeURIComponent).join("/");
    const { endpoint, pathStyle } = this.settings;
    const base = new URL(endpoint);
    if (pathStyle) {
      const dir = base.pathname.replace(/\/+$/, "");
      base.pathname = `${dir}/${this.where.bucket}${path === "" ? "" : `/${key}`}`;
    } else {
      base.hostname = `${this.where.bucket}.${base.hostname}`;
      base.pathname = `/${key}`;
    }
    return base;
  }

  /** Write (create or replace) `path`; the body's SHA-256 is signed. */
  async write(path: string, data: Uint8Array): Promise<void> {
    checkRelativePath(path);
    // fetch bodies cannot be views of a SharedArrayBuffer: copy those.
    const body = data.buffer instanceof ArrayBuffer
      ? data as Uint8Array<ArrayBuffer>
      : data.slice();
    const sha = await sha256Hex(body);
    await this.fetcher.run(
      {
        method: "PUT",
        path,
        offset: 0,
        length: data.length,
        doing: `write ${path} (${data.length} bytes) to ${this.location}`,
      },
      [200],
      (signal) =>
        this.send({
          method: "PUT",
          path,
          body,
          headers: { "Content-Type": "application/octet-stream", "X-Amz-Content-Sha256": sha },
        }, signal),
      async (res) => {
        await res.body?.cancel();
        return { value: undefined, bytes: 0 };
      },
    );
  }

  /** Delete `path`; deleting a missing object is not an error. */
  async delete(path: string): Promise<void> {
    checkRelativePath(path);
    await this.#simple("DELETE", path, [200, 204, 404], `delete ${path} from ${this.location}`);
  }

  /**
   * Every file under `prefix` (relative to the storage prefix), across all
   * pages of at most `pageSize` keys (the server's default, 1000, when omitted).
   */
  async list(prefix = "", pageSize?: number): Promise<ListedFile[]> {
    if (pageSize !== undefined && (!Number.isInteger(pageSize) || pageSize < 1)) {
      throw new RangeError(`Cannot list with page size ${pageSize}: it must be a positive integer`);
    }
    if (prefix !== "") checkRelativePath(prefix.replace(/\/$/, ""), "list prefix");
    const keyPrefix = this.where.prefix ? `${this.where.prefix}/${prefix}` : prefix;
    const strip = this.where.prefix ? this.where.prefix.length + 1 : 0;
    const files: ListedFile[] = [];
    let token: string | undefined;
    do {
      const query: Record<string, string> = { "list-type": "2", prefix: keyPrefix };
      if (token) query["continuation-token"] = token;
      if (pageSize) query["max-keys"] = String(pageSize);
      const page: ListPage = await this.fetcher.run(
        { method: "GET", path: "", offset: 0, length: 0, doing: `list ${this.location}/${prefix}` },
        [200],
        (signal) => this.send({ method: "GET", path: "", query }, signal),
        async (res) => {
          const text = await res.text();
          try {
            return { value: parseListObjectsV2(text), bytes: text.length };
          } catch (e) {
            throw new StorageError(
              `Cannot list ${this.location}: ${
                (e as Error).message
              }; check that ${this.settings.endpoint} is an S3 endpoint`,
            );
          }
        },
      );
      for (const o of page.objects) files.push({ path: o.key.slice(strip), size: o.size });
      token = page.nextToken;
    } while (token);
    return files;
  }

  /** Create the bucket; succeeds when it already exists and is owned by these credentials. */
  async createBucket(): Promise<void> {
    const { region } = this.settings;
    const body = region === "us-east-1" ? undefined : new TextEncoder().encode(
      `<CreateBucketConfiguration><LocationConstraint>${region}</LocationConstraint></CreateBucketConfiguration>`,
    );
    await this.fetcher.run(
      {
        method: "PUT",
        path: "",
        offset: 0,
        length: 0,
        doing: `create bucket ${this.where.bucket}`,
      },
      [200],
      (signal) => this.send({ method: "PUT", path: "", body }, signal),
      async (res) => {
        await res.body?.cancel();
        return { value: undefined, bytes: 0 };
      },
    ).catch((e) => {
      if (e instanceof StorageError && e.status === 409 && /OwnedByYou/.test(e.message)) return;
      throw e;
    });
  }

  /** Delete the (empty) bucket; a missing bucket is not an error. */
  async deleteBucket(): Promise<void> {
    await this.#simple("DELETE", "", [200, 204, 404], `delete bucket ${this.where.bucket}`);
  }

  async #simple(method: string, path: string, ok: number[], doing: string): Promise<void> {
    await this.fetcher.run(
      { method, path, offset: 0, length: 0, doing },
      ok,
      (signal) => this.send({ method, path }, signal),
      async (res) => {
        await res.body?.cancel();
        return { value: undefined, bytes: 0 };
      },
    );
  }

  /** @inheritdoc */
  protected async send(req: RemoteRequest, signal: AbortSignal): Promise<Response> {
    const url = this.urlOf(req.path);
    for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
    const body = req.body;
    const creds = this.settings.credentials;
    if (!creds) return await fetch(url, { method: req.method, headers: req.headers, body, signal });
    const signed = await new AwsV4Signer({
      method: req.method,
      url: url.href,
      headers: req.headers,
      body,
      service: "s3",
      region: this.settings.region,
      ...creds,
    }).sign();
    return await fetch(signed.url, {
      method: signed.method,
      headers: signed.headers,
      body,
      signal,
    });
  }
}

function s3Advice(answer: RefusedAnswer, op: Operation, s: ResolvedS3Settings): string {
  const code = answer.detail;
  if (!s.credentials && [400, 401, 403].includes(answer.status)) {
    // AWS answers 403 to unsigned requests; some S3-compatible servers answer 400.
    return "no credentials were given; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
  }
  if (answer.status === 403 || answer.status === 401) {
    if (code === "SignatureDoesNotMatch") return "check AWS_SECRET_ACCESS_KEY";
    if (code === "InvalidAccessKeyId") return "check AWS_ACCESS_KEY_ID";
    return "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's permissions";
  }
  if (code === "NoSuchBucket") return "the bucket does not exist; create it or fix the s3:// URL";
  if (answer.status === 301 || code === "PermanentRedirect") {
    return "the bucket lives in another region; set AWS_REGION";
  }
  return commonAdvice(answer, op);
}

async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
