/**
 * Parameter specifications shared by the merge-method and plan-policy
 * registries: each parameter has a name, a default, a valid range or set of
 * choices, and a description, so the CLI, the report and the evaluation can
 * list, validate and sweep them the same way.
 */

/** A numeric parameter. */
export interface NumberParamSpec {
  readonly name: string;
  readonly kind: "number";
  readonly default: number;
  /** Smallest allowed value (inclusive unless `minExclusive`). */
  readonly min?: number;
  readonly minExclusive?: boolean;
  /** Largest allowed value (inclusive unless `maxExclusive`). */
  readonly max?: number;
  readonly maxExclusive?: boolean;
  /** Whether the value must be an integer. */
  readonly integer?: boolean;
  readonly description: string;
}

/** A parameter that takes one of a fixed set of strings. */
export interface ChoiceParamSpec {
  readonly name: string;
  readonly kind: "choice";
  readonly default: string;
  readonly choices: readonly string[];
  readonly description: string;
}

/** One parameter of a registry entry. */
export type ParamSpec = NumberParamSpec | ChoiceParamSpec;

/** A parameter value after validation. */
export type ParamValue = number | string;

/** Validated parameters: every spec's name mapped to its value. */
export type ResolvedParams = Readonly<Record<string, ParamValue>>;

/** Describe the allowed range of a numeric spec, e.g. "in [0, 1)". */
function describeRange(spec: NumberParamSpec): string {
  const lo = spec.min === undefined ? "(-inf" : `${spec.minExclusive ? "(" : "["}${spec.min}`;
  const hi = spec.max === undefined ? "inf)" : `${spec.max}${spec.maxExclusive ? ")" : "]"}`;
  return `${spec.integer ? "an integer " : ""}in ${lo}, ${hi}`;
}

/** Validate one numeric value against its spec. */
function checkNumber(owner: string, spec: NumberParamSpec, value: unknown): number {
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(
      `Cannot configure ${owner}: parameter '${spec.name}' must be a number, got ${
        JSON.stringify(value) ?? String(value)
      }`,
    );
  }
  const belowMin = spec.min !== undefined &&
    (spec.minExclusive ? value <= spec.min : value < spec.min);
  const aboveMax = spec.max !== undefined &&
    (spec.maxExclusive ? value >= spec.max : value > spec.max);
  if (
    belowMin || aboveMax || !Number.isFinite(value) || (spec.integer && !Number.isInteger(value))
  ) {
    throw new RangeError(
      `Cannot configure ${owner}: parameter '${spec.name}' is ${value}; it must be ${
        describeRange(spec)
      }`,
    );
  }
  return value;
}

/** Validate one choice value against its spec. */
function checkChoice(owner: string, spec: ChoiceParamSpec, value: unknown): string {
  if (typeof value !== "string") {
    throw new TypeError(
      `Cannot configure ${owner}: parameter '${spec.name}' must be a string, got ${
        JSON.stringify(value) ?? String(value)
      }`,
    );
  }
  if (!spec.choices.includes(value)) {
    throw new RangeError(
      `Cannot configure ${owner}: parameter '${spec.name}' is '${value}'; use one of ${
        spec.choices.join(", ")
      }`,
    );
  }
  return value;
}

/**
 * Fill in defaults and validate `given` against `specs`. `owner` names the
 * entry in messages (e.g. "merge method 'ties'"). Unknown names and wrong
 * types throw TypeError; values out of range throw RangeError.
 */
export function resolveParams(
  owner: string,
  specs: readonly ParamSpec[],
  given: Readonly<Record<string, unknown>> = {},
): ResolvedParams {
  if (given === null || typeof given !== "object" || Array.isArray(given)) {
    throw new TypeError(`Cannot configure ${owner}: parameters must be an object of name: value`);
  }
  const known = new Set(specs.map((s) => s.name));
  for (const name of Object.keys(given)) {
    if (!known.has(name)) {
      const list = specs.length ? specs.map((s) => s.name).join(", ") : "none";
      throw new TypeError(
        `Cannot configure ${owner}: unknown parameter '${name}'; known parameters: ${list}`,
      );
    }
  }
  const out: Record<string, ParamValue> = {};
  for (const spec of specs) {
    const value = given[spec.name] === undefined ? spec.default : given[spec.name];
    out[spec.name] = spec.kind === "number"
      ? checkNumber(owner, spec, value)
      : checkChoice(owner, spec, value);
  }
  return out;
}

/** Read a numeric parameter from resolved params (throws TypeError if absent). */
export function numberParam(params: ResolvedParams, name: string): number {
  const value = params[name];
  if (typeof value !== "number") {
    throw new TypeError(`Cannot read parameter '${name}': it is not a resolved number`);
  }
  return value;
}

/** Read a choice parameter from resolved params (throws TypeError if absent). */
export function choiceParam(params: ResolvedParams, name: string): string {
  const value = params[name];
  if (typeof value !== "string") {
    throw new TypeError(`Cannot read parameter '${name}': it is not a resolved choice`);
  }
  return value;
}
