/**
 * The Mediator merge (MEDIATOR.md sections 1-4) and the static baselines.
 *
 *   validate inputs -> pass 1: conflict + sparse profiles per unit -> plan ->
 *   pass 2: dense weights + sparse experts -> router on the merged model ->
 *   report + manifest -> atomic rename into place.
 */
import { selectBackend } from "../backends/select.ts";
import { BUNDLE_FORMAT_VERSION, type BundleManifest, type UnitEntry } from "../bundle/manifest.ts";
import { type BundleWriter, withBundleWriter } from "../bundle/writer.ts";
import { DataFormatError } from "../errors.ts";
import { parseHfConfig } from "../model/config.ts";
import { Transformer } from "../model/forward.ts";
import { loadModelWeights } from "../model/weights.ts";
import { readRouterPrompts } from "../router/data.ts";
import { routerFeatures } from "../router/features.ts";
import { Router } from "../router/router.ts";
import { encodeRouter } from "../router/serialize.ts";
import { Checkpoint } from "../safetensors/checkpoint.ts";
import { LocalStorage } from "../storage/local.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { analyzeUnits, type ProgressFn, type UnitAnalysis } from "./analyze.ts";
import { describeDensity, writeMergedModel } from "./build.ts";
import { type MergeInputs, openMergeInputs } from "./inputs.ts";
import type { MergeOptions } from "./options.ts";
import { validateMergeOptions } from "./options.ts";
import { getPlanPolicy, type RoutingPlan } from "./plan.ts";
import { buildReport, type MergeReport, renderReportHtml } from "./report.ts";

/** Files copied from the base checkpoint into every output. */
export const COPIED_FILES = [
  "config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
];

/** Copy config and tokenizer files of the base into the output. */
export async function copyModelFiles(inputs: MergeInputs, writer: BundleWriter): Promise<void> {
  const s = inputs.base.hf.storage;
  for (const f of COPIED_FILES) {
    if (await s.exists(f)) await writer.writeFile(f, await s.readAll(f));
  }
}

/** Router prompts of every expert, read and checked before any weight. */
async function readRouterData(o: MergeOptions): Promise<string[][]> {
  const out: string[][] = [];
  for (const e of o.experts) {
    if (!e.routerData) {
      throw new DataFormatError(
        `Cannot merge: expert '${e.name}' has no router data; give --router-data ${e.name}=FILE.jsonl`,
      );
    }
    out.push(await readRouterPrompts(e.routerData));
  }
  return out;
}

/** Default router layer: half-way through the model. */
export function defaultRouterLayer(numLayers: number): number {
  return Math.max(1, Math.floor(numLayers / 2));
}

/** Train the router on the merged model written to the writer's folder. */
async function trainRouter(
  o: MergeOptions,
  writer: BundleWriter,
  prompts: string[][],
  layer: number,
  log: (msg: string) => void,
): Promise<Router> {
  const storage = new LocalStorage(writer.tempDir);
  const { backend, choice } = await selectBackend(o.backend as "auto");
  try {
    const ckpt = await Checkpoint.open(storage);
    const config = parseHfConfig(
      JSON.parse(await Deno.readTextFile(writer.fullPath("config.json"))),
    );
    const tokenizer = await TextTokenizer.load(storage);
    const model = new Transformer(backend, config, await loadModelWeights(backend, config, ckpt));
    const features: Float32Array[] = [];
    const labels: number[] = [];
    log(`router: features after layer ${layer} on ${choice}`);
    for (let t = 0; t < prompts.length; t++) {
      const ids = prompts[t].map((p) => tokenizer.encode(p));
      for (const f of await routerFeatures(model, ids, layer)) {
        features.push(f);
        labels.push(t);
      }
    }
    model.dispose();
    return Router.train(features, labels, {
      expertNames: o.experts.map((e) => e.name),
      routerLayer: layer,
      selection: {
        temperature: o.routing.temperature,
        uLow: o.routing.uLow,
        topM: o.routing.topM,
        minConfidence: o.routing.minConfidence ?? undefined,
      },
    }, {
      kind: o.router.kind,
      hiddenSize: o.router.hidden,
      epochs: o.router.epochs,
      seed: o.router.seed,
    });
  } finally {
    backend.dispose();
  }
}

/** Result of a Mediator merge. */
export interface MergeResult {
  manifest: BundleManifest;
  report: MergeReport;
}

