/**
 * The worker side of the WASM thread pool. `workerMain` is self-contained: its source text
 * becomes the worker's module, so it must not reference anything outside its own body.
 *
 * Protocol (Int32Array `ctl` over a SharedArrayBuffer, Float64Array `args` after it):
 * the main thread writes the kernel index, argument count, arguments and per-thread
 * [start, end) ranges, then bumps `ctl[GEN]` and notifies. Each worker runs its range,
 * adds 1 to `ctl[DONE]` and notifies. Kernel index -1 asks workers to return.
 */

/** Slots of the control array (shared with the pool). */
export const CTL = {
  GEN: 0,
  DONE: 1,
  KERNEL: 2,
  NARGS: 3,
  ERROR: 4,
  /** Ranges: thread t uses [RANGES + 2t, RANGES + 2t + 1]. */
  RANGES: 16,
  /** Byte offset of the Float64Array of arguments. */
  ARGS_BYTE_OFFSET: 2048,
  MAX_ARGS: 32,
  BYTES: 4096,
} as const;

/** The first message a worker receives. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctl: SharedArrayBuffer;
  tid: number;
  kernels: readonly string[];
  spin: number;
}

/** Worker entry point; runs inside the worker (see module comment). */
export function workerMain(): void {
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<WorkerInit>) => void) | null;
    postMessage(message: unknown): void;
  };
  scope.onmessage = (event: MessageEvent<WorkerInit>) => {
    scope.onmessage = null;
    const init = event.data;
    const GEN = 0, DONE = 1, KERNEL = 2, NARGS = 3, ERROR = 4, RANGES = 16, ARGS = 2048;
    const ctl = new Int32Array(init.ctl);
    const args = new Float64Array(init.ctl, ARGS, 32);
    const exports = new WebAssembly.Instance(init.module, { env: { memory: init.memory } })
      .exports as Record<string, (...a: number[]) => number>;
    const kernels = init.kernels.map((name) => exports[name]);
    const tid = init.tid;
    let seen = Atomics.load(ctl, GEN);
    scope.postMessage("ready");
    for (;;) {
      let spins = 0;
      while (Atomics.load(ctl, GEN) === seen) {
        if (spins < init.spin) spins++;
        else Atomics.wait(ctl, GEN, seen);
      }
      seen = Atomics.load(ctl, GEN);
      const kernel = ctl[KERNEL];
      if (kernel < 0) return;
      const start = ctl[RANGES + 2 * tid];
      const end = ctl[RANGES + 2 * tid + 1];
      if (start < end) {
        try {
          const a = Array.from(args.subarray(0, ctl[NARGS]));
          kernels[kernel](...a, start, end, tid);
        } catch {
          Atomics.store(ctl, ERROR, 1);
        }
      }
      Atomics.add(ctl, DONE, 1);
      Atomics.notify(ctl, DONE);
    }
  };
}
