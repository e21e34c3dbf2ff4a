import assert from "node:assert/strict";
import type { MergeReport, ReportUnit } from "../src/merge/report.ts";
import { paretoFrontier } from "../src/merge/report_charts.ts";
import { formatBytes, renderReportHtml } from "../src/merge/report_html.ts";
import { escapeXml, linearScale, logScale } from "../src/merge/svg.ts";

const EVIL = `<script>alert("x")</script>`;
const EXPERTS = ["math", EVIL];

function unit(name: string, conflict: number, routed: boolean, profiled = true): ReportUnit {
  const curve = [0.01, 0.1, 0.3, 1].map((d) => ({ density: d, error: 1 - d, bytes: 1000 * d }));
  return {
    unit: name,
    routed,
    reason: routed ? `conflict ${conflict} > limit & "rank"` : "fits <nothing>",
    conflict,
    meanCosine: 0.1,
    averagingLoss: 0.7,
    taskVectorNorms: [1, 2],
    experts: profiled
      ? EXPERTS.map((e, i) => ({
        expert: e,
        density: 0.3,
        error: 0.7 - i * 0.1,
        met: i === 0,
        bytes: 300,
        curve,
      }))
      : [],
  };
}

function sampleReport(): MergeReport {
  const units = [
    unit("embed", 0.2, false, false),
    unit("layer.0", 0.45, false),
    unit("layer.1", 0.62, true),
    unit("layer.2", 0.3, false),
    unit("layer.3", 0.71, true),
    unit("final_norm", 0.1, false, false),
    unit("lm_head", 0.25, false, false),
  ];
  return {
    experts: EXPERTS,
    modelBytes: 10 << 20,
    inputBytes: 30 << 20,
    policy: "budget",
    conflictThreshold: 0.55,
    budgetBytes: 10 << 20,
    routedBytes: 1200,
    units,
    sparse: ["layer.1", "layer.3"].flatMap((u) =>
      EXPERTS.map((e) => ({
        expert: e,
        unit: u,
        bytes: 300,
        nnz: 100,
        bytesPerNonZero: 3,
        error: 0.6,
      }))
    ),
    router: {
      layer: 2,
      kind: "mlp",
      heldOutAccuracy: 0.9,
      confusion: [[9, 1], [1, 9]],
      classCounts: [50, 50],
    },
    settings: { density: { mode: "adaptive", max_error: 0.5 }, note: "</pre><script>" },
  };
}

const VOID = new Set(["meta", "br", "hr", "img", "input", "link", "col", "wbr"]);

/** Tags must nest and close; returns the first problem or null. */
function tagBalance(html: string): string | null {
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][a-zA-Z0-9-]*)\b[^>]*?(\/?)>/g;
  for (const m of html.replace(/<!DOCTYPE[^>]*>/i, "").matchAll(re)) {
    const [, close, rawName, self] = m;
    const name = rawName.toLowerCase();
    if (self || (!close && VOID.has(name))) continue;
    if (!close) stack.push(name);
    else if (stack.pop() !== name) return `unexpected </${name}> at ${m.index}`;
  }
  return stack.length ? `unclosed <${stack.join("><")}>` : null;
}

