/**
 * Single-sequence generation: prefill the prompt, then decode token by token
 * until EOS, a stop string or the token limit. The server's batched scheduler
 * drives the same `Transformer.step`; this loop serves the CLI, the evaluation
 * and tests.
 */
import type { RouteDeltas, Transformer } from "./forward.ts";
import type { ModelWeights } from "./weights.ts";
import { Sampler, type SamplingOptions } from "./sampling.ts";

/** Why generation ended. */
export type FinishReason = "stop" | "length";

/** Options of `generate`. */
export interface GenerateOptions extends SamplingOptions {
  /** Maximum new tokens. */
  maxTokens: number;
  /** Token ids that end generation (not included in the output). */
  eosTokenIds?: readonly number[];
  /** Strings that end generation; the output text is cut before them. */
  stop?: readonly string[];
  /** Detokenizer, needed for stop strings. */
  decode?: (ids: number[]) => string;
  /** Route deltas (Mediator delta path). */
  deltas?: RouteDeltas;
  /** Weights to run with instead of the model's (materialize path). */
  weights?: ModelWeights;
  /** Called with every new token id as soon as it is chosen. */
  onToken?: (id: number) => void;
}

/** What `generate` returns. */
export interface GenerateResult {
  outputIds: number[];
  /** Logits at the last prompt position (float32), for parity checks. */
  lastLogits: Float32Array;
  finishReason: FinishReason;
  /** Text up to a stop string, when stop strings and a decoder were given. */
  text?: string;
}

/** Generate a continuation of `inputIds`. */
export async function generate(
  model: Transformer,
  inputIds: readonly number[],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  if (inputIds.length === 0) throw new RangeError("Cannot generate: the prompt has no tokens");
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 0) {
    throw new RangeError(
      `Cannot generate: max tokens must be a non-negative integer, got ${opts.maxTokens}`,
    );
  }
  const sampler = new Sampler(opts);
  const cache = model.newCache(inputIds.length + opts.maxTokens);
  const eos = new Set(opts.eosTokenIds ?? []);
  const history = [...inputIds];
  const out: number[] = [];
  const stepOpts = { weights: opts.weights };
  try {
    let [logits] = await model.step(
      [{ ids: Int32Array.from(inputIds), cache, startPos: 0, deltas: opts.deltas }],
      stepOpts,
    );
    const lastLogits = logits!;
    let finishReason: FinishReason = "length";
    let text: string | undefined;
    while (out.length < opts.maxTokens) {
      const id = sampler.next(logits!, history);
      if (eos.has(id)) {
        finishReason = "stop";
        break;
      }
      out.push(id);
      history.push(id);
      opts.onToken?.(id);
      if (opts.stop?.length && opts.decode) {
        const decoded = opts.decode(out);
        const cut = firstStop(decoded, opts.stop);
        if (cut >= 0) {
          text = decoded.slice(0, cut);
          finishReason = "stop";
          break;
        }
      }
      if (out.length >= opts.maxTokens) break;
      [logits] = await model.step(
        [{ ids: Int32Array.of(id), cache, startPos: history.length - 1, deltas: opts.deltas }],
        stepOpts,
      );
    }
    return { outputIds: out, lastLogits, finishReason, text };
  } finally {
    model.backend.free(cache);
  }
}

/** Index of the earliest occurrence of any stop string in `text`, or -1. */
export function firstStop(text: string, stop: readonly string[]): number {
  let best = -1;
  for (const s of stop) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}
