/**
 * The bundle engine serving from a real S3 server (one-node Swift on
 * loopback): what it fetches (the storage's onFetch hook sees every HTTP
 * attempt), a corrupted expert object, and a server that went away.
 */
import assert from "node:assert/strict";
import { ReferenceBackend } from "../src/backends/reference.ts";
import type { SparseBlockEntry } from "../src/bundle/manifest.ts";
import { generate } from "../src/model/generate.ts";
import { loadHfModel } from "../src/model/hf.ts";
import { freeModelWeights } from "../src/model/weights.ts";
import { createApp } from "../src/server/app.ts";
import { type EngineSpec, type OpenedEngine, openEngine } from "../src/server/open_engine.ts";
import { LocalStorage } from "../src/storage/local.ts";
import type { FetchEvent } from "../src/storage/retry.ts";
import { S3Storage } from "../src/storage/s3.ts";
import { buildTestBundle, uploadBundle } from "./helpers/mediator_bundle.ts";
import { ensureS3Server, s3Options, type S3TestServer, withTestBucket } from "./helpers/s3.ts";
import { TcpProxy } from "./helpers/tcp_proxy.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

// Merged and the server started before any test, so the sanitizers see only what each test does.
const built = await buildTestBundle("family");
await ensureS3Server();
const PREFIX = "bundles/family";
/** Few attempts and a short timeout keep failure tests quick. */
const ATTEMPTS = 2;

/** Upload the test bundle to a fresh bucket, run `fn` with its s3:// location, clean up. */
function withUploadedBundle(fn: (location: string, s: S3TestServer) => Promise<void>) {
  return withTestBucket(async (bucket, s) => {
    await uploadBundle(built.dir, new S3Storage(`s3://${bucket}/${PREFIX}`, s3Options(s)));
    await fn(`s3://${bucket}/${PREFIX}`, s);
  });
}

/** Open the bundle at `location` on the reference backend, recording every storage attempt. */
async function openRecorded(
  location: string,
  s: S3TestServer,
  spec: Partial<EngineSpec> = {},
  endpoint = s.endpoint,
): Promise<{ opened: OpenedEngine; events: FetchEvent[] }> {
  const events: FetchEvent[] = [];
  const opened = await openEngine({
    bundle: location,
    backend: "reference",
    storage: {
      s3: s3Options(s, {
        endpoint,
        attempts: ATTEMPTS,
        timeoutMs: 5000,
        baseDelayMs: 10,
        onFetch: (e) => events.push(e),
      }),
    },
    ...spec,
  });
  return { opened, events };
}

async function complete(app: ReturnType<typeof createApp>, model: string, prompt: string) {
  const res = await app.request("/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt, max_tokens: 8, temperature: 0 }),
  });
  return { status: res.status, body: await res.json() };
}

function blocksOf(expert: string): SparseBlockEntry[] {
  return built.merge.manifest.experts.find((e) => e.name === expert)!.blocks;
}

test("MediatorEngine on S3: fetches the dense part at start and one Range read per routed block", async () => {
  await withUploadedBundle(async (location, s) => {
    const { opened, events } = await openRecorded(location, s);
    try {
      const atStart = new Set(events.map((e) => e.path));
      const allowed = [
        "manifest.json",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
        "router.bin",
        "model.safetensors",
      ];
      for (const p of atStart) assert.ok(allowed.includes(p), `fetched ${p} at start`);
      assert.ok(atStart.has("manifest.json") && atStart.has("model.safetensors"));
      assert.ok(atStart.has("router.bin") && atStart.has("tokenizer.json"));
      // Optional tokenizer files may be absent (404); nothing else may fail.
      const failed = events.filter((e) => !e.ok);
      assert.ok(failed.every((e) => e.status === 404), JSON.stringify(failed));

      const app = createApp(opened.engine);
      const before = events.length;
      const first = await complete(app, "family", "reverse k a b d =");
      assert.equal(first.status, 200);
      const route: string[] = first.body.mediator.experts;
      assert.ok(route.includes("reverse"), `route ${route}`);
      const fetched = events.slice(before);
      const want = route.flatMap((e) =>
        blocksOf(e).map((b) => `GET experts/${e}.bin ${b.offset}+${b.length}`)
      ).sort();
      assert.deepEqual(
        fetched.map((e) => `${e.method} ${e.path} ${e.offset}+${e.length}`).sort(),
        want,
      );
      assert.ok(fetched.every((e) => e.status === 206 && e.attempt === 1 && e.ok));
      const whole = built.merge.manifest.files.find((f) => f.path === "experts/reverse.bin")!;
      assert.ok(fetched.every((e) => e.length < whole.size), "never the whole expert file");

      // The same route again: every block comes from the cache.
      const again = events.length;
      assert.equal((await complete(app, "family", "reverse q r s t =")).status, 200);
      assert.equal(events.length, again);
      const health = await (await app.request("/health")).json();
      assert.equal(health.bundle.location, location);
      assert.equal(health.fetches.count, want.length);
      const metrics = await (await app.request("/metrics")).text();
      assert.match(metrics, new RegExp(`^mediator_storage_requests_total ${events.length}$`, "m"));
      assert.match(metrics, new RegExp(`^mediator_storage_errors_total ${failed.length}$`, "m"));
    } finally {
      await opened.close();
    }
  });
});

