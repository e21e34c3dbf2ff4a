/**
 * Validation of /v1/chat/completions and /v1/completions bodies into one
 * engine-ready request: model and forced expert, prompt token ids (chat
 * template applied), token limit, sampling, stop strings, streaming flags.
 * Every problem is an `ApiError` naming the field.
 */
import type { SamplingOptions } from "../model/sampling.ts";
import type { ChatMessage, Engine } from "./engine.ts";
import { ApiError } from "./errors.ts";
import {
  type Body,
  optBoolean,
  optNumber,
  optStop,
  rejectUnknownFields,
  requireNeutral,
  typeError,
  valueError,
} from "./fields.ts";

/** A validated request. */
export interface ParsedRequest {
  /** The `model` field to echo in responses. */
  model: string;
  forcedExpert?: string;
  promptIds: number[];
  maxTokens: number;
  sampling: SamplingOptions;
  stop: string[];
  stream: boolean;
  /** `stream_options.include_usage`. */
  includeUsage: boolean;
}

const COMMON_FIELDS = [
  "model",
  "max_tokens",
  "temperature",
  "top_p",
  "top_k",
  "repetition_penalty",
  "stop",
  "seed",
  "n",
  "stream",
  "stream_options",
  "user",
  "frequency_penalty",
  "presence_penalty",
  "logit_bias",
] as const;
const CHAT_FIELDS = [
  ...COMMON_FIELDS,
  "messages",
  "max_completion_tokens",
  "logprobs",
  "top_logprobs",
  "response_format",
  "tools",
  "tool_choice",
];
const COMPLETION_FIELDS = [...COMMON_FIELDS, "prompt", "echo", "suffix", "best_of", "logprobs"];

/** The engine name, "auto", or NAME:EXPERT; 404 for anything else. */
export function resolveModel(model: unknown, engine: Engine): { forcedExpert?: string } {
  if (model === undefined) {
    throw new ApiError(400, "Missing required parameter: 'model'", {
      param: "model",
      code: "missing_required_parameter",
    });
  }
  if (typeof model !== "string") throw typeError("model", "a string", model);
  if (model === engine.name || model === "auto") return {};
  const prefix = `${engine.name}:`;
  if (model.startsWith(prefix) && engine.experts.includes(model.slice(prefix.length))) {
    return { forcedExpert: model.slice(prefix.length) };
  }
  const experts = engine.experts.length
    ? `, or '${prefix}EXPERT' with EXPERT one of ${engine.experts.join(", ")}`
    : "";
  throw new ApiError(
    404,
    `The model '${model}' does not exist; use '${engine.name}' or 'auto'${experts}`,
    { param: "model", code: "model_not_found" },
  );
}

