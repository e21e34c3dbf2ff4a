import assert from "node:assert/strict";
import { buildDeploy } from "../scripts/build_deploy.ts";
import { createDeployHandler } from "../src/deploy.ts";
import { writeRandomCheckpoint } from "./helpers/server_model.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

async function withCheckpoint(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mediator-deploy-" });
  try {
    await writeRandomCheckpoint(dir);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const chatRequest = (url: string, key?: string) =>
  new Request(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body: JSON.stringify({
      model: "tiny",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 4,
      temperature: 0,
    }),
  });

test("createDeployHandler: a failed load answers 503 and the next request retries", async () => {
  await withCheckpoint(async (dir) => {
    const env = new Map<string, string>([
      ["MEDIATOR_MODEL", `${dir}/missing`],
      ["MEDIATOR_BACKEND", "reference"],
      ["MEDIATOR_NAME", "tiny"],
      ["MEDIATOR_API_KEY", "sk-deploy"],
    ]);
    const handler = createDeployHandler((name) => env.get(name));
    try {
      const failed = await handler.fetch(new Request("http://deploy.test/health"));
      assert.equal(failed.status, 503);
      const body = await failed.json();
      assert.equal(body.error.code, "model_unavailable");
      assert.match(body.error.message, /Cannot load the model/);

      env.set("MEDIATOR_MODEL", dir);
      const health = await handler.fetch(new Request("http://deploy.test/health"));
      assert.equal(health.status, 200);
      assert.equal((await health.json()).model, "tiny");
      const denied = await handler.fetch(chatRequest("http://deploy.test/v1/chat/completions"));
      assert.equal(denied.status, 401);
      await denied.body?.cancel();
      const ok = await handler.fetch(
        chatRequest("http://deploy.test/v1/chat/completions", "sk-deploy"),
      );
      assert.equal(ok.status, 200);
      assert.equal((await ok.json()).usage.completion_tokens, 4);
    } finally {
      await handler.close();
    }
  });
});

test("build_deploy: the esbuild bundle serves chat completions under `deno serve`", async () => {
  const out = await Deno.makeTempDir({ prefix: "mediator-bundle-" });
  try {
    const { path, bytes } = await buildDeploy(`${out}/deploy.js`);
    assert.ok(bytes > 10_000);
    await withCheckpoint(async (dir) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["serve", "--allow-all", "--port", "0", "--host", "127.0.0.1", path],
        cwd: out, // no deno.json or node_modules here: the bundle must stand alone
        env: {
          MEDIATOR_MODEL: dir,
          MEDIATOR_BACKEND: "reference",
          MEDIATOR_NAME: "tiny",
          NO_COLOR: "1",
        },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // `deno serve` announces its address on stderr.
      const stdout = new Response(child.stdout).text();
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      try {
        let text = "", url: string | undefined;
        for (let i = 0; i < 100 && !url; i++) {
          const { done, value } = await reader.read();
          if (done) break;
          text += value;
          url = /Listening on (http:\/\/[^\s/]+)/.exec(text)?.[1];
        }
        assert.ok(url, `deno serve printed no address: ${text}`);
        const res = await fetch(chatRequest(`${url}/v1/chat/completions`));
        assert.equal(res.status, 200);
        const body = await res.json();
        assert.equal(body.object, "chat.completion");
        assert.deepEqual(body.mediator, {
          experts: [],
          weights: [],
          uncertainty: 0,
          forced: false,
        });
      } finally {
        try {
          child.kill("SIGTERM");
        } catch {
          // It already exited; the assertions above say why.
        }
        await child.status;
        await reader.cancel();
        await stdout;
      }
    });
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
