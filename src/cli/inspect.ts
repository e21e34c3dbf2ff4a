/**
 * `deno task inspect DIR|URL [--json]`: what a bundle holds, from its
 * manifest.json alone (no weight is read): model, experts, the plan per unit,
 * sizes against the base + T models it replaces, sparse densities and errors,
 * routing settings and router accuracy.
 */
import { parseArgs } from "node:util";
import type { BundleManifest } from "../bundle/manifest.ts";
import { readManifest } from "../bundle/reader.ts";
import { openStorage } from "../storage/open.ts";
import { fmtBytes } from "./progress.ts";
import { runCli } from "./run.ts";

const USAGE = `Usage: deno task inspect DIR|URL [--json]
  DIR|URL   bundle folder, http(s):// or s3:// location (reads manifest.json only)
  --json    print one JSON object instead of text`;

/** Everything `inspect` prints, as plain data. */
export interface BundleSummary {
  name: string;
  format: string;
  version: number;
  createdBy: string;
  model: {
    modelType: string | null;
    architectures: string[];
    numLayers: number | null;
    hiddenSize: number | null;
    intermediateSize: number | null;
    numHeads: number | null;
    numKvHeads: number | null;
    vocabSize: number | null;
    dtype: string | null;
    tieWordEmbeddings: boolean | null;
    /** Parameters of the dense model, from the manifest's tensor shapes. */
    parameters: number;
  };
  experts: string[];
  plan: {
    policy: string | null;
    routed: number;
    units: {
      name: string;
      kind: string;
      conflict: number;
      cosine: number;
      averagingLoss: number;
      reason: string;
    }[];
  };
  sizes: {
    /** Bytes of the dense tensors (model.safetensors without its header). */
    denseBytes: number;
    /** Sparse bytes per expert (sum of its blocks). */
    expertBytes: Record<string, number>;
    sparseBytes: number;
    /** Every file listed in the manifest. */
    totalBytes: number;
    /** (T + 1) x dense bytes: what a base plus T full experts occupy. */
    baseAndExpertsBytes: number;
    /** totalBytes / baseAndExpertsBytes. */
    ratio: number;
  };
  sparse: {
    unit: string;
    expert: string;
    density: number;
    error: number;
    bytes: number;
    nnz: number;
  }[];
  routing: BundleManifest["routing"];
  router: { file: string; heldOutAccuracy: number | null };
}

const numOrNull = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : null);

/** Summarize a validated manifest (pure; reads nothing). */
export function summarizeBundle(m: BundleManifest): BundleSummary {
  const c = m.modelConfig ?? {};
  const denseBytes = m.dense.tensors.reduce((s, t) => s + t.length, 0);
  const parameters = m.dense.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const expertBytes: Record<string, number> = {};
  for (const e of m.experts) expertBytes[e.name] = e.blocks.reduce((s, b) => s + b.length, 0);
  const sparseBytes = Object.values(expertBytes).reduce((s, b) => s + b, 0);
  const totalBytes = m.files.reduce((s, f) => s + f.size, 0);
  const baseAndExpertsBytes = (m.experts.length + 1) * denseBytes;
  const unitOrder = (u: string) => m.units.findIndex((x) => x.name === u);
  return {
    name: m.name,
    format: m.format,
    version: m.version,
    createdBy: m.createdBy,
    model: {
      modelType: typeof c.model_type === "string" ? c.model_type : null,
      architectures: Array.isArray(c.architectures) ? c.architectures.map(String) : [],
      numLayers: numOrNull(c.num_hidden_layers),
      hiddenSize: numOrNull(c.hidden_size),
      intermediateSize: numOrNull(c.intermediate_size),
      numHeads: numOrNull(c.num_attention_heads),
      numKvHeads: numOrNull(c.num_key_value_heads ?? c.num_attention_heads),
      vocabSize: numOrNull(c.vocab_size),
      dtype: typeof (c.torch_dtype ?? c.dtype) === "string"
        ? String(c.torch_dtype ?? c.dtype)
        : [...new Set(m.dense.tensors.map((t) => t.dtype))].join("+") || null,
      tieWordEmbeddings: typeof c.tie_word_embeddings === "boolean" ? c.tie_word_embeddings : null,
      parameters,
    },
    experts: m.experts.map((e) => e.name),
    plan: {
      policy: typeof m.merge?.policy === "string" ? m.merge.policy : null,
      routed: m.units.filter((u) => u.kind === "routed").length,
      units: m.units.map((u) => ({
        name: u.name,
        kind: u.kind,
        conflict: u.conflict,
        cosine: u.cosine,
        averagingLoss: u.averagingLoss,
        reason: u.reason,
      })),
    },
    sizes: {
      denseBytes,
      expertBytes,
      sparseBytes,
      totalBytes,
      baseAndExpertsBytes,
      ratio: baseAndExpertsBytes > 0 ? totalBytes / baseAndExpertsBytes : 0,
    },
    sparse: m.experts.flatMap((e) =>
      e.blocks.map((b) => ({
        unit: b.unit,
        expert: e.name,
        density: b.density,
        error: b.error,
        bytes: b.length,
        nnz: b.tensors.reduce((s, t) => s + t.nnz, 0),
      }))
    ).sort((a, b) => unitOrder(a.unit) - unitOrder(b.unit)),
    routing: m.routing,
    router: { file: m.router?.file ?? "", heldOutAccuracy: m.router?.heldOutAccuracy ?? null },
  };
}

