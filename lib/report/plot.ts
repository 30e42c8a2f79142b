/**
 * The plot of a PruneReport: top-1 accuracy of forget, retain and every extra set against the
 * pruning step, as a self-contained SVG (generic font family, no external resources), and the
 * same plot as a PNG rasterized by resvg with a font shipped as an npm package, so that text
 * renders identically on machines without any system fonts.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { ExciseError } from '../errors.js';
import type { PruneReport } from '../pipeline.js';
import { percent, prunedAt, reportSetNames } from './table.js';

/** Size of the plot in SVG user units (and PNG pixels at scale 1). */
export const PLOT_WIDTH = 800;
export const PLOT_HEIGHT = 480;

const MARGIN = { left: 72, right: 190, top: 70, bottom: 92 };
const FONT = 'sans-serif';
const COLORS: Record<string, string> = { forget: '#d62728', retain: '#1f77b4' };
const EXTRA_COLORS = ['#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
type Marker = 'circle' | 'square' | 'triangle' | 'diamond';
const MARKERS: Marker[] = ['circle', 'square', 'triangle', 'diamond'];

const STOPPED: Record<string, string> = {
  aborted: 'interrupted',
  stopWhen: 'stopped early: stop condition met',
  exhausted: 'stopped: no unpruned neuron left',
};

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

const r1 = (v: number) => Math.round(v * 10) / 10;

/** A round tick step giving about `target` ticks over [0, max]. */
function niceStep(max: number, target: number): number {
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function marker(kind: Marker, x: number, y: number, color: string): string {
  const a = (v: number) => r1(v);
  switch (kind) {
    case 'circle': return `<circle cx="${a(x)}" cy="${a(y)}" r="4" fill="${color}"/>`;
    case 'square': return `<rect x="${a(x - 3.6)}" y="${a(y - 3.6)}" width="7.2" height="7.2" fill="${color}"/>`;
    case 'triangle': return `<path d="M${a(x)} ${a(y - 4.8)}L${a(x + 4.6)} ${a(y + 3.4)}L${a(x - 4.6)} ${a(y + 3.4)}Z" fill="${color}"/>`;
    case 'diamond': return `<path d="M${a(x)} ${a(y - 5)}L${a(x + 5)} ${a(y)}L${a(x)} ${a(y + 5)}L${a(x - 5)} ${a(y)}Z" fill="${color}"/>`;
  }
}

/** The model's name for the title: its folder's name, else its architecture. */
function modelName(report: PruneReport): string {
  const src = report.model.source;
  return src ? basename(src.replace(/[\\/]+$/, '')) || src : report.model.architecture;
}

export function renderPlotSvg(report: PruneReport): string {
  const W = PLOT_WIDTH, H = PLOT_HEIGHT;
  const x0 = MARGIN.left, x1 = W - MARGIN.right, y0 = H - MARGIN.bottom, y1 = MARGIN.top;
  const steps = [...report.steps].sort((a, b) => a.step - b.step);
  const sets = reportSetNames(report);
  const opts = report.options;

  // Axes ranges: x over the steps, y from 0 to a round value above the highest accuracy.
  const lastStep = steps.length > 0 ? steps[steps.length - 1].step : 0;
  const xMax = Math.max(1, lastStep);
  let maxAcc = 0;
  for (const s of steps) for (const set of sets) {
    const v = s.metrics?.[set]?.top1;
    if (typeof v === 'number' && Number.isFinite(v)) maxAcc = Math.max(maxAcc, v * 100);
  }
  let yStep: number, yMax: number;
  if (maxAcc <= 0) {
    yStep = 20; yMax = 100;
  } else {
    yStep = niceStep(maxAcc * 1.08, 5);
    yMax = Math.min(100, Math.ceil((maxAcc * 1.02) / yStep) * yStep);
    if (yMax <= maxAcc && yMax < 100) yMax += yStep;
  }
  const px = (step: number) => x0 + (step / xMax) * (x1 - x0);
  const py = (pct: number) => y0 - (pct / yMax) * (y0 - y1);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);

  // Title and subtitle.
  const method = opts.selection === 'random' ? 'random pruning (baseline)' : 'selective pruning';
  out.push(`<text x="${W / 2}" y="28" text-anchor="middle" font-size="17" font-weight="bold" fill="#222">${esc(clip(`${modelName(report)}: ${method}`, 80))}</text>`);
  const scoring = opts.scoring ? (opts.scoring.ff === opts.scoring.attn || opts.attnFrac === 0 ? opts.scoring.ff : `${opts.scoring.ff}/${opts.scoring.attn}`) : '';
  const perStep = [`${r1(opts.ffFrac * 100)}% FF`, ...(opts.attnFrac > 0 ? [`${r1(opts.attnFrac * 100)}% attention`] : [])].join(' + ');
  const subtitle = [
    report.model.architecture,
    ...(opts.selection === 'random' ? [] : [`scoring ${scoring}`]),
    `${perStep} neurons per step`,
    ...(report.stoppedBy && report.stoppedBy !== 'steps' ? [STOPPED[report.stoppedBy] ?? `stopped: ${report.stoppedBy}`] : []),
  ].join('  ·  ');
  out.push(`<text x="${W / 2}" y="48" text-anchor="middle" font-size="12" fill="#555">${esc(clip(subtitle, 110))}</text>`);

  // Grid and y ticks.
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    const y = r1(py(v));
    out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="${v === 0 ? '#333' : '#e3e3e3'}" stroke-width="1"/>`);
    out.push(`<text x="${x0 - 8}" y="${y + 4}" text-anchor="end" fill="#333">${esc(`${+v.toFixed(2)}%`)}</text>`);
  }
  out.push(`<line x1="${x0}" y1="${y1}" x2="${x0}" y2="${y0}" stroke="#333" stroke-width="1"/>`);
  out.push(`<text transform="translate(20 ${r1((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle" font-size="13" fill="#222">top-1 accuracy</text>`);

  // X ticks: the step, and below it the share of neurons pruned so far.
  const showAttn = opts.attnFrac > 0 || steps.some((s) => prunedAt(report, s).attn > 0);
  const stride = (() => {
    const minGap = 64;
    const perStepPx = (x1 - x0) / xMax;
    for (const k of [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000]) if (k * perStepPx >= minGap) return k;
    return Math.ceil(xMax / 10);
  })();
  const byStep = new Map(steps.map((s) => [s.step, s]));
  for (let st = 0; st <= xMax; st += stride) {
    const x = r1(px(st));
    out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 5}" stroke="#333" stroke-width="1"/>`);
    out.push(`<text x="${x}" y="${y0 + 19}" text-anchor="middle" fill="#222">${st}</text>`);
    const s = byStep.get(st);
    if (s) {
      const p = prunedAt(report, s);
      out.push(`<text x="${x}" y="${y0 + 34}" text-anchor="middle" font-size="10.5" fill="#666">${esc(`${percent(p.ffShare)} FF`)}</text>`);
      if (showAttn) out.push(`<text x="${x}" y="${y0 + 47}" text-anchor="middle" font-size="10.5" fill="#666">${esc(`${percent(p.attnShare)} attn`)}</text>`);
    }
  }
  const xTitle = `pruning step  (below each: share of ${showAttn ? 'FF and attention' : 'FF'} neurons pruned so far)`;
  out.push(`<text x="${r1((x0 + x1) / 2)}" y="${showAttn ? H - 16 : H - 28}" text-anchor="middle" font-size="13" fill="#222">${esc(xTitle)}</text>`);

  // Series.
  const legend: string[] = [];
  sets.forEach((set, k) => {
    const color = COLORS[set] ?? EXTRA_COLORS[(k - 2) % EXTRA_COLORS.length];
    const mk = MARKERS[k % MARKERS.length];
    const dash = k >= 2 ? ' stroke-dasharray="6 3"' : '';
    // Consecutive finite points form a line; a missing value breaks it.
    let path = '';
    let pen = false;
    const points: string[] = [];
    const values: number[] = [];
    for (const s of steps) {
      const v = s.metrics?.[set]?.top1;
      if (typeof v !== 'number' || !Number.isFinite(v)) { pen = false; continue; }
      const x = px(s.step), y = py(v * 100);
      path += `${pen ? 'L' : 'M'}${r1(x)} ${r1(y)}`;
      pen = true;
      points.push(marker(mk, x, y, color));
      values.push(v);
    }
    out.push(`<g class="series" data-set="${esc(set)}">`);
    if (path) out.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2.2" stroke-linejoin="round"${dash}/>`);
    out.push(...points, '</g>');
    // Legend entry: sample line, marker, name and first -> last value.
    const ly = y1 + 10 + k * 40;
    const lx = x1 + 22;
    legend.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${color}" stroke-width="2.2"${dash}/>`);
    legend.push(marker(mk, lx + 13, ly, color));
    legend.push(`<text x="${lx + 34}" y="${ly + 4}" font-size="13" fill="#222">${esc(clip(set, 18))}</text>`);
    const change = values.length > 0 ? `${percent(values[0])} → ${percent(values[values.length - 1])}` : 'no data';
    legend.push(`<text x="${lx + 34}" y="${ly + 20}" font-size="11" fill="#555">${esc(change)}</text>`);
  });
  out.push(`<text x="${x1 + 22}" y="${y1 - 8}" font-size="11" fill="#555">top-1, first → last step</text>`);
  out.push(...legend);
  if (steps.length === 0) {
    out.push(`<text x="${r1((x0 + x1) / 2)}" y="${r1((y0 + y1) / 2)}" text-anchor="middle" font-size="14" fill="#888">no steps yet</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface PngOptions {
  /** Pixels per SVG unit (default 1: a PLOT_WIDTH x PLOT_HEIGHT image). */
  scale?: number;
}

interface ResvgModule {
  Resvg: new (svg: string, options: Record<string, unknown>) => { render(): { asPng(): Buffer } };
}

let resvgCache: { mod: ResvgModule; fontFiles: string[] } | undefined;

function loadResvg(): { mod: ResvgModule; fontFiles: string[] } {
  if (resvgCache) return resvgCache;
  const require = createRequire(import.meta.url);
  let mod: ResvgModule;
  try {
    mod = require('@resvg/resvg-js') as ResvgModule;
  } catch (err) {
    throw new ExciseError('ERR_INTERNAL', `renderPlotPng needs the @resvg/resvg-js package (no prebuilt binary for ${process.platform}-${process.arch}?): ${(err as Error).message}`, { cause: err });
  }
  // DejaVu Sans from the dejavu-fonts-ttf package: the text then renders without system fonts.
  const fontFiles: string[] = [];
  for (const f of ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf']) {
    try {
      const file = require.resolve(`dejavu-fonts-ttf/ttf/${f}`);
      if (existsSync(file)) fontFiles.push(file);
    } catch {
      // fall back to the system's fonts below
    }
  }
  resvgCache = { mod, fontFiles };
  return resvgCache;
}

/** The plot as a PNG (white background). */
export function renderPlotPng(report: PruneReport, options: PngOptions = {}): Buffer {
  const scale = options.scale ?? 1;
  if (typeof scale !== 'number' || !(scale > 0 && scale <= 8)) throw new ExciseError('ERR_INVALID_ARGUMENT', `renderPlotPng: scale must be in (0, 8], received ${scale}`);
  const { mod, fontFiles } = loadResvg();
  const bundled = fontFiles.length > 0;
  const resvg = new mod.Resvg(renderPlotSvg(report), {
    fitTo: { mode: 'width', value: Math.round(PLOT_WIDTH * scale) },
    background: '#ffffff',
    font: {
      loadSystemFonts: !bundled,
      fontFiles,
      defaultFontFamily: bundled ? 'DejaVu Sans' : 'sans-serif',
      ...(bundled ? { sansSerifFamily: 'DejaVu Sans' } : {}),
    },
  });
  return resvg.render().asPng();
}

/** Any SVG of this module's fonts as a PNG (white background): e.g. the comparison plot of excise compare. */
export function rasterizeSvg(svg: string, width: number): Buffer {
  const { mod, fontFiles } = loadResvg();
  const bundled = fontFiles.length > 0;
  return new mod.Resvg(svg, {
    fitTo: { mode: 'width', value: Math.round(width) },
    background: '#ffffff',
    font: { loadSystemFonts: !bundled, fontFiles, defaultFontFamily: bundled ? 'DejaVu Sans' : 'sans-serif', ...(bundled ? { sansSerifFamily: 'DejaVu Sans' } : {}) },
  }).render().asPng();
}
