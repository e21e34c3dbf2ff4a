/**
 * `deno task merge --base DIR --expert NAME=DIR ... --router-data NAME=FILE ... --out DIR`
 * builds a Mediator bundle; `--static METHOD` writes a plain merged checkpoint
 * (the baselines). A YAML `--config` holds the same settings; flags win.
 */
import { parseArgs } from "node:util";
import { mergeMediator, mergeStatic } from "../merge/mediator.ts";
import {
  defaultMergeOptions,
  type ExpertSpec,
  type MergeOptions,
  parseMergeConfig,
} from "../merge/options.ts";
import { MERGE_METHODS } from "../merge/methods.ts";
import { PLAN_POLICIES } from "../merge/plan.ts";
import { Checkpoint } from "../safetensors/checkpoint.ts";
import { openStorage } from "../storage/open.ts";
import { fmtBytes, Progress } from "./progress.ts";
import { runCli } from "./run.ts";

const USAGE =
  `Usage: deno task merge --base DIR --expert NAME=DIR ... --router-data NAME=FILE.jsonl ... --out DIR
       deno task merge --static METHOD --base DIR --expert NAME=DIR ... --out DIR
  --config FILE.yaml       settings file (mergekit style); flags override it
  --policy NAME            plan policy: ${[...PLAN_POLICIES.keys()].join(", ")} (default budget)
  --budget N|Nx            byte budget of the sparse experts (Nx = N model sizes; default 1x)
  --top-k K                units routed by the top-k policy
  --policy-param K=V       any policy parameter (repeatable)
  --method NAME            method for averaged units: ${[...MERGE_METHODS.keys()].join(", ")}
  --method-param K=V       method parameter, e.g. lambda=0.5, density=0.2, drop_rate=0.5
  --max-error E            adaptive sparse density: largest relative reconstruction error (default 0.3)
  --density D              fixed sparse density instead of the adaptive choice
  --ladder a,b,...         densities tried by the adaptive choice
  --value-format q4|q8|bf16|f16  sparse values: 4/8-bit with a per-row scale (default q4) or 16-bit
  --conflict-density K     top-k trim of the conflict measure (default 0.2)
  --router-layer L --router-kind mlp|logreg --router-hidden H --router-epochs E
  --temperature T --u-low U --top-m M --min-confidence C   routing defaults stored in the bundle
  --name NAME --seed S --backend NAME --overwrite --json`;

function pairs(list: string[] | undefined, flag: string): [string, string][] {
  return (list ?? []).map((s) => {
    const i = s.indexOf("=");
    if (i <= 0) throw new TypeError(`Cannot merge: --${flag} takes NAME=VALUE, got '${s}'`);
    return [s.slice(0, i), s.slice(i + 1)];
  });
}

function params(list: string[] | undefined, flag: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of pairs(list, flag)) {
    out[k] = v !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) {
    throw new TypeError(`Cannot merge: --${flag} must be a number, got '${v}'`);
  }
  return n;
}

