/**
 * A small real model for server tests that must run without the fixture
 * family: a byte-level BPE tokenizer (built by the real tokenizer library from
 * a tokenizer.json written here, with a ChatML template) and a randomly
 * initialised Qwen2-shaped model on the reference backend.
 */
import { ReferenceBackend } from "../../src/backends/reference.ts";
import { parseHfConfig } from "../../src/model/config.ts";
import { Transformer } from "../../src/model/forward.ts";
import {
  biasTensorName,
  layerTensorName,
  loadModelWeights,
  PROJECTIONS,
  projectionShape,
  type TensorSource,
} from "../../src/model/weights.ts";
import { DenseEngine, engineTokenizer } from "../../src/server/dense_engine.ts";
import type { EngineLimits } from "../../src/server/batched_engine.ts";
import { encodeSafetensors } from "../../src/safetensors/write.ts";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.ts";
import { makeRng } from "../backend_suite.ts";

/** GPT-2's byte -> printable character table used by byte-level BPE. */
function byteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + extra++);
  }
  return out;
}

/** Special tokens after the 256 byte tokens. */
export const SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/**
 * One merge, after the special tokens: "b" with the lead byte 0xE6 of many CJK characters, so
 * one token can end a word and start an incomplete character (as real BPE vocabularies do).
 */
const MERGES: [number, number][] = [[0x62, 0xe6]];
/** Vocabulary size of the test tokenizer. */
export const TEST_VOCAB = 256 + SPECIAL_TOKENS.length + MERGES.length;

const CHATML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + " +
  "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/** tokenizer.json and tokenizer_config.json of a byte-level BPE tokenizer with ChatML specials. */
export function byteTokenizerFiles(): { tokenizerJson: unknown; tokenizerConfig: unknown } {
  const vocab: Record<string, number> = {};
  const chars = byteToUnicode();
  chars.forEach((ch, i) => (vocab[ch] = i));
  MERGES.forEach(([a, b], i) => (vocab[chars[a] + chars[b]] = 256 + SPECIAL_TOKENS.length + i));
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, i) => ({
      id: 256 + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: MERGES.map(([a, b]) => [byteToUnicode()[a], byteToUnicode()[b]]),
    },
  };
  const tokenizerConfig = { eos_token: "<|im_end|>", chat_template: CHATML };
  return { tokenizerJson, tokenizerConfig };
}

/** A byte-level tokenizer (one token per byte, ChatML specials) from real tokenizer files. */
export function byteTokenizer(): TextTokenizer {
  const { tokenizerJson, tokenizerConfig } = byteTokenizerFiles();
  return TextTokenizer.fromJson(tokenizerJson, tokenizerConfig);
}

/** config.json of the random model. */
export const RANDOM_MODEL_CONFIG = {
  model_type: "qwen2",
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 64,
  vocab_size: TEST_VOCAB,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 256,
  tie_word_embeddings: true,
  eos_token_id: 256 + SPECIAL_TOKENS.indexOf("<|im_end|>"),
};

/** f32 tensors with shapes, readable as a TensorSource. */
function memorySource(tensors: Map<string, { shape: number[]; data: Float32Array }>): TensorSource {
  return {
    has: (name) => tensors.has(name),
    info: (name) => ({ dtype: "f32", shape: tensors.get(name)!.shape }),
    read: (name) => {
      const d = tensors.get(name)!.data;
      return Promise.resolve(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    },
  };
}

/** Scale of projection weights: large enough that greedy output does not settle on one token. */
const PROJ_SCALE = 4;
/** Random f32 weights of the test model, by Hugging Face tensor name. */
function randomTensors(seed: number): Map<string, { shape: number[]; data: Float32Array }> {
  const config = parseHfConfig(RANDOM_MODEL_CONFIG);
  const rng = makeRng(seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = offset + (rng() * 2 - 1) * scale;
    tensors.set(name, { shape, data });
  };
  const H = config.hiddenSize;
  add("model.embed_tokens.weight", [config.vocabSize, H], 1);
  add("model.norm.weight", [H], 0.1, 1);
  for (let l = 0; l < config.numLayers; l++) {
    add(layerTensorName(l, "inputNorm"), [H], 0.1, 1);
    add(layerTensorName(l, "postNorm"), [H], 0.1, 1);
    for (const p of PROJECTIONS) {
      const [rows, cols] = projectionShape(config, p);
      add(layerTensorName(l, p), [rows, cols], PROJ_SCALE / Math.sqrt(cols));
    }
    for (const p of ["q", "k", "v"] as const) {
      add(biasTensorName(l, p), [projectionShape(config, p)[0]], 0.1);
    }
  }
  return tensors;
}

/** A random Qwen2-shaped model on a new reference backend. */
export async function randomModel(seed = 1): Promise<Transformer> {
  const config = parseHfConfig(RANDOM_MODEL_CONFIG);
  const backend = new ReferenceBackend();
  const weights = await loadModelWeights(backend, config, memorySource(randomTensors(seed)));
  return new Transformer(backend, config, weights);
}

/** Write the random model as a Hugging Face checkpoint folder (f32 safetensors). */
export async function writeRandomCheckpoint(dir: string, seed = 1): Promise<void> {
  const tensors = [...randomTensors(seed)].map(([name, t]) => ({
    name,
    dtype: "f32" as const,
    shape: t.shape,
    data: new Uint8Array(t.data.buffer),
  }));
  const { tokenizerJson, tokenizerConfig } = byteTokenizerFiles();
  await Deno.writeFile(`${dir}/model.safetensors`, encodeSafetensors(tensors));
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(RANDOM_MODEL_CONFIG));
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tokenizerJson));
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(tokenizerConfig));
}

/** A dense engine over the random model and byte tokenizer. */
export async function randomEngine(limits: EngineLimits = {}): Promise<DenseEngine> {
  const model = await randomModel();
  const tokenizer = byteTokenizer();
  return new DenseEngine({
    name: "tiny",
    model,
    tokenizer: engineTokenizer(tokenizer),
    eosTokenIds: [RANDOM_MODEL_CONFIG.eos_token_id],
    backendChoice: "reference",
    ...limits,
  });
}
