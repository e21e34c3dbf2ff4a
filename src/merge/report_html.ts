/**
 * `report.html`: the merge report as one self-contained page (inline CSS and
 * SVG, no scripts, no external references) so a person sees the plan at a
 * glance: sizes, conflict per unit against the threshold, the per-unit table,
 * sparse reconstruction error, bytes per non-zero, the router and, when given,
 * the Pareto curve of accuracy against bundle bytes.
 */
import type { MergeReport } from "./report.ts";
import { conflictChart, errorCurves, paretoChart } from "./report_charts.ts";
import { escapeXml as esc } from "./svg.ts";

/** One point of a Pareto sweep: a bundle's size and its mean accuracy. */
export interface ParetoPoint {
  label: string;
  bytes: number;
  meanAccuracy: number;
}

/** Optional extra sections of the page. */
export interface ReportExtras {
  /** Mean accuracy against bundle bytes over budgets and densities. */
  pareto?: ParetoPoint[];
}

/** Human-readable byte count (binary units). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  if (Math.abs(n) < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(Math.abs(v) < 10 ? 2 : 1)} ${units[i]}`;
}

/** A number with `digits` decimals, or "n/a" when it is not finite. */
export function formatNumber(x: number | null | undefined, digits = 3): string {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

const pct = (part: number, whole: number) =>
  whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : "n/a";

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;
 padding:0 16px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:12px 0 4px}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}
