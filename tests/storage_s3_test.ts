import assert from "node:assert/strict";
import { StorageError } from "../src/errors.ts";
import { openStorage, openWritableStorage } from "../src/storage/open.ts";
import type { FetchEvent } from "../src/storage/retry.ts";
import { S3Storage } from "../src/storage/s3.ts";
import { parseS3Url, resolveS3Settings } from "../src/storage/s3_config.ts";
import { randomBytes, s3Options, withTestBucket } from "./helpers/s3.ts";

function test(name: string, fn: () => Promise<void> | void): void {
  Deno.test({ name, sanitizeOps: true, sanitizeResources: true, sanitizeExit: true, fn });
}

async function rejectsWith(p: Promise<unknown>, status: number | undefined, text: RegExp) {
  const err = await p.then(() => undefined, (e) => e);
  assert.ok(err instanceof StorageError, `expected a StorageError, got ${err}`);
  assert.equal(err.status, status);
  assert.match(err.message, text);
}

test("S3Storage: write then readAll returns the same random bytes; size and exists agree", async () => {
  await withTestBucket(async (bucket, s) => {
    const storage = new S3Storage(`s3://${bucket}/bundles/one`, s3Options(s));
    const data = randomBytes(300_001);
    await storage.write("experts/add.bin", data);
    assert.deepEqual(await storage.readAll("experts/add.bin"), data);
    assert.equal(await storage.size("experts/add.bin"), data.length);
    assert.equal(await storage.exists("experts/add.bin"), true);
    assert.equal(await storage.exists("experts/sub.bin"), false);
    await storage.write("experts/add.bin", data.subarray(0, 10));
    assert.deepEqual(await storage.readAll("experts/add.bin"), data.slice(0, 10));
    await storage.write("empty.bin", new Uint8Array(0));
    assert.equal(await storage.size("empty.bin"), 0);
  });
});

test("S3Storage.read: ranges return the exact bytes, one Range GET each", async () => {
  await withTestBucket(async (bucket, s) => {
    const events: FetchEvent[] = [];
    const storage = new S3Storage(
      `s3://${bucket}/p`,
      s3Options(s, { onFetch: (e) => events.push(e) }),
    );
    const data = randomBytes(200_003);
    await storage.write("w.bin", data);
    events.length = 0;
    const ranges: [number, number][] = [
      [0, 1],
      [0, 4096],
      [65_535, 70_000],
      [data.length - 1, 1],
      [0, data.length],
      [12_345, data.length - 12_345],
    ];
    for (const [offset, length] of ranges) {
      assert.deepEqual(
        await storage.read("w.bin", offset, length),
        data.slice(offset, offset + length),
      );
    }
    assert.deepEqual(
      events.map((e) => [e.method, e.path, e.offset, e.length, e.status]),
      ranges.map(([o, n]) => ["GET", "w.bin", o, n, 206]),
    );
    await rejectsWith(storage.read("w.bin", data.length - 2, 3), 416, /ends after 200003 bytes/);
    await rejectsWith(storage.read("w.bin", data.length, 1), 416, /416/);
  });
});

test("S3Storage: a missing key is StorageError 404 with no retry", async () => {
  await withTestBucket(async (bucket, s) => {
    const storage = new S3Storage(`s3://${bucket}/p`, s3Options(s));
    await rejectsWith(
      storage.read("experts/none.bin", 0, 100),
      404,
      new RegExp(
        `^Cannot read bytes 0-99 of experts/none\\.bin from s3://${bucket}/p: ` +
          "server answered 404 Not Found \\(NoSuchKey\\)",
      ),
    );
    await rejectsWith(storage.size("experts/none.bin"), 404, /404/);
    await rejectsWith(storage.readAll("none.bin"), 404, /NoSuchKey/);
    assert.deepEqual([storage.stats.requests, storage.stats.retries, storage.stats.errors], [
      3,
      0,
      3,
    ]);
    const noBucket = new S3Storage(`s3://${bucket}-absent/p`, s3Options(s));
    await rejectsWith(noBucket.read("a.bin", 0, 1), 404, /NoSuchBucket.*does not exist/);
  });
});

test("S3Storage: a wrong secret is StorageError 403 naming AWS_SECRET_ACCESS_KEY", async () => {
  await withTestBucket(async (bucket, s) => {
    await new S3Storage(`s3://${bucket}`, s3Options(s)).write("a.bin", new Uint8Array([1, 2]));
    const wrong = new S3Storage(`s3://${bucket}`, s3Options(s, { secretAccessKey: "wrong" }));
    await rejectsWith(
      wrong.read("a.bin", 0, 2),
      403,
      /^Cannot read bytes 0-1 of a\.bin from s3:\/\/\S+: server answered 403 Forbidden \(SignatureDoesNotMatch\); check AWS_SECRET_ACCESS_KEY$/,
    );
    await rejectsWith(wrong.write("b.bin", new Uint8Array(1)), 403, /AWS_SECRET_ACCESS_KEY/);
    await rejectsWith(wrong.size("a.bin"), 403, /AWS_SECRET_ACCESS_KEY/);
    assert.equal(wrong.stats.retries, 0);
    const unsigned = new S3Storage(`s3://${bucket}`, {
      endpoint: s.endpoint,
      env: () => undefined,
    });
    const err = await unsigned.read("a.bin", 0, 2).catch((e) => e);
    assert.ok(err instanceof StorageError);
    assert.ok(err.status === 400 || err.status === 403, `status ${err.status}`);
    assert.match(err.message, /no credentials were given; set AWS_ACCESS_KEY_ID/);
  });
});

