/**
 * Evidence that selective pruning removes a capability: on the bundled demo model, forget Python,
 * retain English prose (JavaScript as an extra set), selective versus random pruning of the same
 * number of neurons, FF-only and FF + attention. Prints a Markdown table (the README's).
 *
 *   npx tsx bench/evidence.ts [--steps 5] [--ff-frac 0.02] [--attn-frac 0.02] [--device cpu]
 *
 * The selectivity goal of issue 14 (--goal): at the first step where forget (Python) top-1 has
 * fallen by at least 30% of its value, the relative fall of retain (prose) top-1 should be at most
 * a tenth of it (a ratio >= 10). Prints that step and ratio for selective pruning under several
 * levers (scoring statistic, attention neurons, step size):
 *
 *   npx tsx bench/evidence.ts --goal [--steps 15] [--variants abs,rms,...]
 */
import { parseArgs } from 'node:util';
import { loadDataset, loadModel, runtimeInfo, selectivePrune, type PruneReport, type Scoring } from '../lib/index.js';
import { DEMO_SETTINGS, demoAssets } from '../lib/cli/demo.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: DEMO_SETTINGS.steps },
    'ff-frac': { type: 'string', default: DEMO_SETTINGS.ffFrac },
    'attn-frac': { type: 'string', default: '0.02' },
    device: { type: 'string', default: 'cpu' },
    goal: { type: 'boolean', default: false },
    variants: { type: 'string' },
  },
});

/** The goal's measure on a report: the first step where forget top-1 fell >= 30% (relative), and the ratio there. */
export function selectivityAtGoal(r: PruneReport, forgetFall = 0.3): { step: number; forgetRel: number; retainRel: number; ratio: number } | null {
  const f0 = r.steps[0].metrics.forget.top1, r0 = r.steps[0].metrics.retain.top1;
  for (const s of r.steps.slice(1)) {
    const forgetRel = (f0 - s.metrics.forget.top1) / f0;
    const retainRel = (r0 - s.metrics.retain.top1) / r0;
    if (forgetRel >= forgetFall) return { step: s.step, forgetRel, retainRel, ratio: retainRel > 0 ? forgetRel / retainRel : Infinity };
  }
  return null;
}

/** Selective pruning on the demo model with one lever changed. */
export async function runVariant(v: { ffFrac: number; attnFrac: number; scoring: Scoring; steps: number }, device = 'cpu'): Promise<PruneReport> {
  const model = await loadModel(demoAssets.model, { device });
  // Stop once the goal's step is reached (the report keeps every finished step).
  const stop = new AbortController();
  try {
    return await selectivePrune(model, {
      forget: loadDataset(demoAssets.python), retain: loadDataset(demoAssets.prose),
      ffFrac: v.ffFrac, attnFrac: v.attnFrac, steps: v.steps, scoring: v.scoring, seed: 0,
      collectTokens: Number(DEMO_SETTINGS.collectTokens), evalTokens: Number(DEMO_SETTINGS.evalTokens), evalFraction: Number(DEMO_SETTINGS.evalFraction),
      signal: stop.signal,
      onStep: (state) => { if (selectivityAtGoal(state.report)) stop.abort(); },
    });
  } finally {
    await model.dispose();
  }
}

const GOAL_VARIANTS: Record<string, { ffFrac: number; attnFrac: number; scoring: Scoring }> = {
  'abs, FF 2%': { ffFrac: 0.02, attnFrac: 0, scoring: 'abs' },
  'rms, FF 2%': { ffFrac: 0.02, attnFrac: 0, scoring: 'rms' },
  'freq, FF 2%': { ffFrac: 0.02, attnFrac: 0, scoring: 'freq' },
  'std, FF 2%': { ffFrac: 0.02, attnFrac: 0, scoring: 'std' },
  'sqrt, FF 2%': { ffFrac: 0.02, attnFrac: 0, scoring: 'sqrt' },
  'abs, FF 1%': { ffFrac: 0.01, attnFrac: 0, scoring: 'abs' },
  'abs, FF 2% + attn 1%': { ffFrac: 0.02, attnFrac: 0.01, scoring: 'abs' },
  'abs, FF 2% + attn 2%': { ffFrac: 0.02, attnFrac: 0.02, scoring: 'abs' },
  'abs, attn 2% only': { ffFrac: 0, attnFrac: 0.02, scoring: 'abs' },
};

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

if (import.meta.url === `file://${process.argv[1]}` && values.goal) {
  const steps = Number(values.steps === DEMO_SETTINGS.steps ? 15 : values.steps);
  const names = values.variants ? values.variants.split(';') : Object.keys(GOAL_VARIANTS);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const t0 = performance.now();
  console.log(`Selectivity goal on the bundled model (LibTorch ${runtimeInfo().torchVersion}, ${values.device}): first step where Python top-1 fell >= 30%`);
  console.log('\n| variant | step | neurons pruned | Python (forget) fall | prose (retain) fall | ratio |\n| --- | --- | --- | --- | --- | --- |');
  for (const name of names) {
    const v = GOAL_VARIANTS[name];
    if (!v) throw new Error(`unknown variant ${name}; known: ${Object.keys(GOAL_VARIANTS).join('; ')}`);
    const r = await runVariant({ ...v, steps }, values.device);
    const g = selectivityAtGoal(r);
    const at = g ? r.steps[g.step] : r.steps[r.steps.length - 1];
    const neurons = `${at.pruned.ff.reduce((a, b) => a + b, 0)} FF + ${at.pruned.attn.reduce((a, b) => a + b, 0)} attn`;
    console.log(g ? `| ${name} | ${g.step} | ${neurons} | -${pct(g.forgetRel)} | -${pct(g.retainRel)} | ${g.ratio.toFixed(1)} |`
      : `| ${name} | not reached in ${steps} steps | ${neurons} | — | — | — |`);
  }
  console.log(`\n(${((performance.now() - t0) / 1000).toFixed(0)} s)`);
} else if (import.meta.url === `file://${process.argv[1]}`) {
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
