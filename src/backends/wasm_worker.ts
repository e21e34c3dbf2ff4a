/**
 * The worker side of the WASM thread pool. `workerMain` is self-contained: its source text
 * becomes the worker's module, so it must not reference anything outside its own body.
 *
 * Protocol (Int32Array `ctl` over a SharedArrayBuffer, Float64Array `args` after it):
 * the main thread writes the kernel index, argument count, arguments and the job's chunks
 * ([start, end) ranges, one per thread as the callers split them), then marks each chunk
 * claimable (`ctl[CLAIMS + c]` = 0), bumps `ctl[GEN]` and notifies. Any thread runs a chunk
 * only after claiming it with compare-exchange 0 -> 1: worker `tid` tries chunk `tid` first,
 * then the others; the main thread runs chunk 0 and then claims whatever no worker has
 * started. So when the machine is oversubscribed and a worker is not scheduled, the main
 * thread does its share instead of sleeping until it wakes. A worker adds 1 to `ctl[DONE]`
 * per chunk it ran and notifies. Params are written before the claims are reset, so a
 * worker that claims a chunk (of whichever job) reads that job's params. Kernel index -1
 * asks workers to return.
 */

/** Slots of the control array (shared with the pool). */
export const CTL = {
  GEN: 0,
  DONE: 1,
  KERNEL: 2,
  NARGS: 3,
  ERROR: 4,
  /** Chunks of the current job. */
  NCHUNKS: 5,
  /** Ranges: chunk c is [RANGES + 2c, RANGES + 2c + 1]. */
  RANGES: 16,
  /** Claim flags: 0 = free, 1 = taken (or empty). */
  CLAIMS: 160,
  /** Most chunks of one job. */
  MAX_CHUNKS: 64,
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
  /** Threads of the pool, the main thread included. */
  threads: number;
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
    const GEN = 0, DONE = 1, KERNEL = 2, NARGS = 3, ERROR = 4, NCHUNKS = 5;
    const RANGES = 16, CLAIMS = 160, ARGS = 2048;
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
      if (Atomics.load(ctl, KERNEL) < 0) return;
      const n = Atomics.load(ctl, NCHUNKS);
      // Start at this thread's share of the chunks: the same rows each call stay in its cache.
      const first = Math.floor((tid * n) / init.threads);
      for (let k = 0; k < n; k++) {
        const c = (first + k) % n;
        if (Atomics.compareExchange(ctl, CLAIMS + c, 0, 1) !== 0) continue;
        try {
          const a = Array.from(args.subarray(0, ctl[NARGS]));
          kernels[ctl[KERNEL]](...a, ctl[RANGES + 2 * c], ctl[RANGES + 2 * c + 1], tid);
        } catch {
          Atomics.store(ctl, ERROR, 1);
        }
        Atomics.add(ctl, DONE, 1);
        Atomics.notify(ctl, DONE);
      }
    }
  };
}
