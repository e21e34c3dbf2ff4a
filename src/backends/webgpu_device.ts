/**
 * Adapter discovery and device creation for the WebGPU backend: finds an adapter, names it,
 * tells software adapters apart, and opens a device with the adapter's largest compute limits.
 */
import { UnsupportedOpError } from "../errors.ts";

/** What the backend and the selector need to know about an adapter. */
export interface AdapterDescription {
  /** Human-readable adapter name, e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
  name: string;
  /** True for a CPU rasteriser (Mesa llvmpipe/lavapipe, SwiftShader, WARP). */
  software: boolean;
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|basic render|warp/i;

/** Limits requested at their adapter maximum: the ones compute kernels depend on. */
const WANTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxDynamicStorageBuffersPerPipelineLayout",
  "maxDynamicUniformBuffersPerPipelineLayout",
  "maxUniformBufferBindingSize",
] as const;

/** The WebGPU entry point of this runtime, or null when it has none. */
export function gpuApi(): GPU | null {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu ?? null;
}

/** Requests a high-performance adapter; null when the runtime has no WebGPU or no adapter. */
export async function requestGpuAdapter(): Promise<GPUAdapter | null> {
  const gpu = gpuApi();
  if (!gpu) return null;
  try {
    return await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
}

/** Name and software flag of `adapter`. */
export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const name = info.description || info.device || info.vendor || "unknown adapter";
  const software = info.isFallbackAdapter === true || legacy === true || SOFTWARE_NAMES.test(name);
  return { name, software };
}

/**
 * Opens a device on `adapter` with the adapter's maximum compute limits and `features`.
 * @throws UnsupportedOpError when the adapter refuses to open a device
 */
export async function openComputeDevice(
  adapter: GPUAdapter,
  features: GPUFeatureName[] = [],
): Promise<GPUDevice> {
  const requiredLimits: Record<string, number> = {};
  const limits = adapter.limits as unknown as Record<string, number | undefined>;
  for (const key of WANTED_LIMITS) {
    const value = limits[key];
    if (typeof value === "number") requiredLimits[key] = value;
  }
  try {
    return await adapter.requestDevice({ requiredLimits, requiredFeatures: features });
  } catch (e) {
    throw new UnsupportedOpError(
      `Cannot open a WebGPU device on '${describeAdapter(adapter).name}': ${
        (e as Error).message
      }; update the GPU driver or use the wasm backend`,
    );
  }
}
