import assert from "node:assert/strict";
import { BundleFormatError } from "../src/errors.ts";
import { LocalStorage } from "../src/storage/local.ts";
import type { ByteStorage } from "../src/storage/storage.ts";
import { type DType, encodeFromF32 } from "../src/tensor/dtype.ts";
import {
  Checkpoint,
  encodeSafetensors,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  SafetensorsFileWriter,
  type TensorToWrite,
} from "../src/safetensors/mod.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void> | void): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mediator-safetensors-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function tensorOf(name: string, dtype: DType, shape: number[], values: number[]): TensorToWrite {
  return { name, dtype, shape, data: encodeFromF32(new Float32Array(values), dtype) };
}

/** Values exactly representable in bf16 and f16, so every dtype round-trips exactly. */
const VALUES = [1.5, -2, 0.25, 3, -0.125, 96];

function sampleTensors(): TensorToWrite[] {
  return [
    tensorOf("a.weight", "f32", [2, 3], VALUES),
    tensorOf("b.weight", "bf16", [3, 2], VALUES),
    tensorOf("c.bias", "f16", [6], VALUES),
    tensorOf("empty", "f32", [0, 4], []),
  ];
}

/** A raw safetensors file from a header object, with `dataBytes` zero bytes of data. */
function rawFile(header: unknown, dataBytes: number, declaredLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

function assertFormatError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BundleFormatError, `expected BundleFormatError, got ${e}`);
    for (const p of parts) {
      if (typeof p === "string") assert.ok(e.message.includes(p), `'${p}' not in: ${e.message}`);
      else assert.match(e.message, p);
    }
    return true;
  });
}

async function assertFormatRejects(fn: () => Promise<unknown>, ...parts: string[]): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof BundleFormatError, `expected BundleFormatError, got ${e}`);
    for (const p of parts) assert.ok(e.message.includes(p), `'${p}' not in: ${e.message}`);
    return true;
  });
}

