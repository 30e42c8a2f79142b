// Reports of a pruning run: the steps table, the SVG plot and its PNG rendering, and writeReport.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatStepsTable, PLOT_HEIGHT, PLOT_WIDTH, renderPlotPng, renderPlotSvg, writeReport } from '../lib/report/index.js';
import type { PruneReport, SetMetrics, StepReport } from '../lib/pipeline.js';

function metrics(top1: number, topk: number, top1Skip: number, loss: number): SetMetrics {
  return { tokens: 1000, loss, perplexity: Math.exp(loss), top1, topk, top1Skip, topkSkip: top1Skip + 0.1 };
}

/** 3 steps of 20 FF (and, with attn, 8 attention) neurons on a 2-layer model with 500 FF and 64 attention neurons per layer. */
function syntheticReport({ attn = false, extraName = 'code <&> "x"' } = {}): PruneReport {
  const steps: StepReport[] = [];
  for (let s = 0; s <= 3; s++) {
    steps.push({
      step: s,
      metrics: {
        forget: metrics(0.5 - 0.1 * s, 0.8 - 0.05 * s, 0.25 - 0.05 * s, 2 + 0.25 * s),
        retain: metrics(0.4 - 0.01 * s, 0.7, 0.2, 2.5 + 0.01 * s),
        [extraName]: metrics(0.3 - 0.02 * s, 0.6, NaN, 3.125),
      },
      pruned: { ff: [10 * s, 10 * s], attn: attn ? [4 * s, 4 * s] : [0, 0] },
      newlyPruned: { ff: s === 0 ? 0 : 20, attn: s === 0 || !attn ? 0 : 8 },
      seconds: { collect: 1, prune: 0.1, evaluate: 1 },
    });
  }
  return {
    model: { architecture: 'LlamaForCausalLM', nLayers: 2, dMlp: 500, attnNeurons: 64, source: '/models/tiny-llama' },
    options: {
      ffFrac: 0.02, attnFrac: attn ? 0.0625 : 0, steps: 3, iterative: true, collectTokens: 1000, evalTokens: 1000,
      scoring: { ff: 'abs', attn: 'abs' }, eps: { ff: 1e-3, attn: 1e-4 }, selection: 'selective', seed: 0, evalFraction: 0.1,
      sets: { forget: '/data/code', retain: '/data/prose', evals: { [extraName]: '/data/x' } },
    },
    steps,
    stoppedBy: 'steps',
    totalPruned: { ff: 60, attn: attn ? 24 : 0 },
  };
}

