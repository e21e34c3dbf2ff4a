/**
 * A real Mediator bundle for serving tests, merged from the fixture family
 * into a temp folder: every block routed (budget of 8 models), density 1 and
 * bf16 values, so a routed expert answers as its fine-tune does; plus the
 * held-out prompts of each task and a way to copy the bundle to S3.
 */
import { mergeMediator, type MergeResult } from "../../src/merge/mediator.ts";
import { defaultMergeOptions } from "../../src/merge/options.ts";
import type { WritableStorage } from "../../src/storage/storage.ts";
import { expertNames, FAMILY } from "./fixtures.ts";

/** A merged bundle in a temp folder. */
export interface TestBundle {
  /** The bundle folder. */
  dir: string;
  merge: MergeResult;
}

/** Merge the fixture family into `<tempdir>/<name>`; the folder is removed at unload. */
export async function buildTestBundle(name = "family"): Promise<TestBundle> {
  const root = await Deno.makeTempDir({ prefix: "mediator-bundle-" });
  addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
  const dir = `${root}/${name}`;
  const d = defaultMergeOptions();
  const merge = await mergeMediator({
    ...d,
    base: `${FAMILY}/base`,
    experts: expertNames().map((e) => ({
      name: e,
      model: `${FAMILY}/experts/${e}`,
      routerData: `${FAMILY}/router/${e}.jsonl`,
    })),
    out: dir,
    policy: { name: "budget", params: { budget_models: 8 } },
    density: { mode: "fixed", density: 1 },
    valueFormat: "bf16",
    router: { ...d.router, epochs: 50 },
    backend: "reference",
  });
  return { dir, merge };
}

/** One held-out example of a task. */
export interface TaskExample {
  task: string;
  prompt: string;
  answer: string;
}

/** The first `n` held-out examples of every task (fixtures/family/eval/<task>.jsonl). */
export function heldOutExamples(n: number): TaskExample[] {
  return expertNames().flatMap((task) =>
    Deno.readTextFileSync(`${FAMILY}/eval/${task}.jsonl`).split("\n").filter((l) => l.trim())
      .slice(0, n).map((l) => {
        const row = JSON.parse(l);
        return { task, prompt: row.prompt as string, answer: row.answer as string };
      })
  );
}

/** Exact match of the fixture protocol: both sides trimmed. */
export function isCorrect(output: string, answer: string): boolean {
  return output.trim() === answer.trim();
}

/** Every file of a local folder, as paths relative to it. */
export async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

/** Copy every file of a local bundle folder to `storage` (e.g. an S3 prefix). */
export async function uploadBundle(dir: string, storage: WritableStorage): Promise<string[]> {
  const files = await listFiles(dir);
  for (const f of files) await storage.write(f, await Deno.readFile(`${dir}/${f}`));
  return files;
}