test("encodeSafetensors: lays out length, padded JSON header and contiguous data", () => {
  const tensors = sampleTensors();
  const bytes = encodeSafetensors(tensors, { format: "pt" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0, "header length is a multiple of 8");
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(text, /^\{"__metadata__":\{"format":"pt"\},"a\.weight":/);
  assert.match(text, /^[^ ]* *$/, "padding is trailing spaces only");
  const header = JSON.parse(text);
  let expectedBegin = 0;
  for (const t of tensors) {
    const entry = header[t.name];
    assert.deepEqual(entry.shape, t.shape);
    assert.deepEqual(entry.data_offsets, [expectedBegin, expectedBegin + t.data.byteLength]);
    const begin = 8 + n + entry.data_offsets[0];
    assert.deepEqual(bytes.subarray(begin, begin + t.data.byteLength), t.data);
    expectedBegin += t.data.byteLength;
  }
  assert.deepEqual(
    Object.fromEntries(tensors.map((t) => [t.name, header[t.name].dtype])),
    { "a.weight": "F32", "b.weight": "BF16", "c.bias": "F16", "empty": "F32" },
  );
  assert.equal(bytes.byteLength, 8 + n + expectedBegin);
});

test("encodeSafetensors: rejects data of the wrong size and duplicate names", () => {
  const [a] = sampleTensors();
  assert.throws(
    () => encodeSafetensors([{ ...a, data: a.data.subarray(4) }]),
    /Cannot write tensor 'a\.weight': got 20 bytes but its dtype and shape need 24/,
  );
  assert.throws(() => encodeSafetensors([a, a]), /'a\.weight': the name appears twice/);
});

test("Checkpoint.open: reads bf16, f16 and f32 tensors of a single file by byte range", async () => {
  await withTempDir(async (dir) => {
    const storage = new LocalStorage(dir);
    const file = encodeSafetensors(sampleTensors(), { format: "pt" });
    await storage.write("model.safetensors", file);
    const ckpt = await Checkpoint.open(storage);
    assert.deepEqual(ckpt.metadata, { format: "pt" });
    assert.deepEqual([...ckpt.tensors.keys()], ["a.weight", "b.weight", "c.bias", "empty"]);
    for (const name of ["a.weight", "b.weight", "c.bias"]) {
      assert.deepEqual(Array.from(await ckpt.readF32(name)), VALUES, name);
    }
    const b = ckpt.info("b.weight");
    assert.deepEqual([b.dtype, b.shape, b.file, b.length], [
      "bf16",
      [3, 2],
      "model.safetensors",
      12,
    ]);
    assert.deepEqual(await ckpt.read("b.weight"), file.subarray(b.offset, b.offset + 12));
    assert.equal((await ckpt.readF32("empty")).length, 0);
    assert.ok(ckpt.has("c.bias") && !ckpt.has("missing"));
  });
});

test("Checkpoint.info: names the tensor that is missing", async () => {
  await withTempDir(async (dir) => {
    const storage = new LocalStorage(dir);
    await storage.write("m/model.safetensors", encodeSafetensors(sampleTensors()));
    const ckpt = await Checkpoint.open(storage, "m");
    assertFormatError(() => ckpt.info("lm_head.weight"), "'lm_head.weight'", "/m");
    await assertFormatRejects(() => ckpt.read("lm_head.weight"), "'lm_head.weight'");
  });
});

test("Checkpoint.open: reads a sharded checkpoint through its index", async () => {
  await withTempDir(async (dir) => {
    const storage = new LocalStorage(dir);
    const [a, b, c] = sampleTensors();
    await storage.write("ck/model-00001-of-00002.safetensors", encodeSafetensors([a, c]));
    await storage.write("ck/model-00002-of-00002.safetensors", encodeSafetensors([b]));
    const index = {
      metadata: { total_size: 48 },
      weight_map: {
        "a.weight": "model-00001-of-00002.safetensors",
        "b.weight": "model-00002-of-00002.safetensors",
        "c.bias": "model-00001-of-00002.safetensors",
      },
    };
    await storage.write(
      "ck/model.safetensors.index.json",
      new TextEncoder().encode(JSON.stringify(index)),
    );
    const ckpt = await Checkpoint.open(storage, "ck/");
    assert.equal(ckpt.tensors.size, 3);
    assert.equal(ckpt.info("b.weight").file, "ck/model-00002-of-00002.safetensors");
    for (const name of ["a.weight", "b.weight", "c.bias"]) {
      assert.deepEqual(Array.from(await ckpt.readF32(name)), VALUES, name);
    }
  });
});

/** Records every range read, to check what the loader fetches. */
class RecordingStorage implements ByteStorage {
  readonly reads: [string, number, number][] = [];
  constructor(readonly inner: ByteStorage) {}
  get location(): string {
    return this.inner.location;
  }
  size(path: string): Promise<number> {
    return this.inner.size(path);
  }
  read(path: string, offset: number, length: number): Promise<Uint8Array> {
    this.reads.push([path, offset, length]);
    return this.inner.read(path, offset, length);
  }
  readAll(path: string): Promise<Uint8Array> {
    this.reads.push([path, 0, -1]);
    return this.inner.readAll(path);
  }
  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }
}

test("readSafetensorsHeader: reads only the header, also when it exceeds the first range", async () => {
  await withTempDir(async (dir) => {
    const local = new LocalStorage(dir);
    // 3000 tensors give a header of ~200 KiB, longer than one first read.
    const many = Array.from(
      { length: 3000 },
      (_, i) => tensorOf(`layer.${i}.w`, "f32", [64], Array.from({ length: 64 }, (_, j) => i + j)),
    );
    const file = encodeSafetensors(many);
    await local.write("model.safetensors", file);
    const storage = new RecordingStorage(local);
    const header = await readSafetensorsHeader(storage, "model.safetensors");
    assert.equal(header.tensors.length, 3000);
    assert.equal(storage.reads.length, 2, "one speculative read, one for the full header");
    assert.ok(
      storage.reads.every(([, off, len]) => off === 0 && len > 0 && len <= header.dataStart),
    );

    const ckpt = await Checkpoint.open(storage);
    storage.reads.length = 0;
    const t = ckpt.info("layer.2999.w");
    assert.deepEqual(await ckpt.read("layer.2999.w"), file.subarray(t.offset, t.offset + 256));
    assert.deepEqual(storage.reads, [["model.safetensors", t.offset, 256]]);
  });
});

test("SafetensorsFileWriter: streams the same bytes encodeSafetensors produces", async () => {
  await withTempDir(async (dir) => {
    const tensors = sampleTensors();
    const path = `${dir}/model.safetensors`;
    const writer = await SafetensorsFileWriter.create(path, tensors, { format: "pt" });
    assert.deepEqual(writer.pending, tensors.map((t) => t.name));
    for (const t of tensors) await writer.write(t.name, t.data);
    await writer.close();
    assert.deepEqual(await Deno.readFile(path), encodeSafetensors(tensors, { format: "pt" }));
    const ckpt = await Checkpoint.open(new LocalStorage(dir));
    assert.deepEqual(Array.from(await ckpt.readF32("c.bias")), VALUES);
  });
});

test("SafetensorsFileWriter: rejects out-of-order and wrong-size writes, discards partial files", async () => {
  await withTempDir(async (dir) => {
    const [a, b] = sampleTensors();
    const path = `${dir}/model.safetensors`;
    const writer = await SafetensorsFileWriter.create(path, [a, b]);
    await assert.rejects(() => writer.write("b.weight", b.data), /'a\.weight' comes next/);
    await assert.rejects(() => writer.write("a.weight", b.data.subarray(2)), RangeError);
    await writer.write("a.weight", a.data);
    await assert.rejects(() => writer.close(), /1 tensor\(s\) were never written.*'b\.weight'/);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "neither the file nor its .tmp remain");
    await assert.rejects(() => writer.write("b.weight", b.data), /closed/);
  });
});

