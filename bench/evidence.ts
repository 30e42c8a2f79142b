/**
 * Evidence that selective pruning removes a capability: on the bundled demo model, forget Python,
 * retain English prose (JavaScript as an extra set), selective versus random pruning of the same
 * number of neurons, FF-only and FF + attention. Prints a Markdown table (the README's).
 *
 *   npx tsx bench/evidence.ts [--steps 5] [--ff-frac 0.02] [--attn-frac 0.02] [--device cpu]
 */
import { parseArgs } from 'node:util';
import { loadDataset, loadModel, runtimeInfo, selectivePrune, type PruneReport } from '../lib/index.js';
import { DEMO_SETTINGS, demoAssets } from '../lib/cli/demo.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: DEMO_SETTINGS.steps },
    'ff-frac': { type: 'string', default: DEMO_SETTINGS.ffFrac },
    'attn-frac': { type: 'string', default: '0.02' },
    device: { type: 'string', default: 'cpu' },
  },
});

export async function runDemo(selection: 'selective' | 'random', ffFrac: number, attnFrac: number, steps: number, device = 'cpu'): Promise<PruneReport> {
  const model = await loadModel(demoAssets.model, { device });
  try {
    return await selectivePrune(model, {
      forget: loadDataset(demoAssets.python),
      retain: loadDataset(demoAssets.prose),
      evals: { javascript: loadDataset(demoAssets.javascript) },
      ffFrac, attnFrac, steps, selection, seed: 0,
      collectTokens: Number(DEMO_SETTINGS.collectTokens),
      evalTokens: Number(DEMO_SETTINGS.evalTokens),
      evalFraction: Number(DEMO_SETTINGS.evalFraction),
    });
  } finally {
    await model.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const steps = Number(values.steps);
  const ff = Number(values['ff-frac']);
  const attn = Number(values['attn-frac']);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const row = (label: string, r: PruneReport) => {
    const first = r.steps[0].metrics;
    const last = r.steps[r.steps.length - 1].metrics;
    const cell = (set: string) => `${pct(first[set].top1)} → ${pct(last[set].top1)} (${((last[set].top1 - first[set].top1) * 100).toFixed(1)})`;
    return `| ${label} | ${r.totalPruned.ff} FF + ${r.totalPruned.attn} attn | ${cell('forget')} | ${cell('retain')} | ${cell('javascript')} |`;
  };
  const t0 = performance.now();
  const lines = [
    `Bundled demo model, ${steps} steps, LibTorch ${runtimeInfo().torchVersion} on ${values.device}; top-1 accuracy before → after (change, points)`,
    '',
    '| pruning | neurons pruned | Python (forget) | English prose (retain) | JavaScript |',
    '| --- | --- | --- | --- | --- |',
  ];
  lines.push(row(`selective, FF ${pct(ff)}/step`, await runDemo('selective', ff, 0, steps, values.device)));
  lines.push(row(`random, FF ${pct(ff)}/step`, await runDemo('random', ff, 0, steps, values.device)));
  lines.push(row(`selective, FF ${pct(ff)} + attn ${pct(attn)}/step`, await runDemo('selective', ff, attn, steps, values.device)));
  lines.push(row(`random, FF ${pct(ff)} + attn ${pct(attn)}/step`, await runDemo('random', ff, attn, steps, values.device)));
  console.log(lines.join('\n'));
  console.log(`\n(${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