/** Text table: "l" columns padded right, "r" columns padded left, two spaces apart. */
function columns(rows: string[][], align: string): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) =>
    "  " + r.map((cell, i) => align[i] === "r" ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))
      .join("  ").trimEnd()
  ).join("\n");
}

const f3 = (x: number | null) => (x === null || !Number.isFinite(x) ? "n/a" : x.toFixed(3));
const orNa = (x: unknown) => (x === null || x === undefined ? "n/a" : String(x));

/** Render a summary as the text `inspect` prints. */
export function formatBundleSummary(s: BundleSummary): string {
  const m = s.model;
  const out: string[] = [
    `bundle: ${s.name} (${s.format} version ${s.version}, created by ${s.createdBy})`,
    `model: ${[orNa(m.modelType), ...m.architectures].join(" ")}; ${orNa(m.numLayers)} layers, ` +
    `hidden ${orNa(m.hiddenSize)}, intermediate ${orNa(m.intermediateSize)}, ` +
    `heads ${orNa(m.numHeads)}/${orNa(m.numKvHeads)} kv, vocab ${orNa(m.vocabSize)}, ` +
    `dtype ${orNa(m.dtype)}, tied embeddings ${orNa(m.tieWordEmbeddings)}, ` +
    `${(m.parameters / 1e6).toFixed(2)}M parameters`,
    `experts (${s.experts.length}): ${s.experts.join(", ")}`,
    "",
    `plan: policy ${orNa(s.plan.policy)}, ${s.plan.routed} of ${s.plan.units.length} units routed`,
    columns([
      ["unit", "kind", "conflict", "cosine", "avg loss", "reason"],
      ...s.plan.units.map((u) => [
        u.name,
        u.kind,
        f3(u.conflict),
        f3(u.cosine),
        f3(u.averagingLoss),
        u.reason,
      ]),
    ], "llrrrl"),
    "",
    "sizes:",
    columns([
      ["dense weights", fmtBytes(s.sizes.denseBytes)],
      ...s.experts.map((e) => [`sparse expert ${e}`, fmtBytes(s.sizes.expertBytes[e] ?? 0)]),
      ["sparse experts, all", fmtBytes(s.sizes.sparseBytes)],
      ["bundle files, total", fmtBytes(s.sizes.totalBytes)],
      [`base + ${s.experts.length} models`, fmtBytes(s.sizes.baseAndExpertsBytes)],
      ["bundle / (base + models)", `${(100 * s.sizes.ratio).toFixed(1)}%`],
    ], "lr"),
    "",
  ];
  if (s.sparse.length > 0) {
    out.push(
      "sparse experts (per unit and expert):",
      columns([
        ["unit", "expert", "density", "error", "bytes", "non-zeros"],
        ...s.sparse.map((b) => [
          b.unit,
          b.expert,
          f3(b.density),
          f3(b.error),
          fmtBytes(b.bytes),
          String(b.nnz),
        ]),
      ], "llrrrr"),
      "",
    );
  } else {
    out.push("sparse experts: none (no unit is routed)", "");
  }
  const r = s.routing;
  out.push(
    `routing: router layer ${r.routerLayer}, temperature ${r.temperature}, u_low ${r.uLow}, ` +
      `top_m ${r.topM}, min_confidence ${orNa(r.minConfidence)}`,
    `router: ${s.router.file}, held-out accuracy ${f3(s.router.heldOutAccuracy)}`,
  );
  return out.join("\n");
}

if (import.meta.main) {
  await runCli(USAGE, async () => {
    const { values, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
    if (values.help) return console.log(USAGE);
    if (positionals.length !== 1) {
      console.error(`error: Cannot inspect: give one bundle DIR|URL, got ${positionals.length}`);
      console.error(USAGE);
      Deno.exit(2);
    }
    const summary = summarizeBundle(await readManifest(openStorage(positionals[0])));
    console.log(values.json ? JSON.stringify(summary, null, 2) : formatBundleSummary(summary));
  });
}
