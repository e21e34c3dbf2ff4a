/**
 * Plan policies (MEDIATOR.md section 2): which units are routed (dense expert
 * + sparse experts) and which are averaged by the static merge method. Each
 * policy is a registry entry with parameters; input is, per unit, its
 * conflict d_l and the encoded bytes of each expert's sparse tensors at the
 * chosen density; output is one decision per unit with its reason.
 *
 * - `budget` (default): route units in order of decreasing conflict while
 *   their sparse experts fit a byte budget (default: one model's size). A unit
 *   that does not fit is skipped and smaller ones after it may still fit. It
 *   routes something whenever anything fits, even when conflict is uniformly
 *   high, which is what real families show.
 * - `threshold`: route units with d_l > mean + z * std over routable units
 *   (population std; z = 1 by default). Routes nothing when conflict is flat.
 * - `top-k`: route the k most conflicting units (k = 3 by default).
 *
 * Ties in conflict keep the input order.
 */
import { numberParam, type ParamSpec, type ResolvedParams, resolveParams } from "./params.ts";
import type { UnitId } from "./units.ts";

/** What a policy knows about one unit. */
export interface UnitPlanInput {
  readonly unit: UnitId;
  /** Conflict d_l in [0, 1]. */
  readonly conflict: number;
  /** Encoded bytes of each expert's sparse tensors of this unit. */
  readonly expertBytes: readonly number[];
  /** Whether the unit may be routed at all (default true). */
  readonly routable?: boolean;
}

/** Facts about the merge that policies may use. */
export interface PlanContext {
  /** Bytes of one model as stored (the default budget). */
  readonly modelBytes: number;
}

/** The decision for one unit. */
export interface UnitDecision {
  readonly unit: UnitId;
  readonly routed: boolean;
  readonly conflict: number;
  /** Sparse-expert bytes of the unit, summed over experts. */
  readonly bytes: number;
  readonly reason: string;
}

/** A policy's output. */
export interface RoutingPlan {
  readonly policy: string;
  readonly params: ResolvedParams;
  /** One decision per unit, in input order. */
  readonly decisions: readonly UnitDecision[];
  /** Routed units, in input order. */
  readonly routed: readonly UnitId[];
  /** Sparse-expert bytes of the routed units. */
  readonly routedBytes: number;
  /** The byte budget, for policies that have one. */
  readonly budgetBytes: number | null;
}

/** A plan policy: a named, configured rule choosing the routed units. */
export interface PlanPolicy {
  readonly name: string;
  readonly description: string;
  readonly params: readonly ParamSpec[];
  /** Validate parameters and fill in defaults. */
  resolve(params?: Readonly<Record<string, unknown>>): ResolvedParams;
  /** Decide every unit. */
  plan(
    units: readonly UnitPlanInput[],
    context: PlanContext,
    params?: Readonly<Record<string, unknown>>,
  ): RoutingPlan;
}

type Decide = (
  units: readonly UnitPlanInput[],
  context: PlanContext,
  params: ResolvedParams,
) => { decisions: Map<UnitId, { routed: boolean; reason: string }>; budgetBytes: number | null };

const fmt = (x: number) => x.toFixed(3);
const fmtBytes = (b: number) =>
  b >= 1 << 20
    ? `${(b / (1 << 20)).toFixed(2)} MiB`
    : b >= 1024
    ? `${(b / 1024).toFixed(1)} KiB`
    : `${b} B`;
const unitBytes = (u: UnitPlanInput) => u.expertBytes.reduce((s, b) => s + b, 0);
const isRoutable = (u: UnitPlanInput) => u.routable !== false;

/** Routable units by decreasing conflict, ties in input order. */
const byConflict = (units: readonly UnitPlanInput[]) =>
  units.filter(isRoutable).map((u, i) => ({ u, i }))
    .sort((a, b) => b.u.conflict - a.u.conflict || a.i - b.i).map(({ u }) => u);

function checkInputs(name: string, units: readonly UnitPlanInput[], context: PlanContext): void {
  if (!(context.modelBytes > 0 && Number.isFinite(context.modelBytes))) {
    throw new RangeError(
      `Cannot plan with policy '${name}': modelBytes ${context.modelBytes} must be a positive number`,
    );
  }
  const seen = new Set<UnitId>();
  for (const u of units) {
    if (seen.has(u.unit)) {
      throw new RangeError(`Cannot plan with policy '${name}': unit '${u.unit}' is listed twice`);
    }
    seen.add(u.unit);
    if (!(u.conflict >= 0 && u.conflict <= 1)) {
      throw new RangeError(
        `Cannot plan with policy '${name}': unit '${u.unit}' has conflict ${u.conflict}; it must be in [0, 1]`,
      );
    }
    if (!u.expertBytes.every((b) => b >= 0 && Number.isFinite(b))) {
      throw new RangeError(
        `Cannot plan with policy '${name}': unit '${u.unit}' has invalid expert bytes ` +
          `[${u.expertBytes.join(", ")}]; use non-negative sizes`,
      );
    }
  }
}

