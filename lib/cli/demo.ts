/**
 * excise demo: the method on the bundled model, with no model or data of your own and no network.
 * Forgets Python while keeping English prose, with JavaScript as an extra evaluation set, on the
 * small LLaMA-architecture model trained by scripts/train-demo.ts. It is `excise prune` with the
 * bundled assets filled in: the same table, report, plots and pruned model.
 *
 * The corpora's test splits are used (the model never trained on them), each split in half:
 * statistics from one half, metrics from the other.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ExciseError } from '../errors.js';
import { packageRoot } from '../native.js';
import { parseCommandArgs, str, flag, type OptionSpec } from './args.js';
import type { CliIO, Command } from './common.js';
import { pruneCommand } from './prune.js';
import { runCompare } from './compare.js';
import { loadDataset } from '../data/datasets.js';
import type { CompareOptions } from '../compare.js';
import type { Device } from '../model.js';

/** The bundled demo: model and corpora, inside the package. */
export const demoAssets = {
  model: join(packageRoot, 'assets', 'demo-model'),
  python: join(packageRoot, 'assets', 'corpora', 'python', 'test.jsonl.gz'),
  prose: join(packageRoot, 'assets', 'corpora', 'prose', 'test.jsonl.gz'),
  javascript: join(packageRoot, 'assets', 'corpora', 'javascript', 'test.jsonl.gz'),
};

/** The demo's method settings (see README, "Evidence"). */
/** The bundled multiple-choice sets (scripts/build-choices.ts): "which line / sentence follows?". */
export const demoChoices = {
  python: join(packageRoot, 'assets', 'choices', 'python.jsonl'),
  prose: join(packageRoot, 'assets', 'choices', 'prose.jsonl'),
  pythonFewshot: join(packageRoot, 'assets', 'choices', 'python-fewshot.jsonl'),
  proseFewshot: join(packageRoot, 'assets', 'choices', 'prose-fewshot.jsonl'),
};

/** `excise demo --compare`: its settings, fitted to about 5 minutes on 2 CPU cores. */
export const DEMO_COMPARE_SETTINGS = {
  steps: '5', ffFrac: '0.04', collectTokens: '10000', evalTokens: '5000', gradSteps: 4, gradLr: 3e-4,
  attackSteps: 20, attackLr: 3e-4, attackBatch: 4, choiceItems: 40, miaDocuments: 32,
};

export function demoCompareOptions(o: { steps?: string; ffFrac?: string; attnFrac?: string; device?: string } = {}): CompareOptions {
  const s = DEMO_COMPARE_SETTINGS;
  const train = (corpus: string) => join(packageRoot, 'assets', 'corpora', corpus, 'train.jsonl.gz');
  return {
    model: demoAssets.model, ...(o.device ? { device: o.device as Device } : {}),
    forget: loadDataset(demoAssets.python), retain: loadDataset(demoAssets.prose),
    steps: Number(o.steps ?? s.steps), ffFrac: Number(o.ffFrac ?? s.ffFrac), attnFrac: Number(o.attnFrac ?? 0),
    collectTokens: Number(s.collectTokens), evalTokens: Number(s.evalTokens), evalFraction: Number(DEMO_SETTINGS.evalFraction), seed: 0,
    gradient: { steps: s.gradSteps, lr: s.gradLr },
    choices: { forget: demoChoices.python, retain: demoChoices.prose },
    choicesOptions: { targetDelimiter: '', maxItems: s.choiceItems },
    // Members: training documents of the model; non-members: the test split it never saw.
    membership: {
      forget: { members: loadDataset(train('python')), nonMembers: loadDataset(demoAssets.python) },
      retain: { members: loadDataset(train('prose')), nonMembers: loadDataset(demoAssets.prose) },
    },
    membershipOptions: { maxDocuments: s.miaDocuments, maxLength: 128 },
    // The attack fine-tunes on Python training documents: disjoint from the test split evaluated.
    attack: { data: loadDataset(train('python')), steps: s.attackSteps, lr: s.attackLr, batchSize: s.attackBatch },
  };
}

