import assert from "node:assert/strict";
import { firstStop } from "../src/model/generate.ts";
import { TextStream } from "../src/server/text_stream.ts";
import { byteTokenizer } from "./helpers/server_model.ts";

const tokenizer = byteTokenizer();
const decode = (ids: number[]) => tokenizer.decode(ids);

const TEXTS = [
  "plain ascii text",
  "héllo wörld",
  "日本語のテキスト and ✓ marks",
  "emoji 😀 split over four byte tokens 🎉!",
  "a<|im_end|>b", // a special token in the middle: left out of the text
  "ab日本", // "b" and the first byte of "日" are one token
];
/** Invalid UTF-8 (a lone continuation byte) in the middle of the output, as a bad model writes. */
const INVALID = [0x53, 0xca, 0xcf, 0x89, 0x58, 0xa7, 0xa7, 0xbb, 0x41];

/** Push every id; return the deltas and the index at which the stream stopped (or -1). */
function run(ids: number[], stop: string[]) {
  const s = new TextStream(decode, stop);
  const deltas: string[] = [];
  for (const [i, id] of ids.entries()) {
    const u = s.push(id);
    if (u.delta) deltas.push(u.delta);
    if (u.stopped) {
      assert.equal(s.finish(), "", "nothing follows a stop");
      return { deltas, stoppedAt: i, text: s.text };
    }
  }
  const rest = s.finish();
  if (rest) deltas.push(rest);
  return { deltas, stoppedAt: -1, text: s.text };
}

Deno.test("TextStream: deltas add up to the full decode and never split a character", () => {
  for (const text of TEXTS) {
    const ids = tokenizer.encode(text);
    const { deltas, text: final } = run(ids, []);
    assert.equal(deltas.join(""), decode(ids), text);
    assert.equal(final, decode(ids));
    for (const d of deltas) assert.ok(!d.includes("\uFFFD"), `${text}: ${JSON.stringify(d)}`);
  }
});

Deno.test("TextStream: stops at the same token and text as a full decode would", () => {
  for (const text of [...TEXTS, INVALID]) {
    const ids = typeof text === "string" ? tokenizer.encode(text) : text;
    const full = decode(ids);
    // Stop strings from inside the text (some spanning multi-byte characters), one absent, and
    // an empty one (ignored).
    const stops = [
      [full.slice(3, 5)],
      [full.slice(-3)],
      [full.slice(6, 8), "zzz"],
      ["absent!"],
      [full.slice(0, 2)],
      ["\uFFFD"], // what an invalid byte decodes to
    ];
    for (const stop of stops) {
      const { deltas, stoppedAt, text: final } = run(ids, stop);
      // The independent definition: the first prefix whose decode contains a stop string.
      let expectedAt = -1;
      for (let k = 1; k <= ids.length && expectedAt < 0; k++) {
        if (firstStop(decode(ids.slice(0, k)), stop) >= 0) expectedAt = k - 1;
      }
      assert.equal(stoppedAt, expectedAt, `${text} / ${stop}`);
      const expectedText = expectedAt < 0 ? full : decode(ids.slice(0, expectedAt + 1)).slice(
        0,
        firstStop(decode(ids.slice(0, expectedAt + 1)), stop),
      );
      assert.equal(final, expectedText, `${text} / ${stop}`);
      assert.equal(deltas.join(""), expectedText);
      for (const d of deltas) {
        for (const s of stop) if (s) assert.ok(!d.includes(s), "a stop string is never sent");
      }
    }
  }
});

Deno.test("TextStream: text that may begin a stop string waits until it cannot", () => {
  const s = new TextStream(decode, ["END"]);
  const sent: string[] = [];
  for (const id of tokenizer.encode("xEN")) sent.push(s.push(id).delta);
  assert.deepEqual(sent, ["x", "", ""], "'E' and 'EN' could start 'END'");
  assert.equal(s.push(tokenizer.encode("d")[0]).delta, "ENd");
  assert.equal(s.finish(), "");
  assert.equal(s.text, "xENd");
});
