/**
 * The evaluation protocol of MEDIATOR.md on the fixture family, regenerated
 * by one command: `deno task evaluate` (writes bench/EVAL.md and
 * bench/out/eval.json, and bench/out/pareto.html).
 *
 * Rows: base, each expert, expert-oracle, average, task_arithmetic, ties,
 * dare, Mediator (auto routing), Mediator (oracle routing). Columns: accuracy
 * per task, mean, bytes stored, bytes resident while serving, decode tokens/s.
 * Then mixed / out-of-distribution prompts with their uncertainty and route,
 * and the Pareto curve of mean accuracy against bundle bytes over budgets and
 * densities.
 */
import { parseArgs } from "node:util";
import { selectBackend } from "../src/backends/select.ts";
import type { Backend } from "../src/backends/backend.ts";
import { MediatorModel } from "../src/bundle/mediator_model.ts";
import { type EvalResult, evaluate, openAnswerer, parseEvalJsonl } from "../src/eval/evaluate.ts";
import { mergeMediator, mergeStatic } from "../src/merge/mediator.ts";
import { defaultMergeOptions, type MergeOptions } from "../src/merge/options.ts";
import { renderReportHtml } from "../src/merge/report.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { loadHfModel } from "../src/model/hf.ts";
import { fmtBytes } from "../src/cli/progress.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    family: { type: "string", default: "fixtures/family" },
    limit: { type: "string", default: "100" },
    backend: { type: "string", default: "auto" },
    quick: { type: "boolean", default: false },
  },
});
const FAMILY = args.family!;
const LIMIT = Number(args.limit);
const tasks = [...Deno.readDirSync(`${FAMILY}/experts`)].filter((e) => e.isDirectory).map((e) =>
  e.name
).sort();
const evalSets = tasks.map((t) => ({
  name: t,
  examples: parseEvalJsonl(Deno.readTextFileSync(`${FAMILY}/eval/${t}.jsonl`), `${t}.jsonl`).slice(
    0,
    LIMIT,
  ),
}));
const work = await Deno.makeTempDir({ prefix: "mediator-eval-" });
const { backend, choice } = await selectBackend(args.backend as "auto");
console.error(
  `backend: ${choice}; tasks: ${tasks.join(", ")}; ${LIMIT} examples per task; work dir ${work}`,
);

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    n += e.isDirectory ? dirBytes(p) : Deno.statSync(p).size;
  }
  return n;
}
const weightBytes = (dir: string) => Deno.statSync(`${dir}/model.safetensors`).size;

interface Row {
  name: string;
  result: EvalResult;
  storedBytes: number;
  residentBytes: number;
  /** Decode tokens/s of one sequence (64 greedy steps after a 16-token prompt). */
  decodeTps?: number;
}

/**
 * Decode speed of one sequence: prefill a fixed prompt, then time 64 single-token
 * steps. Bundles run the route of `expert` as served by default (`auto`: one expert is
 * materialized into the routed layers); checkpoints run their own weights.
 */
async function decodeSpeed(dir: string, expert?: string): Promise<number> {
  const storage = new LocalStorage(dir);
  const bundle = await storage.exists("manifest.json");
  const m = bundle ? await MediatorModel.open(storage, backend) : undefined;
  const loaded = m ? undefined : await loadHfModel(storage, backend);
  const model = m?.model ?? loaded!.model;
  const prepared = m ? await m.prepare(await m.decide([1], expert)) : undefined;
  const cache = model.newCache(160);
  try {
    const prompt = Int32Array.from({ length: 16 }, (_, i) => 3 + i);
    const opts = { weights: prepared?.weights };
    const step = (ids: Int32Array, startPos: number) =>
      model.step([{ ids, cache, startPos, deltas: prepared?.deltas }], opts);
    await step(prompt, 0);
    for (let t = 0; t < 8; t++) await step(Int32Array.of(4), 16 + t); // warm-up
    const t0 = performance.now();
    for (let t = 0; t < 64; t++) await step(Int32Array.of(5 + t), 24 + t);
    return 64 / ((performance.now() - t0) / 1000);
  } finally {
    backend.free(cache);
    prepared?.release();
    m?.dispose();
    loaded?.model.dispose();
  }
}