dl.summary dt{color:#555}dl.summary dd{margin:0;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f6}td.text,th.text{text-align:left}
tr.routed td{background:#fff4e5}td.miss{color:#b00020}
span.tag{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px}
span.tag.routed{background:#ff9f1c;color:#000}span.tag.averaged{background:#dde3ea}
td.heat{min-width:44px;text-align:center}td.heat.diag{font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg{font:11px system-ui,sans-serif;background:#fff}
svg .grid{stroke:#eee}svg .axis{stroke:#888}svg .tick{fill:#555}svg .title{fill:#333}
svg .bar{fill:#8da0b6}svg .bar.routed{fill:#ff9f1c}
svg .mark{stroke:#8da0b6;stroke-width:3}svg .mark.routed{stroke:#ff9f1c}
svg .threshold{stroke:#b00020;stroke-dasharray:5 3;stroke-width:1.5}
svg .target{stroke:#888;stroke-dasharray:3 3}svg .frontier{stroke:#1f77b4;stroke-width:2}
.legend span{margin-right:14px}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
pre{background:#f7f7f9;padding:8px;overflow:auto;font-size:12px}
p.note{color:#555;margin:4px 0}`;

function section(id: string, title: string, body: string): string {
  return `<section id="${id}">\n<h2>${esc(title)}</h2>\n${body}\n</section>`;
}

function table(head: string[], rows: string[], textCols: number[] = [0]): string {
  const ths = head.map((h, i) =>
    `<th${textCols.includes(i) ? ' class="text"' : ""}>${esc(h)}</th>`
  );
  return `<table>\n<thead><tr>${ths.join("")}</tr></thead>\n<tbody>\n${
    rows.join("\n")
  }\n</tbody>\n</table>`;
}

function summary(r: MergeReport): string {
  const routed = r.units.filter((u) => u.routed).length;
  const bundle = r.modelBytes + r.routedBytes;
  const items: [string, string][] = [
    ["Experts", `${r.experts.length}: ${r.experts.join(", ")}`],
    ["Policy", r.policy],
    ["Routed units", `${routed} of ${r.units.length}`],
    ["Model bytes", formatBytes(r.modelBytes)],
    [`Inputs (base + ${r.experts.length} experts)`, formatBytes(r.inputBytes)],
    [
      "Routed sparse bytes",
      `${formatBytes(r.routedBytes)} (${pct(r.routedBytes, r.modelBytes)} of one model)`,
    ],
    [
      "Budget",
      r.budgetBytes === null ? "none (policy has no byte budget)" : formatBytes(r.budgetBytes),
    ],
    [
      "Bundle weights (dense + sparse)",
      `${formatBytes(bundle)} (${pct(bundle, r.inputBytes)} of the inputs)`,
    ],
  ];
  return `<dl class="summary">\n${
    items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("\n")
  }\n</dl>`;
}

function unitTable(r: MergeReport): string {
  const rows = r.units.map((u) => {
    const kind = u.routed ? "routed" : "averaged";
    return `<tr class="${kind}" data-unit="${esc(u.unit)}"><td class="text">${esc(u.unit)}</td>` +
      `<td>${formatNumber(u.conflict)}</td><td>${formatNumber(u.meanCosine)}</td>` +
      `<td>${formatNumber(u.averagingLoss)}</td>` +
      `<td class="text"><span class="tag ${kind}">${kind}</span></td>` +
      `<td class="text">${esc(u.reason)}</td></tr>`;
  });
  return table(
    ["Unit", "Conflict d_l", "Mean cosine", "Averaging loss", "Decision", "Reason"],
    rows,
    [0, 4, 5],
  );
}

function errorTable(r: MergeReport): string {
  const profiled = r.units.filter((u) => u.experts.length > 0);
  if (profiled.length === 0) return `<p class="note">No unit was profiled for sparse experts.</p>`;
  const rows = profiled.map((u) => {
    const cells = r.experts.map((name) => {
      const p = u.experts.find((e) => e.expert === name);
      if (!p) return "<td>-</td>";
      return `<td${p.met ? "" : ' class="miss" title="error target not met"'}>density ${
        formatNumber(p.density)
      }<br>error ${formatNumber(p.error)}<br>${esc(formatBytes(p.bytes))}</td>`;
    });
    const tag = u.routed ? ' <span class="tag routed">routed</span>' : "";
    return `<tr class="${u.routed ? "routed" : "averaged"}"><td class="text">${
      esc(u.unit)
    }${tag}</td>${cells.join("")}</tr>`;
  });
  return table(["Unit", ...r.experts], rows) +
    `\n<p class="note">Error = ||E - (D + S)|| / ||E - D|| at the chosen density; red: the ` +
    `error target was not met within the ladder.</p>`;
}

function sparseTable(r: MergeReport): string {
  if (r.sparse.length === 0) return `<p class="note">No sparse block was written.</p>`;
  const rows = r.sparse.map((s) =>
    `<tr><td class="text">${esc(s.expert)}</td><td class="text">${esc(s.unit)}</td>` +
    `<td>${esc(formatBytes(s.bytes))}</td><td>${s.nnz}</td>` +
    `<td>${formatNumber(s.bytesPerNonZero, 2)}</td><td>${formatNumber(s.error)}</td></tr>`
  );
  const bytes = r.sparse.reduce((a, s) => a + s.bytes, 0);
  const nnz = r.sparse.reduce((a, s) => a + s.nnz, 0);
  rows.push(
    `<tr><th class="text">all</th><th></th><th>${esc(formatBytes(bytes))}</th><th>${nnz}</th>` +
      `<th>${formatNumber(nnz ? bytes / nnz : 0, 2)}</th><th></th></tr>`,
  );
  return table(["Expert", "Unit", "Bytes", "Non-zeros", "Bytes / non-zero", "Error"], rows, [0, 1]);
}

function routerSection(r: MergeReport): string {
  const ro = r.router;
  const acc = ro.heldOutAccuracy === null
    ? "n/a (no held-out split)"
    : formatNumber(ro.heldOutAccuracy);
  const counts = r.experts.map((e, i) => `${e}: ${ro.classCounts[i] ?? 0}`).join(", ");
  const info = `<dl class="summary">\n<dt>Layer</dt><dd>${ro.layer}</dd>\n<dt>Kind</dt><dd>${
    esc(ro.kind)
  }</dd>\n<dt>Held-out accuracy</dt><dd>${esc(acc)}</dd>\n<dt>Prompts per expert</dt><dd>${
    esc(counts)
  }</dd>\n</dl>`;
  if (!ro.confusion) return info;
  const names = (i: number) => r.experts[i] ?? `class ${i}`;
  const rows = ro.confusion.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    const cells = row.map((n, j) => {
      const alpha = total > 0 ? n / total : 0;
      const fg = alpha > 0.6 ? "#fff" : "#000";
      return `<td class="heat${i === j ? " diag" : ""}" style="background:rgba(31,119,180,${
        alpha.toFixed(3)
      });color:${fg}">${n}</td>`;
    });
    return `<tr><th class="text">${esc(names(i))}</th>${cells.join("")}</tr>`;
  });
  const head = ["true \\ predicted", ...ro.confusion.map((_, j) => names(j))];
  return `${info}\n<h3>Held-out confusion matrix</h3>\n${table(head, rows)}`;
}

/**
 * Render the merge report as one self-contained HTML document. Every string
 * from the report (unit and expert names, reasons, settings) is escaped.
 */
export function renderReportHtml(report: MergeReport, extra?: ReportExtras): string {
  const maxError = (report.settings?.density as { max_error?: unknown } | undefined)?.max_error;
  const sections = [
    section("conflict", "Conflict per unit", conflictChart(report)),
    section("units", "Plan per unit", unitTable(report)),
    section(
      "reconstruction",
      "Sparse experts: reconstruction error",
      errorTable(report) + "\n" +
        errorCurves(report, typeof maxError === "number" ? maxError : null),
    ),
    section("sparse", "Written sparse blocks: bytes per non-zero", sparseTable(report)),
    section("router", "Router", routerSection(report)),
  ];
  if (extra?.pareto && extra.pareto.length > 0) {
    sections.push(
      section(
        "pareto",
        "Mean accuracy against bundle bytes",
        paretoChart(extra.pareto),
      ),
    );
  }
  sections.push(
    section("settings", "Settings", `<pre>${esc(JSON.stringify(report.settings, null, 2))}</pre>`),
  );
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mediator merge report</title>
<style>${CSS}
</style>
</head>
<body>
<header>
<h1>Mediator merge report</h1>
${summary(report)}
</header>
${sections.join("\n")}
</body>
</html>
`;
}
