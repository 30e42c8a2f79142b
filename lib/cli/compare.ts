/**
 * excise compare: selective pruning and baselines (random neurons, Wanda-style scores, gradient
 * ascent, gradient difference) on the same data and budget steps, with the same evaluations, a
 * relearning attack on each, one table and one plot (retain drop against forget drop).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { COMPARE_METHODS, compareMethods, formatCompareTable, type CompareMethod, type CompareOptions, type CompareReport } from '../compare.js';
import { renderTradeoffPng, renderTradeoffSvg } from '../report/tradeoff.js';
import { loadOptions, MODEL_OPTIONS, parseCount, parseFraction, parsePositiveNumber, parseCommandArgs, requireStr, str, delimiterFlag, UsageError, type OptionSpec, type ParsedValues } from './args.js';
import { checkWritable, openDataset, type CliIO, type Command } from './common.js';

const OPTIONS: OptionSpec = {
  model: { type: 'string' },
  forget: { type: 'string' },
  retain: { type: 'string' },
  methods: { type: 'string' },
  steps: { type: 'string' },
  'ff-frac': { type: 'string' },
  'attn-frac': { type: 'string' },
  'collect-tokens': { type: 'string' },
  'eval-tokens': { type: 'string' },
  'eval-fraction': { type: 'string' },
  seed: { type: 'string' },
  'grad-steps': { type: 'string' },
  'grad-lr': { type: 'string' },
  choices: { type: 'string', multiple: true },
  'target-delimiter': { type: 'string' },
  mia: { type: 'string', multiple: true },
  'attack-data': { type: 'string' },
  'attack-steps': { type: 'string' },
  'attack-lr': { type: 'string' },
  out: { type: 'string' },
  ...MODEL_OPTIONS,
};

const HELP = `Usage: excise compare --model DIR --forget SPEC --retain SPEC --out DIR [options]

Runs selective pruning and baselines on the same data with the same budget steps and evaluations,
then a relearning attack on each, and writes compare.md (the table), compare.json, and
tradeoff.svg / tradeoff.png (retain top-1 drop against forget top-1 drop, per method and step).

  --methods LIST          of ${COMPARE_METHODS.join(', ')} (default: all)
  --steps N               budget steps (default 5)
  --ff-frac F             pruning methods: FF neurons per step (default 0.02)
  --attn-frac F           pruning methods: attention neurons per step (default 0)
  --grad-steps N          gradient methods: optimizer steps per budget step (default 5)
  --grad-lr X             gradient methods: learning rate (default 3e-4)
  --collect-tokens N, --eval-tokens N, --eval-fraction F, --seed N   as excise prune
  --choices SET=FILE      multiple-choice set evaluated before and after (repeatable; SET forget, retain, ...)
  --target-delimiter S    between question and choice (default " ")
  --mia SET=MEMBERS,NONMEMBERS   membership inference per set: documents the model saw, held-out ones (repeatable)
  --attack-data SPEC      relearning attack data (forget kind, disjoint from evaluation); none: no attack
  --attack-steps N        attack steps (default 20); --attack-lr X (default 1e-4)
  --device D, --devices D1,D2,..., --dtype T
`;

function pairs(values: ParsedValues, name: string): Array<[string, string]> {
  return ((values[name] as string[] | undefined) ?? []).map((e) => {
    const i = e.indexOf('=');
    if (i <= 0 || i === e.length - 1) throw new UsageError(`--${name}: expected SET=VALUE, received ${JSON.stringify(e)}`);
    return [e.slice(0, i), e.slice(i + 1)];
  });
}

/** Writes compare.json, compare.md, tradeoff.svg and tradeoff.png into `out`. */
export function writeCompareReport(out: string, report: CompareReport, command: string): string {
  mkdirSync(out, { recursive: true });
  const table = formatCompareTable(report);
  const title = `retain drop vs forget drop (${report.options.steps} budget steps)`;
  const series = report.methods.map((m) => ({
    name: m.method,
    points: m.curve.map((c) => [100 * (report.base.forgetTop1 - c.forgetTop1), 100 * (report.base.retainTop1 - c.retainTop1)] as [number, number]),
  }));
  writeFileSync(join(out, 'compare.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(out, 'compare.md'), `${table}\n\nMade by: \`${command}\` (${report.seconds.toFixed(0)} s)\n`);
  writeFileSync(join(out, 'tradeoff.svg'), renderTradeoffSvg(series, title));
  writeFileSync(join(out, 'tradeoff.png'), renderTradeoffPng(series, title));
  return table;
}

export async function runCompare(options: CompareOptions, out: string, io: CliIO, command: string): Promise<number> {
  const report = await compareMethods({ ...options, onProgress: (line) => io.stderr.write(`${line}\n`) });
  const table = writeCompareReport(out, report, command);
  io.stdout.write(`${table}\n\nwrote ${join(out, 'compare.md')}, compare.json, tradeoff.svg, tradeoff.png (${report.seconds.toFixed(0)} s)\n`);
  return 0;
}

export const compareCommand: Command = {
  name: 'compare',
  summary: 'selective pruning against baselines: same data, evaluations, relearning attack; one table and plot',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('compare', argv, OPTIONS);
    const model = requireStr(values, 'model', 'compare');
    const out = resolve(requireStr(values, 'out', 'compare'));
    checkWritable('--out', out, 'folder');
    const methods = (str(values, 'methods') ?? COMPARE_METHODS.join(',')).split(',').map((m) => m.trim()) as CompareMethod[];
    for (const m of methods) if (!COMPARE_METHODS.includes(m)) throw new UsageError(`--methods: unknown method ${JSON.stringify(m)} (expected ${COMPARE_METHODS.join(', ')})`);
    const forget = await openDataset('--forget', requireStr(values, 'forget', 'compare'), 'forget');
    const retain = await openDataset('--retain', requireStr(values, 'retain', 'compare'), 'retain');
    const membership: NonNullable<CompareOptions['membership']> = {};
    for (const [set, v] of pairs(values, 'mia')) {
      const [members, nonMembers] = v.split(',');
      if (!members || !nonMembers) throw new UsageError(`--mia: expected SET=MEMBERS,NONMEMBERS, received ${JSON.stringify(v)}`);
      membership[set] = { members: await openDataset(`--mia ${set}`, members), nonMembers: await openDataset(`--mia ${set}`, nonMembers) };
    }
    const attackData = str(values, 'attack-data');
    const targetDelimiter = delimiterFlag(values);
    const options: CompareOptions = {
      model, ...loadOptions(values), forget, retain, methods,
      steps: parseCount('steps', str(values, 'steps') ?? '5'),
      ffFrac: parseFraction('ff-frac', str(values, 'ff-frac') ?? '0.02', { allowZero: true }),
      attnFrac: parseFraction('attn-frac', str(values, 'attn-frac') ?? '0', { allowZero: true }),
      collectTokens: parseCount('collect-tokens', str(values, 'collect-tokens') ?? '100000', { suffixes: true }),
      evalTokens: parseCount('eval-tokens', str(values, 'eval-tokens') ?? '100000', { suffixes: true }),
      evalFraction: parseFraction('eval-fraction', str(values, 'eval-fraction') ?? '0.1', { allowZero: false }),
      seed: parseCount('seed', str(values, 'seed') ?? '0', { allowZero: true }),
      gradient: { steps: parseCount('grad-steps', str(values, 'grad-steps') ?? '5'), lr: parsePositiveNumber('grad-lr', str(values, 'grad-lr') ?? '3e-4') },
      choices: Object.fromEntries(pairs(values, 'choices')),
      choicesOptions: targetDelimiter !== undefined ? { targetDelimiter } : {},
      membership,
      attack: attackData === undefined ? false : {
        data: await openDataset('--attack-data', attackData),
        steps: parseCount('attack-steps', str(values, 'attack-steps') ?? '20'),
        lr: parsePositiveNumber('attack-lr', str(values, 'attack-lr') ?? '1e-4'),
      },
    };
    return runCompare(options, out, io, `excise compare ${argv.join(' ')}`);
  },
};