/** Run a Mediator merge into `o.out`. */
export async function mergeMediator(
  o: MergeOptions,
  onProgress?: ProgressFn,
  log: (msg: string) => void = () => {},
): Promise<MergeResult> {
  validateMergeOptions(o);
  const inputs = await openMergeInputs(
    o.base,
    o.experts.map((e) => ({ name: e.name, dir: e.model })),
  );
  const prompts = await readRouterData(o);
  const layer = o.router.layer ?? defaultRouterLayer(inputs.config.numLayers);
  if (!(Number.isInteger(layer) && layer >= 1 && layer <= inputs.config.numLayers)) {
    throw new RangeError(
      `Cannot merge: router layer must be in [1, ${inputs.config.numLayers}], got ${layer}`,
    );
  }
  return await withBundleWriter(o.out, { overwrite: o.overwrite }, async (writer) => {
    log(`analyze: ${inputs.tensorNames.length} tensors, ${inputs.experts.length} experts`);
    const units = await analyzeUnits(inputs, {
      conflictDensity: o.conflictDensity,
      density: o.density,
      valueFormat: o.valueFormat,
      ladder: o.ladder,
      onProgress,
    });
    const plan = makePlan(o, inputs, units);
    log(
      `plan (${plan.policy}): routed ${plan.routed.length}/${units.length} units: ${
        plan.routed.join(", ") || "none"
      }`,
    );
    const routed = new Map(
      units.filter((u) => plan.routed.includes(u.unit)).map((u) => [u.unit, {
        unit: u.unit,
        density: u.profiles.map((p) => p.density),
        threshold: u.profiles.map((p) => p.threshold),
      }]),
    );
    await copyModelFiles(inputs, writer);
    const { dense, experts } = await writeMergedModel(
      inputs,
      writer,
      { ...o.method, seed: o.seed },
      routed,
      o.valueFormat,
      onProgress,
    );
    const router = await trainRouter(o, writer, prompts, layer, log);
    log(`router: held-out accuracy ${router.report?.holdoutAccuracy?.toFixed(3) ?? "n/a"}`);
    await writer.writeFile("router.bin", encodeRouter(router));

    const unitEntries: UnitEntry[] = units.map((u) => {
      const d = plan.decisions.find((x) => x.unit === u.unit)!;
      return {
        name: u.unit,
        kind: d.routed ? "routed" : "averaged",
        conflict: u.conflict.conflict,
        cosine: u.conflict.meanCosine,
        averagingLoss: u.conflict.averagingLoss,
        reason: d.reason,
      };
    });
    const mergeSettings = {
      policy: plan.policy,
      policy_params: plan.params,
      budget_bytes: plan.budgetBytes,
      method: o.method.name,
      method_params: o.method.params,
      density: describeDensity(o.density),
      value_format: o.valueFormat,
      conflict_density: o.conflictDensity,
      router: { ...o.router, layer },
      seed: o.seed,
      inputs: { base: o.base, experts: o.experts.map((e) => ({ name: e.name, model: e.model })) },
    };
    const report = buildReport({ inputs, units, plan, experts, router, settings: mergeSettings });
    await writer.writeFile(
      "report.json",
      new TextEncoder().encode(JSON.stringify(report, null, 1)),
    );
    await writer.writeFile("report.html", new TextEncoder().encode(renderReportHtml(report)));
    const manifest: BundleManifest = {
      format: "mediator-bundle",
      version: BUNDLE_FORMAT_VERSION,
      name: o.name ?? o.out.replace(/\/+$/, "").split("/").pop()!,
      createdBy: "mediator merge",
      modelConfig: inputs.base.hf.rawConfig,
      files: writer.files,
      dense: { file: "model.safetensors", tensors: dense },
      units: unitEntries,
      experts,
      router: { file: "router.bin", heldOutAccuracy: router.report?.holdoutAccuracy ?? null },
      routing: {
        routerLayer: layer,
        temperature: o.routing.temperature,
        uLow: o.routing.uLow,
        topM: o.routing.topM,
        minConfidence: o.routing.minConfidence,
      },
      merge: mergeSettings,
    };
    await writer.commit(JSON.stringify(manifest, null, 1));
    return { manifest, report };
  });
}

/** Apply the plan policy to the analysis. */
export function makePlan(o: MergeOptions, inputs: MergeInputs, units: UnitAnalysis[]): RoutingPlan {
  return getPlanPolicy(o.policy.name).plan(
    units.map((u) => ({
      unit: u.unit,
      conflict: u.conflict.conflict,
      expertBytes: u.profiles.map((p) => p.bytes),
      routable: u.routable,
    })),
    { modelBytes: inputs.modelBytes },
    o.policy.params,
  );
}

/** Write a plain merged HF checkpoint with one static method on every unit. */
export async function mergeStatic(
  o: Pick<MergeOptions, "base" | "experts" | "out" | "overwrite" | "method" | "seed">,
  onProgress?: ProgressFn,
): Promise<void> {
  const inputs = await openMergeInputs(
    o.base,
    o.experts.map((e) => ({ name: e.name, dir: e.model })),
  );
  await withBundleWriter(o.out, { overwrite: o.overwrite }, async (writer) => {
    await copyModelFiles(inputs, writer);
    await writeMergedModel(
      inputs,
      writer,
      { ...o.method, seed: o.seed },
      new Map(),
      "bf16",
      onProgress,
    );
    await writer.commit();
  });
}
