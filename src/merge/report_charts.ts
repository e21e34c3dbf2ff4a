/**
 * The SVG charts of `report.html`: conflict per unit with the threshold line,
 * reconstruction error against density per routed unit, and the Pareto curve
 * of mean accuracy against bundle bytes.
 */
import type { MergeReport } from "./report.ts";
import type { ParetoPoint } from "./report_html.ts";
import {
  axes,
  escapeXml as esc,
  frame,
  linearScale,
  logScale,
  polyline,
  type Scale,
  seriesColor,
  svg,
} from "./svg.ts";

const ROUTED_COLOR = "#ff9f1c";
const AVERAGED_COLOR = "#8da0b6";
const THRESHOLD_COLOR = "#b00020";

const finite = (xs: number[]) => xs.filter((x) => Number.isFinite(x));

interface LegendItem {
  color: string;
  label: string;
  dashed?: boolean;
}

function legend(items: LegendItem[]): string {
  return `<p class="legend">${
    items.map((i) =>
      `<span><span class="swatch" style="background:${i.color}${
        i.dashed ? ";height:2px;vertical-align:middle" : ""
      }"></span>${esc(i.label)}</span>`
    ).join("")
  }</p>`;
}

/**
 * Bar chart of conflict d_l per unit (routed bars highlighted) with the
 * `threshold` policy's line at mean + 1 std, drawn and labelled.
 */
export function conflictChart(r: MergeReport): string {
  const band = 28;
  const f = frame(Math.max(480, 56 + 12 + r.units.length * band), 320, {
    l: 56,
    r: 12,
    t: 20,
    b: 84,
  });
  const values = finite([...r.units.map((u) => u.conflict), r.conflictThreshold]);
  const top = Math.max(0.05, ...values) * 1.1;
  const y = linearScale(0, top, f.bottom, f.top);
  const step = (f.right - f.left) / Math.max(1, r.units.length);
  const bars = r.units.map((u, i) => {
    const c = Number.isFinite(u.conflict) ? u.conflict : 0;
    const x = f.left + i * step;
    const kind = u.routed ? "routed" : "averaged";
    const x0 = (x + 3).toFixed(1), x1 = (x + step - 3).toFixed(1), base = f.bottom + 2;
    // The mark under the axis shows the decision even when the bar is too short to see.
    return `<rect class="bar ${kind}" data-unit="${esc(u.unit)}" x="${x0}" y="${
      y(c).toFixed(1)
    }" width="${Math.max(1, step - 6).toFixed(1)}" height="${
      (f.bottom - y(c)).toFixed(1)
    }"><title>${esc(`${u.unit}: conflict ${c.toFixed(3)} (${kind})`)}</title></rect>\n` +
      `<line class="mark ${kind}" x1="${x0}" x2="${x1}" y1="${base}" y2="${base}"/>`;
  });
  const parts = [
    axes(f, null, y, {
      xTitle: "unit",
      yTitle: "conflict d_l",
      xCategories: r.units.map((u, i) => ({ at: f.left + (i + 0.5) * step, label: u.unit })),
    }),
    ...bars,
  ];
  if (Number.isFinite(r.conflictThreshold)) {
    const ty = y(r.conflictThreshold).toFixed(1);
    parts.push(
      `<line class="threshold" x1="${f.left}" x2="${f.right}" y1="${ty}" y2="${ty}"/>`,
      `<text class="threshold-label" x="${
        f.right - 4
      }" y="${ty}" dy="-4" text-anchor="end" fill="${THRESHOLD_COLOR}" paint-order="stroke" stroke="#fff" stroke-width="3">${
        esc(`threshold (mean + 1 std) = ${r.conflictThreshold.toFixed(3)}`)
      }</text>`,
    );
  }
  return svg(f, "Conflict d_l per unit", parts.join("\n")) + "\n" + legend([
    { color: ROUTED_COLOR, label: "routed" },
    { color: AVERAGED_COLOR, label: "averaged" },
    { color: THRESHOLD_COLOR, label: "threshold: mean + 1 std of routable units", dashed: true },
  ]);
}

/**
 * One small plot per routed unit: reconstruction error against sparse density
 * (log x axis) for every expert, the chosen density marked, and the error
 * target drawn when the merge used one.
 */