// ---- rejection of malformed files -------------------------------------------------------------

const GOOD_HEADER = {
  "x": { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] },
  "y": { dtype: "BF16", shape: [4], data_offsets: [16, 24] },
};

function parse(header: unknown, dataBytes: number, declared?: bigint) {
  const bytes = rawFile(header, dataBytes, declared);
  return parseSafetensorsHeader(bytes, "bad.safetensors", bytes.byteLength);
}

test("parseSafetensorsHeader: accepts a well-formed header with absolute offsets", () => {
  const h = parse(GOOD_HEADER, 24);
  const start = 8 + JSON.stringify(GOOD_HEADER).length;
  assert.equal(h.dataStart, start);
  assert.deepEqual(h.tensors.map((t) => [t.name, t.offset, t.length]), [
    ["x", start, 16],
    ["y", start + 16, 8],
  ]);
});

test("parseSafetensorsHeader: rejects a truncated file naming the tensor", () => {
  assertFormatError(() => parse(GOOD_HEADER, 20), "'y'", "bad.safetensors", "truncated");
  assertFormatError(
    () => parseSafetensorsHeader(new Uint8Array(5), "tiny.safetensors", 5),
    "tiny.safetensors",
    "too short",
  );
});

test("parseSafetensorsHeader: rejects a header that is not JSON or not an object", () => {
  assertFormatError(() => parse("{not json", 0), "bad.safetensors", "not valid UTF-8 JSON");
  assertFormatError(() => parse("[1, 2]", 0), "must be a JSON object", "an array");
});

test("parseSafetensorsHeader: rejects header lengths over the limit or past the file end", () => {
  assertFormatError(() => parse(GOOD_HEADER, 24, 200_000_000n), "200000000", "exceeds the limit");
  assertFormatError(() => parse(GOOD_HEADER, 24, 5000n), "5000", "runs past the end of the file");
  assertFormatError(() => parse(GOOD_HEADER, 24, 2n ** 63n), "exceeds the limit");
});

test("parseSafetensorsHeader: rejects a shape that does not match the byte span", () => {
  const header = { ...GOOD_HEADER, x: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } };
  assertFormatError(() => parse(header, 24), "'x'", "[2, 3]", "needs 24 bytes", "span 16");
});

test("parseSafetensorsHeader: rejects offsets outside the file", () => {
  const header = { x: { dtype: "F32", shape: [4], data_offsets: [1000, 1016] } };
  assertFormatError(() => parse(header, 16), "'x'", "ends at byte 1016", "holds only 16");
});

test("parseSafetensorsHeader: rejects overlapping tensors naming both", () => {
  const header = { ...GOOD_HEADER, y: { dtype: "BF16", shape: [4], data_offsets: [8, 16] } };
  assertFormatError(() => parse(header, 24), "'x' [0, 16)", "'y' [8, 16)", "overlap");
});

test("parseSafetensorsHeader: rejects unsupported dtypes naming tensor and dtype", () => {
  const header = { ids: { dtype: "I64", shape: [2], data_offsets: [0, 16] } };
  assertFormatError(() => parse(header, 16), "'ids'", "'I64'", "BF16, F16, F32");
});