/** Greedy text of the bundle's dense weights alone (the bundle folder is a plain checkpoint). */
async function denseAnswer(prompt: string): Promise<string> {
  const backend = new ReferenceBackend();
  const dense = await loadHfModel(new LocalStorage(built.dir), backend);
  try {
    const ids = dense.tokenizer.encode(prompt);
    const r = await generate(dense.model, ids, {
      maxTokens: 8,
      eosTokenIds: dense.config.eosTokenIds,
    });
    return dense.tokenizer.decode(r.outputIds);
  } finally {
    dense.model.dispose();
    freeModelWeights(backend, dense.model.weights);
    backend.dispose();
  }
}

test("MediatorEngine on S3: a corrupted expert block is refused, or replaced by the dense expert", async () => {
  await withUploadedBundle(async (location, s) => {
    const block = blocksOf("add")[1];
    const bytes = await Deno.readFile(`${built.dir}/experts/add.bin`);
    bytes[block.offset + Math.floor(block.length / 2)] ^= 0x40;
    await new S3Storage(location, s3Options(s)).write("experts/add.bin", bytes);

    const strict = await openRecorded(location, s);
    try {
      const app = createApp(strict.opened.engine);
      const r = await complete(app, "family:add", "add 12 34 =");
      assert.equal(r.status, 500);
      assert.equal(r.body.error.type, "server_error");
      assert.match(
        r.body.error.message,
        new RegExp(
          `^Cannot load expert 'add' unit ${block.unit}: sha256 mismatch for bytes ${block.offset}-`,
        ),
      );
      assert.match(r.body.error.message, /experts\/add\.bin/);
      // Other experts are intact and still served.
      assert.equal((await complete(app, "family:sort", "sort q c x a =")).status, 200);
    } finally {
      await strict.opened.close();
    }

    const lenient = await openRecorded(location, s, { onExpertError: "dense" });
    try {
      const app = createApp(lenient.opened.engine);
      const r = await complete(app, "family", "add 12 34 =");
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.mediator.experts, []);
      assert.match(r.body.mediator.fallback, /dense expert.*'add' unit .*sha256 mismatch/);
      assert.equal(r.body.choices[0].text, await denseAnswer("add 12 34 ="));
      const health = await (await app.request("/health")).json();
      assert.equal(health.fallbacks, 1);
      assert.ok(health.fetches.failures >= 1);
      assert.match(
        await (await app.request("/metrics")).text(),
        /^mediator_route_fallbacks_total 1$/m,
      );
    } finally {
      await lenient.opened.close();
    }
  });
});

test("MediatorEngine on S3: a server that went away fails the request after bounded retries", async () => {
  await withUploadedBundle(async (location, s) => {
    const port = Number(new URL(s.endpoint).port);
    for (const mode of ["error", "dense"] as const) {
      const proxy = new TcpProxy(port);
      let opened: OpenedEngine | undefined;
      try {
        const rec = await openRecorded(
          location,
          s,
          { onExpertError: mode },
          `http://127.0.0.1:${proxy.port}`,
        );
        opened = rec.opened;
        await proxy.stop();
        const before = rec.events.length;
        const app = createApp(opened.engine);
        const r = await complete(app, "family:shift", "shift a b c =");
        const attempts = rec.events.slice(before);
        const blocks = blocksOf("shift").length;
        assert.ok(attempts.length > 0 && attempts.length <= ATTEMPTS * blocks);
        assert.ok(attempts.every((e) => e.status === 0 && !e.ok && e.path === "experts/shift.bin"));
        if (mode === "error") {
          assert.equal(r.status, 502);
          assert.equal(r.body.error.code, "storage_error");
          assert.match(
            r.body.error.message,
            new RegExp(
              `^Cannot load expert 'shift' unit layer\\.\\d: cannot read bytes \\d+-\\d+ of experts/shift\\.bin from ${location}: the connection failed .*after ${ATTEMPTS} attempts`,
            ),
          );
        } else {
          assert.equal(r.status, 200);
          assert.deepEqual(r.body.mediator.experts, []);
          assert.match(r.body.mediator.fallback, /'shift' unit .*connection failed/);
        }
      } finally {
        await proxy.stop();
        await opened?.close();
      }
    }
  });
});
