/**
 * Incremental text of a generation for streaming: after every token it says
 * which new text is safe to send.
 *
 * Decoding: each step decodes a short window of ids that starts one emitted
 * chunk back and keeps only what the newest ids add, so the cost per token
 * does not grow with the output, and decoders that treat a sequence's first
 * token specially (dropping a leading space) stay correct. Text that ends in
 * an incomplete UTF-8 sequence (U+FFFD) waits for the next token.
 *
 * Stop strings: text that could be the start of a stop string is held back,
 * so a stop string is never partly sent; the final text is the output cut
 * before the earliest stop string, as `generate()` returns it.
 */
import { firstStop } from "../model/generate.ts";

/** What one token added. */
export interface TextUpdate {
  /** New text to send (may be empty). */
  delta: string;
  /** A stop string appeared; the generation must end. */
  stopped: boolean;
}

const REPLACEMENT = "\uFFFD";

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function heldBackLength(text: string, stop: readonly string[]): number {
  let held = 0;
  for (const s of stop) {
    for (let n = Math.min(s.length - 1, text.length); n > held; n--) {
      if (text.endsWith(s.slice(0, n))) {
        held = n;
        break;
      }
    }
  }
  return held;
}

/** Tracks decoded and sent text for one request. */
export class TextStream {
  readonly #decode: (ids: number[]) => string;
  readonly #stop: readonly string[];
  readonly #ids: number[] = [];
  /** Start of the decode window (start of the last decoded chunk). */
  #prefixOffset = 0;
  /** End of the ids already turned into text. */
  #readOffset = 0;
  /** All complete text decoded so far (cut at a stop string once one is found). */
  #text = "";
  #sent = 0;
  #stopped = false;

  /**
   * @param decode detokenizer of a run of ids
   * @param stop stop strings (empty strings are ignored)
   */
  constructor(decode: (ids: number[]) => string, stop: readonly string[] = []) {
    this.#decode = decode;
    this.#stop = stop.filter((s) => s.length > 0);
  }

  /** The text so far (final once `stopped` or `finish` was reported). */
  get text(): string {
    return this.#text;
  }

  /**
   * Decode what the ids after the read offset add. Complete text is committed;
   * text ending in an incomplete character is returned as pending (committed
   * anyway when `final`).
   */
  #advance(final: boolean): string {
    const ids = this.#ids;
    if (this.#readOffset === ids.length) return "";
    const before = this.#decode(ids.slice(this.#prefixOffset, this.#readOffset));
    const now = this.#decode(ids.slice(this.#prefixOffset));
    if (now.length <= before.length) return "";
    const added = now.slice(before.length);
    if (!final && added.endsWith(REPLACEMENT)) return added;
    this.#text += added;
    this.#prefixOffset = this.#readOffset;
    this.#readOffset = ids.length;
    return "";
  }

  /** Add one generated id; return the text now safe to send. */
  push(id: number): TextUpdate {
    this.#ids.push(id);
    const pending = this.#advance(false);
    // Stop strings are searched in the text as decoded so far, incomplete characters included,
    // as generate() does.
    const cut = this.#stop.length ? firstStop(this.#text + pending, this.#stop) : -1;
    if (cut >= 0) {
      this.#stopped = true;
      this.#text = (this.#text + pending).slice(0, cut);
      return { delta: this.#take(this.#text.length), stopped: true };
    }
    const safe = this.#text.length - heldBackLength(this.#text, this.#stop);
    return { delta: this.#take(safe), stopped: false };
  }

  /** Generation ended: the rest of the text (incomplete characters included unless stopped). */
  finish(): string {
    if (!this.#stopped) this.#advance(true);
    return this.#take(this.#text.length);
  }

  #take(end: number): string {
    if (end <= this.#sent) return "";
    const delta = this.#text.slice(this.#sent, end);
    this.#sent = end;
    return delta;
  }
}
