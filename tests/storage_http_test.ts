import assert from "node:assert/strict";
import { StorageError } from "../src/errors.ts";
import { HttpStorage, type HttpStorageOptions } from "../src/storage/http.ts";
import { backoffDelayMs, type FetchEvent } from "../src/storage/retry.ts";
import { S3Storage } from "../src/storage/s3.ts";
import {
  type RangeServer,
  type RangeServerOptions,
  startRangeServer,
} from "./helpers/range_server.ts";
import { randomBytes, s3Options, withTestBucket } from "./helpers/s3.ts";

function test(name: string, fn: () => Promise<void> | void): void {
  Deno.test({ name, sanitizeOps: true, sanitizeResources: true, sanitizeExit: true, fn });
}

const FILE = "experts/add.bin";

/** A server holding one random file, and a storage over it that records its fetches. */
async function withServer(
  fn: (
    srv: RangeServer,
    storage: HttpStorage,
    data: Uint8Array,
    events: FetchEvent[],
  ) => Promise<void>,
  serverOptions: RangeServerOptions = {},
  storageOptions: HttpStorageOptions = {},
): Promise<void> {
  const srv = startRangeServer(serverOptions);
  const data = crypto.getRandomValues(new Uint8Array(10_007));
  srv.files.set(FILE, data);
  const events: FetchEvent[] = [];
  const storage = new HttpStorage(`${srv.url}/`, {
    baseDelayMs: 1,
    onFetch: (e) => events.push(e),
    ...storageOptions,
  });
  try {
    await fn(srv, storage, data, events);
  } finally {
    await srv.close();
  }
}

async function rejectsWith(p: Promise<unknown>, status: number | undefined, text: RegExp) {
  const err = await p.then(() => undefined, (e) => e);
  assert.ok(err instanceof StorageError, `expected a StorageError, got ${err}`);
  assert.equal(err.status, status);
  assert.match(err.message, text);
  return err;
}

test("HttpStorage.read: ranges return the file's exact bytes via one Range request each", async () => {
  await withServer(async (srv, storage, data, events) => {
    const ranges: [number, number][] = [[0, 1], [0, 100], [4096, 1234], [data.length - 1, 1], [
      0,
      data.length,
    ], [777, data.length - 777]];
    for (const [offset, length] of ranges) {
      assert.deepEqual(
        await storage.read(FILE, offset, length),
        data.slice(offset, offset + length),
      );
    }
    assert.deepEqual(
      srv.seen.map((r) => r.range),
      ranges.map(([o, n]) => `bytes=${o}-${o + n - 1}`),
    );
    assert.deepEqual(
      events.map((e) => [e.offset, e.length, e.status, e.path]),
      ranges.map(([o, n]) => [o, n, 206, FILE]),
    );
    assert.equal(storage.stats.requests, ranges.length);
    assert.equal(storage.stats.bytes, ranges.reduce((s, [, n]) => s + n, 0));
  });
});

test("HttpStorage.read: zero bytes needs no request; bad offsets are RangeErrors", async () => {
  await withServer(async (srv, storage) => {
    assert.equal((await storage.read(FILE, 5, 0)).length, 0);
    await assert.rejects(storage.read(FILE, -1, 4), RangeError);
    await assert.rejects(storage.read(FILE, 0.5, 4), RangeError);
    await assert.rejects(storage.read("../etc/passwd", 0, 4), TypeError);
    assert.equal(srv.seen.length, 0);
  });
});

test("HttpStorage.size/exists/readAll: HEAD, 404 and whole files", async () => {
  await withServer(async (srv, storage, data) => {
    assert.equal(await storage.size(FILE), data.length);
    assert.equal(srv.seen.at(-1)?.method, "HEAD");
    assert.equal(await storage.exists(FILE), true);
    assert.equal(await storage.exists("experts/none.bin"), false);
    assert.deepEqual(await storage.readAll(FILE), data);
    await rejectsWith(storage.size("experts/none.bin"), 404, /size of experts\/none\.bin.*404/);
    await rejectsWith(storage.readAll("none.bin"), 404, /Cannot read none\.bin from http/);
  });
});

test("HttpStorage.size: falls back to the Content-Range of a 1-byte range when HEAD is refused", async () => {
  await withServer(async (srv, storage, data) => {
    assert.equal(await storage.size(FILE), data.length);
    assert.deepEqual(srv.seen.map((r) => [r.method, r.range]), [["HEAD", null], [
      "GET",
      "bytes=0-0",
    ]]);
    srv.files.set("empty.bin", new Uint8Array(0));
    assert.equal(await storage.size("empty.bin"), 0);
  }, { refuseHead: true });
});

test("HttpStorage.read: a 200 whole-file answer to a Range request is sliced", async () => {
  await withServer(async (_srv, storage, data) => {
    assert.deepEqual(await storage.read(FILE, 5000, 3000), data.slice(5000, 8000));
    assert.deepEqual(await storage.read(FILE, data.length - 3, 3), data.slice(-3));
    await rejectsWith(storage.read(FILE, data.length - 3, 4), 416, /ends after 10007 bytes/);
  }, { ignoreRange: true });
});

test("HttpStorage.read: ranges past the end fail with status 416 and no retry", async () => {
  await withServer(async (srv, storage, data) => {
    await rejectsWith(storage.read(FILE, data.length - 10, 20), 416, /ends after 10007 bytes/);
    await rejectsWith(storage.read(FILE, data.length, 1), 416, /416.*beyond the end/);
    assert.equal(srv.seen.length, 2);
    assert.equal(storage.stats.retries, 0);
    assert.equal(storage.stats.errors, 2);
  });
});

