import assert from "node:assert/strict";
import { DataFormatError } from "../src/errors.ts";
import {
  expertNameFromPath,
  parseRouterJsonl,
  readRouterDataset,
  readRouterPrompts,
} from "../src/router/data.ts";

/** Deno.test with the op and resource sanitizers on. */
function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

test("parseRouterJsonl: reads prompts, skips blank lines, ignores other fields", () => {
  const text = '\uFEFF{"prompt": "1+2="}\n\n  \r\n{"prompt": "abc", "answer": "cba"}\r\n';
  assert.deepEqual(parseRouterJsonl(text, "add.jsonl"), ["1+2=", "abc"]);
});

test("parseRouterJsonl: names the file and line of bad rows", () => {
  const cases: [string, RegExp][] = [
    ['{"prompt": "a"}\n{"prompt": "b"\n', /data\/add\.jsonl line 2: invalid JSON/],
    ['{"prompt": "a"}\n\n["a"]\n', /line 3: expected a JSON object/],
    ['{"text": "a"}\n', /line 1: "prompt" must be a non-empty string, got nothing/],
    ['{"prompt": 5}\n', /line 1: "prompt" must be a non-empty string, got 5/],
    ['{"prompt": ""}\n', /line 1: "prompt" must be a non-empty string, got ""/],
    ["\n  \n", /data\/add\.jsonl: the file has no prompts/],
    ["", /the file has no prompts/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseRouterJsonl(text, "data/add.jsonl"),
      (e: Error) => e instanceof DataFormatError && re.test(e.message),
      `expected ${re}`,
    );
  }
});

test("readRouterDataset: labels follow the file order; errors name missing files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/add.jsonl`, '{"prompt":"1+1="}\n{"prompt":"2+5="}\n');
    await Deno.writeTextFile(`${dir}/reverse.jsonl`, '{"prompt":"abc"}\n');
    const ds = await readRouterDataset([
      { expert: "reverse", path: `${dir}/reverse.jsonl` },
      { expert: "add", path: `${dir}/add.jsonl` },
    ]);
    assert.deepEqual(ds, {
      expertNames: ["reverse", "add"],
      prompts: ["abc", "1+1=", "2+5="],
      labels: [0, 1, 1],
    });
    assert.equal(expertNameFromPath(`${dir}/reverse.jsonl`), "reverse");
    await assert.rejects(
      () => readRouterPrompts(`${dir}/missing.jsonl`),
      (e: Error) =>
        e instanceof DataFormatError && /missing\.jsonl: the file does not exist/.test(e.message),
    );
    await assert.rejects(
      () =>
        readRouterDataset([
          { expert: "add", path: `${dir}/add.jsonl` },
          { expert: "add", path: `${dir}/reverse.jsonl` },
        ]),
      /'add' is given two prompt files/,
    );
    await assert.rejects(() => readRouterDataset([]), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