async function evalDir(
  be: Backend,
  name: string,
  dir: string,
  route: "auto" | "oracle" = "auto",
): Promise<EvalResult> {
  const a = await openAnswerer(new LocalStorage(dir), be, route);
  try {
    const r = await evaluate(a, evalSets, { modelName: name, route });
    console.error(
      `${name.padEnd(22)} mean ${(r.meanAccuracy * 100).toFixed(1)}%  (${r.seconds.toFixed(1)} s)`,
    );
    return r;
  } finally {
    a.dispose();
  }
}

const experts = tasks.map((t) => ({
  name: t,
  model: `${FAMILY}/experts/${t}`,
  routerData: `${FAMILY}/router/${t}.jsonl`,
}));
const mergeOpts = (out: string, extra: Partial<MergeOptions> = {}): MergeOptions => ({
  ...defaultMergeOptions(),
  base: `${FAMILY}/base`,
  experts,
  out,
  backend: args.backend!,
  ...extra,
});
const modelBytes = weightBytes(`${FAMILY}/base`);
const inputBytes = modelBytes * (tasks.length + 1);
const rows: Row[] = [];

// Plain checkpoints: base and each expert.
const baseRes = await evalDir(backend, "base", `${FAMILY}/base`);
rows.push({
  name: "base",
  result: baseRes,
  storedBytes: modelBytes,
  residentBytes: modelBytes,
  decodeTps: await decodeSpeed(`${FAMILY}/base`),
});
const expertRes = new Map<string, EvalResult>();
for (const t of tasks) {
  const r = await evalDir(backend, `expert ${t}`, `${FAMILY}/experts/${t}`);
  expertRes.set(t, r);
  rows.push({ name: `expert ${t}`, result: r, storedBytes: modelBytes, residentBytes: modelBytes });
}
// Expert-oracle: each task answered by its own expert (all T+1 models stored, T resident).
const oracleTasks = evalSets.map((s) =>
  expertRes.get(s.name)!.tasks.find((x) => x.task === s.name)!
);
const oracle: EvalResult = {
  ...expertRes.get(tasks[0])!,
  model: "expert-oracle",
  tasks: oracleTasks,
  meanAccuracy: oracleTasks.reduce((s, x) => s + x.accuracy, 0) / oracleTasks.length,
};
rows.push({
  name: "expert-oracle",
  result: oracle,
  storedBytes: inputBytes,
  residentBytes: modelBytes * tasks.length,
});

// Static merges.
let bestStatic = 0;
for (const method of ["average", "task_arithmetic", "ties", "dare"]) {
  const out = `${work}/static-${method}`;
  await mergeStatic({ ...mergeOpts(out), method: { name: method, params: {} }, seed: 0 });
  const r = await evalDir(backend, method, out);
  bestStatic = Math.max(bestStatic, r.meanAccuracy);
  rows.push({ name: method, result: r, storedBytes: modelBytes, residentBytes: modelBytes });
}

// Mediator with default settings.
const bundle = `${work}/mediator`;
const merged = await mergeMediator(mergeOpts(bundle), undefined, (m) => console.error(m));
const bundleBytes = dirBytes(bundle);
async function residentAfter(
  dir: string,
  route: "auto" | "oracle",
): Promise<{ r: EvalResult; resident: number }> {
  const r = await evalDir(backend, `mediator (${route})`, dir, route);
  // Resident: dense weights + every sparse block the evaluation fetched (upper bound: all of them).
  const sparse = merged.manifest.experts.reduce(
    (s, e) => s + e.blocks.reduce((a, b) => a + b.length, 0),
    0,
  );
  return { r, resident: weightBytes(dir) + sparse };
}
const auto = await residentAfter(bundle, "auto");
rows.push({
  name: "Mediator (auto)",
  result: auto.r,
  storedBytes: bundleBytes,
  residentBytes: auto.resident,
  decodeTps: await decodeSpeed(bundle, tasks[0]),
});
const orc = await residentAfter(bundle, "oracle");
rows.push({
  name: "Mediator (oracle)",
  result: orc.r,
  storedBytes: bundleBytes,
  residentBytes: orc.resident,
});

