/**
 * excise attack: the relearning attack on an unlearned model. Fine-tunes all its weights for
 * --steps steps on --data (forget-distribution text that must be disjoint from the --eval sets),
 * then evaluates the --eval sets again and reports each set's change and, against the model before
 * unlearning (--reference, default the source recorded in the model's excise.json), the fraction
 * of the lost top-1 accuracy that came back.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ExciseError } from '../errors.js';
import type { Model } from '../model.js';
import type { Selection } from '../method/selection.js';
import { relearningAttack, type AttackMetrics } from '../method/unlearn.js';
import { flag, loadOptions, MODEL_OPTIONS, parseCount, parsePositiveNumber, parseCommandArgs, requireStr, str, UsageError, type OptionSpec } from './args.js';
import { loadTextModel, openDataset, type CliIO, type Command } from './common.js';

const OPTIONS: OptionSpec = {
  model: { type: 'string' },
  data: { type: 'string' },
  eval: { type: 'string', multiple: true },
  reference: { type: 'string' },
  steps: { type: 'string' },
  lr: { type: 'string' },
  'batch-size': { type: 'string' },
  'seq-length': { type: 'string' },
  'eval-tokens': { type: 'string' },
  'no-keep-pruned': { type: 'boolean' },
  json: { type: 'boolean' },
  ...MODEL_OPTIONS,
};

const HELP = `Usage: excise attack --model PRUNED --data FORGET_HELDOUT --eval NAME=SPEC... [options]

The relearning attack: fine-tunes every weight of the model for --steps steps on --data (text of
the forgotten kind, disjoint from the evaluation sets), then evaluates the --eval sets again.
Reports each set's top-1 before and after, and the recovery fraction: how much of the top-1 lost
to unlearning came back, against --reference (default: the source model named in excise.json).

  --model DIR          the unlearned model (e.g. excise prune's out/model)
  --data SPEC          fine-tuning text (file, .jsonl(.gz), .parquet, or a folder)
  --eval NAME=SPEC     a set evaluated before and after (repeatable; e.g. forget=..., retain=...)
  --reference DIR      the model before unlearning (default: excise.json's source, when present)
  --steps N            optimizer steps (default 20)
  --lr X               constant learning rate, AdamW without weight decay (default 1e-4)
  --batch-size N       rows per step (default 8)
  --seq-length N       tokens per row (default 128)
  --eval-tokens N      tokens evaluated per set (default 10000)
  --no-keep-pruned     let training move pruned weights (default: zeroed again after every step;
                       a pruned FF neuron gets no gradient either way)
  --device D, --devices D1,D2,..., --dtype T
  --json               print the report as JSON
`;

/** Marks the neurons excise.json records as pruned (their weights are zero already). */
async function reapplyRecordedPrunes(model: Model): Promise<number> {
  const file = join(model.dir!, 'excise.json');
  if (!existsSync(file)) return 0;
  const meta = JSON.parse(readFileSync(file, 'utf8')) as { prunes?: Array<{ selection: Selection }> };
  let n = 0;
  // Without meanOffset: the recorded bias change is in the saved weights already.
  for (const p of meta.prunes ?? []) {
    const r = await model.prune(p.selection);
    n += r.ff.reduce((a, b) => a + b, 0) + r.attn.reduce((a, b) => a + b, 0);
  }
  return n;
}

function recordedSource(dir: string): string | undefined {
  const file = join(dir, 'excise.json');
  if (!existsSync(file)) return undefined;
  const src = (JSON.parse(readFileSync(file, 'utf8')) as { source?: unknown }).source;
  return typeof src === 'string' && existsSync(src) && statSync(src).isDirectory() ? src : undefined;
}

