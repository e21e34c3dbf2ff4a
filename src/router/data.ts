/**
 * Router training data: one JSONL file per expert (task), one JSON object per
 * line with a non-empty string "prompt" (other fields are ignored). Blank
 * lines are skipped. Errors name the file and the 1-based line.
 */
import { DataFormatError } from "../errors.ts";

/** Labelled prompts of all experts, labels indexing `expertNames`. */
export interface RouterDataset {
  /** Expert names in label order. */
  expertNames: string[];
  /** Every prompt, file by file. */
  prompts: string[];
  /** Label of each prompt (an index into expertNames). */
  labels: number[];
}

/** One expert's prompt file. */
export interface RouterDataFile {
  /** The expert (task) the prompts belong to. */
  expert: string;
  /** Local path of the JSONL file. */
  path: string;
}

/** The prompts of a JSONL text; `source` names the file in errors. */
export function parseRouterJsonl(text: string, source: string): string[] {
  const prompts: string[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${source} line ${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new DataFormatError(
        `Cannot read router prompts from ${where}: invalid JSON (${(e as Error).message}); ` +
          `write one JSON object per line`,
      );
    }
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      throw new DataFormatError(
        `Cannot read router prompts from ${where}: expected a JSON object like {"prompt": "..."}`,
      );
    }
    const prompt = (row as Record<string, unknown>).prompt;
    if (typeof prompt !== "string" || prompt.length === 0) {
      throw new DataFormatError(
        `Cannot read router prompts from ${where}: "prompt" must be a non-empty string, got ${
          JSON.stringify(prompt) ?? "nothing"
        }`,
      );
    }
    prompts.push(prompt);
  });
  if (prompts.length === 0) {
    throw new DataFormatError(
      `Cannot read router prompts from ${source}: the file has no prompts; add {"prompt": ...} lines`,
    );
  }
  return prompts;
}

/** Read one local JSONL prompt file. */
export async function readRouterPrompts(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "the file does not exist"
      : (e as Error).message;
    throw new DataFormatError(`Cannot read router prompts from ${path}: ${why}`);
  }
  return parseRouterJsonl(text, path);
}

/** The expert name a prompt file stands for: its base name without ".jsonl". */
export function expertNameFromPath(path: string): string {
  return path.replace(/\\/g, "/").split("/").pop()!.replace(/\.jsonl$/i, "");
}

/**
 * Read every expert's prompt file into one labelled set (labels follow the
 * order of `files`). Expert names must be distinct.
 */
export async function readRouterDataset(files: readonly RouterDataFile[]): Promise<RouterDataset> {
  if (files.length === 0) {
    throw new RangeError("Cannot read router data: no prompt files; give one file per expert");
  }
  const expertNames = files.map((f) => f.expert);
  expertNames.forEach((n, i) => {
    if (expertNames.indexOf(n) !== i) {
      throw new RangeError(`Cannot read router data: expert '${n}' is given two prompt files`);
    }
  });
  const prompts: string[] = [], labels: number[] = [];
  for (const [label, f] of files.entries()) {
    for (const p of await readRouterPrompts(f.path)) {
      prompts.push(p);
      labels.push(label);
    }
  }
  return { expertNames, prompts, labels };
}
