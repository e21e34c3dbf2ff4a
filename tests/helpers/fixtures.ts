/** Paths and readers for the committed fixture family (fixtures/README.md). */

/** Root of the committed fixtures. */
export const FIXTURES = new URL("../../fixtures/", import.meta.url).pathname;
/** The Qwen2 family: base + experts. */
export const FAMILY = `${FIXTURES}family`;

/** One PyTorch reference prompt. */
export interface ReferencePrompt {
  text: string;
  input_ids: number[];
  last_logits: number[];
  greedy_ids: number[];
}

/** A reference file written by scripts/make_fixtures.py. */
export interface ReferenceFile {
  prompts: ReferencePrompt[];
  tokenizer_cases?: { text: string; ids: number[] }[];
}

/** Every fixture model folder with its reference file. */
export function fixtureModels(): { name: string; dir: string; reference: string }[] {
  const out = [{ name: "base", dir: `${FAMILY}/base`, reference: `${FAMILY}/reference/base.json` }];
  for (const e of Deno.readDirSync(`${FAMILY}/experts`)) {
    if (!e.isDirectory) continue;
    out.push({
      name: e.name,
      dir: `${FAMILY}/experts/${e.name}`,
      reference: `${FAMILY}/reference/${e.name}.json`,
    });
  }
  out.sort((a, b) => a.name.localeCompare(b.name));
  out.push({
    name: "llama-tiny",
    dir: `${FIXTURES}llama-tiny`,
    reference: `${FIXTURES}llama-tiny/reference.json`,
  });
  return out;
}

/** Names of the task experts of the family. */
export function expertNames(): string[] {
  return [...Deno.readDirSync(`${FAMILY}/experts`)].filter((e) => e.isDirectory).map((e) => e.name)
    .sort();
}

/** Parse a reference file. */
export function readReference(path: string): ReferenceFile {
  return JSON.parse(Deno.readTextFileSync(path));
}
