/**
 * The steps of a PruneReport as a plain-text table: one row per step with the neurons pruned so far
 * (FF and attention totals), then for each evaluated set its top-1, top-10, top-1 skipping the most
 * common tokens, and loss.
 */
import type { PruneReport, SetMetrics, StepReport } from '../pipeline.js';

/** forget, retain, then the extra sets in the order they were given (and any other set reported). */
export function reportSetNames(report: PruneReport): string[] {
  const names = ['forget', 'retain', ...Object.keys(report.options?.sets?.evals ?? {})];
  for (const step of report.steps) {
    for (const name of Object.keys(step.metrics)) if (!names.includes(name)) names.push(name);
  }
  return names;
}

const total = (xs: readonly number[] | undefined) => (xs ?? []).reduce((a, b) => a + b, 0);

/** Cumulative pruned neurons at a step: counts and shares of all FF / attention neurons. */
export function prunedAt(report: PruneReport, step: StepReport): { ff: number; attn: number; ffShare: number; attnShare: number } {
  const ff = total(step.pruned?.ff);
  const attn = total(step.pruned?.attn);
  const ffAll = report.model.nLayers * report.model.dMlp;
  const attnAll = report.model.nLayers * report.model.attnNeurons;
  return { ff, attn, ffShare: ffAll > 0 ? ff / ffAll : 0, attnShare: attnAll > 0 ? attn / attnAll : 0 };
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A fraction as a percentage with one decimal ("12.3%"); "n/a" when not a number (e.g. NaN saved as null). */
export function percent(v: unknown): string {
  return isNum(v) ? `${(v * 100).toFixed(1)}%` : 'n/a';
}

function fixed(v: unknown, digits: number): string {
  return isNum(v) ? v.toFixed(digits) : 'n/a';
}

interface Column {
  header: string;
  /** The set whose metric this is (for the group header line), or undefined. */
  group?: string;
  cell: (step: StepReport) => string;
}

export function formatStepsTable(report: PruneReport): string {
  const sets = reportSetNames(report);
  const metric = (set: string, pick: (m: SetMetrics) => string) => (s: StepReport) => {
    const m = s.metrics?.[set];
    return m ? pick(m) : '-';
  };
  const columns: Column[] = [
    { header: 'step', cell: (s) => String(s.step) },
    { header: 'ff pruned', cell: (s) => { const p = prunedAt(report, s); return `${p.ff} (${percent(p.ffShare)})`; } },
    { header: 'attn pruned', cell: (s) => { const p = prunedAt(report, s); return `${p.attn} (${percent(p.attnShare)})`; } },
  ];
  for (const set of sets) {
    columns.push(
      { header: 'top1', group: set, cell: metric(set, (m) => percent(m.top1)) },
      { header: 'top10', group: set, cell: metric(set, (m) => percent(m.topk)) },
      { header: 'top1-skip', group: set, cell: metric(set, (m) => percent(m.top1Skip)) },
      { header: 'loss', group: set, cell: metric(set, (m) => fixed(m.loss, 3)) },
    );
  }
  const rows = report.steps.map((s) => columns.map((c) => c.cell(s)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => r[i].length)));
  // A set's name must fit over its four columns.
  for (const set of sets) {
    const idx = columns.map((c, i) => (c.group === set ? i : -1)).filter((i) => i >= 0);
    const span = idx.reduce((n, i) => n + widths[i], 0) + 2 * (idx.length - 1);
    if (set.length > span) widths[idx[idx.length - 1]] += set.length - span;
  }
  const sep = '  ';
  const groupGap = '   ';
  const join = (cells: string[]) => {
    let line = '';
    cells.forEach((cell, i) => {
      if (i > 0) line += columns[i].group !== undefined && columns[i].group !== columns[i - 1].group ? groupGap : sep;
      line += cell;
    });
    return line.trimEnd();
  };
  // Group line: each set's name left-aligned over its columns, underlined.
  const groupCells: string[] = [];
  const ruleCells: string[] = [];
  for (let i = 0; i < columns.length;) {
    const g = columns[i].group;
    let j = i;
    while (j < columns.length && columns[j].group === g) j++;
    const width = widths.slice(i, j).reduce((n, w) => n + w, 0) + sep.length * (j - i - 1);
    groupCells.push((g ?? '').padEnd(width));
    ruleCells.push(g === undefined ? ' '.repeat(width) : '-'.repeat(width));
    i = j;
  }
  const joinGroups = (cells: string[]) => cells.join(groupGap).trimEnd();
  const lines = [
    joinGroups(groupCells),
    joinGroups(ruleCells),
    join(columns.map((c, i) => c.header.padStart(widths[i]))),
    ...rows.map((r) => join(r.map((cell, i) => cell.padStart(widths[i])))),
  ];
  return lines.join('\n') + '\n';
}
