/**
 * `deno task generate --model DIR --prompt TEXT [--max-tokens N] [--backend NAME] [--json]`
 * Greedy unless sampling options are given. `--input-ids 1,2,3` feeds ids
 * instead of text (for parity checks against PyTorch).
 */
import { parseArgs } from "node:util";
import { selectBackend } from "../backends/select.ts";
import { generate } from "../model/generate.ts";
import { loadHfModel } from "../model/hf.ts";
import { openStorage } from "../storage/open.ts";
import { runCli } from "./run.ts";

const USAGE = `Usage: deno task generate --model DIR --prompt TEXT [options]
  --model DIR|URL        Hugging Face checkpoint folder (local, https://, s3://)
  --prompt TEXT          prompt text (BOS added by the tokenizer's post-processor)
  --chat                 wrap the prompt in the model's chat template
  --input-ids 1,2,3      token ids instead of --prompt
  --max-tokens N         new tokens (default 32)
  --backend NAME         auto | reference | wasm | webgpu (default auto)
  --threads N            wasm backend threads (default: all cores)
  --temperature T --top-k K --top-p P --repetition-penalty R --seed S
  --stop STR             stop string (repeatable)
  --json                 print one JSON object: input_ids, output_ids, text, last_logits`;

if (import.meta.main) {
  await runCli(USAGE, async () => {
    const { values } = parseArgs({
      args: Deno.args,
      options: {
        model: { type: "string" },
        prompt: { type: "string" },
        chat: { type: "boolean", default: false },
        "input-ids": { type: "string" },
        "max-tokens": { type: "string", default: "32" },
        backend: { type: "string", default: "auto" },
        threads: { type: "string" },
        temperature: { type: "string" },
        "top-k": { type: "string" },
        "top-p": { type: "string" },
        "repetition-penalty": { type: "string" },
        seed: { type: "string" },
        stop: { type: "string", multiple: true },
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
    if (values.help) return console.log(USAGE);
    if (!values.model) throw new TypeError("Cannot generate: --model is required");
    if (!values.prompt && !values["input-ids"]) {
      throw new TypeError("Cannot generate: give --prompt TEXT or --input-ids 1,2,3");
    }
    const num = (name: string, v: string | undefined) => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isFinite(n)) {
        throw new TypeError(`Cannot generate: --${name} must be a number, got '${v}'`);
      }
      return n;
    };
    const { backend, choice } = await selectBackend(values.backend as "auto", {
      threads: values.threads === undefined ? undefined : Number(values.threads),
    });
    try {
      const { model, tokenizer, config } = await loadHfModel(openStorage(values.model), backend);
      let inputIds: number[];
      if (values["input-ids"]) {
        inputIds = values["input-ids"].split(",").map((s) => {
          const id = Number(s.trim());
          if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
            throw new RangeError(
              `Cannot generate: input id '${s}' is not in [0, ${config.vocabSize})`,
            );
          }
          return id;
        });
      } else {
        const text = values.chat
          ? tokenizer.applyChatTemplate([{ role: "user", content: values.prompt! }], {
            addGenerationPrompt: true,
          })
          : values.prompt!;
        // A chat template renders special tokens itself.
        inputIds = tokenizer.encode(text, { addSpecialTokens: !values.chat });
      }
      const result = await generate(model, inputIds, {
        maxTokens: num("max-tokens", values["max-tokens"])!,
        temperature: num("temperature", values.temperature),
        topK: num("top-k", values["top-k"]),
        topP: num("top-p", values["top-p"]),
        repetitionPenalty: num("repetition-penalty", values["repetition-penalty"]),
        seed: num("seed", values.seed),
        eosTokenIds: config.eosTokenIds,
        stop: values.stop,
        decode: (ids) => tokenizer.decode(ids),
      });
      const text = result.text ?? tokenizer.decode(result.outputIds);
      if (values.json) {
        console.log(JSON.stringify({
          backend: choice,
          input_ids: inputIds,
          output_ids: result.outputIds,
          text,
          finish_reason: result.finishReason,
          last_logits: Array.from(result.lastLogits),
        }));
      } else {
        console.error(`backend: ${choice}`);
        console.log(text);
      }
      model.dispose();
    } finally {
      backend.dispose();
    }
  });
}
