/**
 * Backend selection: the `auto` rule, and that each name creates that backend on this
 * machine (here: Mesa's software adapter, so `auto` must pick WASM; on a GPU host, WebGPU).
 */
import assert from "node:assert/strict";
import { decideAuto, selectBackend } from "../src/backends/select.ts";
import { describeAdapter, requestGpuAdapter } from "../src/backends/webgpu_device.ts";

const skipGpu = Deno.env.get("MEDIATOR_SKIP_WEBGPU") === "1";

function test(name: string, fn: () => Promise<void>, ignore = false): void {
  Deno.test({ name, ignore, sanitizeOps: true, sanitizeResources: true, fn });
}

test("decideAuto: WebGPU only on a hardware adapter", () => {
  assert.deepEqual(decideAuto(null), { backend: "wasm", reason: "no GPU adapter" });
  assert.deepEqual(decideAuto({ name: "llvmpipe (LLVM 15.0.6)", software: true }), {
    backend: "wasm",
    reason: "only a software adapter: llvmpipe (LLVM 15.0.6)",
  });
  assert.deepEqual(decideAuto({ name: "NVIDIA H200", software: false }), {
    backend: "webgpu",
    reason: "NVIDIA H200",
  });
  return Promise.resolve();
});

test("selectBackend: auto follows the adapter of this machine", async () => {
  const adapter = await requestGpuAdapter();
  const expected = decideAuto(adapter ? describeAdapter(adapter) : null);
  const { backend, choice } = await selectBackend("auto", { threads: 1 });
  try {
    const name = expected.backend === "webgpu" ? "webgpu" : "wasm-simd";
    assert.equal(backend.info.name, name);
    assert.equal(choice, `auto -> ${name} (${expected.reason})`);
  } finally {
    backend.dispose();
  }
});

test("selectBackend: names create that backend and describe it", async () => {
  for (const [name, infoName] of [["reference", "reference"], ["wasm", "wasm-simd"]] as const) {
    const { backend, choice } = await selectBackend(name, { threads: 1 });
    try {
      assert.equal(backend.info.name, infoName);
      assert.equal(choice, `${infoName} (${backend.info.device})`);
    } finally {
      backend.dispose();
    }
  }
  await assert.rejects(() => selectBackend("cuda" as "auto"), TypeError);
});

test("selectBackend: webgpu uses the adapter even when it is a software one", async () => {
  assert.ok(
    await requestGpuAdapter(),
    "No WebGPU adapter: run scripts/install_vulkan.sh or set MEDIATOR_SKIP_WEBGPU=1",
  );
  const { backend, choice } = await selectBackend("webgpu");
  try {
    assert.equal(backend.info.name, "webgpu");
    assert.equal(choice, `webgpu (${backend.info.device})`);
  } finally {
    backend.dispose();
  }
}, skipGpu);
