/**
 * Runs kernel jobs on the main thread plus (threads - 1) Deno Workers that share the
 * kernel module's memory. A job is one kernel call split into [start, end) chunks (one
 * per thread); each chunk is claimed before it runs (see wasm_worker.ts), the main thread
 * runs chunk 0 and any chunk no worker has started, then waits (spin, then Atomics.wait)
 * for the chunks workers are running. Workers are terminated by `dispose()`.
 */
import { KERNEL_NAMES, type KernelExports, type KernelName } from "./wasm_module.ts";
import { CTL, type WorkerInit, workerMain } from "./wasm_worker.ts";

/** Spin iterations before a waiting thread sleeps in Atomics.wait. */
const DEFAULT_SPIN = 20000;

/** A main thread + workers executing kernel jobs over shared memory. */
export class WasmThreadPool {
  /** Threads taking part in a job, the main thread included. */
  readonly threads: number;
  readonly #main: KernelExports;
  readonly #workers: Worker[];
  readonly #ctl: Int32Array;
  readonly #args: Float64Array;
  readonly #spin: number;
  /** Chunks of the previous job (their claim flags are reset for the next). */
  #lastChunks = 0;
  #disposed = false;

  private constructor(
    main: KernelExports,
    workers: Worker[],
    ctl: SharedArrayBuffer,
    spin: number,
  ) {
    this.#main = main;
    this.#workers = workers;
    this.threads = workers.length + 1;
    this.#ctl = new Int32Array(ctl);
    this.#args = new Float64Array(ctl, CTL.ARGS_BYTE_OFFSET, CTL.MAX_ARGS);
    this.#spin = spin;
  }

  /** Starts `threads - 1` workers on `module` + `memory`; resolves when all are ready. */
  static async create(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    main: KernelExports,
    threads: number,
    spin = DEFAULT_SPIN,
  ): Promise<WasmThreadPool> {
    const ctl = new SharedArrayBuffer(CTL.BYTES);
    const workers: Worker[] = [];
    if (threads > 1) {
      const source = `(${workerMain.toString()})();\n`;
      const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
      try {
        const ready: Promise<void>[] = [];
        for (let tid = 1; tid < threads; tid++) {
          const worker = new Worker(url, { type: "module" });
          workers.push(worker);
          ready.push(
            new Promise((resolve, reject) => {
              worker.onmessage = () => resolve();
              worker.onerror = (e) => {
                e.preventDefault();
                reject(new Error(`Cannot start wasm worker ${tid}: ${e.message}`));
              };
            }),
          );
          const init: WorkerInit = {
            module,
            memory,
            ctl,
            tid,
            threads,
            kernels: KERNEL_NAMES,
            spin,
          };
          worker.postMessage(init);
        }
        await Promise.all(ready);
      } catch (e) {
        for (const w of workers) w.terminate();
        throw e;
      } finally {
        URL.revokeObjectURL(url);
      }
      for (const w of workers) {
        w.onmessage = null;
        w.onerror = null;
      }
    }
    return new WasmThreadPool(main, workers, ctl, spin);
  }

  /**
   * Runs `kernel(...args, start_c, end_c, t)` for every non-empty chunk c of `ranges`
   * ([start, end) pairs, at most CTL.MAX_CHUNKS), each on some thread t (worker t prefers
   * chunk t; the main thread, t = 0, takes chunk 0 and whatever is left unclaimed). Throws
   * when a kernel trapped.
   */
  run(kernel: KernelName, args: readonly number[], ranges: readonly number[]): void {
    if (this.#disposed) throw new Error("Cannot run a wasm kernel: the backend was disposed");
    const n = ranges.length / 2;
    if (n > CTL.MAX_CHUNKS) {
      throw new RangeError(`Cannot run a wasm kernel in ${n} chunks: at most ${CTL.MAX_CHUNKS}`);
    }
    const fn = this.#main[kernel] as (...a: number[]) => number;
    let busy = 0;
    for (let c = 0; c < n; c++) if (ranges[2 * c] < ranges[2 * c + 1]) busy++;
    if (this.threads === 1 || busy <= 1) {
      for (let c = 0; c < n; c++) {
        if (ranges[2 * c] < ranges[2 * c + 1]) fn(...args, ranges[2 * c], ranges[2 * c + 1], 0);
      }
      return;
    }
    const ctl = this.#ctl;
    ctl[CTL.KERNEL] = KERNEL_NAMES.indexOf(kernel);
    ctl[CTL.NARGS] = args.length;
    for (let i = 0; i < args.length; i++) this.#args[i] = args[i];
    for (let c = 0; c < n; c++) {
      ctl[CTL.RANGES + 2 * c] = ranges[2 * c];
      ctl[CTL.RANGES + 2 * c + 1] = ranges[2 * c + 1];
    }
    Atomics.store(ctl, CTL.NCHUNKS, n);
    Atomics.store(ctl, CTL.DONE, 0);
    Atomics.store(ctl, CTL.ERROR, 0);
    // Claims last: a thread that claims a chunk then sees every param above.
    for (let c = 0; c < Math.max(n, this.#lastChunks); c++) {
      const free = c < n && ranges[2 * c] < ranges[2 * c + 1];
      Atomics.store(ctl, CTL.CLAIMS + c, free ? 0 : 1);
    }
    this.#lastChunks = n;
    Atomics.add(ctl, CTL.GEN, 1);
    Atomics.notify(ctl, CTL.GEN);
    let mine = 0;
    let mainError: unknown;
    for (let c = 0; c < n; c++) {
      if (Atomics.compareExchange(ctl, CTL.CLAIMS + c, 0, 1) !== 0) continue;
      mine++;
      try {
        fn(...args, ranges[2 * c], ranges[2 * c + 1], 0);
      } catch (e) {
        mainError ??= e;
      }
    }
    this.#join(busy - mine);
    if (mainError !== undefined) throw mainError;
  }

  /** Waits until workers have finished `want` chunks of the current job. */
  #join(want: number): void {
    const ctl = this.#ctl;
    let spins = 0;
    for (;;) {
      const done = Atomics.load(ctl, CTL.DONE);
      if (done >= want) break;
      if (spins < this.#spin) spins++;
      else Atomics.wait(ctl, CTL.DONE, done, 1000);
    }
    if (Atomics.load(ctl, CTL.ERROR) !== 0) {
      throw new Error("Cannot complete a wasm kernel: a worker trapped (out-of-bounds access?)");
    }
  }

  /** Stops and terminates every worker. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#workers.length > 0) {
      Atomics.store(this.#ctl, CTL.KERNEL, -1);
      Atomics.add(this.#ctl, CTL.GEN, 1);
      Atomics.notify(this.#ctl, CTL.GEN);
    }
    for (const w of this.#workers) w.terminate();
  }
}
