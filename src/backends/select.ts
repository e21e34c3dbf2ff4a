/**
 * Backend selection by name. `auto` picks WebGPU when a hardware adapter exists and the WASM
 * SIMD backend otherwise (no adapter, or only a software rasteriser such as llvmpipe, which
 * is slower than WASM), and says why in `choice`, e.g. "auto -> webgpu (NVIDIA H200)" or
 * "auto -> wasm-simd (only a software adapter: llvmpipe)".
 */
import type { Backend } from "./backend.ts";
import { type AdapterDescription, describeAdapter, requestGpuAdapter } from "./webgpu_device.ts";

/** Backend names accepted by `selectBackend`. */
export type BackendName = "auto" | "wasm" | "webgpu" | "reference";

/** Names accepted by `selectBackend`, for CLI help and validation. */
export const BACKEND_NAMES: readonly BackendName[] = ["auto", "wasm", "webgpu", "reference"];

/** Options of `selectBackend`. */
export interface SelectBackendOptions {
  /** Threads of the WASM backend (default: all cores). */
  threads?: number;
}

/** A created backend and a one-line account of how it was chosen. */
export interface SelectedBackend {
  backend: Backend;
  /** E.g. "auto -> webgpu (NVIDIA H200)", "wasm-simd (2 threads)". */
  choice: string;
}

/** The decision of `auto` for an adapter (or none): which backend, and why. */
export function decideAuto(
  adapter: AdapterDescription | null,
): { backend: "webgpu" | "wasm"; reason: string } {
  if (!adapter) return { backend: "wasm", reason: "no GPU adapter" };
  if (adapter.software) {
    return { backend: "wasm", reason: `only a software adapter: ${adapter.name}` };
  }
  return { backend: "webgpu", reason: adapter.name };
}

async function createWasm(opts: SelectBackendOptions): Promise<Backend> {
  const { createWasmBackend } = await import("./wasm.ts");
  return await createWasmBackend({ threads: opts.threads });
}

async function createReference(): Promise<Backend> {
  const { createReferenceBackend } = await import("./reference.ts");
  return createReferenceBackend();
}

function describe(backend: Backend): string {
  return `${backend.info.name} (${backend.info.device})`;
}

/**
 * Creates the backend called `name` ("auto" decides as `decideAuto` does).
 * @throws TypeError for an unknown name; UnsupportedOpError when "webgpu" has no adapter
 */
export async function selectBackend(
  name: BackendName,
  opts: SelectBackendOptions = {},
): Promise<SelectedBackend> {
  if (!BACKEND_NAMES.includes(name)) {
    throw new TypeError(
      `Cannot select backend '${name}': expected one of ${BACKEND_NAMES.join(", ")}`,
    );
  }
  if (name === "reference") {
    const backend = await createReference();
    return { backend, choice: describe(backend) };
  }
  if (name === "wasm") {
    const backend = await createWasm(opts);
    return { backend, choice: describe(backend) };
  }
  const { createWebGpuBackend } = await import("./webgpu.ts");
  if (name === "webgpu") {
    const backend = await createWebGpuBackend();
    return { backend, choice: describe(backend) };
  }
  const adapter = await requestGpuAdapter();
  const decision = decideAuto(adapter ? describeAdapter(adapter) : null);
  if (decision.backend === "webgpu" && adapter) {
    try {
      const backend = await createWebGpuBackend({ adapter, allowFallback: false });
      return { backend, choice: `auto -> webgpu (${decision.reason})` };
    } catch (e) {
      decision.reason = `WebGPU failed on ${decision.reason}: ${(e as Error).message}`;
    }
  }
  const backend = await createWasm(opts);
  return { backend, choice: `auto -> ${backend.info.name} (${decision.reason})` };
}