function definePolicy(
  name: string,
  description: string,
  params: readonly ParamSpec[],
  decide: Decide,
): PlanPolicy {
  const owner = `plan policy '${name}'`;
  return {
    name,
    description,
    params,
    resolve: (given) => resolveParams(owner, params, given),
    plan(units, context, given) {
      const resolved = resolveParams(owner, params, given);
      checkInputs(name, units, context);
      const { decisions, budgetBytes } = decide(units, context, resolved);
      const out = units.map((u) => {
        const d = isRoutable(u)
          ? decisions.get(u.unit) ?? { routed: false, reason: "not selected" }
          : { routed: false, reason: "not routable; averaged" };
        return { unit: u.unit, conflict: u.conflict, bytes: unitBytes(u), ...d };
      });
      const routed = out.filter((d) => d.routed);
      return {
        policy: name,
        params: resolved,
        decisions: out,
        routed: routed.map((d) => d.unit),
        routedBytes: routed.reduce((s, d) => s + d.bytes, 0),
        budgetBytes,
      };
    },
  };
}

const budgetPolicy = definePolicy(
  "budget",
  "route units by decreasing conflict while their sparse experts fit a byte budget",
  [
    {
      name: "budget_models",
      kind: "number",
      default: 1,
      min: 0,
      description: "budget as a multiple of one model's bytes (used when budget_bytes is 0)",
    },
    {
      name: "budget_bytes",
      kind: "number",
      default: 0,
      min: 0,
      integer: true,
      description: "budget in bytes; 0 means budget_models times one model's bytes",
    },
  ],
  (units, context, p) => {
    const budget = numberParam(p, "budget_bytes") ||
      Math.floor(numberParam(p, "budget_models") * context.modelBytes);
    const decisions = new Map<UnitId, { routed: boolean; reason: string }>();
    let used = 0;
    byConflict(units).forEach((u, rank) => {
      const bytes = unitBytes(u);
      const head = `rank ${rank + 1} by conflict ${fmt(u.conflict)}; sparse experts ${
        fmtBytes(bytes)
      }`;
      if (used + bytes <= budget) {
        used += bytes;
        decisions.set(u.unit, {
          routed: true,
          reason: `${head} fit the budget (${fmtBytes(used)} of ${fmtBytes(budget)} used)`,
        });
      } else {
        decisions.set(u.unit, {
          routed: false,
          reason: `${head} exceed the ${fmtBytes(budget - used)} left of ${fmtBytes(budget)}`,
        });
      }
    });
    return { decisions, budgetBytes: budget };
  },
);

const thresholdPolicy = definePolicy(
  "threshold",
  "route units whose conflict exceeds mean + z * std over units",
  [{
    name: "z",
    kind: "number",
    default: 1,
    description: "standard deviations above the mean conflict a unit must exceed",
  }],
  (units, _context, p) => {
    const routable = units.filter(isRoutable);
    const n = routable.length;
    const mean = routable.reduce((s, u) => s + u.conflict, 0) / Math.max(n, 1);
    const variance = routable.reduce((s, u) => s + (u.conflict - mean) ** 2, 0) / Math.max(n, 1);
    const std = Math.sqrt(variance);
    const z = numberParam(p, "z");
    const limit = mean + z * std;
    const rule = `mean ${fmt(mean)} + ${z} * std ${fmt(std)} = ${fmt(limit)}`;
    const decisions = new Map<UnitId, { routed: boolean; reason: string }>();
    for (const u of routable) {
      const routed = u.conflict > limit;
      decisions.set(u.unit, {
        routed,
        reason: `conflict ${fmt(u.conflict)} ${routed ? ">" : "<="} ${rule}`,
      });
    }
    return { decisions, budgetBytes: null };
  },
);

const topKPolicy = definePolicy(
  "top-k",
  "route the k most conflicting units",
  [{
    name: "k",
    kind: "number",
    default: 3,
    min: 0,
    integer: true,
    description: "number of units to route",
  }],
  (units, _context, p) => {
    const k = numberParam(p, "k");
    const decisions = new Map<UnitId, { routed: boolean; reason: string }>();
    byConflict(units).forEach((u, rank) => {
      const routed = rank < k;
      decisions.set(u.unit, {
        routed,
        reason: `rank ${rank + 1} by conflict ${fmt(u.conflict)}; ${
          routed ? "within" : "beyond"
        } top ${k}`,
      });
    });
    return { decisions, budgetBytes: null };
  },
);

/** Every plan policy by name. */
export const PLAN_POLICIES: ReadonlyMap<string, PlanPolicy> = new Map(
  [budgetPolicy, thresholdPolicy, topKPolicy].map((p) => [p.name, p]),
);

/** The policy used when none is named. */
export const DEFAULT_PLAN_POLICY = "budget";

/** The policy called `name`; throws RangeError listing the known names. */
export function getPlanPolicy(name: string): PlanPolicy {
  const policy = PLAN_POLICIES.get(name);
  if (!policy) {
    throw new RangeError(
      `Cannot use plan policy '${name}': unknown; use one of ${
        [...PLAN_POLICIES.keys()].join(", ")
      }`,
    );
  }
  return policy;
}
