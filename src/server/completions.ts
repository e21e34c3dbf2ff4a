/**
 * Running a validated completion request against the engine and answering
 * with one JSON body or a server-sent event stream. The route is known before
 * the first token, so it goes into the response headers and the first chunk.
 * A client that disconnects cancels its request (its slot is freed).
 */
import type { Engine, GenerationEvent, GenerationHandle } from "./engine.ts";
import { toErrorResponse } from "./errors.ts";
import {
  chunkBody,
  completionBody,
  type CompletionKind,
  newResponseMeta,
  type ResponseMeta,
  routeHeaders,
  usageChunkBody,
} from "./openai.ts";
import type { ServerMetrics } from "./server_metrics.ts";
import type { ParsedRequest } from "./validate.ts";

const encoder = new TextEncoder();

function sse(data: unknown): Uint8Array {
  return encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
}

/**
 * Submit `req` and build the response. Throws (for the error mapper) when the
 * request cannot be queued or its route cannot be resolved.
 */
export async function runCompletion(
  engine: Engine,
  metrics: ServerMetrics,
  kind: CompletionKind,
  req: ParsedRequest,
  clientSignal: AbortSignal,
): Promise<Response> {
  const abort = new AbortController();
  const onDisconnect = () => abort.abort();
  clientSignal.addEventListener("abort", onDisconnect, { once: true });
  let handle: GenerationHandle;
  try {
    handle = engine.submit({
      promptIds: req.promptIds,
      maxTokens: req.maxTokens,
      sampling: req.sampling,
      stop: req.stop,
      forcedExpert: req.forcedExpert,
      signal: abort.signal,
    });
  } catch (error) {
    clientSignal.removeEventListener("abort", onDisconnect);
    throw error;
  }
  const done = handle.result.then(
    (r) => metrics.generationFinished(r),
    () => metrics.generationFailed(),
  ).finally(() => clientSignal.removeEventListener("abort", onDisconnect));
  const route = await handle.route;
  metrics.routeChosen(route);
  const meta = newResponseMeta(kind, req.model === "auto" ? engine.name : req.model);
  const headers = routeHeaders(route);
  if (!req.stream) {
    const result = await handle.result;
    await done;
    return Response.json(completionBody(kind, meta, result), { headers });
  }
  return new Response(eventStream(kind, meta, handle, req.includeUsage, abort), {
    headers: {
      ...headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
    },
  });
}

/** The SSE body: route chunk, text chunks, finish chunk, optional usage, [DONE]. */
function eventStream(
  kind: CompletionKind,
  meta: ResponseMeta,
  handle: GenerationHandle,
  includeUsage: boolean,
  abort: AbortController,
): ReadableStream<Uint8Array> {
  const events = handle[Symbol.asyncIterator]();
  let finished = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (finished) return;
      let next: IteratorResult<GenerationEvent>;
      try {
        next = await events.next();
      } catch (error) {
        // The request failed mid-stream: report it in the OpenAI error shape and end.
        finished = true;
        controller.enqueue(sse(toErrorResponse(error).body));
        controller.close();
        return;
      }
      if (next.done) {
        finished = true;
        controller.close();
        return;
      }
      const ev = next.value;
      if (ev.type === "route") {
        const first = kind === "chat" ? { first: true, text: "" } : { text: "" };
        controller.enqueue(sse(chunkBody(kind, meta, { ...first, route: ev.route })));
      } else if (ev.type === "text") {
        controller.enqueue(sse(chunkBody(kind, meta, { text: ev.text })));
      } else {
        controller.enqueue(sse(chunkBody(kind, meta, { finish: ev.result.finishReason })));
        if (includeUsage) controller.enqueue(sse(usageChunkBody(kind, meta, ev.result.usage)));
        controller.enqueue(sse("[DONE]"));
      }
    },
    cancel() {
      // The client went away: cancel generation and free the slot.
      finished = true;
      abort.abort();
      void events.return?.();
    },
  });
}