function pngSize(png: Buffer): { width: number; height: number } {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(png.readUInt32BE(8)).toBe(13); // IHDR length
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe('formatStepsTable', () => {
  const report = syntheticReport({ extraName: 'wiki' });
  const table = formatStepsTable(report);
  const lines = table.trimEnd().split('\n');

  it('has a group line naming the sets, a header and one aligned row per step', () => {
    expect(lines).toHaveLength(3 + 4);
    expect(lines[0]).toMatch(/^\s+forget\s+retain\s+wiki$/);
    expect(lines[1]).toMatch(/^\s+-+\s+-+\s+-+$/);
    expect(lines[2].trim().split(/\s{2,}/)).toEqual(['step', 'ff pruned', 'attn pruned', ...Array(3).fill(['top1', 'top10', 'top1-skip', 'loss']).flat()]);
    // Right-aligned columns: header and rows end at the same column.
    for (const l of lines.slice(1)) expect(l.length).toBe(lines[2].length);
    // Each set's name and rule span its four columns.
    const rule = /-+/.exec(lines[1])!;
    expect(lines[0].indexOf('forget')).toBe(rule.index);
    expect(lines[3].slice(rule.index, rule.index + 5)).toBe('50.0%');
    expect(lines[2].indexOf('loss') + 'loss'.length).toBe(rule.index + rule[0].length);
  });

  it('shows pruned totals and percentages with one decimal', () => {
    const cells = (i: number) => lines[3 + i].trim().split(/\s{2,}/);
    expect(cells(0)).toEqual(['0', '0 (0.0%)', '0 (0.0%)', '50.0%', '80.0%', '25.0%', '2.000', '40.0%', '70.0%', '20.0%', '2.500', '30.0%', '60.0%', 'n/a', '3.125']);
    expect(cells(3).slice(0, 7)).toEqual(['3', '60 (6.0%)', '0 (0.0%)', '20.0%', '65.0%', '10.0%', '2.750']);
    expect(cells(2)[7]).toBe('38.0%');
  });

  it('reads a report that went through JSON (NaN saved as null)', () => {
    const again = formatStepsTable(JSON.parse(JSON.stringify(report)));
    expect(again).toBe(table);
  });

  it('counts attention neurons', () => {
    const t = formatStepsTable(syntheticReport({ attn: true }));
    expect(t.split('\n')[6].trim().split(/\s{2,}/).slice(0, 3)).toEqual(['3', '60 (6.0%)', '24 (18.8%)']);
  });
});

describe('renderPlotSvg', () => {
  const report = syntheticReport();
  const svg = renderPlotSvg(report);

  it('is one self-contained SVG document with a generic font', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain(`width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}"`);
    expect(svg).toContain('font-family="sans-serif"');
    expect(svg).not.toMatch(/href=|@import|url\(/);
  });

  it('draws one series per set with a point per step', () => {
    for (const set of ['forget', 'retain', 'code &lt;&amp;&gt; &quot;x&quot;']) {
      const group = new RegExp(`<g class="series" data-set="${set.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}">\\n<path d="([^"]+)"`).exec(svg);
      expect(group, set).not.toBeNull();
      expect(group![1].match(/[ML]/g)).toHaveLength(4);
    }
    expect(svg).not.toContain('<&>'); // names are escaped
  });

  it('labels the axes, the legend and the title', () => {
    expect(svg).toContain('top-1 accuracy');
    expect(svg).toContain('pruning step');
    expect(svg).toContain('tiny-llama: selective pruning');
    expect(svg).toContain('scoring abs');
    expect(svg).toContain('>forget<');
    expect(svg).toContain('>retain<');
    expect(svg).toContain('50.0% → 20.0%'); // forget, first to last step
    for (const share of ['0.0% FF', '2.0% FF', '4.0% FF', '6.0% FF']) expect(svg).toContain(`>${share}<`);
    expect(svg).not.toContain('attn<');
    const random = renderPlotSvg({ ...syntheticReport({ attn: true }), options: { ...report.options, selection: 'random', attnFrac: 0.0625 } });
    expect(random).toContain('random pruning (baseline)');
    expect(random).toContain('>18.8% attn<');
  });

  it('handles a report without steps', () => {
    const empty = renderPlotSvg({ ...report, steps: [] });
    expect(empty).toContain('no steps yet');
  });
});

describe('renderPlotPng', () => {
  it('is a PNG of the plot size (times the scale)', () => {
    const report = syntheticReport();
    expect(pngSize(renderPlotPng(report))).toEqual({ width: PLOT_WIDTH, height: PLOT_HEIGHT });
    expect(pngSize(renderPlotPng(report, { scale: 2 }))).toEqual({ width: 2 * PLOT_WIDTH, height: 2 * PLOT_HEIGHT });
  });

  it('renders text (the bundled font loads without system fonts)', () => {
    // Only the title's text differs: without a usable font the two images would be identical.
    const a = renderPlotPng(syntheticReport());
    const b = renderPlotPng({ ...syntheticReport(), model: { ...syntheticReport().model, source: '/models/another-name' } });
    expect(a.equals(b)).toBe(false);
  });
});

describe('writeReport', () => {
  it('writes report.json, steps.txt, plot.svg and plot.png, and no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'excise-report-'));
    try {
      const report = syntheticReport();
      await writeReport(join(dir, 'out'), report);
      expect(readdirSync(join(dir, 'out')).sort()).toEqual(['plot.png', 'plot.svg', 'report.json', 'steps.txt']);
      expect(JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(report)));
      expect(readFileSync(join(dir, 'out', 'steps.txt'), 'utf8')).toBe(formatStepsTable(report));
      expect(readFileSync(join(dir, 'out', 'plot.svg'), 'utf8')).toBe(renderPlotSvg(report));
      expect(pngSize(readFileSync(join(dir, 'out', 'plot.png')))).toEqual({ width: PLOT_WIDTH, height: PLOT_HEIGHT });
      // Rewriting replaces the files in place.
      await writeReport(join(dir, 'out'), { ...report, stoppedBy: 'aborted' });
      expect(JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8')).stoppedBy).toBe('aborted');
      expect(readdirSync(join(dir, 'out'))).toHaveLength(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