/** Build merge options from flags (and the config file they name). */
export async function optionsFromArgs(
  args: string[],
): Promise<{ o: MergeOptions; staticMethod?: string; json: boolean }> {
  const { values: v } = parseArgs({
    args,
    options: {
      config: { type: "string" },
      base: { type: "string" },
      expert: { type: "string", multiple: true },
      "router-data": { type: "string", multiple: true },
      out: { type: "string" },
      static: { type: "string" },
      policy: { type: "string" },
      budget: { type: "string" },
      "top-k": { type: "string" },
      "policy-param": { type: "string", multiple: true },
      method: { type: "string" },
      "method-param": { type: "string", multiple: true },
      "max-error": { type: "string" },
      density: { type: "string" },
      ladder: { type: "string" },
      "value-format": { type: "string" },
      "conflict-density": { type: "string" },
      "router-layer": { type: "string" },
      "router-kind": { type: "string" },
      "router-hidden": { type: "string" },
      "router-epochs": { type: "string" },
      temperature: { type: "string" },
      "u-low": { type: "string" },
      "top-m": { type: "string" },
      "min-confidence": { type: "string" },
      name: { type: "string" },
      seed: { type: "string" },
      backend: { type: "string" },
      overwrite: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const fromFile = v.config ? parseMergeConfig(await Deno.readTextFile(v.config), v.config) : {};
  const d = defaultMergeOptions();
  const o: MergeOptions = { ...d, base: "", experts: [], out: "", ...fromFile };
  if (v.base) o.base = v.base;
  if (v.out) o.out = v.out;
  if (v.name) o.name = v.name;
  if (v.expert?.length) {
    o.experts = pairs(v.expert, "expert").map(([name, model]): ExpertSpec => ({ name, model }));
  }
  const data = new Map(pairs(v["router-data"], "router-data"));
  for (const name of data.keys()) {
    if (!o.experts.some((e) => e.name === name)) {
      throw new TypeError(`Cannot merge: --router-data names '${name}', which is not an --expert`);
    }
  }
  o.experts = o.experts.map((e) => ({ ...e, routerData: data.get(e.name) ?? e.routerData }));
  if (!o.base) throw new TypeError("Cannot merge: --base DIR is required");
  if (!o.out) throw new TypeError("Cannot merge: --out DIR is required");
  if (v.policy) o.policy = { name: v.policy, params: {} };
  o.policy = {
    ...o.policy,
    params: { ...o.policy.params, ...params(v["policy-param"], "policy-param") },
  };
  if (v.budget) {
    const m = /^([0-9.]+)x$/.exec(v.budget);
    if (m) o.policy.params.budget_models = num(m[1], "budget");
    else o.policy.params.budget_bytes = num(v.budget, "budget");
  }
  if (v["top-k"]) o.policy.params.k = num(v["top-k"], "top-k");
  if (v.method) o.method = { name: v.method, params: {} };
  o.method = {
    ...o.method,
    params: { ...o.method.params, ...params(v["method-param"], "method-param") },
  };
  if (v.ladder) o.ladder = v.ladder.split(",").map((s) => num(s, "ladder")!);
  if (v.density && v["max-error"]) {
    throw new TypeError("Cannot merge: give --density or --max-error, not both");
  }
  if (v.density) o.density = { mode: "fixed", density: num(v.density, "density")! };
  else if (v["max-error"]) {
    o.density = { mode: "adaptive", maxError: num(v["max-error"], "max-error")!, ladder: o.ladder };
  } else if (o.density.mode === "adaptive") o.density = { ...o.density, ladder: o.ladder };
  if (v["value-format"]) o.valueFormat = v["value-format"] as "q8";
  if (v["conflict-density"]) o.conflictDensity = num(v["conflict-density"], "conflict-density")!;
  o.router = {
    ...o.router,
    layer: num(v["router-layer"], "router-layer") ?? o.router.layer,
    kind: (v["router-kind"] ?? o.router.kind) as "mlp",
    hidden: num(v["router-hidden"], "router-hidden") ?? o.router.hidden,
    epochs: num(v["router-epochs"], "router-epochs") ?? o.router.epochs,
  };
  o.routing = {
    temperature: num(v.temperature, "temperature") ?? o.routing.temperature,
    uLow: num(v["u-low"], "u-low") ?? o.routing.uLow,
    topM: num(v["top-m"], "top-m") ?? o.routing.topM,
    minConfidence: num(v["min-confidence"], "min-confidence") ?? o.routing.minConfidence,
  };
  if (v.seed) o.seed = num(v.seed, "seed")!;
  if (v.backend) o.backend = v.backend;
  o.overwrite = v.overwrite || o.overwrite;
  return { o, staticMethod: v.static, json: v.json! };
}

if (import.meta.main) {
  await runCli(USAGE, async () => {
    if (Deno.args.includes("--help")) return console.log(USAGE);
    const { o, staticMethod, json } = await optionsFromArgs(Deno.args);
    const base = await Checkpoint.open(openStorage(o.base));
    const modelBytes = [...base.tensors.values()].reduce((s, t) => s + t.length, 0);
    const reads = modelBytes * (o.experts.length + 1);
    const progress = new Progress(staticMethod ? reads : 2.5 * reads, json);
    const tick = (e: { phase: string; tensor: string; bytes: number }) =>
      progress.tick(e.phase, e.tensor, e.bytes);
    const t0 = performance.now();
    if (staticMethod) {
      await mergeStatic({ ...o, method: { name: staticMethod, params: o.method.params } }, tick);
      progress.done();
      const msg = `wrote ${o.out} (${staticMethod}) in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      }s`;
      if (json) console.log(JSON.stringify({ event: "done", out: o.out, method: staticMethod }));
      else console.log(msg);
      return;
    }
    const { manifest, report } = await mergeMediator(o, tick, (m) => progress.log(m));
    progress.done();
    const bundleBytes = manifest.files.reduce((s, f) => s + f.size, 0);
    const summary = {
      event: "done",
      out: o.out,
      routed: manifest.units.filter((u) => u.kind === "routed").map((u) => u.name),
      bundle_bytes: bundleBytes,
      input_bytes: report.inputBytes,
      ratio: bundleBytes / report.inputBytes,
      router_accuracy: manifest.router.heldOutAccuracy,
      seconds: (performance.now() - t0) / 1000,
    };
    if (json) console.log(JSON.stringify(summary));
    else {
      console.log(
        `wrote ${o.out}: ${fmtBytes(bundleBytes)} (${
          (summary.ratio * 100).toFixed(1)
        }% of base + ${o.experts.length} experts, ${
          fmtBytes(report.inputBytes)
        }); routed ${summary.routed.length}/${manifest.units.length} units; router held-out accuracy ${
          summary.router_accuracy?.toFixed(3) ?? "n/a"
        }; report: ${o.out}/report.html`,
      );
    }
  });
}
