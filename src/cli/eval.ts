/**
 * `deno task eval --model DIR --eval NAME=FILE.jsonl ... [--route auto|oracle|NAME] [--json]`
 * Exact-match accuracy of greedy answers per task for a checkpoint or bundle.
 */
import { parseArgs } from "node:util";
import { selectBackend } from "../backends/select.ts";
import { evaluate, formatEval, openAnswerer, parseEvalJsonl } from "../eval/evaluate.ts";
import { openStorage } from "../storage/open.ts";
import { runCli } from "./run.ts";

const USAGE = `Usage: deno task eval --model DIR|URL --eval NAME=FILE.jsonl ... [options]
  --route auto|oracle|NAME   bundles: router (default), each task to its own expert, or one expert
  --apply auto|delta|materialize  how routed layers are applied (default auto)
  --max-tokens N             greedy tokens per answer (default 16)
  --limit N                  first N examples per task
  --backend NAME             auto | reference | wasm | webgpu
  --threads N                wasm backend threads (default: all cores)
  --json                     print the result as JSON`;

if (import.meta.main) {
  await runCli(USAGE, async () => {
    const { values: v } = parseArgs({
      args: Deno.args,
      options: {
        model: { type: "string" },
        eval: { type: "string", multiple: true },
        route: { type: "string", default: "auto" },
        apply: { type: "string", default: "auto" },
        "max-tokens": { type: "string", default: "16" },
        limit: { type: "string" },
        backend: { type: "string", default: "auto" },
        threads: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
    if (v.help) return console.log(USAGE);
    if (!v.model) throw new TypeError("Cannot evaluate: --model is required");
    if (!v.eval?.length) {
      throw new TypeError("Cannot evaluate: give at least one --eval NAME=FILE.jsonl");
    }
    if (v.apply !== "auto" && v.apply !== "delta" && v.apply !== "materialize") {
      throw new TypeError(
        `Cannot evaluate: --apply must be auto, delta or materialize, got '${v.apply}'`,
      );
    }
    const limit = v.limit ? Number(v.limit) : Infinity;
    const tasks = await Promise.all(v.eval.map(async (spec) => {
      const i = spec.indexOf("=");
      if (i <= 0) {
        throw new TypeError(`Cannot evaluate: --eval takes NAME=FILE.jsonl, got '${spec}'`);
      }
      const file = spec.slice(i + 1);
      return {
        name: spec.slice(0, i),
        examples: parseEvalJsonl(await Deno.readTextFile(file), file).slice(0, limit),
      };
    }));
    const route = v.route === "auto" || v.route === "oracle" ? v.route : { expert: v.route! };
    const { backend, choice } = await selectBackend(v.backend as "auto", {
      threads: v.threads === undefined ? undefined : Number(v.threads),
    });
    try {
      const answerer = await openAnswerer(openStorage(v.model), backend, route, v.apply);
      try {
        const result = await evaluate(answerer, tasks, {
          maxTokens: Number(v["max-tokens"]),
          modelName: v.model,
          route: v.route!,
        });
        if (v.json) console.log(JSON.stringify({ ...result, backend: choice }));
        else console.log(`backend: ${choice}\n${formatEval(result)}`);
      } finally {
        answerer.dispose();
      }
    } finally {
      backend.dispose();
    }
  });
}
