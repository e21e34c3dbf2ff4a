/**
 * Loading the WASM SIMD kernel module: the compiled bytes (embedded base64 of
 * kernels/wasm/build/kernels.wasm), a shared growable memory, and the typed exports.
 */
import { KERNELS_WASM_BASE64 } from "../../kernels/wasm/build/kernels_wasm.ts";

/** 64 KiB, the WebAssembly page size. */
export const WASM_PAGE_BYTES = 65536;
/** Largest wasm32 memory in pages (4 GiB). */
export const MAX_WASM_PAGES = 65536;

/** The exports of kernels.wasm (pointers are byte offsets into the shared memory). */
export interface KernelExports {
  heapBase(): number;
  gemmBf16(
    w: number,
    x: number,
    y: number,
    bias: number,
    m: number,
    rows: number,
    cols: number,
    rowStart: number,
    rowEnd: number,
  ): void;
  gemmF32(
    w: number,
    x: number,
    y: number,
    bias: number,
    m: number,
    rows: number,
    cols: number,
    rowStart: number,
    rowEnd: number,
  ): void;
  spmmSell4(
    groupRows: number,
    groupPtr: number,
    slots: number,
    x: number,
    y: number,
    scale: number,
    m: number,
    rows: number,
    cols: number,
    wideIdx: number,
    f32Vals: number,
    staged: number,
    groups: number,
    blocks: number,
    gStart: number,
    gEnd: number,
  ): void;
  scatterAddSell4(
    groupRows: number,
    groupPtr: number,
    slots: number,
    w: number,
    cols: number,
    scale: number,
    wideIdx: number,
    f32Vals: number,
    f32W: number,
    groups: number,
    blocks: number,
    gStart: number,
    gEnd: number,
  ): void;
  rmsNorm(
    out: number,
    x: number,
    gamma: number,
    cols: number,
    eps: number,
    rowStart: number,
    rowEnd: number,
  ): void;
  ropeRotateHalf(
    x: number,
    table: number,
    m: number,
    numHeads: number,
    headDim: number,
    rowStart: number,
    rowEnd: number,
  ): void;
  softmaxRows(x: number, n: number, rowStart: number, rowEnd: number): void;
  attention(
    out: number,
    q: number,
    kCache: number,
    vCache: number,
    scratch: number,
    numHeads: number,
    numKvHeads: number,
    headDim: number,
    maxSeq: number,
    startPos: number,
    scale: number,
    taskStart: number,
    taskEnd: number,
    tid: number,
  ): void;
  kvWrite(
    kCache: number,
    vCache: number,
    k: number,
    v: number,
    numKvHeads: number,
    headDim: number,
    maxSeq: number,
    startPos: number,
    rowStart: number,
    rowEnd: number,
  ): void;
  siluMul(out: number, gate: number, up: number, start: number, end: number): void;
  addVec(out: number, a: number, b: number, start: number, end: number): void;
  embedRows(
    out: number,
    table: number,
    ids: number,
    dim: number,
    bf16Table: number,
    start: number,
    end: number,
  ): void;
  sumBytes(base: number, start: number, end: number): number;
}

/** Names of the kernels a job may run (the worker protocol sends an index into this list). */
export type KernelName = Exclude<keyof KernelExports, "heapBase">;

/** Every job kernel, in a fixed order shared by the main thread and the workers. */
export const KERNEL_NAMES: readonly KernelName[] = [
  "gemmBf16",
  "gemmF32",
  "spmmSell4",
  "scatterAddSell4",
  "rmsNorm",
  "ropeRotateHalf",
  "softmaxRows",
  "attention",
  "kvWrite",
  "siluMul",
  "addVec",
  "embedRows",
  "sumBytes",
];

let compiled: Promise<WebAssembly.Module> | undefined;

/** The compiled kernel module (compiled once per process). */
export function compileKernels(): Promise<WebAssembly.Module> {
  if (!compiled) {
    const text = atob(KERNELS_WASM_BASE64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    compiled = WebAssembly.compile(bytes).catch((e) => {
      compiled = undefined;
      throw new Error(
        `Cannot compile kernels.wasm: ${e instanceof Error ? e.message : e}; ` +
          "this runtime needs WebAssembly SIMD, relaxed SIMD and threads",
        { cause: e },
      );
    });
  }
  return compiled;
}

/** A new shared memory of `initialPages` pages that may grow to `maxPages`. */
export function createSharedMemory(initialPages: number, maxPages = MAX_WASM_PAGES) {
  return new WebAssembly.Memory({ initial: initialPages, maximum: maxPages, shared: true });
}

/** Instantiates the module on `memory` and returns its exports. */
export function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as KernelExports;
}