function parseMessages(v: unknown): ChatMessage[] {
  if (v === undefined || v === null) {
    throw new ApiError(400, "Missing required parameter: 'messages'", {
      param: "messages",
      code: "missing_required_parameter",
    });
  }
  if (!Array.isArray(v)) throw typeError("messages", "an array of messages", v);
  if (v.length === 0) throw valueError("messages", "a non-empty array", "[]");
  return v.map((m, i) => {
    const param = `messages[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      throw typeError(param, "an object with 'role' and 'content'", m);
    }
    const msg = m as Body;
    rejectUnknownFields(msg, ["role", "content", "name"]);
    const role = msg.role === "developer" ? "system" : msg.role;
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw valueError(`${param}.role`, "one of system, developer, user, assistant", msg.role);
    }
    if (msg.name !== undefined && typeof msg.name !== "string") {
      throw typeError(`${param}.name`, "a string", msg.name);
    }
    return { role, content: parseContent(msg.content, `${param}.content`, role) };
  });
}

function parseContent(v: unknown, param: string, role: string): string {
  if (typeof v === "string") return v;
  if (v === null && role === "assistant") return "";
  if (Array.isArray(v)) {
    return v.map((part, j) => {
      const p = part as Body;
      if (typeof p !== "object" || p === null || p.type !== "text" || typeof p.text !== "string") {
        throw typeError(`${param}[${j}]`, "a text part { type: 'text', text: string }", part);
      }
      return p.text;
    }).join("");
  }
  throw typeError(param, "a string or an array of text parts", v);
}

function parsePromptIds(v: unknown, engine: Engine): number[] {
  if (v === undefined || v === null) {
    throw new ApiError(400, "Missing required parameter: 'prompt'", {
      param: "prompt",
      code: "missing_required_parameter",
    });
  }
  let prompt = v;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] !== "number") {
    prompt = prompt[0]; // ["text"] or [[ids]]: one prompt in a batch of one
  }
  if (typeof prompt === "string") return engine.tokenizer.encode(prompt);
  if (Array.isArray(prompt) && prompt.every((x) => typeof x === "number")) {
    for (const id of prompt as number[]) {
      if (!Number.isInteger(id) || id < 0 || id >= engine.vocabSize) {
        throw valueError("prompt", `token ids in [0, ${engine.vocabSize})`, id);
      }
    }
    return [...prompt as number[]];
  }
  if (Array.isArray(prompt) && prompt.length > 1) {
    throw valueError("prompt", "a single prompt (batches are not supported)", prompt);
  }
  throw typeError("prompt", "a string, an array of token ids, or a one-element array", v);
}

function checkUnsupported(body: Body): void {
  const zero = (x: unknown) => x === 0;
  requireNeutral(body, "frequency_penalty", zero, "only 0 is supported; use repetition_penalty");
  requireNeutral(body, "presence_penalty", zero, "only 0 is supported; use repetition_penalty");
  requireNeutral(
    body,
    "logit_bias",
    (x) => typeof x === "object" && x !== null && Object.keys(x).length === 0,
    "logit bias is not supported",
  );
  requireNeutral(
    body,
    "logprobs",
    (x) => x === false || x === 0,
    "log probabilities are not supported",
  );
  requireNeutral(body, "top_logprobs", zero, "log probabilities are not supported");
  requireNeutral(body, "echo", (x) => x === false, "echo is not supported");
  requireNeutral(body, "suffix", (x) => x === "", "suffix (insertion) is not supported");
  requireNeutral(body, "best_of", (x) => x === 1, "only best_of = 1 is supported");
  requireNeutral(
    body,
    "response_format",
    (x) => (x as Body)?.type === "text",
    "only { type: 'text' } is supported",
  );
  requireNeutral(
    body,
    "tools",
    (x) => Array.isArray(x) && x.length === 0,
    "tools are not supported",
  );
  requireNeutral(body, "tool_choice", (x) => x === "none", "tools are not supported");
  if (body.user !== undefined && body.user !== null && typeof body.user !== "string") {
    throw typeError("user", "a string", body.user);
  }
}

function parseCommon(
  body: Body,
  engine: Engine,
  promptIds: number[],
  model: string,
  forcedExpert: string | undefined,
): ParsedRequest {
  checkUnsupported(body);
  const n = optNumber(body, "n", { integer: true, min: 1 });
  if (n !== undefined && n !== 1) throw valueError("n", "1 (one choice per request)", n);
  const temperature = optNumber(body, "temperature", { min: 0, max: 2 }) ?? 1;
  const topP = optNumber(body, "top_p", { min: 0, max: 1 });
  const topK = optNumber(body, "top_k", { integer: true, min: 0 });
  const repetitionPenalty = optNumber(body, "repetition_penalty", {
    min: 0,
    max: 10,
    exclusiveMin: true,
  });
  const seed = optNumber(body, "seed", { integer: true });
  const stream = optBoolean(body, "stream", false);
  let includeUsage = false;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream) {
      throw valueError("stream_options", "absent unless 'stream' is true", so);
    }
    if (typeof so !== "object" || Array.isArray(so)) {
      throw typeError("stream_options", "an object", so);
    }
    rejectUnknownFields(so as Body, ["include_usage"]);
    includeUsage = optBoolean(so as Body, "include_usage", false);
  }
  const maxTokens = parseMaxTokens(body, engine, promptIds.length);
  return {
    model,
    forcedExpert,
    promptIds,
    maxTokens,
    // top_p = 0 keeps only the most likely token: greedy.
    sampling: {
      temperature: topP === 0 ? 0 : temperature,
      topP: topP === 0 ? undefined : topP,
      topK,
      repetitionPenalty,
      seed,
    },
    stop: optStop(body),
    stream,
    includeUsage,
  };
}

function parseMaxTokens(body: Body, engine: Engine, promptTokens: number): number {
  const rule = { integer: true, min: 1, max: engine.maxTokensLimit };
  const mct = optNumber(body, "max_completion_tokens", rule);
  const mt = optNumber(body, "max_tokens", rule);
  const asked = mct ?? mt;
  const room = engine.contextLength - promptTokens;
  if (room < 1 || (asked !== undefined && asked > room)) {
    const param = mct !== undefined ? "max_completion_tokens" : "max_tokens";
    throw new ApiError(
      400,
      `This model's maximum context length is ${engine.contextLength} tokens. However, you requested ${
        promptTokens + (asked ?? 1)
      } tokens (${promptTokens} in the prompt, ${
        asked ?? 1
      } for the completion). Shorten the prompt or lower '${param}'.`,
      { param: asked === undefined ? "messages" : param, code: "context_length_exceeded" },
    );
  }
  return asked ?? Math.min(engine.maxTokensLimit, room);
}

function asBody(body: unknown): Body {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError(
      400,
      `Invalid request body: expected a JSON object, got ${
        Array.isArray(body) ? "an array" : body === null ? "null" : typeof body
      }`,
      { code: "invalid_json" },
    );
  }
  return body as Body;
}

/** Validate a chat completion body and render its prompt with the chat template. */
export function parseChatRequest(raw: unknown, engine: Engine): ParsedRequest {
  const body = asBody(raw);
  rejectUnknownFields(body, CHAT_FIELDS);
  const { forcedExpert } = resolveModel(body.model, engine);
  const messages = parseMessages(body.messages);
  let text: string;
  try {
    text = engine.tokenizer.applyChatTemplate(messages);
  } catch (e) {
    throw new ApiError(
      400,
      `Cannot apply the chat template to 'messages': ${(e as Error).message}`,
      {
        param: "messages",
        code: "invalid_value",
      },
    );
  }
  // A chat template renders special tokens itself.
  const promptIds = engine.tokenizer.encode(text, { addSpecialTokens: false });
  return parseCommon(body, engine, promptIds, body.model as string, forcedExpert);
}

/** Validate a (legacy) completion body; `prompt` is text or token ids. */
export function parseCompletionRequest(raw: unknown, engine: Engine): ParsedRequest {
  const body = asBody(raw);
  rejectUnknownFields(body, COMPLETION_FIELDS);
  const { forcedExpert } = resolveModel(body.model, engine);
  const promptIds = parsePromptIds(body.prompt, engine);
  if (promptIds.length === 0) {
    throw valueError("prompt", "non-empty (it encodes to no tokens)", body.prompt);
  }
  return parseCommon(body, engine, promptIds, body.model as string, forcedExpert);
}
