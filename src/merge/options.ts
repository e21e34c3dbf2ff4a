/**
 * Merge settings: one record filled from a YAML config file (mergekit style)
 * and/or command-line flags (flags win). Every choice of MEDIATOR.md has a
 * named option with a default here.
 */
import { parse as parseYaml } from "yaml";
import type { DensityMode } from "./analyze.ts";
import { DEFAULT_CONFLICT_DENSITY } from "./conflict.ts";
import { DEFAULT_MERGE_METHOD, getMergeMethod } from "./methods.ts";
import { DEFAULT_PLAN_POLICY, getPlanPolicy } from "./plan.ts";
import { DEFAULT_DENSITY_LADDER } from "./sparse.ts";
import type { SparseValueFormat } from "./sparse_codec.ts";

/** One expert of a merge. */
export interface ExpertSpec {
  name: string;
  /** Checkpoint folder or URL. */
  model: string;
  /** JSONL router prompts of this task. */
  routerData?: string;
}

/** Router training settings. */
export interface RouterOptions {
  /** Hidden state after this many layers feeds the router (default: half the layers). */
  layer?: number;
  kind: "mlp" | "logreg";
  hidden: number;
  epochs: number;
  seed: number;
}

/** Uncertainty-based selection defaults stored in the bundle. */
export interface RoutingOptions {
  temperature: number;
  uLow: number;
  topM: number;
  minConfidence: number | null;
}

/** Everything a Mediator merge needs. */
export interface MergeOptions {
  base: string;
  experts: ExpertSpec[];
  out: string;
  name?: string;
  overwrite: boolean;
  policy: { name: string; params: Record<string, unknown> };
  method: { name: string; params: Record<string, unknown> };
  density: DensityMode;
  ladder: readonly number[];
  /** Stored format of sparse values (default q4: a quarter of the bytes of bf16). */
  valueFormat: SparseValueFormat;
  conflictDensity: number;
  router: RouterOptions;
  routing: RoutingOptions;
  seed: number;
  /** Backend for router feature extraction. */
  backend: string;
}

/**
 * Default largest relative reconstruction error of a sparse expert. On the
 * fixture family, 0.5 (density ~0.3) kept about half of the experts' gain,
 * 0.3 (density ~0.5) about 87%: accuracy falls steeply above ~0.3.
 */
export const DEFAULT_MERGE_MAX_ERROR = 0.3;

/** Defaults of every option. */
export function defaultMergeOptions(): Omit<MergeOptions, "base" | "experts" | "out"> {
  return {
    overwrite: false,
    policy: { name: DEFAULT_PLAN_POLICY, params: {} },
    method: { name: DEFAULT_MERGE_METHOD, params: {} },
    density: {
      mode: "adaptive",
      maxError: DEFAULT_MERGE_MAX_ERROR,
      ladder: DEFAULT_DENSITY_LADDER,
    },
    ladder: DEFAULT_DENSITY_LADDER,
    valueFormat: "q4",
    conflictDensity: DEFAULT_CONFLICT_DENSITY,
    router: { kind: "mlp", hidden: 64, epochs: 200, seed: 0 },
    routing: { temperature: 1, uLow: 0.3, topM: 2, minConfidence: null },
    seed: 0,
    backend: "auto",
  };
}

function obj(x: unknown, where: string): Record<string, unknown> {
  if (x === undefined || x === null) return {};
  if (typeof x !== "object" || Array.isArray(x)) {
    throw new TypeError(`Cannot read merge config: '${where}' must be a mapping`);
  }
  return x as Record<string, unknown>;
}

function numOr(x: unknown, fallback: number, where: string): number {
  if (x === undefined || x === null) return fallback;
  if (typeof x !== "number" || !Number.isFinite(x)) {
    throw new TypeError(
      `Cannot read merge config: '${where}' must be a number, got ${JSON.stringify(x)}`,
    );
  }
  return x;
}

/**
 * Parse a YAML merge config into partial options. Keys: base, out, name,
 * experts[{name, model, router_data}], plan{policy, params}, method{name,
 * params}, sparse{max_error | density, ladder, value_format}, conflict{density},
 * router{layer, kind, hidden, epochs, seed}, routing{temperature, u_low, top_m,
 * min_confidence}, seed.
 */
