/**
 * How much CPU other processes used while a measurement ran, from Linux's /proc: the busy
 * time of all CPUs minus the time of this process and its finished children, over the wall
 * time. On a shared machine this says which timings were taken next to other work
 * (0 = the cores were ours; 1 = some other process kept one core busy on average).
 * Returns null where /proc is not readable.
 */

/** Busy and own CPU time, in clock ticks. */
interface Sample {
  busy: number;
  own: number;
  wallMs: number;
}

/** Linux's USER_HZ (clock ticks per second of /proc/stat and /proc/self/stat). */
const TICKS_PER_SECOND = 100;

function sample(): Sample | null {
  try {
    const cpu = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/);
    // user nice system idle iowait irq softirq steal ...
    const v = cpu.slice(1).map(Number);
    const busy = v[0] + v[1] + v[2] + v[5] + v[6];
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    // fields after the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
    const own = f[11] + f[12] + f[13] + f[14];
    return { busy, own, wallMs: performance.now() };
  } catch {
    return null;
  }
}

/** Measures other processes' CPU use between `new` and `stop()`. */
export class CpuContention {
  #start = sample();

  /** Average number of cores other processes kept busy since construction (null: unknown). */
  stop(): number | null {
    const end = sample();
    if (!this.#start || !end) return null;
    const seconds = (end.wallMs - this.#start.wallMs) / 1000;
    if (seconds <= 0) return null;
    const others = (end.busy - this.#start.busy) - (end.own - this.#start.own);
    return Math.max(0, others / TICKS_PER_SECOND / seconds);
  }
}

/** Contention above which a measurement is repeated by `quietest`. */
export const BUSY_CORES = 0.25;

/**
 * Runs `measure` and repeats it (up to `retries` more times) while other processes kept more
 * than BUSY_CORES cores busy during it; returns the run with the least contention and how
 * many runs were made.
 */
export async function quietest<T>(
  measure: () => Promise<T>,
  contention: (result: T) => number | null,
  retries: number,
): Promise<{ result: T; attempts: number }> {
  let best = await measure(), attempts = 1;
  while (attempts <= retries && (contention(best) ?? 0) > BUSY_CORES) {
    const next = await measure();
    attempts++;
    if ((contention(next) ?? 0) < (contention(best) ?? 0)) best = next;
  }
  return { result: best, attempts };
}
