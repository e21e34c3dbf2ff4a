/**
 * An engine over one plain Hugging Face checkpoint: no routing, every request
 * runs the dense weights (route `{ experts: [], weights: [], uncertainty: 0 }`).
 * Useful on its own and as the HTTP layer's test engine with a real model.
 */
import type { Backend } from "../backends/backend.ts";
import type { Transformer } from "../model/forward.ts";
import { loadHfModel } from "../model/hf.ts";
import { freeModelWeights } from "../model/weights.ts";
import type { ByteStorage } from "../storage/storage.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { BatchedEngine, type EngineLimits } from "./batched_engine.ts";
import type { EngineTokenizer, RouteResolver } from "./engine.ts";

/** The route hook of a model without experts. */
export const denseRoute: RouteResolver = (_ids, forcedExpert) => {
  if (forcedExpert !== undefined) {
    return Promise.reject(
      new RangeError(`Cannot force expert '${forcedExpert}': this model has no experts`),
    );
  }
  return Promise.resolve({ route: { experts: [], weights: [], uncertainty: 0, forced: false } });
};

/** Adapt a TextTokenizer to the engine's needs (chat prompts end with the assistant opening). */
export function engineTokenizer(tokenizer: TextTokenizer): EngineTokenizer {
  return {
    encode: (text, options) => tokenizer.encode(text, options),
    decode: (ids) => tokenizer.decode(ids),
    applyChatTemplate: (messages) =>
      tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }),
  };
}

/** End-of-sequence ids of config.json and of the tokenizer, without duplicates. */
export function unionEos(...lists: readonly (readonly number[])[]): number[] {
  return [...new Set(lists.flat())];
}

/** Everything a dense engine is built from. */
export interface DenseEngineOptions extends EngineLimits {
  /** Model name clients send in `model`. */
  name: string;
  model: Transformer;
  tokenizer: EngineTokenizer;
  /** Ids that end generation. */
  eosTokenIds: readonly number[];
  /** How the backend was chosen, for /health. */
  backendChoice: string;
  /** Free the model's weights on close (set when the engine loaded them). */
  ownsWeights?: boolean;
}

/** A plain checkpoint served with continuous batching. */
export class DenseEngine extends BatchedEngine {
  /** @param o model, tokenizer and limits */
  constructor(o: DenseEngineOptions) {
    super({
      ...o,
      resolveRoute: denseRoute,
      health: () => ({ kind: "dense" }),
      onClose: () => {
        if (o.ownsWeights) freeModelWeights(o.model.backend, o.model.weights);
      },
    });
  }

  /**
   * Load the checkpoint in `storage` onto `backend` and serve it.
   * The name defaults to the last segment of the storage location.
   */
  static async open(
    storage: ByteStorage,
    backend: Backend,
    opts: EngineLimits & { backendChoice: string; name?: string },
  ): Promise<DenseEngine> {
    const { model, tokenizer, config } = await loadHfModel(storage, backend);
    const name = opts.name ?? (storage.location.replace(/\/+$/, "").split("/").pop() || "model");
    return new DenseEngine({
      ...opts,
      name,
      model,
      tokenizer: engineTokenizer(tokenizer),
      eosTokenIds: unionEos(config.eosTokenIds, tokenizer.eosTokenIds),
      ownsWeights: true,
    });
  }
}
