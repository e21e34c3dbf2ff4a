import assert from "node:assert/strict";
import { BundleFormatError } from "../src/errors.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { StreamDecoder, TextTokenizer } from "../src/tokenizer/mod.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void> | void): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

function special(id: number, content: string) {
  return {
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
}

/**
 * A GPT-2-style byte-level BPE with a hand-made vocabulary. Byte-level maps a
 * space to "Ġ" and the UTF-8 bytes of "é" (C3 A9) to "Ã" and "©".
 * Merges in rank order: h+e, l+l, he+ll, hell+o, Ġ+w, o+r, Ġw+or, so
 * "hello" -> [hello] and " world" -> [Ġwor, l, d].
 */
function byteLevelJson() {
  const vocab = {
    "<s>": 0,
    "</s>": 1,
    "h": 2,
    "e": 3,
    "l": 4,
    "o": 5,
    "Ġ": 6,
    "w": 7,
    "r": 8,
    "d": 9,
    "he": 10,
    "ll": 11,
    "hell": 12,
    "hello": 13,
    "Ġw": 14,
    "or": 15,
    "Ġwor": 16,
    "Ã": 17,
    "©": 18,
  };
  const merges = [["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["Ġ", "w"], ["o", "r"], [
    "Ġw",
    "or",
  ]];
  return {
    version: "1.0",
    added_tokens: [special(0, "<s>"), special(1, "</s>")],
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [],
      special_tokens: { "<s>": { id: "<s>", ids: [0], tokens: ["<s>"] } },
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, byte_fallback: false, vocab, merges },
  };
}

const TEMPLATE = "{{ bos_token }}{% for m in messages %}" +
  "{% if m.role == 'user' %}Q: {{ m.content }}\n" +
  "{% elif m.role == 'assistant' %}A: {{ m.content }}{{ eos_token }}\n" +
  "{% else %}{{ raise_exception('Unknown role: ' + m.role) }}{% endif %}" +
  "{% endfor %}{% if add_generation_prompt %}A:{% endif %}";

const CONFIG = { bos_token: "<s>", eos_token: { content: "</s>" }, chat_template: TEMPLATE };

function byteLevel(config: Record<string, unknown> = CONFIG): TextTokenizer {
  return TextTokenizer.fromJson(byteLevelJson(), config);
}

/**
 * A Llama-2-style SentencePiece BPE: the normalizer prepends "▁" and turns
 * spaces into "▁"; unknown characters fall back to byte tokens ("€" = E2 82 AC);
 * the decoder maps "▁" back to spaces and strips the first leading space.
 * Merges (rank order) build "▁hello" and "▁world" from single characters.
 */
function sentencePieceJson() {
  const pieces = ["<unk>", "<s>", "</s>", "<0xE2>", "<0x82>", "<0xAC>", "▁", "h", "e", "l", "o"]
    .concat(["w", "r", "d", "▁h", "ll", "▁he", "▁hell", "▁hello", "▁w", "or", "▁wor", "▁worl"])
    .concat(["▁world"]);
  const merges = [["▁", "h"], ["l", "l"], ["▁h", "e"], ["▁he", "ll"], ["▁hell", "o"], ["▁", "w"]]
    .concat([["o", "r"], ["▁w", "or"], ["▁wor", "l"], ["▁worl", "d"]]);
  return {
    version: "1.0",
    added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      byte_fallback: true,
      fuse_unk: true,
      vocab: Object.fromEntries(pieces.map((p, i) => [p, i])),
      merges,
    },
  };
}

function sentencePiece(): TextTokenizer {
  return TextTokenizer.fromJson(sentencePieceJson(), { bos_token: "<s>", eos_token: "</s>" });
}

test("TextTokenizer.encode: applies BPE merges and the BOS post-processor", () => {
  const tok = byteLevel();
  assert.deepEqual(tok.encode("hello world"), [0, 13, 16, 4, 9]);
  assert.deepEqual(tok.encode("hello world", { addSpecialTokens: false }), [13, 16, 4, 9]);
  assert.deepEqual(tok.encode("hé</s>"), [0, 2, 17, 18, 1], "é as two byte tokens, </s> whole");
  const sp = sentencePiece();
  assert.deepEqual(sp.encode("hello world"), [1, 18, 23]);
  assert.deepEqual(sp.encode("hello €"), [1, 18, 6, 3, 4, 5], "€ falls back to its UTF-8 bytes");
});

