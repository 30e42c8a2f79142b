/**
 * Reports of a pruning run: the steps as a text table, the accuracy plot as SVG and PNG, and all of
 * them written into a folder.
 */
import { join } from 'node:path';
import type { PruneReport } from '../pipeline.js';
import { writeFileAtomic } from './files.js';
import { renderPlotPng, renderPlotSvg } from './plot.js';
import { formatStepsTable } from './table.js';

export { formatStepsTable, reportSetNames } from './table.js';
export { renderPlotSvg, renderPlotPng, PLOT_WIDTH, PLOT_HEIGHT, type PngOptions } from './plot.js';
export { writeFileAtomic } from './files.js';

/** The files writeReport() writes, by name. */
export const REPORT_FILES = ['report.json', 'steps.txt', 'plot.svg', 'plot.png'] as const;

/**
 * Writes report.json, steps.txt (the table), plot.svg and plot.png into `dir` (created if needed),
 * each atomically (a temporary file, then a rename). Returns the paths written.
 */
export async function writeReport(dir: string, report: PruneReport): Promise<string[]> {
  const files: Array<[string, string | Uint8Array]> = [
    ['report.json', JSON.stringify(report, null, 2) + '\n'],
    ['steps.txt', formatStepsTable(report)],
    ['plot.svg', renderPlotSvg(report)],
    ['plot.png', renderPlotPng(report)],
  ];
  const written: string[] = [];
  for (const [name, data] of files) {
    const file = join(dir, name);
    await writeFileAtomic(file, data);
    written.push(file);
  }
  return written;
}
