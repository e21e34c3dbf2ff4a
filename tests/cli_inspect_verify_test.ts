/**
 * `inspect` and `verify` run as subprocesses on a real bundle, merged once from
 * the fixture family (base + task experts + router prompts) into a temp folder.
 */
import assert from "node:assert/strict";
import { mergeMediator, type MergeResult } from "../src/merge/mediator.ts";
import { defaultMergeOptions } from "../src/merge/options.ts";
import { expertNames, FAMILY } from "./helpers/fixtures.ts";

const CLI = new URL("../src/cli/", import.meta.url).pathname;

let built: Promise<{ dir: string; merge: MergeResult }> | null = null;

/** Merge the fixture family once per test file (a small epoch count keeps it quick). */
function bundle(): Promise<{ dir: string; merge: MergeResult }> {
  built ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "mediator-cli-" });
    addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
    const dir = `${root}/bundle`;
    const d = defaultMergeOptions();
    const merge = await mergeMediator({
      ...d,
      base: `${FAMILY}/base`,
      experts: expertNames().map((name) => ({
        name,
        model: `${FAMILY}/experts/${name}`,
        routerData: `${FAMILY}/router/${name}.jsonl`,
      })),
      out: dir,
      router: { ...d.router, epochs: 50 },
    });
    return { dir, merge };
  })();
  return built;
}

/** Copy a bundle folder so a test can damage its copy. */
async function copyBundle(src: string): Promise<string> {
  const dst = `${await Deno.makeTempDir({ prefix: "mediator-cli-bad-" })}/bundle`;
  const copy = async (from: string, to: string) => {
    await Deno.mkdir(to, { recursive: true });
    for await (const e of Deno.readDir(from)) {
      if (e.isDirectory) await copy(`${from}/${e.name}`, `${to}/${e.name}`);
      else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
    }
  };
  await copy(src, dst);
  return dst;
}

async function cli(name: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${CLI}${name}.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function rm(dir: string) {
  await Deno.remove(dir.replace(/\/bundle$/, ""), { recursive: true });
}

Deno.test("inspect: text output names every expert and unit with its kind and sizes", async () => {
  const { dir, merge } = await bundle();
  const r = await cli("inspect", dir);
  assert.equal(r.code, 0, r.stderr);
  const m = merge.manifest;
  assert.ok(r.stdout.includes(`bundle: ${m.name} (mediator-bundle version 1`), r.stdout);
  for (const e of m.experts) assert.ok(r.stdout.includes(`sparse expert ${e.name}`), e.name);
  for (const u of m.units) {
    assert.match(r.stdout, new RegExp(`^  ${u.name.replace(".", "\\.")} +${u.kind} `, "m"));
  }
  assert.ok(r.stdout.includes(`base + ${m.experts.length} models`));
  assert.ok(r.stdout.includes(`routing: router layer ${m.routing.routerLayer}`));
});

Deno.test("inspect: --json matches the manifest", async () => {
  const { dir, merge } = await bundle();
  const r = await cli("inspect", dir, "--json");
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  const m = merge.manifest;
  assert.deepEqual(s.experts, m.experts.map((e) => e.name));
  assert.deepEqual(s.plan.units.map((u: { name: string }) => u.name), m.units.map((u) => u.name));
  // Sizes recomputed from the files on disk: tensor bytes from the safetensors header.
  const dense = await Deno.readFile(`${dir}/${m.dense.file}`);
  const headerLength = Number(new DataView(dense.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(dense.subarray(8, 8 + headerLength)));
  const tensorBytes = Object.entries(header).filter(([k]) => k !== "__metadata__")
    .reduce((a, [, t]) =>
      a + (t as { data_offsets: number[] }).data_offsets[1] -
      (t as { data_offsets: number[] }).data_offsets[0], 0);
  assert.equal(s.sizes.denseBytes, tensorBytes);
  assert.equal(s.sizes.baseAndExpertsBytes, (m.experts.length + 1) * s.sizes.denseBytes);
  let total = 0;
  for (const f of m.files) total += (await Deno.stat(`${dir}/${f.path}`)).size;
  assert.equal(s.sizes.totalBytes, total);
  for (const e of m.experts) {
    const blocks = e.blocks.reduce((a, b) => a + b.length, 0);
    assert.equal(s.sizes.expertBytes[e.name], blocks);
    if (blocks > 0) assert.equal((await Deno.stat(`${dir}/${e.file}`)).size, blocks);
  }
  assert.equal(s.router.heldOutAccuracy, m.router.heldOutAccuracy);
});

Deno.test("verify: a clean bundle passes with exit 0", async () => {
  const { dir, merge } = await bundle();
  const r = await cli("verify", dir);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`^ok .*: ${merge.manifest.files.length} files`));
  for (const f of merge.manifest.files) assert.ok(r.stderr.includes(`verified ${f.path}`), f.path);
});

Deno.test("verify: one flipped byte in a sparse expert fails naming the file", async () => {
  const { dir, merge } = await bundle();
  const expert = merge.manifest.experts.find((e) => e.blocks.length > 0);
  assert.ok(expert, "the merge routed no unit, so there is no sparse expert to damage");
  const bad = await copyBundle(dir);
  try {
    const path = `${bad}/${expert.file}`;
    const bytes = await Deno.readFile(path);
    const block = expert.blocks[expert.blocks.length - 1];
    bytes[block.offset + (block.length >> 1)] ^= 0x01;
    await Deno.writeFile(path, bytes);
    const r = await cli("verify", bad);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^FAILED /);
    // The whole-file hash and the damaged block's range hash both fail.
    assert.match(r.stdout, new RegExp(`^  ${expert.file}: sha256 is `, "m"));
    assert.match(
      r.stdout,
      new RegExp(`expert '${expert.name}' unit ${block.unit}: sha256 mismatch`),
    );
    assert.match(r.stderr, new RegExp(`error: Cannot verify bundle .*${expert.file}`));
    assert.ok(!r.stdout.includes("model.safetensors:"), "an untouched file was reported");
  } finally {
    await rm(bad);
  }
});

Deno.test("verify: a truncated model.safetensors is reported", async () => {
  const { dir, merge } = await bundle();
  const bad = await copyBundle(dir);
  try {
    const path = `${bad}/${merge.manifest.dense.file}`;
    const size = (await Deno.stat(path)).size;
    await Deno.truncate(path, size - 100);
    const r = await cli("verify", bad);
    assert.equal(r.code, 1);
    assert.ok(
      r.stdout.includes(
        `${merge.manifest.dense.file}: size is ${size - 100} bytes, manifest says ${size}`,
      ),
      r.stdout,
    );
  } finally {
    await rm(bad);
  }
});

Deno.test("inspect/verify: a folder without a manifest exits 1 with a clear error", async () => {
  const empty = await Deno.makeTempDir({ prefix: "mediator-cli-empty-" });
  try {
    for (const cmd of ["inspect", "verify"]) {
      const r = await cli(cmd, empty);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /error: Cannot open bundle at .*manifest\.json is missing/);
    }
    const r = await cli("inspect");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Usage: deno task inspect/);
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});
