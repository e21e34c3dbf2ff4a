/**
 * Exact-match evaluation of greedy answers (the protocol of MEDIATOR.md):
 * for each task file of {"prompt","answer"} lines, generate greedily and count
 * outputs whose trimmed text equals the trimmed answer. Works on a plain HF
 * checkpoint or on a Mediator bundle, with routing `auto` (the router),
 * `oracle` (each task to its own expert) or a fixed expert name.
 */
import type { Backend } from "../backends/backend.ts";
import { type ApplyMode, MediatorModel, type RouteDecision } from "../bundle/mediator_model.ts";
import { DataFormatError } from "../errors.ts";
import type { Transformer } from "../model/forward.ts";
import { generate } from "../model/generate.ts";
import { loadHfModel } from "../model/hf.ts";
import type { ByteStorage } from "../storage/storage.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";

/** One evaluation example. */
export interface EvalExample {
  prompt: string;
  answer: string;
}

/** Read a JSONL file of {"prompt","answer"} lines; errors name file and line. */
export function parseEvalJsonl(text: string, source: string): EvalExample[] {
  const out: EvalExample[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new DataFormatError(
        `Cannot read ${source} line ${i + 1}: invalid JSON (${(e as Error).message})`,
      );
    }
    if (typeof row?.prompt !== "string" || typeof row?.answer !== "string") {
      throw new DataFormatError(
        `Cannot read ${source} line ${i + 1}: each line needs string fields "prompt" and "answer"`,
      );
    }
    out.push({ prompt: row.prompt, answer: row.answer });
  });
  if (out.length === 0) throw new DataFormatError(`Cannot read ${source}: it has no examples`);
  return out;
}

/** Exact match after trimming surrounding whitespace. */
export function exactMatch(output: string, answer: string): boolean {
  return output.trim() === answer.trim();
}

/** How a bundle routes evaluation prompts. */
export type EvalRoute = "auto" | "oracle" | { expert: string };

/** Per-task result. */
export interface TaskResult {
  task: string;
  examples: number;
  correct: number;
  accuracy: number;
  /** Bundles only: how often each expert was first in the route, and the mean uncertainty. */
  routes?: {
    top: Record<string, number>;
    meanUncertainty: number;
    mixtures: number;
    dense: number;
  };
}

/** A whole evaluation. */
export interface EvalResult {
  model: string;
  kind: "checkpoint" | "bundle";
  route: string;
  tasks: TaskResult[];
  meanAccuracy: number;
  prompts: number;
  seconds: number;
  promptsPerSecond: number;
  generatedTokens: number;
}

/** Something that answers prompts: a plain model or a bundle. */
export interface Answerer {
  kind: "checkpoint" | "bundle";
  tokenizer: TextTokenizer;
  eos: number[];
  answer(
    prompt: string,
    task: string,
    maxTokens: number,
  ): Promise<{ text: string; tokens: number; route?: RouteDecision }>;
  dispose(): void;
}

/** Open a plain checkpoint or (when manifest.json exists) a bundle for evaluation. */
export async function openAnswerer(
  storage: ByteStorage,
  backend: Backend,
  route: EvalRoute = "auto",
  apply: ApplyMode = "auto",
): Promise<Answerer> {
  if (await storage.exists("manifest.json")) {
    const m = await MediatorModel.open(storage, backend, { apply });
    return {
      kind: "bundle",
      tokenizer: m.tokenizer,
      eos: m.config.eosTokenIds,
      async answer(prompt, task, maxTokens) {
        const ids = m.tokenizer.encode(prompt);
        const forced = route === "auto" ? undefined : route === "oracle" ? task : route.expert;
        const decision = await m.decide(ids, forced);
        const prepared = await m.prepare(decision);
        try {
          const r = await generate(m.model, ids, {
            maxTokens,
            eosTokenIds: m.config.eosTokenIds,
            deltas: prepared.deltas,
            weights: prepared.weights,
          });
          return {
            text: m.tokenizer.decode(r.outputIds),
            tokens: r.outputIds.length,
            route: prepared.decision,
          };
        } finally {
          prepared.release();
        }
      },
      dispose: () => m.dispose(),
    };
  }
  if (route !== "auto") {
    throw new TypeError(
      "Cannot evaluate: --route oracle or an expert name needs a Mediator bundle, not a checkpoint",
    );
  }
  const { model, tokenizer, config } = await loadHfModel(storage, backend);
  return {
    kind: "checkpoint",
    tokenizer,
    eos: config.eosTokenIds,
    answer: (prompt, _task, maxTokens) =>
      answerPlain(model, tokenizer, config.eosTokenIds, prompt, maxTokens),
    dispose: () => model.dispose(),
  };
}