export const DEMO_SETTINGS = { ffFrac: '0.02', steps: '10', collectTokens: '20000', evalTokens: '10000', evalFraction: '0.5' };

const OPTIONS: OptionSpec = {
  out: { type: 'string' },
  steps: { type: 'string' },
  'ff-frac': { type: 'string' },
  'attn-frac': { type: 'string' },
  random: { type: 'boolean' },
  compare: { type: 'boolean' },
  device: { type: 'string' },
};

const HELP = `Usage: excise demo [--out DIR] [options]

Forgets Python while keeping English prose, on the small model bundled with excise (no download):
iterative selective pruning of ${Number(DEMO_SETTINGS.ffFrac) * 100}% of the FF neurons per step for ${DEMO_SETTINGS.steps} steps, evaluating
Python, prose and JavaScript after every step. Prints the table of steps and writes the report,
plots (plot.png) and pruned model into --out.

Options:
  --out DIR        output folder (default ./excise-demo)
  --steps N        pruning steps (default ${DEMO_SETTINGS.steps})
  --ff-frac F      fraction of FF neurons pruned per step (default ${DEMO_SETTINGS.ffFrac})
  --attn-frac F    fraction of attention neurons pruned per step (default 0)
  --random         prune as many neurons at random instead (the baseline)
  --compare        excise compare on the bundled model instead: selective pruning against random
                   neurons, Wanda-style scores, gradient ascent and gradient difference, with
                   multiple choice, membership inference and a relearning attack (--out: compare.md,
                   tradeoff.png); --steps and --ff-frac apply
  --device D       cpu (default), cuda or cuda:N

Running it again replaces the outputs of the previous demo in --out (nothing else there is touched).
`;

export const demoCommand: Command = {
  name: 'demo',
  summary: 'forget Python, keep English, on the bundled small model (no download)',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('demo', argv, OPTIONS);
    for (const [what, path] of Object.entries(demoAssets)) {
      if (!existsSync(path)) {
        throw new ExciseError('ERR_MODEL_NOT_FOUND', `demo: the bundled ${what} (${path}) is missing from this installation`);
      }
    }
    const out = resolve(str(values, 'out') ?? 'excise-demo');
    if (flag(values, 'compare')) {
      if (flag(values, 'random')) throw new ExciseError('ERR_INVALID_ARGUMENT', 'demo: --compare runs random pruning among its methods; drop --random');
      return runCompare(demoCompareOptions({ steps: str(values, 'steps'), ffFrac: str(values, 'ff-frac'), attnFrac: str(values, 'attn-frac'), device: str(values, 'device') }), out, io,
        `excise demo --compare ${argv.join(' ')}`.trim());
    }
    const args = [
      '--model', demoAssets.model,
      '--forget', demoAssets.python,
      '--retain', demoAssets.prose,
      '--eval', `javascript=${demoAssets.javascript}`,
      '--ff-frac', str(values, 'ff-frac') ?? DEMO_SETTINGS.ffFrac,
      '--attn-frac', str(values, 'attn-frac') ?? '0',
      '--steps', str(values, 'steps') ?? DEMO_SETTINGS.steps,
      '--collect-tokens', DEMO_SETTINGS.collectTokens,
      '--eval-tokens', DEMO_SETTINGS.evalTokens,
      '--eval-fraction', DEMO_SETTINGS.evalFraction,
      '--out', out,
      // The demo owns its outputs: a rerun replaces them (prune's --overwrite touches nothing else).
      '--overwrite',
    ];
    if (flag(values, 'random')) args.push('--random');
    const device = str(values, 'device');
    if (device !== undefined) args.push('--device', device);
    io.stderr.write(`excise demo: forget = Python, retain = English prose, extra = JavaScript; bundled model ${demoAssets.model}\n`);
    return pruneCommand.run(args, io);
  },
};
