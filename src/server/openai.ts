/**
 * OpenAI response shapes for chat and text completions, whole and streamed,
 * each carrying the Mediator route in a `mediator` field.
 */
import type { EngineFinishReason, GenerationResult, RouteInfo, Usage } from "./engine.ts";

/** Which endpoint a response belongs to. */
export type CompletionKind = "chat" | "text";

/** The `mediator` field of every response. */
export interface MediatorField {
  experts: string[];
  weights: number[];
  uncertainty: number;
  forced: boolean;
  fallback?: string;
}

/** The route as a response field. */
export function mediatorField(route: RouteInfo): MediatorField {
  const f: MediatorField = {
    experts: route.experts,
    weights: route.weights,
    uncertainty: route.uncertainty,
    forced: route.forced,
  };
  if (route.fallback !== undefined) f.fallback = route.fallback;
  return f;
}

/** Route headers: x-mediator-experts, x-mediator-weights, x-mediator-uncertainty. */
export function routeHeaders(route: RouteInfo): Record<string, string> {
  return {
    "x-mediator-experts": route.experts.join(","),
    "x-mediator-weights": route.weights.map((w) => w.toFixed(6)).join(","),
    "x-mediator-uncertainty": route.uncertainty.toFixed(6),
    "x-mediator-forced": String(route.forced),
  };
}

/** OpenAI usage object. */
export function usageField(u: Usage) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
  };
}

/** OpenAI finish reason ("cancelled" never reaches a client). */
function finishReason(r: EngineFinishReason): "stop" | "length" {
  return r === "length" ? "length" : "stop";
}

/** Identity of one response: id, creation time, model. */
export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

/** A fresh response id for `kind`. */
export function newResponseMeta(kind: CompletionKind, model: string): ResponseMeta {
  const prefix = kind === "chat" ? "chatcmpl-" : "cmpl-";
  return {
    id: prefix + crypto.randomUUID().replaceAll("-", ""),
    created: Math.floor(Date.now() / 1000),
    model,
  };
}

/** The whole (non-streamed) response body. */
export function completionBody(
  kind: CompletionKind,
  meta: ResponseMeta,
  result: GenerationResult,
): Record<string, unknown> {
  const choice = kind === "chat"
    ? {
      index: 0,
      message: { role: "assistant", content: result.text },
      logprobs: null,
      finish_reason: finishReason(result.finishReason),
    }
    : {
      index: 0,
      text: result.text,
      logprobs: null,
      finish_reason: finishReason(result.finishReason),
    };
  return {
    id: meta.id,
    object: kind === "chat" ? "chat.completion" : "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [choice],
    usage: usageField(result.usage),
    mediator: mediatorField(result.route),
  };
}

/** One streamed chunk: the first carries the role and the route, the last the finish reason. */
export function chunkBody(
  kind: CompletionKind,
  meta: ResponseMeta,
  part: { text?: string; first?: boolean; finish?: EngineFinishReason; route?: RouteInfo },
): Record<string, unknown> {
  const finish = part.finish ? finishReason(part.finish) : null;
  let choice: Record<string, unknown>;
  if (kind === "chat") {
    const delta: Record<string, string> = {};
    if (part.first) delta.role = "assistant";
    if (part.text !== undefined) delta.content = part.text;
    choice = { index: 0, delta, logprobs: null, finish_reason: finish };
  } else {
    choice = { index: 0, text: part.text ?? "", logprobs: null, finish_reason: finish };
  }
  const body: Record<string, unknown> = {
    id: meta.id,
    object: kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [choice],
  };
  if (part.route) body.mediator = mediatorField(part.route);
  return body;
}

/** The final usage chunk (`stream_options.include_usage`): no choices. */
export function usageChunkBody(
  kind: CompletionKind,
  meta: ResponseMeta,
  usage: Usage,
): Record<string, unknown> {
  return {
    id: meta.id,
    object: kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [],
    usage: usageField(usage),
  };
}
