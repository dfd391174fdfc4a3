/**
 * Inline SVG line charts for the HTML report: no scripts, no fonts or files to fetch, so the
 * report renders offline. Non-finite points are skipped (a gap, not a crash).
 *
 * @example
 * const svg = lineChart({ title: "loss", series: [{ name: "loss", points: [[1, 0.69], [2, 0.61]] }] });
 */

/** One line: points as [x, y]. */
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface ChartOptions {
  title: string;
  series: readonly Series[];
  xLabel?: string;
  width?: number;
  height?: number;
}

/** Escapes text for HTML/SVG content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/** A short label for an axis tick. */
export function tickLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

/** Evenly spaced "nice" ticks covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

/**
 * An SVG line chart (`<svg class="chart" data-series="N">`), one `<polyline data-name=…>` per
 * series with at least one finite point, axes with ticks, and a legend.
 */
export function lineChart(opts: ChartOptions): string {
  const W = opts.width ?? 520;
  const H = opts.height ?? 260;
  const m = { l: 56, r: 12, t: 28, b: 40 };
  const series = opts.series.map((s) => ({ name: s.name, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) })).filter((s) => s.points.length > 0);
  const all = series.flatMap((s) => s.points);
  const parts: string[] = [];
  parts.push(`<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" data-series="${series.length}">`);
  parts.push(`<title>${escapeHtml(opts.title)}</title>`);
  parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">${escapeHtml(opts.title)}</text>`);
  if (all.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" font-size="12" fill="#888">no data</text></svg>`);
    return parts.join("");
  }
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const sx = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => m.t + (1 - (y - y0) / (y1 - y0)) * ph;
  const f = (v: number): string => v.toFixed(1);
  // Axes and grid.
  parts.push(`<g font-size="10" fill="#444" stroke="none">`);
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${f(sy(t))}" y2="${f(sy(t))}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 4}" y="${f(sy(t) + 3)}" text-anchor="end">${tickLabel(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1)) parts.push(`<text x="${f(sx(t))}" y="${H - m.b + 14}" text-anchor="middle">${tickLabel(t)}</text>`);
  parts.push(`</g>`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  if (opts.xLabel) parts.push(`<text x="${m.l + pw / 2}" y="${H - 6}" text-anchor="middle" font-size="11">${escapeHtml(opts.xLabel)}</text>`);
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const pts = s.points.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ");
    parts.push(`<polyline data-name="${escapeHtml(s.name)}" data-points="${s.points.length}" fill="none" stroke="${colour}" stroke-width="1.6" points="${pts}"/>`);
    const ly = m.t + 12 + i * 13;
    parts.push(`<line x1="${W - m.r - 118}" x2="${W - m.r - 104}" y1="${ly - 4}" y2="${ly - 4}" stroke="${colour}" stroke-width="2"/>`);
    parts.push(`<text x="${W - m.r - 100}" y="${ly}" font-size="10">${escapeHtml(s.name)}</text>`);
  });
  parts.push(`</svg>`);
  return parts.join("");
}
