/** sha256 helpers for bundle integrity checks. */
import { createHash } from "node:crypto";

/** Lower-case hex sha256 of `data`. */
export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Incremental sha256 for files written piece by piece. */
export class Sha256Stream {
  readonly #h = createHash("sha256");
  #bytes = 0;
  /** Feed the next piece. */
  update(data: Uint8Array): void {
    this.#h.update(data);
    this.#bytes += data.byteLength;
  }
  /** Bytes fed so far. */
  get bytes(): number {
    return this.#bytes;
  }
  /** Final hex digest (the stream cannot be used afterwards). */
  digest(): string {
    return this.#h.digest("hex");
  }
}

/** sha256 of a local file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = new Sha256Stream();
  using f = await Deno.open(path);
  for await (const chunk of f.readable) h.update(chunk);
  return h.digest();
}