test("parseSafetensorsHeader: rejects malformed entries and metadata", () => {
  const neg = { x: { dtype: "F32", shape: [-1, 4], data_offsets: [0, 16] } };
  assertFormatError(() => parse(neg, 16), "'x'", "non-negative integers", "[-1,4]");
  const noOffsets = { x: { dtype: "F32", shape: [4] } };
  assertFormatError(() => parse(noOffsets, 16), "'x'", "'data_offsets'");
  const backwards = { x: { dtype: "F32", shape: [0], data_offsets: [8, 4] } };
  assertFormatError(() => parse(backwards, 16), "'x'", "[8, 4]");
  const meta = { __metadata__: { format: "pt", step: 3 }, ...GOOD_HEADER };
  assertFormatError(() => parse(meta, 24), "'__metadata__'", "'step'");
});

async function writeSharded(
  dir: string,
  weightMap: Record<string, string>,
  shards: Record<string, TensorToWrite[]>,
): Promise<LocalStorage> {
  const storage = new LocalStorage(dir);
  for (const [file, tensors] of Object.entries(shards)) {
    await storage.write(file, encodeSafetensors(tensors));
  }
  const index = new TextEncoder().encode(JSON.stringify({ weight_map: weightMap }));
  await storage.write("model.safetensors.index.json", index);
  return storage;
}

test("Checkpoint.open: rejects a missing shard naming it", async () => {
  await withTempDir(async (dir) => {
    const [a] = sampleTensors();
    const storage = await writeSharded(
      dir,
      { "a.weight": "s1.safetensors", "b.weight": "s2.safetensors" },
      { "s1.safetensors": [a] },
    );
    await assertFormatRejects(() => Checkpoint.open(storage), "shard s2.safetensors", "'b.weight'");
  });
});

test("Checkpoint.open: rejects shard paths leaving the folder", async () => {
  await withTempDir(async (dir) => {
    const [a] = sampleTensors();
    const storage = await writeSharded(dir, { "a.weight": "../s1.safetensors" }, {
      "s1.safetensors": [a],
    });
    await assertFormatRejects(
      () => Checkpoint.open(storage),
      "model.safetensors.index.json",
      "'../s1.safetensors'",
      "'a.weight'",
      "'..'",
    );
  });
});

test("Checkpoint.open: rejects index entries absent from their shard", async () => {
  await withTempDir(async (dir) => {
    const [a] = sampleTensors();
    const storage = await writeSharded(dir, {
      "a.weight": "s1.safetensors",
      "ghost.weight": "s1.safetensors",
    }, { "s1.safetensors": [a] });
    await assertFormatRejects(
      () => Checkpoint.open(storage),
      "'ghost.weight'",
      "s1.safetensors",
      "does not list it",
    );
  });
});

test("Checkpoint.open: explains a folder without a checkpoint", async () => {
  await withTempDir(async (dir) => {
    await assertFormatRejects(
      () => Checkpoint.open(new LocalStorage(dir)),
      "model.safetensors",
      "model.safetensors.index.json",
    );
  });
});

// ---- files written by the reference implementation ----------------------------------------------

const FIXTURE_FAMILY = new URL("../fixtures/family/", import.meta.url);
const FIXTURE_BASE = new URL("base/", FIXTURE_FAMILY);
const HAVE_FIXTURES = (() => {
  try {
    return Deno.statSync(FIXTURE_FAMILY).isDirectory;
  } catch {
    return false;
  }
})();
if (!HAVE_FIXTURES) {
  console.warn(
    "fixtures/family/ does not exist yet: the test against Python-written checkpoints is " +
      "skipped (generate it with scripts/make_fixtures.py)",
  );
}

Deno.test({
  name: "Checkpoint.open: reads a checkpoint written by Python safetensors, byte for byte",
  ignore: !HAVE_FIXTURES,
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const storage = new LocalStorage(FIXTURE_BASE.pathname);
    const config = JSON.parse(await Deno.readTextFile(new URL("config.json", FIXTURE_BASE)));
    const ckpt = await Checkpoint.open(storage);
    const embed = ckpt.info("model.embed_tokens.weight");
    assert.deepEqual(embed.shape, [config.vocab_size, config.hidden_size]);
    const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const k = ckpt.info(`model.layers.${l}.self_attn.k_proj.weight`);
      assert.deepEqual(k.shape, [config.num_key_value_heads * headDim, config.hidden_size]);
    }
    // Re-encode every tensor in file order: the result must equal the original file.
    const original = await storage.readAll("model.safetensors");
    const tensors: TensorToWrite[] = [];
    for (const info of ckpt.tensors.values()) {
      tensors.push({
        name: info.name,
        dtype: info.dtype,
        shape: info.shape,
        data: await ckpt.read(info.name),
      });
    }
    assert.deepEqual(encodeSafetensors(tensors, ckpt.metadata), original);
  },
});