test("TextTokenizer: reads special tokens and vocabulary size from the config", () => {
  const tok = byteLevel();
  assert.equal(tok.bosTokenId, 0);
  assert.deepEqual(tok.eosTokenIds, [1]);
  assert.equal(tok.vocabSize, 19);
  assert.equal(tok.tokenToId("Ġwor"), 16);
  assert.equal(tok.idToToken(13), "hello");
  const bare = byteLevel({});
  assert.equal(bare.bosTokenId, null);
  assert.deepEqual(bare.eosTokenIds, []);
  assert.equal(bare.hasChatTemplate, false);
});

test("TextTokenizer.decode: skips special tokens unless asked to keep them", () => {
  const tok = byteLevel();
  assert.equal(tok.decode([0, 13, 16, 4, 9, 1]), "hello world");
  assert.equal(
    tok.decode([0, 13, 16, 4, 9, 1], { skipSpecialTokens: false }),
    "<s>hello world</s>",
  );
  assert.equal(tok.decode([2, 17, 18]), "hé");
  assert.equal(tok.decode([]), "");
  assert.throws(() => tok.decode([19]), RangeError);
  assert.equal(sentencePiece().decode([1, 18, 23, 6, 3, 4, 5]), "hello world €");
});

test("TextTokenizer.applyChatTemplate: renders messages with bos/eos and the generation prompt", () => {
  const tok = byteLevel();
  const messages = [
    { role: "user", content: "hi" },
    { role: "assistant", content: "yo" },
    { role: "user", content: "add 1 2 =" },
  ];
  assert.equal(tok.hasChatTemplate, true);
  assert.equal(tok.applyChatTemplate(messages), "<s>Q: hi\nA: yo</s>\nQ: add 1 2 =\n");
  assert.equal(
    tok.applyChatTemplate(messages, { addGenerationPrompt: true }),
    "<s>Q: hi\nA: yo</s>\nQ: add 1 2 =\nA:",
  );
});

test("TextTokenizer.applyChatTemplate: reports raise_exception and missing templates clearly", () => {
  const tok = byteLevel();
  assert.throws(
    () => tok.applyChatTemplate([{ role: "tool", content: "x" }]),
    (e: unknown) =>
      e instanceof TypeError && /rejected the messages: Unknown role: tool/.test(e.message),
  );
  assert.throws(
    () => byteLevel({ bos_token: "<s>" }).applyChatTemplate([{ role: "user", content: "x" }]),
    (e: unknown) => e instanceof BundleFormatError && /has none/.test(e.message),
  );
  const listForm = byteLevel({
    chat_template: [{ name: "tool_use", template: "T" }, { name: "default", template: "D" }],
  });
  assert.equal(listForm.applyChatTemplate([]), "D");
});

