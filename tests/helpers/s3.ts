/**
 * The real S3 server for tests: a one-node Swift with its S3 API on loopback,
 * started by scripts/s3_server.sh when it is not already running, and a
 * unique bucket per test that is emptied and deleted afterwards.
 */
import { S3Storage, type S3StorageOptions } from "../../src/storage/s3.ts";

/** Endpoint and credentials of the test server. */
export interface S3TestServer {
  /** "http://127.0.0.1:PORT". */
  endpoint: string;
  /** Signing region. */
  region: string;
  /** Access key id ("test:tester"). */
  accessKeyId: string;
  /** Secret ("testing"). */
  secretAccessKey: string;
}

const SCRIPT = new URL("../../scripts/s3_server.sh", import.meta.url).pathname;
let server: Promise<S3TestServer> | undefined;

function defaultServer(): S3TestServer {
  const port = Deno.env.get("S3_PORT") ?? "18080";
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    accessKeyId: "test:tester",
    secretAccessKey: "testing",
  };
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/healthcheck`, { signal: AbortSignal.timeout(2000) });
    return (await res.text()) === "OK";
  } catch {
    return false;
  }
}

async function startServer(): Promise<S3TestServer> {
  const known = defaultServer();
  if (await healthy(known.endpoint)) return known;
  const out = await new Deno.Command("bash", {
    args: [SCRIPT, "start"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `Cannot start the S3 test server: ${SCRIPT} failed:\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
  const vars = Object.fromEntries(
    text.split("\n").filter((l) => l.includes("=")).map((l) => {
      const i = l.indexOf("=");
      return [l.slice(0, i), l.slice(i + 1)];
    }),
  );
  return {
    endpoint: vars.AWS_ENDPOINT_URL ?? known.endpoint,
    region: vars.AWS_REGION ?? known.region,
    accessKeyId: vars.AWS_ACCESS_KEY_ID ?? known.accessKeyId,
    secretAccessKey: vars.AWS_SECRET_ACCESS_KEY ?? known.secretAccessKey,
  };
}

/** Make sure the server runs (starting it once per process) and return its settings. */
export function ensureS3Server(): Promise<S3TestServer> {
  server ??= startServer().catch((e) => {
    server = undefined;
    throw e;
  });
  return server;
}

/** Storage options for the test server, independent of the caller's AWS_* variables. */
export function s3Options(s: S3TestServer, extra: S3StorageOptions = {}): S3StorageOptions {
  return {
    endpoint: s.endpoint,
    region: s.region,
    accessKeyId: s.accessKeyId,
    secretAccessKey: s.secretAccessKey,
    env: () => undefined,
    ...extra,
  };
}

/** `n` random bytes (getRandomValues is limited to 64 KiB per call). */
export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

/** A fresh bucket name, unique per call. */
export function uniqueBucketName(): string {
  const [a, b] = crypto.getRandomValues(new Uint32Array(2));
  return `mediator-test-${a.toString(36)}-${b.toString(36)}`;
}

/**
 * Run `fn` with a new bucket on the test server, then delete every object in
 * it and the bucket itself, even when `fn` throws.
 */
export async function withTestBucket(
  fn: (bucket: string, server: S3TestServer) => Promise<void>,
): Promise<void> {
  const s = await ensureS3Server();
  const bucket = uniqueBucketName();
  const admin = new S3Storage(`s3://${bucket}`, s3Options(s));
  await admin.createBucket();
  try {
    await fn(bucket, s);
  } finally {
    for (const file of await admin.list()) await admin.delete(file.path);
    await admin.deleteBucket();
  }
}
