import assert from "node:assert/strict";
import { writeRandomCheckpoint } from "./helpers/server_model.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

const SERVE = new URL("../src/cli/serve.ts", import.meta.url).pathname;

function serveCommand(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SERVE, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
}

/** Read lines from a byte stream until one matches, keeping the rest readable. */
async function readLineMatching(
  reader: ReadableStreamDefaultReader<string>,
  pattern: RegExp,
): Promise<RegExpExecArray> {
  let buffered = "";
  for (let i = 0; i < 1000; i++) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += value;
    const m = pattern.exec(buffered);
    if (m) return m;
  }
  throw new Error(`The server never printed a line matching ${pattern}; output: ${buffered}`);
}

test("serve: starts on a free port, answers, and stops cleanly on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mediator-serve-" });
  try {
    await writeRandomCheckpoint(dir);
    const child = serveCommand([
      "--model",
      dir,
      "--backend",
      "reference",
      "--port",
      "0",
      "--api-key",
      "sk-cli",
      "--name",
      "tiny",
    ]).spawn();
    const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const stderrText = new Response(child.stderr).text();
    try {
      const [line, url] = await readLineMatching(
        stdout,
        /Mediator serving .* at (http:\/\/\S+\/v1).*\n/,
      );
      assert.match(line, /backend: reference/);
      assert.match(line, /'tiny'/);
      const res = await fetch(`${url}/chat/completions`, {
        method: "POST",
        headers: { authorization: "Bearer sk-cli", "content-type": "application/json" },
        body: JSON.stringify({
          model: "tiny",
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 5,
          temperature: 0,
        }),
      });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.model, "tiny");
      assert.ok(body.usage.completion_tokens > 0);
      const health = await (await fetch(url.replace(/\/v1$/, "/health"))).json();
      assert.equal(health.backend, "reference (plain TypeScript, f32)");
    } finally {
      child.kill("SIGTERM");
      const status = await child.status;
      await stdout.cancel();
      const stderr = await stderrText;
      assert.equal(status.code, 0, stderr);
      assert.match(stderr, /Shutting down/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("serve: refuses conflicting or missing sources with a usage message", async () => {
  for (const args of [["--model", "a", "--bundle", "b"], ["--bundle", "b"]]) {
    const out = await serveCommand(args).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(stderr, /^error: Cannot serve: --/);
    assert.match(stderr, /Usage: deno task serve/);
  }
});