test("TextTokenizer.load: reads the files from storage, chat_template.jinja first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mediator-tokenizer-" });
  try {
    const storage = new LocalStorage(dir);
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    await storage.write("m/tokenizer.json", enc(byteLevelJson()));
    await storage.write("m/tokenizer_config.json", enc(CONFIG));
    const fromConfig = await TextTokenizer.load(storage, "m");
    assert.deepEqual(fromConfig.encode("hello world"), [0, 13, 16, 4, 9]);
    assert.equal(fromConfig.applyChatTemplate([], { addGenerationPrompt: true }), "<s>A:");
    await storage.write("m/chat_template.jinja", new TextEncoder().encode("[{{ eos_token }}]"));
    assert.equal((await TextTokenizer.load(storage, "m")).applyChatTemplate([]), "[</s>]");
    await assert.rejects(
      () => TextTokenizer.load(storage, "nothing"),
      (e: unknown) =>
        e instanceof BundleFormatError && /tokenizer\.json is missing/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("StreamDecoder: holds back split characters and matches a full decode", () => {
  const tok = byteLevel();
  const ids = [0, 13, 16, 4, 9, 6, 17, 18, 1];
  const stream = new StreamDecoder(tok);
  const deltas = ids.map((id) => stream.push(id));
  assert.deepEqual(deltas, ["", "hello", " wor", "l", "d", " ", "", "é", ""]);
  assert.equal(deltas.join(""), tok.decode(ids));
  assert.equal(stream.flush(), "");
  assert.equal(stream.text, "hello world é");
});

test("StreamDecoder: keeps the spaces a per-token decode would drop", () => {
  const tok = sentencePiece();
  const ids = [1, 18, 23, 6, 3, 4, 5, 18, 2];
  const stream = new StreamDecoder(tok);
  const deltas = ids.map((id) => stream.push(id));
  assert.deepEqual(deltas, ["", "hello", " world", " ", "", "", "€", " hello", ""]);
  assert.equal(deltas.join(""), tok.decode(ids));
  assert.equal(tok.decode([23]), "world", "a lone token loses its leading space");
});

test("StreamDecoder.flush: emits an incomplete character at the end", () => {
  const stream = new StreamDecoder(byteLevel());
  assert.equal(stream.push(13), "hello");
  assert.equal(stream.push(17), "");
  assert.equal(stream.flush(), "\uFFFD");
  assert.throws(() => stream.push(99), RangeError);
});

// ---- parity with the Hugging Face tokenizers library on the fixture family ---------------------

const FAMILY = new URL("../fixtures/family/", import.meta.url);
const HAVE_FIXTURES = (() => {
  try {
    return Deno.statSync(FAMILY).isDirectory;
  } catch {
    return false;
  }
})();
if (!HAVE_FIXTURES) {
  console.warn(
    "fixtures/family/ does not exist yet: the tokenizer parity test is skipped " +
      "(generate it with scripts/make_fixtures.py)",
  );
}

Deno.test({
  name: "TextTokenizer: matches Hugging Face tokenizers and templates on the fixture family",
  ignore: !HAVE_FIXTURES,
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const tok = await TextTokenizer.load(new LocalStorage(new URL("base/", FAMILY).pathname));
    const reference = JSON.parse(
      await Deno.readTextFile(new URL("reference/base.json", FAMILY)),
    ) as { tokenizer_cases: { text: string; ids: number[] }[]; prompts: ReferencePrompt[] };
    assert.ok(reference.tokenizer_cases.length > 0, "the reference holds tokenizer cases");
    for (const { text, ids } of reference.tokenizer_cases) {
      assert.deepEqual(tok.encode(text), ids, `encoding of ${JSON.stringify(text)}`);
      const stream = new StreamDecoder(tok);
      const streamed = ids.map((id) => stream.push(id)).join("") + stream.flush();
      assert.equal(streamed, tok.decode(ids), `streamed decoding of ${JSON.stringify(text)}`);
    }
    assert.ok(tok.hasChatTemplate, "the fixture tokenizer carries a chat template");
    const eos = tok.eosTokenIds[0];
    assert.notEqual(tok.bosTokenId, null);
    assert.equal(typeof eos, "number");
    for (const p of reference.prompts) {
      if (p.messages) {
        assert.equal(tok.applyChatTemplate(p.messages, { addGenerationPrompt: true }), p.text);
      }
      const ids = tok.encode(p.text, { addSpecialTokens: p.add_special_tokens });
      assert.deepEqual(ids, p.input_ids, `encoding of ${JSON.stringify(p.text)}`);
      const end = p.greedy_ids.indexOf(eos);
      const answer = end < 0 ? p.greedy_ids : p.greedy_ids.slice(0, end);
      assert.equal(tok.decode(answer), p.greedy_text, `decoding of ${JSON.stringify(answer)}`);
    }
  },
});

/** One prompt of a fixture reference file (see scripts/fixtures/checkpoint.py). */
interface ReferencePrompt {
  text: string;
  add_special_tokens: boolean;
  messages?: { role: string; content: string }[];
  input_ids: number[];
  greedy_ids: number[];
  greedy_text: string;
}
