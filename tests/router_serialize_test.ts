import assert from "node:assert/strict";
import { BundleFormatError } from "../src/errors.ts";
import { Router } from "../src/router/router.ts";
import { decodeRouter, encodeRouter } from "../src/router/serialize.ts";
import { makeBlobs } from "./helpers/blobs.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

const NAMES = ["add", "reverse", "sort", "shift"];
const blobs = makeBlobs({ classes: 4, perClass: 40, dim: 10, spread: 0.7, seed: 8 });

function train(kind: "mlp" | "logreg"): Router {
  return Router.train(blobs.features, blobs.labels, {
    expertNames: NAMES,
    routerLayer: 3,
    selection: { temperature: 1.5, uLow: 0.2, topM: 3, minConfidence: 0.4 },
  }, { kind, hiddenSize: 16, epochs: 30 });
}

test("encodeRouter/decodeRouter: a round trip gives identical logits and routes", () => {
  for (const kind of ["mlp", "logreg"] as const) {
    const router = train(kind);
    const bytes = encodeRouter(router);
    assert.equal(bytes.length % 4, 0);
    const back = decodeRouter(bytes, "router.bin");
    assert.deepEqual(back.expertNames, router.expertNames);
    assert.equal(back.routerLayer, 3);
    assert.deepEqual(back.selection, router.selection);
    assert.deepEqual(back.report, router.report);
    assert.equal(back.params.kind, kind);
    for (const f of blobs.features) {
      assert.deepEqual(back.logits(f), router.logits(f));
      assert.deepEqual(back.select(f), router.select(f));
    }
    assert.deepEqual(encodeRouter(back), bytes);
  }
});

test("encodeRouter: a router without a report or min_confidence round-trips", () => {
  const r = train("logreg");
  const bare = new Router(r.params, { expertNames: NAMES, routerLayer: 0 });
  const back = decodeRouter(encodeRouter(bare));
  assert.equal(back.report, undefined);
  assert.equal(back.selection.minConfidence, undefined);
  assert.deepEqual(back.logits(blobs.features[0]), bare.logits(blobs.features[0]));
});

/** Rewrite the JSON header of an encoded router (keeping the weights). */
function withHeader(bytes: Uint8Array, edit: (h: Record<string, unknown>) => void): Uint8Array {
  const len = new DataView(bytes.buffer).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len)));
  edit(header);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(12 + json.length + bytes.length - 12 - len);
  out.set(bytes.subarray(0, 12));
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(bytes.subarray(12 + len), 12 + json.length);
  return out;
}

test("decodeRouter: rejects corrupt input with a BundleFormatError naming the problem", () => {
  const good = encodeRouter(train("mlp"));
  const headerLength = new DataView(good.buffer).getUint32(8, true);
  const nanWeight = good.slice();
  new DataView(nanWeight.buffer).setFloat32(good.length - 4, NaN, true);
  const zeroStd = good.slice();
  new DataView(zeroStd.buffer).setFloat32(12 + headerLength + 10 * 4, 0, true);
  const hugeHeader = good.slice();
  new DataView(hugeHeader.buffer).setUint32(8, 1 << 30, true);
  const badJson = good.slice();
  badJson[12] = 0x7b + 1;
  const cases: [Uint8Array, RegExp][] = [
    [good.subarray(0, 5), /shorter than the 12-byte prefix/],
    [new Uint8Array(good.length), /does not start with "MDROUTER"/],
    [hugeHeader, /header claims 1073741824 bytes/],
    [badJson, /not valid JSON/],
    [good.subarray(0, good.length - 4), /weights take \d+ bytes but the header describes/],
    [new Uint8Array([...good, 0, 0, 0, 0]), /weights take/],
    [nanWeight, /value 3 of tensor 'layers.1.bias' is NaN/],
    [zeroStd, /std\[0\] is 0/],
    [withHeader(good, (h) => h.version = 2), /format version 2/],
    [withHeader(good, (h) => h.kind = "svm"), /'kind' must be "mlp" or "logreg"/],
    [withHeader(good, (h) => h.hidden_size = 15), /header.tensors .* does not match/],
    [withHeader(good, (h) => h.top_m = -2), /'top_m' must be a count/],
    [withHeader(good, (h) => h.u_low = 3), /u_low must be in \[0, 1\]/],
    [withHeader(good, (h) => h.expert_names = ["a", "b", "c"]), /3 expert names for 4 classes/],
    [withHeader(good, (h) => h.expert_names = ["a", "a", "b", "c"]), /'a' appears twice/],
    [withHeader(good, (h) => (h.report as Record<string, unknown>).confusion = [[1]]), /report/],
    [withHeader(good, (h) => delete h.router_layer), /'router_layer' must be a count/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(
      () => decodeRouter(bytes, "bundle/router.bin"),
      (e: Error) =>
        e instanceof BundleFormatError && re.test(e.message) &&
        e.message.startsWith("Cannot read the router from bundle/router.bin: "),
      `expected ${re}`,
    );
  }
});
