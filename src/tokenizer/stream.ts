/**
 * Incremental detokenization for streamed generation.
 *
 * Decoding one token at a time is wrong for two reasons: a character can be
 * split over several byte tokens (decoding a part yields U+FFFD), and
 * decoders treat the first token of a sequence specially (SentencePiece-style
 * decoders drop its leading space). So each step decodes a short window that
 * starts one emitted chunk back, and emits only what the newest tokens add to
 * it, holding text back while it ends in U+FFFD.
 */
import type { TextTokenizer } from "./tokenizer.ts";

/** The replacement character a decoder emits for incomplete UTF-8. */
const REPLACEMENT = "\uFFFD";

/** Turns a stream of token ids into a stream of text deltas. */
export class StreamDecoder {
  readonly #tokenizer: TextTokenizer;
  readonly #skipSpecialTokens: boolean;
  readonly #ids: number[] = [];
  /** Start of the decode window (start of the last emitted chunk). */
  #prefixOffset = 0;
  /** End of what has been emitted. */
  #readOffset = 0;
  #text = "";

  /**
   * @param tokenizer the tokenizer that produced the ids
   * @param opts `skipSpecialTokens` (default true) leaves special tokens out of the text
   */
  constructor(tokenizer: TextTokenizer, opts: { skipSpecialTokens?: boolean } = {}) {
    this.#tokenizer = tokenizer;
    this.#skipSpecialTokens = opts.skipSpecialTokens ?? true;
  }

  /** All text emitted so far. */
  get text(): string {
    return this.#text;
  }

  /** All ids pushed so far. */
  get ids(): readonly number[] {
    return this.#ids;
  }

  #decode(from: number, to: number): string {
    return this.#tokenizer.decode(this.#ids.slice(from, to), {
      skipSpecialTokens: this.#skipSpecialTokens,
    });
  }

  #emit(final: boolean): string {
    const before = this.#decode(this.#prefixOffset, this.#readOffset);
    const now = this.#decode(this.#prefixOffset, this.#ids.length);
    if (now.length <= before.length || (!final && now.endsWith(REPLACEMENT))) return "";
    const delta = now.slice(before.length);
    this.#prefixOffset = this.#readOffset;
    this.#readOffset = this.#ids.length;
    this.#text += delta;
    return delta;
  }

  /**
   * Add one generated id; returns the new text it completes ("" while a
   * character is still incomplete or the token adds no text).
   */
  push(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.#tokenizer.vocabSize) {
      throw new RangeError(
        `Cannot stream token id ${id}: ids must be integers in [0, ${this.#tokenizer.vocabSize})`,
      );
    }
    this.#ids.push(id);
    return this.#emit(false);
  }

  /** At the end of generation: return any held-back text, even if incomplete. */
  flush(): string {
    return this.#emit(true);
  }
}
