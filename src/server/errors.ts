/**
 * Errors of the serving layer and the one mapping from any error to an
 * OpenAI-shaped HTTP error: `{ "error": { message, type, param, code } }`.
 */
import { BundleFormatError, StorageError, UnsupportedOpError } from "../errors.ts";

/** An error with a definite HTTP status and OpenAI error fields. */
export class ApiError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** OpenAI error type, e.g. "invalid_request_error". */
  readonly type: string;
  /** The request field at fault, or null. */
  readonly param: string | null;
  /** Machine-readable code, e.g. "context_length_exceeded", or null. */
  readonly code: string | null;

  /**
   * @param status HTTP status
   * @param message what is wrong and how to fix it
   * @param fields OpenAI error type (default "invalid_request_error"), param and code
   */
  constructor(
    status: number,
    message: string,
    fields: { type?: string; param?: string | null; code?: string | null } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = fields.type ?? "invalid_request_error";
    this.param = fields.param ?? null;
    this.code = fields.code ?? null;
  }
}

/** The request queue is full; the client should retry later (HTTP 429). */
export class QueueFullError extends Error {
  /** @param message how full and what to do */
  constructor(message: string) {
    super(message);
    this.name = "QueueFullError";
  }
}

/** The engine is shutting down and takes no more work (HTTP 503). */
export class EngineClosedError extends Error {
  /** @param message what was refused */
  constructor(message: string) {
    super(message);
    this.name = "EngineClosedError";
  }
}

/** The JSON body of an OpenAI-shaped error response. */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Map any error to an HTTP status and OpenAI error body. */
export function toErrorResponse(err: unknown): { status: number; body: ErrorBody } {
  const e = err instanceof Error ? err : new Error(String(err));
  const body = (type: string, code: string | null, param: string | null = null): ErrorBody => ({
    error: { message: e.message, type, param, code },
  });
  if (e instanceof ApiError) {
    return { status: e.status, body: body(e.type, e.code, e.param) };
  }
  if (e instanceof QueueFullError) {
    return { status: 429, body: body("rate_limit_error", "rate_limit_exceeded") };
  }
  if (e instanceof EngineClosedError) {
    return { status: 503, body: body("server_error", "service_unavailable") };
  }
  if (e instanceof StorageError) {
    return { status: 502, body: body("server_error", "storage_error") };
  }
  if (e instanceof BundleFormatError || e instanceof UnsupportedOpError) {
    return { status: 500, body: body("server_error", "model_error") };
  }
  return {
    status: 500,
    body: {
      error: {
        message: `Cannot complete the request: internal error (${e.message})`,
        type: "server_error",
        param: null,
        code: "internal_error",
      },
    },
  };
}