test("S3Storage.list: lists files under the prefix with sizes across pages", async () => {
  await withTestBucket(async (bucket, s) => {
    const events: FetchEvent[] = [];
    const storage = new S3Storage(
      `s3://${bucket}/root`,
      s3Options(s, { onFetch: (e) => events.push(e) }),
    );
    const other = new S3Storage(`s3://${bucket}/rooted`, s3Options(s));
    const names = ["a.bin", "dir/b.bin", "dir/c d.bin", "dir/e&f.bin", "z.json"];
    for (const [i, name] of names.entries()) await storage.write(name, new Uint8Array(i * 10));
    await other.write("x.bin", new Uint8Array(3));
    events.length = 0;
    const listed = await storage.list("", 2);
    assert.deepEqual(
      listed.map((f) => [f.path, f.size]).sort(),
      names.map((n, i) => [n, i * 10]).sort(),
    );
    assert.equal(events.length, 3);
    assert.deepEqual(
      (await storage.list("dir/")).map((f) => f.path).sort(),
      ["dir/b.bin", "dir/c d.bin", "dir/e&f.bin"],
    );
    assert.deepEqual(await other.list(), [{ path: "x.bin", size: 3 }]);
    await storage.delete("a.bin");
    await storage.delete("a.bin");
    assert.equal(await storage.exists("a.bin"), false);
  });
});

test("S3Storage.createBucket: creating an existing own bucket succeeds", async () => {
  await withTestBucket(async (bucket, s) => {
    const storage = new S3Storage(`s3://${bucket}`, s3Options(s));
    await storage.createBucket();
    await storage.write("k", new Uint8Array([7]));
    assert.deepEqual(await storage.readAll("k"), new Uint8Array([7]));
  });
});

test("openStorage: s3:// locations read and write through S3 with AWS_* settings", async () => {
  await withTestBucket(async (bucket, s) => {
    const env: Record<string, string> = {
      AWS_ENDPOINT_URL: s.endpoint,
      AWS_ACCESS_KEY_ID: s.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s.secretAccessKey,
    };
    const opts = { s3: { env: (n: string) => env[n] } };
    const writer = openWritableStorage(`s3://${bucket}/b`, opts);
    assert.ok(writer instanceof S3Storage);
    await writer.write("m.json", new TextEncoder().encode('{"ok":true}'));
    const reader = openStorage(`s3://${bucket}/b/`, opts);
    assert.equal(reader.location, `s3://${bucket}/b`);
    assert.equal(new TextDecoder().decode(await reader.read("m.json", 1, 4)), '"ok"');
  });
});

test("parseS3Url/resolveS3Settings: parse locations and apply variables and defaults", () => {
  assert.deepEqual(parseS3Url("s3://my-bucket"), { bucket: "my-bucket", prefix: "" });
  assert.deepEqual(parseS3Url("s3://my-bucket/a/b/"), { bucket: "my-bucket", prefix: "a/b" });
  assert.throws(() => parseS3Url("s3://Bad_Bucket/x"), TypeError);
  assert.throws(() => parseS3Url("s3://bucket/a/../b"), TypeError);
  const env: Record<string, string> = {
    S3_ENDPOINT: "http://127.0.0.1:9/",
    AWS_ACCESS_KEY_ID: "id",
    AWS_SECRET_ACCESS_KEY: "secret",
    AWS_SESSION_TOKEN: "tok",
  };
  const r = resolveS3Settings({ env: (n) => env[n] });
  assert.equal(r.endpoint, "http://127.0.0.1:9");
  assert.equal(r.region, "us-east-1");
  assert.equal(r.pathStyle, true);
  assert.deepEqual(r.credentials, {
    accessKeyId: "id",
    secretAccessKey: "secret",
    sessionToken: "tok",
  });
  const aws = resolveS3Settings({ region: "eu-west-1", env: () => undefined });
  assert.equal(aws.pathStyle, false);
  assert.equal(aws.credentials, undefined);
  const vhost = new S3Storage("s3://bkt/p", { region: "eu-west-1", env: () => undefined });
  assert.equal(vhost.urlOf("a b.bin").hostname, `bkt.${new URL(aws.endpoint).hostname}`);
  assert.equal(vhost.urlOf("a b.bin").pathname, "/p/a%20b.bin");
  assert.throws(() => resolveS3Settings({ accessKeyId: "id", env: () => undefined }), TypeError);
});
