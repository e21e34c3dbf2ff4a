/**
 * S3 settings: parsing "s3://bucket/prefix", and endpoint, region and
 * credentials from explicit options or the usual AWS environment variables.
 */

/** Explicit S3 settings; each one falls back to its environment variable. */
export interface S3Settings {
  /** Endpoint of an S3-compatible server, e.g. "http://127.0.0.1:18080" (AWS_ENDPOINT_URL, S3_ENDPOINT). */
  endpoint?: string;
  /** Signing region (AWS_REGION, AWS_DEFAULT_REGION; default "us-east-1"). */
  region?: string;
  /** Access key id (AWS_ACCESS_KEY_ID); requests go unsigned without one. */
  accessKeyId?: string;
  /** Secret access key (AWS_SECRET_ACCESS_KEY). */
  secretAccessKey?: string;
  /** Session token of temporary credentials (AWS_SESSION_TOKEN). */
  sessionToken?: string;
  /** Path-style URLs (endpoint/bucket/key); default true with a custom endpoint. */
  pathStyle?: boolean;
  /** Reads an environment variable; defaults to Deno.env.get (undefined without permission). */
  env?: (name: string) => string | undefined;
}

/** Settings after defaults and environment variables are applied. */
export interface ResolvedS3Settings {
  /** Endpoint URL without a trailing slash. */
  endpoint: string;
  /** Signing region. */
  region: string;
  /** Credentials, or undefined for unsigned requests. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Whether the bucket goes in the path rather than the host name. */
  pathStyle: boolean;
}

/** Bucket and key prefix of an "s3://bucket/prefix" location. */
export interface S3Location {
  /** Bucket name. */
  bucket: string;
  /** Key prefix without leading or trailing '/' ("" for the bucket root). */
  prefix: string;
}

/** Split "s3://bucket/some/prefix/" into bucket and prefix; TypeError when malformed. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) {
    throw new TypeError(`Cannot use '${url}' as S3 storage: write it as s3://bucket/prefix`);
  }
  const bucket = m[1];
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new TypeError(
      `Cannot use bucket '${bucket}' of ${url}: bucket names have 3-63 lowercase letters, digits, '.' or '-'`,
    );
  }
  const prefix = m[2].replace(/^\/+|\/+$/g, "");
  if (prefix.split("/").some((s) => s === ".." || s === ".") || prefix.includes("//")) {
    throw new TypeError(`Cannot use prefix '${prefix}' of ${url}: it has empty, '.' or '..' parts`);
  }
  return { bucket, prefix };
}

function defaultEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

/** Apply environment variables and defaults to explicit settings. */
export function resolveS3Settings(s: S3Settings = {}): ResolvedS3Settings {
  const env = s.env ?? defaultEnv;
  const pick = (...names: string[]) => {
    for (const n of names) {
      const v = env(n);
      if (v) return v;
    }
    return undefined;
  };
  const region = s.region ?? pick("AWS_REGION", "AWS_DEFAULT_REGION") ?? "us-east-1";
  const custom = s.endpoint ?? pick("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT");
  const endpoint = (custom ?? `https://s3.${region}.amazonaws.com`).replace(/\/+$/, "");
  const endpointUrl = new URL(endpoint);
  if (endpointUrl.protocol !== "http:" && endpointUrl.protocol !== "https:") {
    throw new TypeError(
      `Cannot use S3 endpoint '${endpoint}': it must start with http:// or https://`,
    );
  }
  const accessKeyId = s.accessKeyId ?? pick("AWS_ACCESS_KEY_ID");
  const secretAccessKey = s.secretAccessKey ?? pick("AWS_SECRET_ACCESS_KEY");
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new TypeError(
      `Cannot sign S3 requests: ${
        accessKeyId ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID"
      } is missing; set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither for public buckets`,
    );
  }
  const sessionToken = s.sessionToken ?? pick("AWS_SESSION_TOKEN");
  return {
    endpoint,
    region,
    credentials: accessKeyId && secretAccessKey
      ? { accessKeyId, secretAccessKey, sessionToken }
      : undefined,
    pathStyle: s.pathStyle ?? custom !== undefined,
  };
}
