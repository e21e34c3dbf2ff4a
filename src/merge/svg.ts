/**
 * A few inline-SVG chart pieces for the merge report: scales with readable
 * ticks, a plot frame with labelled axes, and XML escaping. No scripts, no
 * external references: the output embeds in a self-contained HTML page.
 */

/** Escape text for XML/HTML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) =>
      c === "&"
        ? "&amp;"
        : c === "<"
        ? "&lt;"
        : c === ">"
        ? "&gt;"
        : c === '"'
        ? "&quot;"
        : "&#39;",
  );
}

/** A mapping from data values to pixels, with tick values for its axis. */
export interface Scale {
  /** Pixel position of a data value. */
  (value: number): number;
  /** Data values worth a tick mark (about `count` of them). */
  ticks(count: number): number[];
}

/** A "nice" step (1, 2 or 5 times a power of ten) near `span / count`. */
function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  return (m < Math.SQRT2 ? 1 : m < Math.sqrt(10) ? 2 : m < Math.sqrt(50) ? 5 : 10) * pow;
}

/**
 * Linear scale from [d0, d1] to pixels [r0, r1]. An empty domain (d0 === d1)
 * is widened by one unit so every value still maps to a finite pixel.
 */
export function linearScale(d0: number, d1: number, r0: number, r1: number): Scale {
  if (!Number.isFinite(d0) || !Number.isFinite(d1)) {
    throw new RangeError(`Cannot build a linear scale: domain [${d0}, ${d1}] is not finite`);
  }
  if (d0 === d1) d1 = d0 + 1;
  const f = (v: number) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
  return Object.assign(f, {
    ticks(count: number): number[] {
      const lo = Math.min(d0, d1), hi = Math.max(d0, d1);
      const step = niceStep(hi - lo, count);
      const out: number[] = [];
      for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) {
        out.push(Number((i * step).toPrecision(12)));
      }
      return out;
    },
  });
}

/** Logarithmic scale (base 10) from [d0, d1] (both > 0) to pixels [r0, r1]. */
export function logScale(d0: number, d1: number, r0: number, r1: number): Scale {
  if (!(d0 > 0 && d1 > 0)) {
    throw new RangeError(`Cannot build a log scale: domain [${d0}, ${d1}] must be positive`);
  }
  const inner = linearScale(Math.log10(d0), Math.log10(d1), r0, r1);
  const f = (v: number) => inner(Math.log10(v));
  return Object.assign(f, {
    ticks(count: number): number[] {
      const lo = Math.min(d0, d1), hi = Math.max(d0, d1);
      const out: number[] = [];
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        for (const m of [1, 2, 5]) {
          const v = Number((m * 10 ** e).toPrecision(6));
          if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
        }
      }
      // Keep powers of ten only when the 1-2-5 set is crowded.
      return out.length > count ? out.filter((v) => Number.isInteger(Math.log10(v))) : out;
    },
  });
}

/** Pixel layout of one chart: canvas size and the plot area inside margins. */
export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** A frame of `width` x `height` with room for tick labels and axis titles. */
export function frame(
  width: number,
  height: number,
  margin = { l: 56, r: 12, t: 12, b: 40 },
): Frame {
  return {
    width,
    height,
    left: margin.l,
    right: width - margin.r,
    top: margin.t,
    bottom: height - margin.b,
  };
}

/** Compact number for tick labels. */
export function tickLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

/** Axis titles and tick formats for `axes`. */
export interface AxesOptions {
  xTitle: string;
  yTitle: string;
  xTicks?: number;
  yTicks?: number;
  xFormat?: (v: number) => string;
  yFormat?: (v: number) => string;
  /** Category labels drawn under the x axis instead of numeric ticks. */
  xCategories?: { at: number; label: string }[];
}

/** Axis lines, grid, tick labels and titles for a frame and its scales. */
export function axes(f: Frame, x: Scale | null, y: Scale, o: AxesOptions): string {
  const parts: string[] = [];
  const yFmt = o.yFormat ?? tickLabel, xFmt = o.xFormat ?? tickLabel;
  for (const v of y.ticks(o.yTicks ?? 5)) {
    const py = y(v).toFixed(1);
    parts.push(
      `<line class="grid" x1="${f.left}" x2="${f.right}" y1="${py}" y2="${py}"/>`,
      `<text class="tick" x="${f.left - 4}" y="${py}" text-anchor="end" dy="0.32em">${
        escapeXml(yFmt(v))
      }</text>`,
    );
  }
  if (x) {
    for (const v of x.ticks(o.xTicks ?? 6)) {
      const px = x(v).toFixed(1);
      parts.push(
        `<line class="axis" x1="${px}" x2="${px}" y1="${f.bottom}" y2="${f.bottom + 4}"/>`,
        `<text class="tick" x="${px}" y="${f.bottom + 15}" text-anchor="middle">${
          escapeXml(xFmt(v))
        }</text>`,
      );
    }
  }
  for (const c of o.xCategories ?? []) {
    const px = c.at.toFixed(1), py = f.bottom + 8;
    parts.push(
      `<text class="tick" x="${px}" y="${py}" text-anchor="end" dy="0.32em" transform="rotate(-45 ${px} ${py})">${
        escapeXml(c.label)
      }</text>`,
    );
  }
  const midX = ((f.left + f.right) / 2).toFixed(1), midY = ((f.top + f.bottom) / 2).toFixed(1);
  parts.push(
    `<line class="axis" x1="${f.left}" x2="${f.right}" y1="${f.bottom}" y2="${f.bottom}"/>`,
    `<line class="axis" x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.bottom}"/>`,
    `<text class="title" x="${midX}" y="${f.height - 4}" text-anchor="middle">${
      escapeXml(o.xTitle)
    }</text>`,
    `<text class="title" x="12" y="${midY}" text-anchor="middle" transform="rotate(-90 12 ${midY})">${
      escapeXml(o.yTitle)
    }</text>`,
  );
  return parts.join("\n");
}

/** A polyline through points (already in pixels). */
export function polyline(points: [number, number][], attrs: string): string {
  const d = points.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ");
  return `<polyline points="${d}" fill="none" ${attrs}/>`;
}

/** Wrap chart content into one `<svg>` element with an accessible title. */
export function svg(f: Frame, title: string, body: string): string {
  return `<svg width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" role="img" aria-label="${
    escapeXml(title)
  }"><title>${escapeXml(title)}</title>\n${body}\n</svg>`;
}

/** Distinguishable series colours (cycled). */
export const SERIES_COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#9467bd",
  "#ff7f0e",
  "#17becf",
  "#8c564b",
  "#e377c2",
];

/** Colour of series `i`. */
export function seriesColor(i: number): string {
  return SERIES_COLORS[i % SERIES_COLORS.length];
}
