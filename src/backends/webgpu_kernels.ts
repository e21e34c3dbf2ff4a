/**
 * The WGSL kernels of the WebGPU backend: their bindings and uniform parameters (mirroring
 * the header comment and `Params` struct of each `kernels/wgsl/<name>.wgsl`), plus a cache of
 * shader modules, bind group layouts and pipelines specialised by override constants.
 */
import { WGSL_SOURCES } from "./webgpu_wgsl.gen.ts";

/**
 * How a kernel binding is bound: `params` is the per-dispatch uniform block (dynamic offset),
 * `data` a read-only host array from the arena (dynamic offset), `read` / `rw` whole buffers
 * as read-only / read-write storage.
 */
export type BindingKind = "params" | "data" | "read" | "rw";

/** Description of one kernel. */
export interface KernelSpec {
  /** Binding kinds by binding index (group 0). */
  readonly bindings: readonly BindingKind[];
  /** Fields of the uniform `Params` struct in order; a `:f32` suffix marks a float field. */
  readonly params: readonly string[];
}

/** Every kernel, keyed by its file name in kernels/wgsl. */
export const KERNELS = {
  add: { bindings: ["params", "rw", "rw", "rw"], params: ["n"] },
  silu_mul: { bindings: ["params", "rw", "rw", "rw"], params: ["n"] },
  rms_norm: { bindings: ["params", "rw", "read", "rw"], params: ["cols", "m", "eps:f32"] },
  rope: {
    bindings: ["params", "rw", "data", "read"],
    params: ["m", "num_heads", "head_dim"],
  },
  embed: {
    bindings: ["params", "read", "data", "rw"],
    params: ["cols", "stride_w", "m", "row_base", "rows"],
  },
  matmul_gemv: {
    bindings: ["params", "read", "read", "rw", "read", "read", "read", "read", "read"],
    params: [
      "rows",
      "cols",
      "stride_v",
      "m_base",
      "out_stride",
      "row_base",
      "has_bias",
      "s0_row_offset",
      "s0_m",
      "s0_scale:f32",
      "s1_row_offset",
      "s1_m",
      "s1_scale:f32",
      "norm_eps:f32",
    ],
  },
  matmul_gemm: {
    bindings: ["params", "read", "read", "rw", "read"],
    params: ["rows", "cols", "stride_w", "m", "out_stride", "row_base", "has_bias"],
  },
  attention: {
    bindings: ["params", "rw", "read", "read", "rw"],
    params: [
      "num_heads",
      "num_kv_heads",
      "head_dim",
      "row_offset",
      "m",
      "start_pos",
      "scale:f32",
      "chunk",
      "splits",
    ],
  },
  kv_write: {
    bindings: ["params", "read", "read", "rw", "rw", "read"],
    params: ["m", "num_kv_heads", "head_dim", "row_offset", "start_pos"],
  },
  attention_combine: {
    bindings: ["params", "read", "rw"],
    params: ["num_heads", "head_dim", "row_offset", "splits"],
  },
  sparse_matmul_add: {
    bindings: ["params", "read", "read", "rw"],
    params: ["rows", "row_base", "out_stride", "x_stride", "row_offset", "m_base", "scale:f32"],
  },
  scatter_add: {
    bindings: ["params", "read", "rw"],
    params: ["rows", "sparse_row0", "w_row0", "stride_w", "scale:f32", "chunk_rows"],
  },
} as const satisfies Record<string, KernelSpec>;

/** Name of a kernel in `KERNELS`. */
export type KernelName = keyof typeof KERNELS;

/** Override constants of a pipeline specialisation. */
export type KernelConstants = Readonly<Record<string, number | boolean>>;

/** Size in bytes of the `params` binding (every Params struct fits in 16 u32 fields). */
export const PARAMS_BYTES = 64;

/**
 * Writes `values` into `bytes` in the field order of `kernel`'s Params struct.
 * @throws TypeError when a field is missing or unknown
 */
export function packParams(
  kernel: KernelName,
  values: Readonly<Record<string, number>>,
  bytes: Uint8Array,
): void {
  const fields = parsedFields(kernel);
  const view = new DataView(bytes.buffer, bytes.byteOffset, PARAMS_BYTES);
  for (let i = 0; i < fields.length; i++) {
    const { name, float } = fields[i];
    const value = values[name];
    if (typeof value !== "number") {
      throw new TypeError(`Cannot pack params of kernel '${kernel}': field '${name}' is missing`);
    }
    if (float) view.setFloat32(i * 4, value, true);
    else view.setUint32(i * 4, value, true);
  }
  let given = 0;
  for (const _ in values) given++;
  if (given !== fields.length) {
    const unknown = Object.keys(values).filter((k) => !fields.some((f) => f.name === k));
    throw new TypeError(`Cannot pack params of kernel '${kernel}': unknown fields ${unknown}`);
  }
}

const fieldCache = new Map<KernelName, { name: string; float: boolean }[]>();

function parsedFields(kernel: KernelName): { name: string; float: boolean }[] {
  let fields = fieldCache.get(kernel);
  if (!fields) {
    const spec: readonly string[] = KERNELS[kernel].params;
    fields = spec.map((f) => ({ name: f.split(":")[0], float: f.endsWith(":f32") }));
    fieldCache.set(kernel, fields);
  }
  return fields;
}

/** Creates and caches modules, layouts and pipelines of the kernels on one device. */
export class PipelineCache {
  #device: GPUDevice;
  #layouts = new Map<KernelName, GPUBindGroupLayout>();
  #modules = new Map<KernelName, GPUShaderModule>();
  #pipelines = new Map<string, GPUComputePipeline>();

  /** @param device the device pipelines are created on */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Bind group layout of `kernel` (binding kinds from `KERNELS`). */
  layout(kernel: KernelName): GPUBindGroupLayout {
    let layout = this.#layouts.get(kernel);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = KERNELS[kernel].bindings.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: kind === "params"
          ? { type: "uniform", hasDynamicOffset: true, minBindingSize: PARAMS_BYTES }
          : kind === "data"
          ? { type: "read-only-storage", hasDynamicOffset: true }
          : { type: kind === "read" ? "read-only-storage" : "storage" },
      }));
      layout = this.#device.createBindGroupLayout({ entries, label: kernel });
      this.#layouts.set(kernel, layout);
    }
    return layout;
  }

  /** Pipeline of `kernel` specialised with `constants` (cached per distinct value set). */
  pipeline(kernel: KernelName, constants: KernelConstants = {}): GPUComputePipeline {
    const names = Object.keys(constants);
    let key: string = kernel;
    for (const n of names) key += `|${n}=${constants[n]}`;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      const numeric: Record<string, number> = {};
      for (const n of names) numeric[n] = Number(constants[n]);
      pipeline = this.#device.createComputePipeline({
        label: key,
        layout: this.#device.createPipelineLayout({ bindGroupLayouts: [this.layout(kernel)] }),
        compute: { module: this.#module(kernel), entryPoint: "main", constants: numeric },
      });
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  #module(kernel: KernelName): GPUShaderModule {
    let module = this.#modules.get(kernel);
    if (!module) {
      const source = WGSL_SOURCES[kernel];
      if (source === undefined) {
        throw new TypeError(
          `Cannot build kernel '${kernel}': kernels/wgsl/${kernel}.wgsl is not embedded; ` +
            "run scripts/build_wgsl.ts",
        );
      }
      module = this.#device.createShaderModule({
        label: kernel,
        code: `${WGSL_SOURCES.common}\n${source}`,
      });
      this.#modules.set(kernel, module);
    }
    return module;
  }
}
