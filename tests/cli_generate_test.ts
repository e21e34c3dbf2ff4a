/**
 * `deno task generate` as a user runs it: --json with --input-ids reproduces
 * the PyTorch reference; text prompts, chat and bad arguments behave.
 */
import assert from "node:assert/strict";
import { FAMILY, readReference } from "./helpers/fixtures.ts";

const CLI = new URL("../src/cli/generate.ts", import.meta.url).pathname;

async function generate(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("generate --json --input-ids: logits and greedy ids match PyTorch", async () => {
  const p = readReference(`${FAMILY}/reference/add.json`).prompts[0];
  const r = await generate([
    "--model",
    `${FAMILY}/experts/add`,
    "--input-ids",
    p.input_ids.join(","),
    "--max-tokens",
    String(p.greedy_ids.length),
    "--backend",
    "wasm",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.input_ids, p.input_ids);
  assert.equal(out.last_logits.length, p.last_logits.length);
  const err = Math.max(
    ...out.last_logits.map((v: number, i: number) => Math.abs(v - p.last_logits[i])),
  );
  assert.ok(err <= 2e-3, `max logit error ${err}`);
  // The CLI stops at EOS; the reference runs a fixed 16 tokens.
  assert.deepEqual(out.output_ids, p.greedy_ids.slice(0, out.output_ids.length));
  assert.match(out.backend, /wasm/);
});

Deno.test("generate: a text prompt and a chat prompt answer the expert's task", async () => {
  const text = await generate([
    "--model",
    `${FAMILY}/experts/add`,
    "--prompt",
    "add 12 34 =",
    "--max-tokens",
    "8",
  ]);
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stdout.trim(), "46");
  const chat = await generate([
    "--model",
    `${FAMILY}/experts/add`,
    "--prompt",
    "add 12 34",
    "--chat",
    "--max-tokens",
    "8",
    "--json",
  ]);
  assert.equal(chat.code, 0, chat.stderr);
  assert.equal(JSON.parse(chat.stdout).text.trim(), "46");
});

Deno.test("generate: bad arguments exit 2 with a clear message", async () => {
  const none = await generate(["--prompt", "x"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--model is required/);
  const ids = await generate(["--model", `${FAMILY}/base`, "--input-ids", "1,99999"]);
  assert.notEqual(ids.code, 0);
  assert.match(ids.stderr, /input id '99999' is not in \[0, 512\)/);
  const missing = await generate(["--model", "/nonexistent/model", "--prompt", "x"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /config\.json/);
});
