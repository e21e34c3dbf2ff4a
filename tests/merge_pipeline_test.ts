/**
 * The merge pipeline end to end on the fixture family: bundle contents
 * against an independent recomputation, atomic failure, early validation
 * errors, and manifest path checks.
 */
import assert from "node:assert/strict";
import { validateManifest } from "../src/bundle/manifest.ts";
import { readManifest } from "../src/bundle/reader.ts";
import { BundleFormatError, IncompatibleModelsError, StorageError } from "../src/errors.ts";
import { mergeMediator, mergeStatic } from "../src/merge/mediator.ts";
import { defaultMergeOptions, type MergeOptions } from "../src/merge/options.ts";
import { Checkpoint } from "../src/safetensors/checkpoint.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { bf16ToF32, f32ToBf16 } from "../src/tensor/dtype.ts";
import { expertNames, FAMILY } from "./helpers/fixtures.ts";

function options(out: string, extra: Partial<MergeOptions> = {}): MergeOptions {
  return {
    ...defaultMergeOptions(),
    base: `${FAMILY}/base`,
    experts: expertNames().map((t) => ({
      name: t,
      model: `${FAMILY}/experts/${t}`,
      routerData: `${FAMILY}/router/${t}.jsonl`,
    })),
    out,
    backend: "reference",
    router: { ...defaultMergeOptions().router, epochs: 20 },
    ...extra,
  };
}

const test = (name: string, fn: (dir: string) => Promise<void>) =>
  Deno.test({
    name,
    sanitizeOps: true,
    sanitizeResources: true,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "mediator-merge-" });
      try {
        await fn(dir);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });

test("mergeStatic average: every tensor is the bf16 mean of the experts", async (dir) => {
  await mergeStatic({ ...options(`${dir}/avg`), method: { name: "average", params: {} } });
  const merged = await Checkpoint.open(new LocalStorage(`${dir}/avg`));
  const experts = await Promise.all(
    expertNames().map((t) => Checkpoint.open(new LocalStorage(`${FAMILY}/experts/${t}`))),
  );
  for (const name of ["model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight"]) {
    const got = await merged.readF32(name);
    const parts = await Promise.all(experts.map((e) => e.readF32(name)));
    for (let i = 0; i < got.length; i += 7) {
      // B + mean(E - B) = mean(E), rounded to bf16 once.
      const mean = parts.reduce((s, p) => s + p[i], 0) / parts.length;
      const want = bf16ToF32(f32ToBf16(mean));
      assert.ok(Math.abs(got[i] - want) <= Math.abs(want) * 2 ** -7 + 1e-7, `${name}[${i}]`);
    }
  }
  assert.equal(await new LocalStorage(`${dir}/avg`).exists("manifest.json"), false);
});

test("mergeMediator: the bundle lists every block with hashes, inside its files", async (dir) => {
  const out = `${dir}/bundle`;
  const { manifest } = await mergeMediator(options(out));
  const read = await readManifest(new LocalStorage(out));
  assert.deepEqual(read, manifest);
  const routed = manifest.units.filter((u) => u.kind === "routed");
  assert.ok(routed.length > 0, "the default plan routes something on the fixture family");
  for (const e of manifest.experts) {
    assert.deepEqual(e.blocks.map((b) => b.unit), routed.map((u) => u.name));
    for (const b of e.blocks) {
      assert.ok(b.error >= 0 && b.error < 1 && b.density > 0 && b.density <= 1);
      assert.match(b.sha256, /^[0-9a-f]{64}$/);
    }
  }
  const leftovers = [...Deno.readDirSync(dir)].map((e) => e.name);
  assert.deepEqual(leftovers, ["bundle"]);
});

test("mergeMediator: a failure mid-write leaves no bundle and no temporary folder", async (dir) => {
  let seen = 0;
  await assert.rejects(
    mergeMediator(options(`${dir}/bundle`), (e) => {
      if (e.phase === "write" && ++seen === 10) throw new Error("disk full (simulated)");
    }),
    /disk full/,
  );
  assert.deepEqual([...Deno.readDirSync(dir)], []);
});

test("mergeMediator: incompatible experts are refused before any weight is read", async (dir) => {
  const odd = `${dir}/odd`;
  await Deno.mkdir(odd);
  for (const f of Deno.readDirSync(`${FAMILY}/experts/add`)) {
    await Deno.copyFile(`${FAMILY}/experts/add/${f.name}`, `${odd}/${f.name}`);
  }
  const config = JSON.parse(await Deno.readTextFile(`${odd}/config.json`));
  await Deno.writeTextFile(
    `${odd}/config.json`,
    JSON.stringify({ ...config, intermediate_size: 7 }),
  );
  const o = options(`${dir}/bundle`);
  o.experts[0] = { ...o.experts[0], name: "odd", model: odd };
  await assert.rejects(mergeMediator(o), (e: Error) => {
    assert.ok(e instanceof IncompatibleModelsError);
    assert.match(e.message, /expert 'odd' has intermediateSize = 7/);
    return true;
  });
  assert.equal(await new LocalStorage(dir).exists("bundle"), false);
});

test("mergeMediator: missing router data and an existing output are refused", async (dir) => {
  const o = options(`${dir}/bundle`);
  o.experts[1] = { ...o.experts[1], routerData: undefined };
  await assert.rejects(mergeMediator(o), /has no router data; give --router-data/);
  await Deno.mkdir(`${dir}/taken`);
  await assert.rejects(mergeMediator(options(`${dir}/taken`)), (e: Error) => {
    assert.ok(e instanceof StorageError);
    assert.match(e.message, /already exists; choose another --out or pass --overwrite/);
    return true;
  });
});

test("validateManifest: paths outside the bundle and blocks outside their file are refused", async (dir) => {
  const out = `${dir}/bundle`;
  const { manifest } = await mergeMediator(options(out));
  const clone = () => JSON.parse(JSON.stringify(manifest));
  const up = clone();
  up.experts[0].file = "../outside.bin";
  assert.throws(() => validateManifest(up), /'\.\.'/);
  const abs = clone();
  abs.files[0].path = "/etc/passwd";
  assert.throws(() => validateManifest(abs), /absolute paths are not allowed/);
  const far = clone();
  far.experts[0].blocks[0].offset = 1 << 30;
  assert.throws(() => validateManifest(far), BundleFormatError);
  const version = clone();
  version.version = 99;
  assert.throws(() => validateManifest(version), /format version 99 is not supported/);
});