export const attackCommand: Command = {
  name: 'attack',
  summary: 'relearning attack: fine-tune an unlearned model on held-out forget data, measure what returns',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('attack', argv, OPTIONS);
    const modelDir = requireStr(values, 'model', 'attack');
    const dataSpec = requireStr(values, 'data', 'attack');
    const evalSpecs = (values.eval as string[] | undefined) ?? [];
    if (evalSpecs.length === 0) throw new UsageError('attack: give at least one --eval NAME=SPEC (e.g. --eval forget=python-test.jsonl)');
    const steps = parseCount('steps', str(values, 'steps') ?? '20');
    const lr = parsePositiveNumber('lr', str(values, 'lr') ?? '1e-4');
    const batchSize = parseCount('batch-size', str(values, 'batch-size') ?? '8');
    const seqLength = parseCount('seq-length', str(values, 'seq-length') ?? '128');
    const evalTokens = parseCount('eval-tokens', str(values, 'eval-tokens') ?? '10000', { suffixes: true });
    const evals: Record<string, Awaited<ReturnType<typeof openDataset>>> = {};
    for (const e of evalSpecs) {
      const i = e.indexOf('=');
      if (i <= 0 || i === e.length - 1) throw new UsageError(`--eval: expected NAME=SPEC, received ${JSON.stringify(e)}`);
      evals[e.slice(0, i)] = await openDataset(`--eval ${e.slice(0, i)}`, e.slice(i + 1), e.slice(0, i));
    }
    const data = await openDataset('--data', dataSpec);
    const load = loadOptions(values);
    const referenceDir = str(values, 'reference') ?? recordedSource(modelDir);
    let reference: Record<string, AttackMetrics> | undefined;
    if (referenceDir !== undefined) {
      const ref = await loadTextModel(referenceDir, load);
      try {
        // A masked LM cannot be fine-tuned on next tokens: refused before the reference is evaluated.
        if (ref.config.maskedLm) throw new ExciseError('ERR_NOT_CAUSAL_LM', `--reference ${referenceDir} (${ref.config.architecture}) is a masked language model; the relearning attack trains on next-token predictions`);
        reference = {};
        for (const [name, ds] of Object.entries(evals)) {
          io.stderr.write(`reference ${referenceDir}: evaluating ${name}\n`);
          const r = await ref.evaluate(ds, { maxTokens: evalTokens });
          reference[name] = { top1: r.top1, loss: r.loss };
        }
      } finally {
        await ref.dispose();
      }
    }
    const model = await loadTextModel(modelDir, load);
    try {
      const marked = await reapplyRecordedPrunes(model);
      if (marked > 0) io.stderr.write(`${marked} pruned neurons (excise.json) ${flag(values, 'no-keep-pruned') ? 'free to move' : 'kept at zero'} during the attack\n`);
      const r = await relearningAttack(model, {
        data, evals, reference, evalTokens, steps, lr, batchSize, seqLength, keepPruned: !flag(values, 'no-keep-pruned'),
        onStep: (s, loss) => io.progress.update(`attack step ${s}/${steps} (loss ${loss.toFixed(3)})`, s, steps),
      });
      io.progress.clear();
      if (flag(values, 'json')) {
        io.stdout.write(JSON.stringify({ model: model.dir, data: data.source, reference: referenceDir ?? null, reference_metrics: reference ?? null, ...r }, null, 2) + '\n');
        return 0;
      }
      const pc = (v: number) => `${(100 * v).toFixed(1)}%`;
      const lines = [`relearning attack: ${steps} steps, lr ${lr}, ${batchSize} × ${seqLength} tokens per step on ${data.source} (${r.seconds.toFixed(1)} s)`, '',
        '| set | reference top-1 | before attack | after attack | change | recovery |', '| --- | --- | --- | --- | --- | --- |'];
      for (const name of Object.keys(evals)) {
        const rec = r.recovery[name];
        lines.push(`| ${name} | ${reference ? pc(reference[name].top1) : '—'} | ${pc(r.before[name].top1)} | ${pc(r.after[name].top1)} | ${(100 * r.change[name]).toFixed(1)} pts | ${rec === undefined ? '—' : rec === null ? 'n/a (nothing lost)' : pc(rec)} |`);
      }
      io.stdout.write(lines.join('\n') + '\n');
      if (!reference) io.stderr.write('no --reference (and no source in excise.json): recovery not computed\n');
      return 0;
    } finally {
      io.progress.clear();
      await model.dispose();
    }
  },
};


