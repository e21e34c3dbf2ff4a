import assert from "node:assert/strict";
import { HttpStorage } from "../src/storage/http.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { openStorage, openWritableStorage } from "../src/storage/open.ts";
import { S3Storage } from "../src/storage/s3.ts";
import { startRangeServer } from "./helpers/range_server.ts";

function test(name: string, fn: () => Promise<void> | void): void {
  Deno.test({ name, sanitizeOps: true, sanitizeResources: true, sanitizeExit: true, fn });
}

test("openStorage: plain paths and file:// URLs open the same local folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mediator-open-" });
  try {
    const data = new TextEncoder().encode("hello, bundle");
    await openWritableStorage(dir).write("sub/a b.txt", data);
    const plain = openStorage(dir);
    const url = openStorage(`file://${encodeURI(dir)}`);
    assert.ok(plain instanceof LocalStorage && url instanceof LocalStorage);
    assert.deepEqual(await url.read("sub/a b.txt", 7, 6), data.slice(7, 13));
    assert.equal(await plain.size("sub/a b.txt"), data.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("openStorage: http(s):// opens HttpStorage reading from the server", async () => {
  const srv = startRangeServer();
  try {
    srv.files.set("m/config.json", new TextEncoder().encode('{"a":1}'));
    const storage = openStorage(`${srv.url}/m`);
    assert.ok(storage instanceof HttpStorage);
    assert.equal(new TextDecoder().decode(await storage.readAll("config.json")), '{"a":1}');
  } finally {
    await srv.close();
  }
});

test("openStorage: s3:// opens S3Storage; unknown schemes and HTTP writes are TypeErrors", () => {
  const s3 = openStorage("s3://bucket-x/p", { s3: { env: () => undefined } });
  assert.ok(s3 instanceof S3Storage);
  assert.equal(s3.location, "s3://bucket-x/p");
  assert.throws(() => openStorage("gs://bucket/p"), TypeError);
  assert.throws(() => openWritableStorage("https://example.invalid/x"), /read-only/);
  assert.throws(() => openStorage(""), TypeError);
});
