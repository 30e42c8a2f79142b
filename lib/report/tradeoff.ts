/**
 * The plot of excise compare: for each method, the fall of retain top-1 accuracy against the fall
 * of forget top-1 accuracy (both in points, from the unmodified model) across its budget steps.
 * Down and to the right is better: much forgotten, little lost.
 */
import { rasterizeSvg } from './plot.js';

export interface TradeoffSeries {
  name: string;
  /** [forget drop, retain drop] per budget step, in points (step 0 = [0, 0] included). */
  points: Array<[number, number]>;
}

const COLORS = ['#d62728', '#7f7f7f', '#2ca02c', '#9467bd', '#ff7f0e', '#1f77b4', '#8c564b', '#e377c2'];
const W = 800, H = 480, M = { left: 72, right: 200, top: 50, bottom: 64 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceStep(span: number): number {
  const raw = span / 6;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

export function renderTradeoffSvg(series: readonly TradeoffSeries[], title: string): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMin = Math.min(0, ...xs), xMax = Math.max(1, ...xs);
  const yMin = Math.min(0, ...ys), yMax = Math.max(1, ...ys);
  const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
  const X = (v: number) => M.left + ((v - xMin) / (xMax - xMin)) * pw;
  const Y = (v: number) => M.top + ph - ((v - yMin) / (yMax - yMin)) * ph;
  const r = (v: number) => Math.round(v * 10) / 10;
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`];
  const xs1 = niceStep(xMax - xMin), ys1 = niceStep(yMax - yMin);
  for (let v = Math.ceil(xMin / xs1) * xs1; v <= xMax + 1e-9; v += xs1) {
    out.push(`<line x1="${r(X(v))}" y1="${M.top}" x2="${r(X(v))}" y2="${M.top + ph}" stroke="#e5e5e5"/>`,
      `<text x="${r(X(v))}" y="${M.top + ph + 18}" text-anchor="middle" font-size="12">${+v.toFixed(2)}</text>`);
  }
  for (let v = Math.ceil(yMin / ys1) * ys1; v <= yMax + 1e-9; v += ys1) {
    out.push(`<line x1="${M.left}" y1="${r(Y(v))}" x2="${M.left + pw}" y2="${r(Y(v))}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 8}" y="${r(Y(v) + 4)}" text-anchor="end" font-size="12">${+v.toFixed(2)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 20}" text-anchor="middle" font-size="13">forget top-1 drop (points)</text>`,
    `<text transform="translate(20 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="13">retain top-1 drop (points)</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const path = s.points.map(([x, y], k) => `${k ? 'L' : 'M'}${r(X(x))} ${r(Y(y))}`).join('');
    out.push(`<path d="${path}" fill="none" stroke="${c}" stroke-width="2"/>`);
    for (const [x, y] of s.points) out.push(`<circle cx="${r(X(x))}" cy="${r(Y(y))}" r="3.5" fill="${c}"/>`);
    const ly = M.top + 14 + i * 22;
    out.push(`<line x1="${M.left + pw + 14}" y1="${ly}" x2="${M.left + pw + 38}" y2="${ly}" stroke="${c}" stroke-width="2"/>`,
      `<text x="${M.left + pw + 44}" y="${ly + 4}" font-size="12">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

export function renderTradeoffPng(series: readonly TradeoffSeries[], title: string): Buffer {
  return rasterizeSvg(renderTradeoffSvg(series, title), W);
}