async function answerPlain(
  model: Transformer,
  tokenizer: TextTokenizer,
  eos: number[],
  prompt: string,
  maxTokens: number,
) {
  const r = await generate(model, tokenizer.encode(prompt), { maxTokens, eosTokenIds: eos });
  return { text: tokenizer.decode(r.outputIds), tokens: r.outputIds.length };
}

/** Evaluate every task; `onExample` sees each outcome (for progress). */
export async function evaluate(
  answerer: Answerer,
  tasks: { name: string; examples: EvalExample[] }[],
  opts: { maxTokens?: number; modelName: string; route: string; onExample?: () => void },
): Promise<EvalResult> {
  const t0 = performance.now();
  const results: TaskResult[] = [];
  let prompts = 0, generatedTokens = 0;
  for (const task of tasks) {
    let correct = 0, uSum = 0, mixtures = 0, dense = 0;
    const top: Record<string, number> = {};
    for (const ex of task.examples) {
      const a = await answerer.answer(ex.prompt, task.name, opts.maxTokens ?? 16);
      if (exactMatch(a.text, ex.answer)) correct++;
      generatedTokens += a.tokens;
      if (a.route) {
        const first = a.route.experts[0] ?? "(dense)";
        top[first] = (top[first] ?? 0) + 1;
        uSum += a.route.uncertainty;
        if (a.route.mode === "mixture") mixtures++;
        if (a.route.mode === "dense" || a.route.fallback) dense++;
      }
      prompts++;
      opts.onExample?.();
    }
    const n = task.examples.length;
    results.push({
      task: task.name,
      examples: n,
      correct,
      accuracy: correct / n,
      routes: answerer.kind === "bundle"
        ? { top, meanUncertainty: uSum / n, mixtures, dense }
        : undefined,
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    model: opts.modelName,
    kind: answerer.kind,
    route: opts.route,
    tasks: results,
    meanAccuracy: results.reduce((s, r) => s + r.accuracy, 0) / Math.max(1, results.length),
    prompts,
    seconds,
    promptsPerSecond: prompts / seconds,
    generatedTokens,
  };
}

/** A text table of an evaluation. */
export function formatEval(r: EvalResult): string {
  const lines = [
    `model: ${r.model} (${r.kind}, route ${r.route})`,
    "task        accuracy   correct/n   routes",
  ];
  for (const t of r.tasks) {
    const routes = t.routes
      ? Object.entries(t.routes.top).map(([e, n]) => `${e}:${n}`).join(" ") +
        ` u=${t.routes.meanUncertainty.toFixed(2)}`
      : "";
    lines.push(
      `${t.task.padEnd(12)}${(t.accuracy * 100).toFixed(1).padStart(7)}%   ${
        `${t.correct}/${t.examples}`.padStart(9)
      }   ${routes}`,
    );
  }
  lines.push(`mean        ${(r.meanAccuracy * 100).toFixed(1).padStart(7)}%`);
  lines.push(
    `${r.prompts} prompts in ${r.seconds.toFixed(1)} s (${
      r.promptsPerSecond.toFixed(2)
    } prompts/s)`,
  );
  return lines.join("\n");
}
