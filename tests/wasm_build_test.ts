/**
 * The committed WASM kernel build (kernels/wasm/build) must match its sources: the hash
 * file names the current sources, compiler and flags; a fresh compile reproduces the bytes;
 * the embedded base64 module is the same wasm.
 */
import assert from "node:assert/strict";
import { ASC_FLAGS, checkBuild, hashSources, listKernelSources } from "../scripts/build_kernels.ts";
import { KERNELS_SOURCES_SHA256, KERNELS_WASM_BASE64 } from "../kernels/wasm/build/kernels_wasm.ts";

const BUILD = new URL("../kernels/wasm/build/", import.meta.url);

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, sanitizeOps: true, sanitizeResources: true, fn });

test("kernels.hash.json: records the sha256 of the current kernel sources", async () => {
  const recorded = JSON.parse(await Deno.readTextFile(new URL("kernels.hash.json", BUILD)));
  const current = await hashSources();
  assert.deepEqual(Object.keys(recorded.sources).sort(), await listKernelSources());
  assert.deepEqual(
    recorded.sources,
    current.files,
    "kernel sources changed since the last build; run `deno task build`",
  );
  assert.equal(recorded.sourcesSha256, current.all);
  assert.deepEqual(recorded.flags, ASC_FLAGS);
  assert.equal(KERNELS_SOURCES_SHA256, current.all);
});

test("kernels_wasm.ts: embeds exactly the committed kernels.wasm", async () => {
  const wasm = await Deno.readFile(new URL("kernels.wasm", BUILD));
  const embedded = Uint8Array.from(atob(KERNELS_WASM_BASE64), (c) => c.charCodeAt(0));
  assert.deepEqual(embedded, wasm);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", wasm));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  const recorded = JSON.parse(await Deno.readTextFile(new URL("kernels.hash.json", BUILD)));
  assert.equal(recorded.wasmSha256, hex);
});

test("build_kernels: a fresh compile reproduces every committed output", async () => {
  assert.deepEqual(await checkBuild(), [], "run `deno task build` and commit the outputs");
});
