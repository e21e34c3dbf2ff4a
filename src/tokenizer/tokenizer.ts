/**
 * Text <-> token ids for a Hugging Face tokenizer folder (`tokenizer.json`,
 * `tokenizer_config.json`, optional `chat_template.jinja`), on top of
 * `@huggingface/tokenizers` and `@huggingface/jinja`.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { BundleFormatError, StorageError } from "../errors.ts";
import type { ByteStorage } from "../storage/storage.ts";
import { checkRelativePath } from "../storage/storage.ts";
import { type ChatMessage, ChatTemplate, selectChatTemplate } from "./chat_template.ts";

export type { ChatMessage } from "./chat_template.ts";

/** Special-token keys of tokenizer_config.json passed to chat templates. */
const SPECIAL_TOKEN_KEYS = ["bos_token", "eos_token", "pad_token", "unk_token"] as const;

/** The text of a special-token entry: a string or `{content: string}`. */
function tokenContent(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null) {
    const content = (value as { content?: unknown }).content;
    if (typeof content === "string") return content;
  }
  return null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function readOptional(storage: ByteStorage, path: string): Promise<Uint8Array | null> {
  try {
    return await storage.readAll(path);
  } catch (e) {
    if (e instanceof StorageError && e.status === 404) return null;
    throw e;
  }
}

function parseJson(bytes: Uint8Array, path: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new BundleFormatError(
      `Cannot read ${path}: it is not valid JSON (${(e as Error).message}); copy the file again`,
    );
  }
}

/** A loaded tokenizer with its special tokens and chat template. */
export class TextTokenizer {
  /** Id of the beginning-of-sequence token, or null when the tokenizer has none. */
  readonly bosTokenId: number | null;
  /** Ids that end a generation (from `eos_token`). */
  readonly eosTokenIds: number[];
  /** Number of ids (largest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly #tokenizer: Tokenizer;
  readonly #template: ChatTemplate | null;

  private constructor(tokenizer: Tokenizer, config: Record<string, unknown>, template?: string) {
    this.#tokenizer = tokenizer;
    let maxId = -1;
    for (const id of tokenizer.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const idOf = (key: string): number | null => {
      const content = tokenContent(config[key]);
      return content === null ? null : tokenizer.token_to_id(content) ?? null;
    };
    this.bosTokenId = idOf("bos_token");
    const eos = idOf("eos_token");
    this.eosTokenIds = eos === null ? [] : [eos];
    const variables: Record<string, unknown> = {};
    for (const key of SPECIAL_TOKEN_KEYS) variables[key] = tokenContent(config[key]) ?? "";
    const source = template ?? selectChatTemplate(config.chat_template);
    const origin = template !== undefined ? "chat_template.jinja" : "tokenizer_config.json";
    this.#template = source === null ? null : new ChatTemplate(source, origin, variables);
  }

  /**
   * Load the tokenizer in folder `dir` of `storage`. `tokenizer.json` is
   * required; `tokenizer_config.json` and `chat_template.jinja` (which wins
   * over the config's `chat_template`) are read when present.
   */
  static async load(storage: ByteStorage, dir = ""): Promise<TextTokenizer> {
    const folder = dir.replace(/\/+$/, "");
    if (folder !== "") checkRelativePath(folder, "tokenizer folder");
    const path = (name: string) => (folder === "" ? name : `${folder}/${name}`);
    const tokenizerBytes = await readOptional(storage, path("tokenizer.json"));
    if (!tokenizerBytes) {
      throw new BundleFormatError(
        `Cannot load the tokenizer from ${storage.location}${folder ? `/${folder}` : ""}: ` +
          `tokenizer.json is missing; copy the model's tokenizer files next to its weights`,
      );
    }
    const configBytes = await readOptional(storage, path("tokenizer_config.json"));
    const templateBytes = await readOptional(storage, path("chat_template.jinja"));
    return TextTokenizer.fromJson(
      parseJson(tokenizerBytes, path("tokenizer.json")),
      configBytes ? parseJson(configBytes, path("tokenizer_config.json")) : {},
      templateBytes ? new TextDecoder().decode(templateBytes) : undefined,
    );
  }

  /**
   * Build from the parsed JSON files.
   *
   * @param tokenizerJson contents of tokenizer.json
   * @param tokenizerConfig contents of tokenizer_config.json ({} when absent)
   * @param chatTemplate contents of chat_template.jinja, overriding the config's template
   * @throws BundleFormatError when the tokenizer cannot be built from them
   */
  static fromJson(
    tokenizerJson: unknown,
    tokenizerConfig: unknown,
    chatTemplate?: string,
  ): TextTokenizer {
    if (!isRecord(tokenizerJson) || !isRecord(tokenizerConfig)) {
      throw new BundleFormatError(
        "Cannot build the tokenizer: tokenizer.json and tokenizer_config.json must be JSON objects",
      );
    }
    // Match current transformers: no clean-up of spaces unless the config asks for it.
    const config = {
      ...tokenizerConfig,
      clean_up_tokenization_spaces: tokenizerConfig.clean_up_tokenization_spaces ?? false,
    };
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(structuredClone(tokenizerJson), config);
    } catch (e) {
      throw new BundleFormatError(
        `Cannot build the tokenizer from tokenizer.json: ${(e as Error).message}; ` +
          `the file is malformed or uses an unsupported component`,
      );
    }
    return new TextTokenizer(tokenizer, config, chatTemplate);
  }

  /** Whether the tokenizer carries a chat template. */
  get hasChatTemplate(): boolean {
    return this.#template !== null;
  }

  /**
   * Token ids of `text`. With `addSpecialTokens` (default true) the
   * post-processor adds its special tokens (BOS for Llama-family tokenizers).
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") throw new TypeError("Cannot encode: text must be a string");
    return this.#tokenizer.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Text of `ids`; special tokens are left out unless `skipSpecialTokens` is false. */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(
          `Cannot decode token id ${id}: ids must be integers in [0, ${this.vocabSize})`,
        );
      }
    }
    if (ids.length === 0) return "";
    return this.#tokenizer.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? true });
  }

  /** Id of token string `token`, or undefined when it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.#tokenizer.token_to_id(token);
  }

  /** Token string of `id`, or undefined when out of range. */
  idToToken(id: number): string | undefined {
    return this.#tokenizer.id_to_token(id);
  }

  /**
   * Render a conversation with the tokenizer's chat template, as Hugging Face
   * `apply_chat_template(..., tokenize=False)` does. `addGenerationPrompt`
   * (default false, as there) appends the assistant turn's opening.
   *
   * @throws BundleFormatError when the tokenizer has no chat template
   * @throws TypeError when the template rejects the messages
   */
  applyChatTemplate(
    messages: ChatMessage[],
    opts: { addGenerationPrompt?: boolean } = {},
  ): string {
    if (!this.#template) {
      throw new BundleFormatError(
        "Cannot apply a chat template: this tokenizer has none (no chat_template in " +
          "tokenizer_config.json and no chat_template.jinja); send a plain completion prompt " +
          "instead or add a template to the model",
      );
    }
    return this.#template.render(messages, opts.addGenerationPrompt ?? false);
  }
}