Deno.test("renderReportHtml: one self-contained HTML document", () => {
  const html = renderReportHtml(sampleReport());
  assert.match(html, /^<!DOCTYPE html>\n<html lang="en">/);
  assert.equal(html.match(/<html\b/g)?.length, 1);
  assert.equal(html.match(/<\/html>/g)?.length, 1);
  assert.equal(tagBalance(html), null);
  for (const m of html.matchAll(/\b(?:src|href)\s*=\s*["']?([^"' >]*)/gi)) {
    assert.ok(m[1].startsWith("#") || m[1].startsWith("data:"), `external reference ${m[0]}`);
  }
  assert.doesNotMatch(html, /<script|<link|@import|url\(/i);
});

Deno.test("renderReportHtml: escapes names, reasons and settings", () => {
  const html = renderReportHtml(sampleReport());
  assert.ok(!html.includes(EVIL));
  assert.ok(html.includes(escapeXml(EVIL)));
  assert.ok(html.includes("&lt;/pre&gt;&lt;script&gt;"));
  assert.ok(html.includes("fits &lt;nothing&gt;"));
  assert.ok(html.includes("&amp; &quot;rank&quot;"));
});

Deno.test("renderReportHtml: every unit has a table row, routed units are marked", () => {
  const r = sampleReport();
  const html = renderReportHtml(r);
  for (const u of r.units) {
    const row = html.match(new RegExp(`<tr class="(\\w+)" data-unit="${u.unit}">.*</tr>`));
    assert.ok(row, `no row for ${u.unit}`);
    assert.equal(row[1], u.routed ? "routed" : "averaged");
    assert.ok(row[0].includes(`<span class="tag ${row[1]}">${row[1]}</span>`));
    assert.ok(row[0].includes(`<td>${u.conflict.toFixed(3)}</td>`));
    const bar = html.match(new RegExp(`<rect class="bar (\\w+)" data-unit="${u.unit}"`));
    assert.equal(bar?.[1], row[1]);
  }
});

Deno.test("renderReportHtml: the threshold line separates bars above and below it", () => {
  const r = sampleReport();
  const html = renderReportHtml(r);
  const line = html.match(/<line class="threshold"[^>]*y1="([\d.]+)"/);
  assert.ok(line, "no threshold line");
  assert.ok(html.includes("threshold (mean + 1 std) = 0.550"));
  const lineY = Number(line[1]);
  for (const u of r.units) {
    const m = html.match(new RegExp(`data-unit="${u.unit}" x="[\\d.]+" y="([\\d.]+)"`));
    assert.ok(m, `no bar for ${u.unit}`);
    // SVG y grows downwards: a taller bar has a smaller top y.
    assert.equal(Number(m[1]) < lineY, u.conflict > r.conflictThreshold, u.unit);
  }
});

Deno.test("renderReportHtml: error curves only for routed units, with SVGs well formed", () => {
  const html = renderReportHtml(sampleReport());
  const captions = [...html.matchAll(/<figcaption>([^<]*)<\/figcaption>/g)].map((m) => m[1]);
  assert.deepEqual(captions, ["layer.1", "layer.3"]);
  const svgs = html.match(/<svg\b[\s\S]*?<\/svg>/g) ?? [];
  assert.equal(svgs.length, 3);
  for (const s of svgs) assert.equal(tagBalance(s), null);
  // Each curve plot has one line per expert and the error target.
  for (const s of svgs.slice(1)) {
    assert.equal(s.match(/<polyline /g)?.length, EXPERTS.length);
    assert.equal(s.match(/<line class="target"/g)?.length, 1);
  }
  // Error target not met (second expert of each profiled unit) is flagged in the table.
  assert.equal(html.match(/class="miss"/g)?.length, 4);
});

Deno.test("renderReportHtml: router confusion matrix names experts on both axes", () => {
  const html = renderReportHtml(sampleReport());
  const router = html.slice(html.indexOf('<section id="router">'));
  assert.ok(router.includes("0.900"));
  assert.equal(router.match(/<td class="heat diag"/g)?.length, 2);
  assert.equal(router.split(escapeXml(EVIL)).length - 1, 3); // counts, column, row
});

Deno.test("renderReportHtml: Pareto section only when points are given", () => {
  assert.ok(!renderReportHtml(sampleReport()).includes('id="pareto"'));
  const pareto = [
    { label: "average", bytes: 100, meanAccuracy: 0.3 },
    { label: "dominated", bytes: 400, meanAccuracy: 0.2 },
    { label: "mediator", bytes: 300, meanAccuracy: 0.8 },
  ];
  const html = renderReportHtml(sampleReport(), { pareto });
  const sec = html.slice(html.indexOf('<section id="pareto">'));
  assert.equal(tagBalance(sec.slice(0, sec.indexOf("</section>") + 10)), null);
  assert.equal(sec.match(/<circle /g)?.length, 3);
  const points = sec.match(/<polyline points="([^"]*)" fill="none" class="frontier"/);
  assert.equal(points?.[1].split(" ").length, 2);
});

Deno.test("paretoFrontier: keeps points no smaller-and-better point beats", () => {
  const pts = [
    { bytes: 300, meanAccuracy: 0.8 },
    { bytes: 100, meanAccuracy: 0.3 },
    { bytes: 400, meanAccuracy: 0.2 },
    { bytes: 100, meanAccuracy: 0.1 },
    { bytes: 500, meanAccuracy: 0.9 },
  ];
  assert.deepEqual(paretoFrontier(pts), [1, 0, 4]);
});

Deno.test("linearScale/logScale: map endpoints and give round ticks inside the domain", () => {
  const x = linearScale(0, 0.73, 10, 110);
  assert.equal(x(0), 10);
  assert.equal(x(0.73), 110);
  assert.deepEqual(x.ticks(5), [0, 0.2, 0.4, 0.6]);
  const l = logScale(0.01, 1, 0, 200);
  assert.equal(l(0.01), 0);
  assert.equal(l(0.1), 100);
  assert.equal(l(1), 200);
  assert.deepEqual(l.ticks(3), [0.01, 0.1, 1]);
  assert.deepEqual(logScale(0.1, 1, 0, 1).ticks(5), [0.1, 0.2, 0.5, 1]);
  assert.throws(() => logScale(0, 1, 0, 1), RangeError);
});

Deno.test("formatBytes: binary units", () => {
  assert.equal(formatBytes(1000), "1000 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(30 << 20), "30.0 MiB");
});
