/**
 * Typed readers for request-body fields. Each throws an `ApiError` (400)
 * naming the field, what it must be and what arrived. `null` counts as absent,
 * as OpenAI clients send it for unset options.
 */
import { ApiError } from "./errors.ts";

/** A JSON request body. */
export type Body = Record<string, unknown>;

/** Describe a JSON value for an error message. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return v.length > 40 ? "a string" : `'${v}'`;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return `a ${typeof v}`;
}

/** 400 for a field of the wrong type. */
export function typeError(param: string, expected: string, got: unknown): ApiError {
  return new ApiError(
    400,
    `Invalid '${param}': expected ${expected}, got ${describe(got)}`,
    { param, code: "invalid_type" },
  );
}

/** 400 for a field with an out-of-range value. */
export function valueError(param: string, rule: string, got: unknown): ApiError {
  return new ApiError(
    400,
    `Invalid '${param}': must be ${rule}, got ${describe(got)}`,
    { param, code: "invalid_value" },
  );
}

/** Reject fields outside `allowed` (the OpenAI API refuses unknown arguments too). */
export function rejectUnknownFields(body: Body, allowed: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      throw new ApiError(
        400,
        `Unrecognized request argument supplied: '${key}'; supported: ${allowed.join(", ")}`,
        { param: key, code: "unknown_parameter" },
      );
    }
  }
}

/** A number field within [min, max] (integer when asked), or undefined. */
export function optNumber(
  body: Body,
  key: string,
  rule: { min?: number; max?: number; integer?: boolean; exclusiveMin?: boolean },
): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw typeError(key, rule.integer ? "an integer" : "a number", v);
  }
  if (rule.integer && !Number.isSafeInteger(v)) throw typeError(key, "an integer", v);
  const { min, max } = rule;
  const low = min === undefined ? true : rule.exclusiveMin ? v > min : v >= min;
  if (!low || (max !== undefined && v > max)) {
    const lo = min === undefined ? "" : rule.exclusiveMin ? `> ${min}` : `>= ${min}`;
    const hi = max === undefined ? "" : `<= ${max}`;
    throw valueError(key, [lo, hi].filter(Boolean).join(" and "), v);
  }
  return v;
}

/** A boolean field, or `fallback`. */
export function optBoolean(body: Body, key: string, fallback: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw typeError(key, "a boolean", v);
  return v;
}

/** `stop`: a string or an array of at most 4 non-empty strings. */
export function optStop(body: Body): string[] {
  const v = body.stop;
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
    throw typeError("stop", "a string or an array of strings", v);
  }
  if (list.length > 4) throw valueError("stop", "at most 4 strings", `${list.length} strings`);
  if (list.some((s) => s.length === 0)) throw valueError("stop", "non-empty strings", "''");
  return list as string[];
}

/** Fields the server accepts only at their neutral value (features it does not implement). */
export function requireNeutral(
  body: Body,
  key: string,
  isNeutral: (v: unknown) => boolean,
  what: string,
): void {
  const v = body[key];
  if (v === undefined || v === null || isNeutral(v)) return;
  throw new ApiError(400, `Unsupported '${key}': ${what}`, {
    param: key,
    code: "unsupported_parameter",
  });
}