test("HttpStorage: 503 and 429 answers are retried until the read succeeds", async () => {
  await withServer(async (srv, storage, data, events) => {
    srv.faults.push({ kind: "status", status: 503 }, { kind: "status", status: 429 });
    assert.deepEqual(await storage.read(FILE, 10, 90), data.slice(10, 100));
    assert.deepEqual(events.map((e) => [e.status, e.attempt, e.ok]), [
      [503, 1, false],
      [429, 2, false],
      [206, 3, true],
    ]);
    assert.equal(srv.seen.length, 3);
    assert.deepEqual(
      [storage.stats.requests, storage.stats.retries, storage.stats.errors],
      [3, 2, 0],
    );
  });
});

test("HttpStorage: a connection dropped mid-body is retried", async () => {
  await withServer(async (srv, storage, data, events) => {
    srv.faults.push({ kind: "reset", afterBytes: 100 });
    assert.deepEqual(await storage.read(FILE, 0, 5000), data.slice(0, 5000));
    assert.deepEqual(srv.seen.map((r) => r.fault), ["reset", undefined]);
    assert.deepEqual(events.map((e) => e.ok), [false, true]);
    assert.equal(storage.stats.retries, 1);
  });
});

test("HttpStorage: a request hanging past the timeout is abandoned and retried", async () => {
  await withServer(
    async (srv, storage, data, events) => {
      srv.faults.push({ kind: "hang" });
      assert.deepEqual(await storage.read(FILE, 1, 2), data.slice(1, 3));
      assert.deepEqual(events.map((e) => [e.status, e.ok]), [[0, false], [206, true]]);
    },
    {},
    { timeoutMs: 300 },
  );
});

test("HttpStorage: gives up after the attempt limit with a clear message", async () => {
  await withServer(
    async (srv, storage) => {
      srv.faults.push(
        ...Array.from({ length: 5 }, () => ({ kind: "status" as const, status: 502 })),
      );
      await rejectsWith(
        storage.read(FILE, 0, 100),
        502,
        /^Cannot read bytes 0-99 of experts\/add\.bin from http:\/\/127\.0\.0\.1:\d+: server answered 502 Bad Gateway \(after 3 attempts\); /,
      );
      assert.equal(srv.seen.length, 3);
      srv.faults.length = 0;
      srv.faults.push({ kind: "hang" }, { kind: "hang" }, { kind: "hang" });
      await rejectsWith(
        storage.size(FILE),
        undefined,
        /no complete answer within 200 ms \(after 3/,
      );
      assert.equal(storage.stats.errors, 2);
    },
    {},
    { attempts: 3, timeoutMs: 200 },
  );
});

test("HttpStorage: 4xx answers are not retried", async () => {
  await withServer(async (srv, storage) => {
    srv.faults.push({ kind: "status", status: 403 }, { kind: "status", status: 403 });
    await rejectsWith(storage.read(FILE, 0, 8), 403, /403 Forbidden; .*Authorization/);
    assert.equal(srv.seen.length, 1);
    assert.equal(storage.stats.retries, 0);
  });
});

test("HttpStorage: stats.latencyMs keeps only the most recent requests", async () => {
  await withServer(
    async (_srv, storage) => {
      for (let i = 0; i < 7; i++) await storage.read(FILE, i, 1);
      assert.equal(storage.stats.latencyMs.length, 3);
      assert.equal(storage.stats.requests, 7);
    },
    {},
    { latencyWindow: 3 },
  );
});

test("HttpStorage: paths are percent-encoded per segment and headers are sent", async () => {
  await withServer(async (srv, storage) => {
    srv.files.set("dir with space/a#b.bin", new Uint8Array([1, 2, 3]));
    assert.deepEqual(await storage.read("dir with space/a#b.bin", 1, 2), new Uint8Array([2, 3]));
    assert.equal(srv.seen.at(-1)?.path, "dir with space/a#b.bin");
    assert.equal(storage.urlOf("x/y z").pathname, "/x/y%20z");
  });
  assert.throws(() => new HttpStorage("ftp://host/x"), TypeError);
});

test("backoffDelayMs: doubles per retry within [half, full] of the capped delay", () => {
  for (let retry = 1; retry <= 12; retry++) {
    const ceiling = Math.min(1000, 10 * 2 ** (retry - 1));
    for (let i = 0; i < 20; i++) {
      const d = backoffDelayMs(retry, 10, 1000);
      assert.ok(d >= ceiling / 2 && d <= ceiling, `retry ${retry}: ${d} outside ${ceiling}`);
    }
  }
});

test("HttpStorage: reads objects from Swift's own object URLs with Range", async () => {
  await withTestBucket(async (bucket, s) => {
    const data = randomBytes(70_001);
    await new S3Storage(`s3://${bucket}/m`, s3Options(s)).write("w.bin", data);
    const auth = await fetch(`${s.endpoint}/auth/v1.0`, {
      headers: { "X-Auth-User": s.accessKeyId, "X-Auth-Key": s.secretAccessKey },
    });
    await auth.body?.cancel();
    const token = auth.headers.get("x-auth-token")!;
    const storageUrl = auth.headers.get("x-storage-url")!;
    const http = new HttpStorage(`${storageUrl}/${bucket}/m`, {
      headers: { "X-Auth-Token": token },
    });
    assert.equal(await http.size("w.bin"), data.length);
    assert.deepEqual(await http.read("w.bin", 65_536, 4465), data.slice(65_536));
    assert.deepEqual(await http.read("w.bin", 123, 1), data.slice(123, 124));
    await rejectsWith(http.read("nothing.bin", 0, 1), 404, /404/);
    const anonymous = new HttpStorage(`${storageUrl}/${bucket}/m`);
    await rejectsWith(anonymous.read("w.bin", 0, 1), 401, /401 Unauthorized; .*Authorization/);
  });
});
