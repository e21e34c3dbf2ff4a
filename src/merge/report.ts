/**
 * The merge report: `report.json` (machine-readable) built here, and the
 * self-contained `report.html` rendered by `report_html.ts`.
 */
import type { ExpertEntry } from "../bundle/manifest.ts";
import type { Router } from "../router/router.ts";
import type { UnitAnalysis } from "./analyze.ts";
import type { MergeInputs } from "./inputs.ts";
import type { RoutingPlan } from "./plan.ts";
export { renderReportHtml } from "./report_html.ts";

/** One unit's row of the report. */
export interface ReportUnit {
  unit: string;
  routed: boolean;
  reason: string;
  /** Trimmed sign-conflict share d_l. */
  conflict: number;
  meanCosine: number;
  averagingLoss: number;
  taskVectorNorms: number[];
  /** Per expert (routable units): chosen density, error, bytes and the error/bytes curve. */
  experts: {
    expert: string;
    density: number;
    error: number;
    met: boolean;
    bytes: number;
    curve: { density: number; error: number; bytes: number }[];
  }[];
}

/** The whole report. */
export interface MergeReport {
  experts: string[];
  modelBytes: number;
  /** Bytes of base + T experts as given. */
  inputBytes: number;
  policy: string;
  /** Conflict threshold of the `threshold` policy (mean + 1 std), drawn in the plot. */
  conflictThreshold: number;
  budgetBytes: number | null;
  routedBytes: number;
  units: ReportUnit[];
  /** Sparse blocks actually written, bytes per non-zero. */
  sparse: {
    expert: string;
    unit: string;
    bytes: number;
    nnz: number;
    bytesPerNonZero: number;
    error: number;
  }[];
  router: {
    layer: number;
    kind: string;
    heldOutAccuracy: number | null;
    confusion: number[][] | null;
    classCounts: number[];
  };
  settings: Record<string, unknown>;
}

/** Assemble the report from the merge's intermediate results. */
export function buildReport(a: {
  inputs: MergeInputs;
  units: UnitAnalysis[];
  plan: RoutingPlan;
  experts: ExpertEntry[];
  router: Router;
  settings: Record<string, unknown>;
}): MergeReport {
  const conflicts = a.units.filter((u) => u.routable).map((u) => u.conflict.conflict);
  const mean = conflicts.reduce((s, x) => s + x, 0) / Math.max(1, conflicts.length);
  const std = Math.sqrt(
    conflicts.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, conflicts.length),
  );
  const routed = new Set(a.plan.routed);
  return {
    experts: a.inputs.experts.map((e) => e.name),
    modelBytes: a.inputs.modelBytes,
    inputBytes: a.inputs.modelBytes * (a.inputs.experts.length + 1),
    policy: a.plan.policy,
    conflictThreshold: mean + std,
    budgetBytes: a.plan.budgetBytes,
    routedBytes: a.plan.routedBytes,
    units: a.units.map((u) => ({
      unit: u.unit,
      routed: routed.has(u.unit),
      reason: a.plan.decisions.find((d) => d.unit === u.unit)?.reason ?? "",
      conflict: u.conflict.conflict,
      meanCosine: u.conflict.meanCosine,
      averagingLoss: u.conflict.averagingLoss,
      taskVectorNorms: u.conflict.taskVectorNorms,
      experts: u.profiles,
    })),
    sparse: a.experts.flatMap((e) =>
      e.blocks.map((b) => {
        const nnz = b.tensors.reduce((s, t) => s + t.nnz, 0);
        return {
          expert: e.name,
          unit: b.unit,
          bytes: b.length,
          nnz,
          bytesPerNonZero: nnz ? b.length / nnz : 0,
          error: b.error,
        };
      })
    ),
    router: {
      layer: a.router.routerLayer,
      kind: a.router.report?.kind ?? "mlp",
      heldOutAccuracy: a.router.report?.holdoutAccuracy ?? null,
      confusion: a.router.report?.confusion ?? null,
      classCounts: a.router.report?.classCounts ?? [],
    },
    settings: a.settings,
  };
}
