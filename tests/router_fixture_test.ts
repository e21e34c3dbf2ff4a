/**
 * The router on a real fine-tuned family (fixtures/family): features from the
 * base model on the reference backend, trained on router/<task>.jsonl, must
 * tell the tasks apart on held-out prompts (eval/<task>.jsonl) far better
 * than chance, and be less certain on the mixed / out-of-distribution prompts.
 */
import assert from "node:assert/strict";
import { ReferenceBackend } from "../src/backends/reference.ts";
import { loadHfModel } from "../src/model/hf.ts";
import { expertNameFromPath, readRouterDataset } from "../src/router/data.ts";
import { routerFeatures } from "../src/router/features.ts";
import { Router } from "../src/router/router.ts";
import { decodeRouter, encodeRouter } from "../src/router/serialize.ts";
import { LocalStorage } from "../src/storage/local.ts";
import { FAMILY } from "./helpers/fixtures.ts";

function routerFiles(): string[] {
  try {
    Deno.statSync(`${FAMILY}/base/config.json`);
    return [...Deno.readDirSync(`${FAMILY}/router`)]
      .filter((e) => e.isFile && e.name.endsWith(".jsonl"))
      .map((e) => `${FAMILY}/router/${e.name}`)
      .sort();
  } catch {
    return [];
  }
}

const files = routerFiles();
if (files.length === 0) {
  console.warn(
    `router_fixture_test: skipped, ${FAMILY}/base and ${FAMILY}/router/*.jsonl are absent; ` +
      "generate it with scripts/make_fixtures.py",
  );
}

/** Prompts of a JSONL file with their optional "task" field. */
async function readJsonl(path: string): Promise<{ prompt: string; task?: string }[]> {
  const text = await Deno.readTextFile(path);
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

Deno.test({
  name: "Router: trained on fixture base-model features, routes held-out prompts right",
  ignore: files.length < 2,
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    const { model, tokenizer, config } = await loadHfModel(
      new LocalStorage(`${FAMILY}/base`),
      new ReferenceBackend(),
    );
    const data = await readRouterDataset(files.map((path) => ({
      expert: expertNameFromPath(path),
      path,
    })));
    const T = data.expertNames.length;
    const layer = Math.ceil(config.numLayers / 2);
    const featuresOf = (prompts: string[]) =>
      routerFeatures(model, prompts.map((p) => tokenizer.encode(p)), layer);
    const features = await featuresOf(data.prompts);

    // Held-out prompts of each task, from eval/<task>.jsonl.
    const evalRows = (await Promise.all(
      data.expertNames.map((name) => readJsonl(`${FAMILY}/eval/${name}.jsonl`)),
    )).flatMap((rows, t) => rows.map((r) => ({ prompt: r.prompt, label: t })));
    const evalFeatures = await featuresOf(evalRows.map((r) => r.prompt));
    const mixed = await readJsonl(`${FAMILY}/mixed.jsonl`).catch(() => []);
    const mixedFeatures = await featuresOf(mixed.map((r) => r.prompt));

    for (const kind of ["mlp", "logreg"] as const) {
      const router = Router.train(features, data.labels, {
        expertNames: data.expertNames,
        routerLayer: layer,
      }, { kind, seed: 1 });
      const heldOut = router.report!.holdoutAccuracy!;
      const routes = evalFeatures.map((f) => router.select(f));
      const evalAccuracy = routes.filter((r, i) => r.experts[0] === evalRows[i].label).length /
        routes.length;
      const meanU = (rs: { uncertainty: number }[]) =>
        rs.reduce((s, r) => s + r.uncertainty, 0) / Math.max(1, rs.length);
      const mixedRoutes = mixedFeatures.map((f) => router.select(f));
      console.log(
        `  ${kind}: held-out accuracy ${heldOut.toFixed(3)}, eval accuracy ${
          evalAccuracy.toFixed(3)
        } over ${T} tasks; mean u eval ${meanU(routes).toFixed(3)}, mixed ${
          meanU(mixedRoutes).toFixed(3)
        } (${mixedRoutes.filter((r) => r.mode !== "top1").length}/${mixed.length} not top-1)`,
      );
      const floor = Math.max(0.8, 1 / T + 0.5);
      assert.ok(heldOut >= floor, `${kind}: held-out accuracy ${heldOut}`);
      assert.ok(evalAccuracy >= floor, `${kind}: eval accuracy ${evalAccuracy}`);
      if (mixed.length > 0) assert.ok(meanU(mixedRoutes) > meanU(routes));
      const back = decodeRouter(encodeRouter(router));
      assert.deepEqual(
        back.select(mixedFeatures[0] ?? features[0]),
        router.select(mixedFeatures[0] ?? features[0]),
      );
    }
    model.dispose();
  },
});
