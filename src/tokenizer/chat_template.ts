/**
 * The Jinja chat template of a tokenizer, rendered the way Hugging Face
 * `apply_chat_template` does: variables `messages`, `add_generation_prompt`,
 * the special tokens (`bos_token`, `eos_token`, ...) and a `raise_exception`
 * helper that turns a template's refusal into a clear error.
 */
import { parse, Template, tokenize } from "@huggingface/jinja";
import { BundleFormatError } from "../errors.ts";

/** One message of a conversation. */
export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * The Jinja engine predefines `raise_exception` and refuses to redefine it, so
 * the template's calls are renamed to this helper, whose refusals this module
 * can tell apart from engine failures.
 */
const REFUSAL_HELPER = "__chat_template_refusal";

/** Compile `source` with its `raise_exception` calls routed to `REFUSAL_HELPER`. */
function compile(source: string): Template {
  const tokens = tokenize(source, { lstrip_blocks: true, trim_blocks: true });
  for (const t of tokens) {
    if (t.type === "Identifier" && t.value === "raise_exception") t.value = REFUSAL_HELPER;
  }
  const template = new Template("");
  template.parsed = parse(tokens);
  return template;
}

/** Thrown (as a TypeError) when a template rejects the messages it was given. */
function templateRefused(source: string, reason: unknown): TypeError {
  return new TypeError(
    `Cannot apply the chat template of ${source}: it rejected the messages: ${String(reason)}`,
  );
}

/**
 * Pick the template text from a `chat_template` value: a string, or the
 * list form `[{name, template}]` (the one named "default", else the first).
 */
export function selectChatTemplate(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) return null;
  const named = value.filter(isNamedTemplate);
  return (named.find((t) => t.name === "default") ?? named[0])?.template ?? null;
}

function isNamedTemplate(t: unknown): t is { name?: unknown; template: string } {
  return typeof t === "object" && t !== null && typeof (t as { template?: unknown }).template ===
      "string";
}

/** A chat template, compiled on first use. */
export class ChatTemplate {
  /** The Jinja source. */
  readonly source: string;
  /** Where the template came from, for messages (e.g. "tokenizer_config.json"). */
  readonly origin: string;
  /** Variables always passed to the template (special tokens). */
  readonly #variables: Record<string, unknown>;
  #compiled: Template | null = null;

  /**
   * @param source Jinja text
   * @param origin file it came from, for messages
   * @param variables extra variables (e.g. `bos_token`, `eos_token`)
   */
  constructor(source: string, origin: string, variables: Record<string, unknown> = {}) {
    this.source = source;
    this.origin = origin;
    this.#variables = variables;
  }

  #template(): Template {
    if (!this.#compiled) {
      try {
        this.#compiled = compile(this.source);
      } catch (e) {
        throw new BundleFormatError(
          `Cannot parse the chat template of ${this.origin}: ${(e as Error).message}; ` +
            `fix the template or use plain completions`,
        );
      }
    }
    return this.#compiled;
  }

  /**
   * Render `messages` into a prompt string.
   *
   * @throws TypeError when the template rejects the messages (`raise_exception`)
   * @throws BundleFormatError when the template cannot be parsed or fails to run
   */
  render(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    if (!Array.isArray(messages)) {
      throw new TypeError("Cannot apply the chat template: messages must be an array");
    }
    for (const [i, m] of messages.entries()) {
      if (typeof m?.role !== "string" || typeof m?.content !== "string") {
        throw new TypeError(
          `Cannot apply the chat template: message ${i} needs string 'role' and 'content'`,
        );
      }
    }
    const template = this.#template();
    const refusal = { raised: false };
    try {
      return template.render({
        ...this.#variables,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: addGenerationPrompt,
        [REFUSAL_HELPER]: (reason: unknown) => {
          refusal.raised = true;
          throw templateRefused(this.origin, reason);
        },
      });
    } catch (e) {
      if (refusal.raised) throw e;
      throw new BundleFormatError(
        `Cannot apply the chat template of ${this.origin}: rendering failed: ` +
          `${(e as Error).message}; fix the template or use plain completions`,
      );
    }
  }
}
