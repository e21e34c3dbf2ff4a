/**
 * Progress on stderr: a one-line bar (tensors, bytes, ETA) for people, or one
 * JSON object per line (`--json`) for scripts.
 */

/** A progress reporter over a known amount of work in bytes. */
export class Progress {
  readonly #start = performance.now();
  #bytes = 0;
  #items = 0;
  #lastDraw = 0;

  /**
   * @param totalBytes work expected (bytes read), for the ETA
   * @param json print JSON lines instead of a bar
   */
  constructor(readonly totalBytes: number, readonly json = false) {}

  /** Record one tensor processed. */
  tick(phase: string, tensor: string, bytes: number): void {
    this.#bytes += bytes;
    this.#items++;
    const now = performance.now();
    const elapsed = (now - this.#start) / 1000;
    const rate = this.#bytes / Math.max(elapsed, 1e-3);
    const eta = Math.max(0, (this.totalBytes - this.#bytes) / Math.max(rate, 1));
    if (this.json) {
      console.error(JSON.stringify({
        event: "progress",
        phase,
        tensor,
        tensors: this.#items,
        bytes: this.#bytes,
        total_bytes: this.totalBytes,
        eta_s: Number(eta.toFixed(1)),
      }));
      return;
    }
    if (now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const frac = Math.min(1, this.#bytes / Math.max(1, this.totalBytes));
    const width = 24;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    const line = `${phase.padEnd(8)} [${bar}] ${this.#items} tensors ${fmtBytes(this.#bytes)}/${
      fmtBytes(this.totalBytes)
    } ETA ${eta.toFixed(0)}s`;
    Deno.stderr.writeSync(new TextEncoder().encode(`\r${line.padEnd(78)}`));
  }

  /** A message line (clears the bar first). */
  log(message: string): void {
    if (this.json) console.error(JSON.stringify({ event: "log", message }));
    else console.error(`\r${" ".repeat(78)}\r${message}`);
  }

  /** Finish the bar line. */
  done(): void {
    if (!this.json) console.error(`\r${" ".repeat(78)}\r`);
  }
}

/** Human-readable byte count. */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