// Mixed / out-of-distribution prompts: uncertainty and route.
const mediator = await MediatorModel.open(new LocalStorage(bundle), backend);
const mixed: { prompt: string; u: number; mode: string; experts: string[]; weights: number[] }[] =
  [];
for (
  const line of Deno.readTextFileSync(`${FAMILY}/mixed.jsonl`).split("\n").filter((l) => l.trim())
) {
  const { prompt } = JSON.parse(line);
  const d = await mediator.decide(mediator.tokenizer.encode(prompt));
  mixed.push({ prompt, u: d.uncertainty, mode: d.mode, experts: d.experts, weights: d.weights });
}
const inDist: number[] = [];
for (const s of evalSets) {
  for (const ex of s.examples.slice(0, 20)) {
    inDist.push((await mediator.decide(mediator.tokenizer.encode(ex.prompt))).uncertainty);
  }
}
mediator.dispose();

// Pareto sweep over budgets and densities (auto routing).
const sweep: { label: string; bytes: number; meanAccuracy: number }[] = [];
const settings: { label: string; opts: Partial<MergeOptions> }[] = [];
for (const budget of args.quick ? [1] : [0.25, 0.5, 1, 2]) {
  settings.push({
    label: `budget ${budget}x, adaptive`,
    opts: { policy: { name: "budget", params: { budget_models: budget } } },
  });
}
for (const density of args.quick ? [0.3] : [0.05, 0.1, 0.3, 0.5, 0.7, 1]) {
  settings.push({
    label: `all blocks, density ${density}`,
    opts: {
      policy: { name: "budget", params: { budget_models: 8 } },
      density: { mode: "fixed", density },
    },
  });
}
for (const maxError of args.quick ? [] : [0.15, 0.5, 0.7]) {
  settings.push({
    label: `budget 1x, max_error ${maxError}`,
    opts: { density: { mode: "adaptive", maxError, ladder: defaultMergeOptions().ladder } },
  });
}
for (const [i, s] of settings.entries()) {
  const out = `${work}/pareto-${i}`;
  await mergeMediator(mergeOpts(out, s.opts));
  const r = await evalDir(backend, s.label, out);
  sweep.push({ label: s.label, bytes: dirBytes(out), meanAccuracy: r.meanAccuracy });
}
backend.dispose();

