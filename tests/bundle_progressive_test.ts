/**
 * Progressive routes: prefill starts while the route's blocks are fetched,
 * each layer waiting only for its own blocks, and the tokens are the same as
 * with a fully fetched route.
 */
import assert from "node:assert/strict";
import { createReferenceBackend } from "../src/backends/reference.ts";
import { MediatorModel } from "../src/bundle/mediator_model.ts";
import { generate } from "../src/model/generate.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { buildTestBundle } from "./helpers/mediator_bundle.ts";

const built = await buildTestBundle("progressive");

/** A local folder whose reads of one byte range are held until `release()`. */
class GatedStorage extends LocalStorage {
  #gate = Promise.withResolvers<void>();
  readonly events: string[] = [];
  constructor(root: string, readonly gatedOffset: number, readonly gatedFile: string) {
    super(root);
  }
  release(): void {
    this.#gate.resolve();
  }
  override async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    if (path === this.gatedFile && offset === this.gatedOffset) {
      await this.#gate.promise;
      this.events.push("late block read");
    }
    return super.read(path, offset, length);
  }
}

Deno.test({
  name: "MediatorModel.prepare progressive: early layers run before a late block arrives",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const expert = built.merge.manifest.experts.find((e) => e.name === "add")!;
    const last = expert.blocks[expert.blocks.length - 1];
    const lastLayer = Number(last.unit.split(".")[1]);
    assert.ok(lastLayer > 0, "the test bundle routes more than one layer");
    const storage = new GatedStorage(built.dir, last.offset, expert.file);
    const backend = createReferenceBackend();
    const m = await MediatorModel.open(storage, backend, { apply: "delta" });
    try {
      const ids = m.tokenizer.encode("add 21 43 =");
      const decision = await m.decide(ids, "add");
      const prepared = await m.prepare(decision, { progressive: true });
      const deltas = prepared.deltas!;
      // Layer 0's block arrives; the gated last layer is still pending.
      await deltas.ready?.(0);
      assert.notEqual(deltas.ready?.(lastLayer), undefined, "the late layer is still pending");
      const run = generate(m.model, ids, {
        maxTokens: 4,
        eosTokenIds: m.config.eosTokenIds,
        deltas,
      });
      await new Promise((r) => setTimeout(r, 20));
      storage.events.push("prefill waiting");
      storage.release();
      const progressive = await run;
      assert.deepEqual(storage.events, ["prefill waiting", "late block read"]);
      prepared.release();

      const full = await m.prepare(decision);
      const whole = await generate(m.model, ids, {
        maxTokens: 4,
        eosTokenIds: m.config.eosTokenIds,
        deltas: full.deltas,
      });
      full.release();
      assert.deepEqual(progressive.outputIds, whole.outputIds);
      assert.equal(m.tokenizer.decode(whole.outputIds).trim(), "64");
    } finally {
      m.dispose();
      backend.dispose();
    }
  },
});