export function parseMergeConfig(text: string, where = "merge config"): Partial<MergeOptions> {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new TypeError(`Cannot read ${where}: invalid YAML (${(e as Error).message})`);
  }
  const c = obj(raw, "(top level)");
  const d = defaultMergeOptions();
  const out: Partial<MergeOptions> = {};
  if (c.base !== undefined) out.base = String(c.base);
  if (c.out !== undefined) out.out = String(c.out);
  if (c.name !== undefined) out.name = String(c.name);
  if (c.seed !== undefined) out.seed = numOr(c.seed, 0, "seed");
  if (c.experts !== undefined) {
    if (!Array.isArray(c.experts)) {
      throw new TypeError(`Cannot read ${where}: 'experts' must be a list`);
    }
    out.experts = c.experts.map((e, i) => {
      const x = obj(e, `experts[${i}]`);
      if (typeof x.name !== "string" || typeof x.model !== "string") {
        throw new TypeError(`Cannot read ${where}: experts[${i}] needs 'name' and 'model'`);
      }
      return {
        name: x.name,
        model: x.model,
        routerData: x.router_data === undefined ? undefined : String(x.router_data),
      };
    });
  }
  const plan = obj(c.plan, "plan");
  if (c.plan !== undefined) {
    out.policy = {
      name: String(plan.policy ?? d.policy.name),
      params: obj(plan.params, "plan.params"),
    };
  }
  const method = obj(c.method, "method");
  if (c.method !== undefined) {
    out.method = {
      name: String(method.name ?? d.method.name),
      params: obj(method.params, "method.params"),
    };
  }
  const sparse = obj(c.sparse, "sparse");
  if (sparse.ladder !== undefined) {
    if (!Array.isArray(sparse.ladder)) {
      throw new TypeError(`Cannot read ${where}: 'sparse.ladder' must be a list`);
    }
    out.ladder = sparse.ladder.map((v, i) => numOr(v, 0, `sparse.ladder[${i}]`));
  }
  if (sparse.density !== undefined && sparse.max_error !== undefined) {
    throw new TypeError(
      `Cannot read ${where}: give either 'sparse.density' or 'sparse.max_error', not both`,
    );
  }
  if (sparse.density !== undefined) {
    out.density = { mode: "fixed", density: numOr(sparse.density, 0.1, "sparse.density") };
  } else if (sparse.max_error !== undefined) {
    out.density = {
      mode: "adaptive",
      maxError: numOr(sparse.max_error, DEFAULT_MERGE_MAX_ERROR, "sparse.max_error"),
      ladder: out.ladder ?? d.ladder,
    };
  }
  if (sparse.value_format !== undefined) {
    out.valueFormat = String(sparse.value_format) as SparseValueFormat;
  }
  const conflict = obj(c.conflict, "conflict");
  if (conflict.density !== undefined) {
    out.conflictDensity = numOr(conflict.density, 0.2, "conflict.density");
  }
  const router = obj(c.router, "router");
  if (c.router !== undefined) {
    out.router = {
      layer: router.layer === undefined ? undefined : numOr(router.layer, 0, "router.layer"),
      kind: (router.kind ?? d.router.kind) as "mlp" | "logreg",
      hidden: numOr(router.hidden, d.router.hidden, "router.hidden"),
      epochs: numOr(router.epochs, d.router.epochs, "router.epochs"),
      seed: numOr(router.seed, d.router.seed, "router.seed"),
    };
  }
  const routing = obj(c.routing, "routing");
  if (c.routing !== undefined) {
    out.routing = {
      temperature: numOr(routing.temperature, d.routing.temperature, "routing.temperature"),
      uLow: numOr(routing.u_low, d.routing.uLow, "routing.u_low"),
      topM: numOr(routing.top_m, d.routing.topM, "routing.top_m"),
      minConfidence: routing.min_confidence === undefined || routing.min_confidence === null
        ? null
        : numOr(routing.min_confidence, 0, "routing.min_confidence"),
    };
  }
  return out;
}

/** Check option values that are cheap to check, before any model is opened. */
export function validateMergeOptions(o: MergeOptions): void {
  getPlanPolicy(o.policy.name).resolve(o.policy.params);
  getMergeMethod(o.method.name).resolve(o.method.params);
  if (o.density.mode === "fixed" && !(o.density.density > 0 && o.density.density <= 1)) {
    throw new RangeError(`Cannot merge: --density must be in (0, 1], got ${o.density.density}`);
  }
  if (o.density.mode === "adaptive" && !(o.density.maxError >= 0)) {
    throw new RangeError(`Cannot merge: --max-error must be >= 0, got ${o.density.maxError}`);
  }
  if (!["bf16", "f16", "q8", "q4"].includes(o.valueFormat)) {
    throw new RangeError(
      `Cannot merge: sparse value format must be q8, q4, bf16 or f16, got '${o.valueFormat}'`,
    );
  }
  if (!(o.conflictDensity > 0 && o.conflictDensity <= 1)) {
    throw new RangeError(
      `Cannot merge: conflict density must be in (0, 1], got ${o.conflictDensity}`,
    );
  }
  if (o.router.kind !== "mlp" && o.router.kind !== "logreg") {
    throw new RangeError(
      `Cannot merge: router kind must be 'mlp' or 'logreg', got '${o.router.kind}'`,
    );
  }
}