// Report.
const oracleMean = oracle.meanAccuracy;
const gap = oracleMean - bestStatic;
const recovery = (acc: number) => gap > 0 ? (acc - bestStatic) / gap : NaN;
const bestPareto = sweep.reduce((a, b) => (b.meanAccuracy > a.meanAccuracy ? b : a), sweep[0]);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const md: string[] = [
  "# Evaluation on the fixture family",
  "",
  `Command: \`deno task evaluate\` (backend ${choice}; ${LIMIT} held-out prompts per task; greedy, exact match).`,
  "",
  `| model | ${tasks.join(" | ")} | mean | stored | resident | decode tok/s |`,
  `|---|${tasks.map(() => "---|").join("")}---|---|---|---|`,
];
for (const r of rows) {
  md.push(
    `| ${r.name} | ${r.result.tasks.map((t) => pct(t.accuracy)).join(" | ")} | **${
      pct(r.result.meanAccuracy)
    }** | ${fmtBytes(r.storedBytes)} | ${fmtBytes(r.residentBytes)} | ${
      r.decodeTps ? r.decodeTps.toFixed(0) : ""
    } |`,
  );
}
md.push(
  "",
  `Gap between the best static merge (${pct(bestStatic)}) and expert-oracle (${pct(oracleMean)}): ${
    pct(gap)
  }.`,
  `Mediator (auto) recovers **${pct(recovery(auto.r.meanAccuracy))}** of it with a bundle of ${
    fmtBytes(bundleBytes)
  } = ` +
    `**${(bundleBytes / inputBytes).toFixed(2)}x** of base + ${tasks.length} experts (${
      fmtBytes(inputBytes)
    }); ` +
    `routed units: ${
      merged.manifest.units.filter((u) => u.kind === "routed").map((u) => u.name).join(", ")
    }; ` +
    `router held-out accuracy ${pct(merged.manifest.router.heldOutAccuracy ?? NaN)}.`,
  `Pareto best point (${bestPareto.label}, ${fmtBytes(bestPareto.bytes)}) recovers **${
    pct(recovery(bestPareto.meanAccuracy))
  }**.`,
  "",
  "Stored: bytes on disk (expert-oracle keeps base + every expert). Resident: weights held while serving " +
    "(Mediator: dense weights + every sparse block fetched, an upper bound). Decode tok/s: one sequence, " +
    "64 steps after a 16-token prompt (the plain checkpoints all run at the base's speed; Mediator runs its " +
    "routed delta path). Accuracy: exact match of greedy answers.",
  "",
  "## Routes of Mediator (auto) per task",
  "",
  "| task | first expert counts | mean u | mixtures |",
  "|---|---|---|---|",
  ...auto.r.tasks.map((t) =>
    `| ${t.task} | ${Object.entries(t.routes!.top).map(([e, n]) => `${e}: ${n}`).join(", ")} | ${
      t.routes!.meanUncertainty.toFixed(3)
    } | ${t.routes!.mixtures} |`
  ),
  "",
  "## Mixed and out-of-distribution prompts",
  "",
  `Mean uncertainty u on in-distribution prompts: ${
    (inDist.reduce((a, b) => a + b, 0) / inDist.length).toFixed(3)
  }; ` +
    `on these: ${(mixed.reduce((a, b) => a + b.u, 0) / Math.max(1, mixed.length)).toFixed(3)}.`,
  "",
  "| prompt | u | mode | experts (weights) |",
  "|---|---|---|---|",
  ...mixed.map((m) =>
    `| \`${m.prompt.replaceAll("|", "\\|").replaceAll("\n", " ")}\` | ${
      m.u.toFixed(3)
    } | ${m.mode} | ${m.experts.map((e, i) => `${e} (${m.weights[i].toFixed(2)})`).join(", ")} |`
  ),
  "",
  "## Pareto: mean accuracy against bundle bytes",
  "",
  "| setting | bundle bytes | x inputs | mean accuracy | gap recovered |",
  "|---|---|---|---|---|",
  ...sweep.map((s) =>
    `| ${s.label} | ${fmtBytes(s.bytes)} | ${(s.bytes / inputBytes).toFixed(2)} | ${
      pct(s.meanAccuracy)
    } | ${pct(recovery(s.meanAccuracy))} |`
  ),
  "",
  "The plot is in bench/out/pareto.html (the merge report with the Pareto section).",
);
await Deno.mkdir("bench/out", { recursive: true });
await Deno.writeTextFile("bench/EVAL.md", md.join("\n") + "\n");
await Deno.writeTextFile(
  "bench/out/eval.json",
  JSON.stringify({ rows, mixed, sweep, bestStatic, oracleMean, bundleBytes, inputBytes }, null, 1),
);
await Deno.writeTextFile(
  "bench/out/pareto.html",
  renderReportHtml(merged.report, { pareto: sweep }),
);
await Deno.remove(work, { recursive: true });
console.log(md.join("\n"));
