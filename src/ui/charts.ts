import { type Html, html } from "./html.ts";

/** Hand-written SVG charts: a few kinds, drawn on the server, no script needed to read them. */

const W = 720;
const H = 260;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

export interface IntervalPoint {
  x: number;
  y: number;
  low: number;
  high: number;
  /** A class for the point (promoted, rejected, ...). */
  kind: string;
  label: string;
}

interface Scale {
  x: (v: number) => number;
  y: (v: number) => number;
}

function extent(values: number[]): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [0, 1];
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
}

/** Five percent of room at each end, so no point sits on an axis. */
function padded([lo, hi]: [number, number]): [number, number] {
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

function scale(xs: [number, number], ys: [number, number]): Scale {
  const fx = (W - PAD.left - PAD.right) / (xs[1] - xs[0]);
  const fy = (H - PAD.top - PAD.bottom) / (ys[1] - ys[0]);
  return {
    x: (v) => PAD.left + (v - xs[0]) * fx,
    y: (v) => H - PAD.bottom - (v - ys[0]) * fy,
  };
}

const r1 = (v: number) => Math.round(v * 10) / 10;

/** About five round tick values over [lo, hi]. */
function ticks(lo: number, hi: number): number[] {
  const step0 = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(Math.round(t / step) * step);
  return out;
}

function axes(s: Scale, xs: [number, number], ys: [number, number], xLabel: string, yLabel: string): Html {
  const yTicks = ticks(ys[0], ys[1]);
  const xTicks = ticks(xs[0], xs[1]).filter((t) => Number.isInteger(t));
  return html`<line class="axis" x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}"/>
<line class="axis" x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}"/>
${yTicks.map(
  (t) => html`<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${r1(s.y(t))}" y2="${r1(s.y(t))}"/>
<text x="${PAD.left - 4}" y="${r1(s.y(t)) + 4}" text-anchor="end">${t}</text>`,
)}
${xTicks.map((t) => html`<text x="${r1(s.x(t))}" y="${H - PAD.bottom + 14}" text-anchor="middle">${t}</text>`)}
<text x="${W - PAD.right}" y="${H - 2}" text-anchor="end">${xLabel}</text>
<text x="4" y="${PAD.top + 8}">${yLabel}</text>`;
}

/**
 * Ratings with their intervals over an x axis (Elo by generation): one circle per point (data-id names it),
 * a vertical bar for its interval, a line through the points, and dashed horizontal lines for references.
 */
export function intervalChart(
  points: IntervalPoint[],
  references: Array<{ label: string; y: number }>,
  opts: { title: string; xLabel: string; yLabel: string },
): Html {
  if (points.length === 0) return html`<p class="muted">No rated models yet.</p>`;
  const xs = extent(points.map((p) => p.x));
  const yr = padded(extent([...points.flatMap((p) => [p.low, p.high]), ...references.map((r) => r.y)]));
  const xr: [number, number] = [xs[0] - 0.5, xs[1] + 0.5];
  const s = scale(xr, yr);
  const path = points.map((p, i) => `${i === 0 ? "M" : "L"}${r1(s.x(p.x))},${r1(s.y(p.y))}`).join("");
  return html`<svg class="chart" data-chart="${opts.title}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${opts.title}">
${axes(s, xr, yr, opts.xLabel, opts.yLabel)}
${references.map(
  (r) => html`<line class="base" x1="${PAD.left}" x2="${W - PAD.right}" y1="${r1(s.y(r.y))}" y2="${r1(s.y(r.y))}"/>
<text x="${W - PAD.right - 2}" y="${r1(s.y(r.y)) - 3}" text-anchor="end">${r.label}</text>`,
)}
<path class="line" d="${path}"/>
${points.map(
  (p) => html`<g><title>${p.label}</title>
<line class="ci" x1="${r1(s.x(p.x))}" x2="${r1(s.x(p.x))}" y1="${r1(s.y(p.low))}" y2="${r1(s.y(p.high))}"/>
<circle class="pt ${p.kind}" data-id="${p.label}" cx="${r1(s.x(p.x))}" cy="${r1(s.y(p.y))}" r="4"/></g>`,
)}
</svg>`;
}

/** Lines over (x, y) points, one per named series (a training's policy and value loss by generation). */
export function lineChart(
  series: Array<{ name: string; points: Array<{ x: number; y: number }> }>,
  opts: { title: string; xLabel: string; yLabel: string },
): Html {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return html`<p class="muted">Nothing to draw yet.</p>`;
  const xs = padded(extent(all.map((p) => p.x)));
  const ys = padded(extent(all.map((p) => p.y)));
  const s = scale(xs, ys);
  return html`<svg class="chart" data-chart="${opts.title}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${opts.title}">
${axes(s, xs, ys, opts.xLabel, opts.yLabel)}
${series.map((line, k) => {
  const path = line.points.map((p, i) => `${i === 0 ? "M" : "L"}${r1(s.x(p.x))},${r1(s.y(p.y))}`).join("");
  return html`<g class="series s${k}"><path class="line" d="${path}"/>
${line.points.map((p) => html`<circle class="pt" cx="${r1(s.x(p.x))}" cy="${r1(s.y(p.y))}" r="3"/>`)}
<text x="${W - PAD.right - 4}" y="${PAD.top + 12 + k * 14}" text-anchor="end">${line.name}</text></g>`;
})}
</svg>`;
}

/** Horizontal bars, one per label (games per hour by node). */
export function barChart(bars: Array<{ label: string; value: number }>, opts: { title: string }): Html {
  if (bars.length === 0) return html`<p class="muted">Nothing to draw yet.</p>`;
  const rowH = 22;
  const height = bars.length * rowH + 8;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const span = W - 140 - 60;
  return html`<svg class="chart" data-chart="${opts.title}" viewBox="0 0 ${W} ${height}" role="img" aria-label="${opts.title}">
${bars.map(
  (b, i) => html`<text x="132" y="${i * rowH + 19}" text-anchor="end">${b.label}</text>
<rect class="bar" x="140" y="${i * rowH + 6}" width="${r1((b.value / max) * span)}" height="${rowH - 8}"/>
<text x="${r1(146 + (b.value / max) * span)}" y="${i * rowH + 19}">${b.value}</text>`,
)}
</svg>`;
}