export function errorCurves(r: MergeReport, maxError: number | null): string {
  const units = r.units.filter((u) => u.routed && u.experts.some((e) => e.curve.length > 0));
  if (units.length === 0) {
    return `<p class="note">No routed unit: no error curves to show.</p>`;
  }
  const pts = units.flatMap((u) => u.experts.flatMap((e) => e.curve));
  const densities = finite(pts.map((p) => p.density)).filter((d) => d > 0);
  const lo = Math.min(...densities, 1), hi = Math.max(...densities, lo * 10);
  const topErr = Math.max(1, ...finite(pts.map((p) => p.error)), maxError ?? 0);
  const plots = units.map((u) => {
    const f = frame(300, 200, { l: 44, r: 10, t: 10, b: 36 });
    const x: Scale = logScale(lo, hi, f.left, f.right);
    const y = linearScale(0, topErr, f.bottom, f.top);
    const parts = [axes(f, x, y, { xTitle: "density", yTitle: "error", yTicks: 4 })];
    if (maxError !== null) {
      const ty = y(maxError).toFixed(1);
      parts.push(`<line class="target" x1="${f.left}" x2="${f.right}" y1="${ty}" y2="${ty}"/>`);
    }
    for (const e of u.experts) {
      const color = seriesColor(Math.max(0, r.experts.indexOf(e.expert)));
      const curve = e.curve.filter((p) => p.density > 0 && Number.isFinite(p.error))
        .sort((a, b) => a.density - b.density);
      parts.push(
        polyline(
          curve.map((p) => [x(p.density), y(p.error)]),
          `stroke="${color}" stroke-width="1.5"`,
        ),
      );
      if (e.density > 0 && Number.isFinite(e.error)) {
        parts.push(
          `<circle cx="${x(e.density).toFixed(1)}" cy="${
            y(e.error).toFixed(1)
          }" r="3.5" fill="${color}"><title>${
            esc(`${e.expert}: density ${e.density}, error ${e.error.toFixed(3)}`)
          }</title></circle>`,
        );
      }
    }
    return `<figure><figcaption>${esc(u.unit)}</figcaption>\n${
      svg(f, `Reconstruction error against density, ${u.unit}`, parts.join("\n"))
    }\n</figure>`;
  });
  const items: LegendItem[] = r.experts.map((e, i) => ({ color: seriesColor(i), label: e }));
  if (maxError !== null) {
    items.push({ color: "#888", label: `error target ${maxError}`, dashed: true });
  }
  return `<h3>Error against density (dot: chosen density)</h3>\n${legend(items)}\n` +
    `<div class="charts">\n${plots.join("\n")}\n</div>`;
}

/** Indices of the points no other point beats on both bytes (fewer) and accuracy (higher). */
export function paretoFrontier(
  points: readonly { bytes: number; meanAccuracy: number }[],
): number[] {
  const order = points.map((_, i) => i).sort((a, b) =>
    points[a].bytes - points[b].bytes || points[b].meanAccuracy - points[a].meanAccuracy
  );
  const out: number[] = [];
  let best = -Infinity;
  for (const i of order) {
    if (points[i].meanAccuracy > best) {
      out.push(i);
      best = points[i].meanAccuracy;
    }
  }
  return out;
}

/** The binary unit (B, KiB, MiB, ...) in which `bytes` reads as 1 to 1023. */
function byteUnit(bytes: number): { divisor: number; name: string } {
  const names = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (i < names.length - 1 && bytes >= 1024 ** (i + 1)) i++;
  return { divisor: 1024 ** i, name: names[i] };
}

/**
 * Scatter of mean accuracy against bundle bytes, with a line over the
 * frontier. The byte axis counts in the unit of the largest point (MiB, GiB)
 * so its ticks are round numbers of that unit; it turns logarithmic when the
 * sizes span more than 20x.
 */
export function paretoChart(points: readonly ParetoPoint[]): string {
  const ok = points.filter((p) => p.bytes > 0 && Number.isFinite(p.meanAccuracy));
  if (ok.length === 0) return `<p class="note">No Pareto point with positive bytes.</p>`;
  const f = frame(640, 360, { l: 56, r: 24, t: 16, b: 44 });
  const unit = byteUnit(Math.max(...ok.map((p) => p.bytes)));
  const size = ok.map((p) => p.bytes / unit.divisor);
  const lo = Math.min(...size), hi = Math.max(...size), pad = 0.1 * (hi - lo || hi);
  const x: Scale = hi / lo > 20
    ? logScale(lo / 1.2, hi * 1.2, f.left, f.right)
    : linearScale(Math.max(0, lo - pad), hi + pad, f.left, f.right);
  const y = linearScale(0, Math.max(1, ...ok.map((p) => p.meanAccuracy)), f.bottom, f.top);
  const front = paretoFrontier(ok);
  const onFront = new Set(front);
  const parts = [
    axes(f, x, y, { xTitle: `bundle size (${unit.name})`, yTitle: "mean accuracy" }),
    polyline(front.map((i) => [x(size[i]), y(ok[i].meanAccuracy)]), 'class="frontier"'),
  ];
  ok.forEach((p, i) => {
    const cx = x(size[i]).toFixed(1), cy = y(p.meanAccuracy).toFixed(1);
    const fill = onFront.has(i) ? "#1f77b4" : "#fff";
    parts.push(
      `<circle cx="${cx}" cy="${cy}" r="4" fill="${fill}" stroke="#1f77b4"><title>${
        esc(`${p.label}: ${p.bytes} bytes, mean accuracy ${p.meanAccuracy.toFixed(3)}`)
      }</title></circle>`,
      `<text class="tick" x="${cx}" y="${cy}" dx="6" dy="-6">${esc(p.label)}</text>`,
    );
  });
  return svg(f, "Mean accuracy against bundle bytes", parts.join("\n")) + "\n" +
    `<p class="note">Filled points lie on the frontier: no other point is both smaller and ` +
    `more accurate.</p>`;
}
