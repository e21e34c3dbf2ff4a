/**
 * One model description for the Llama family. Llama, Qwen2 and Mistral differ
 * only in the values of this record (Qwen2 = Llama + QKV bias), never in code.
 */
import { BundleFormatError } from "../errors.ts";

/** Everything the forward pass needs to know about an architecture. */
export interface ModelConfig {
  /** `model_type` from config.json: "llama" | "qwen2" | "mistral". */
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (GQA); equals numHeads for plain multi-head attention. */
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections (Qwen2). */
  attentionBias: boolean;
  bosTokenId: number | null;
  /** One or more end-of-sequence ids. */
  eosTokenIds: number[];
  /**
   * Sliding attention window (Mistral), or null for full attention. Attention
   * is always computed in full, which equals the windowed result only while
   * sequences stay within the window: longer ones are refused.
   */
  slidingWindow?: number | null;
}

/** Architectures whose config.json maps onto `ModelConfig`. */
export const SUPPORTED_MODEL_TYPES = ["llama", "qwen2", "mistral"] as const;

function num(json: Record<string, unknown>, key: string, where: string): number {
  const v = json[key];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new BundleFormatError(
      `Cannot read ${where}: '${key}' must be a number, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/**
 * Map a Hugging Face config.json object onto `ModelConfig`.
 * Reads rope theta from the top level or from `rope_parameters.rope_theta`
 * (transformers 5). `where` names the file in error messages.
 */
export function parseHfConfig(json: unknown, where = "config.json"): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new BundleFormatError(`Cannot read ${where}: expected a JSON object`);
  }
  const c = json as Record<string, unknown>;
  const modelType = String(c.model_type ?? "");
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new BundleFormatError(
      `Cannot load ${where}: model_type '${modelType}' is not supported; supported: ${
        SUPPORTED_MODEL_TYPES.join(", ")
      }`,
    );
  }
  const hiddenSize = num(c, "hidden_size", where);
  const numHeads = num(c, "num_attention_heads", where);
  const numKvHeads = typeof c.num_key_value_heads === "number" ? c.num_key_value_heads : numHeads;
  const headDim = typeof c.head_dim === "number" ? c.head_dim : hiddenSize / numHeads;
  if (!Number.isInteger(headDim) || numHeads % numKvHeads !== 0) {
    throw new BundleFormatError(
      `Cannot load ${where}: heads (${numHeads}) must be a multiple of KV heads (${numKvHeads}) and head_dim an integer`,
    );
  }
  const ropeParams = c.rope_parameters as Record<string, unknown> | undefined;
  const ropeTheta = typeof c.rope_theta === "number"
    ? c.rope_theta
    : typeof ropeParams?.rope_theta === "number"
    ? ropeParams.rope_theta
    : 10000;
  const ropeType = ropeParams?.rope_type ?? (c.rope_scaling as Record<string, unknown>)?.rope_type;
  if (ropeType !== undefined && ropeType !== "default") {
    throw new BundleFormatError(
      `Cannot load ${where}: rope scaling '${
        String(ropeType)
      }' is not supported; only default RoPE`,
    );
  }
  const eos = c.eos_token_id;
  const eosTokenIds = Array.isArray(eos) ? eos.map(Number) : typeof eos === "number" ? [eos] : [];
  return {
    modelType,
    hiddenSize,
    numLayers: num(c, "num_hidden_layers", where),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: num(c, "intermediate_size", where),
    vocabSize: num(c, "vocab_size", where),
    rmsNormEps: typeof c.rms_norm_eps === "number" ? c.rms_norm_eps : 1e-6,
    ropeTheta,
    maxPositionEmbeddings: typeof c.max_position_embeddings === "number"
      ? c.max_position_embeddings
      : 2048,
    tieWordEmbeddings: c.tie_word_embeddings === true,
    attentionBias: typeof c.attention_bias === "boolean" ? c.attention_bias : modelType === "qwen2",
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds,
    slidingWindow: typeof c.sliding_window === "number" && c.use_sliding_window !== false
      ? c.sliding_window
      : null,
  };
}
