/**
 * excise prune: the whole method, with a report, plots and a resumable state written after every
 * step, and the pruned model saved at the end.
 *
 * Everything is checked before anything is written: flags, the output folder, the datasets (each
 * must yield a document, and so must both parts of the forget and retain splits), forget and
 * retain not being the same data, and the model. Ctrl-C aborts through an AbortSignal: the pipeline
 * stops after the current batch, the report so far is written and the command exits 130 saying how
 * to resume; a second Ctrl-C exits at once.
 *
 * Test hook: EXCISE_TEST_SIGINT_AFTER_STEP=K makes the command send itself SIGINT right after
 * step K's state is written, so tests interrupt a run at a known step through the real Ctrl-C path.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join, relative, resolve, isAbsolute } from 'node:path';
import { ExciseError } from '../errors.js';
import { sameData, splitDataset, type Dataset } from '../data/datasets.js';
import type { Dtype, Model } from '../model.js';
import { SCORINGS, type Scoring } from '../method/scoring.js';
import { selectivePrune, type PipelineState, type PruneReport, type ProgressEvent } from '../pipeline.js';
import { formatStepsTable, writeFileAtomic, writeReport } from '../report/index.js';
import type { ProcessGroup } from '../distributed.js';
import { groupFromEnv, isDistributedWorker, launchFlags, LAUNCH_HELP, LAUNCH_OPTIONS, launchSettings, launchWorkers, workerDevice } from './launch.js';
import { percent, prunedAt } from '../report/table.js';
import {
  UsageError, flag, MASKING_OPTIONS, parseCommandArgs, parseMaskingFlags, parseCount, parseDevice, parseDevices, parseDtype, parseFraction, str, type OptionSpec, type ParsedValues,
} from './args.js';
import {
  checkMaxLength, checkWritable, hasDocument, invocation, loadTextModel, openDataset, removeCreated, reportDatasets, shellQuote, type CliIO, type Command,
} from './common.js';
import { dataHelp, DATA_OPTIONS, longDocsOption, parseDataFlags, type LongDocs, type SetDataOptions } from './data.js';
import { checkModelPath, checkpointDtype } from '../model_path.js';
import { pruneFromStats } from './prune_stats.js';

/** The settings of a run, as saved in state.json (`cli`) and in the model's excise.json (`options`). */
export interface PruneSettings {
  model: string;
  forget: string;
  retain: string;
  evals: Record<string, string>;
  ffFrac: number;
  attnFrac: number;
  steps: number;
  collectTokens: number;
  evalTokens: number;
  scoring: Scoring;
  selection: 'selective' | 'random';
  seed: number;
  evalFraction: number;
  iterative: boolean;
  stopForgetBelow?: number;
  stopRetainDrop?: number;
  device?: string;
  /** --devices: one model split over these devices. */
  devices?: string[];
  dtype?: Dtype;
  batchSize?: number;
  maxLength?: number;
  /** Per set (forget, retain, an --eval name): --text-field, --format, --ext. */
  data?: Record<string, SetDataOptions>;
  longDocs?: LongDocs;
  /** The dtype the pruned model is saved in (default: the checkpoint's). */
  saveDtype?: Dtype;
  /** Masked LMs: --mask-fraction / --mask-seed (selectivePrune's maskFraction / maskSeed). */
  maskFraction?: number;
  maskSeed?: number;
}

/** state.json: the pipeline's state plus the settings it ran with. */
export type SavedState = PipelineState & { cli: PruneSettings };

const DEFAULTS = {
  evals: {}, ffFrac: 0.02, attnFrac: 0, steps: 5, collectTokens: 100_000, evalTokens: 100_000, scoring: 'abs' as Scoring,
  selection: 'selective' as const, seed: 0, evalFraction: 0.1, iterative: true,
};

/** The flag of each setting (for messages). */
const FLAG_OF: Record<keyof PruneSettings, string> = {
  model: '--model', forget: '--forget', retain: '--retain', evals: '--eval', ffFrac: '--ff-frac', attnFrac: '--attn-frac',
  steps: '--steps', collectTokens: '--collect-tokens', evalTokens: '--eval-tokens', scoring: '--scoring', selection: '--random',
  seed: '--seed', evalFraction: '--eval-fraction', iterative: '--collect-once', stopForgetBelow: '--stop-forget-below',
  stopRetainDrop: '--stop-retain-drop', device: '--device', devices: '--devices', dtype: '--dtype', batchSize: '--batch-size', maxLength: '--max-length',
  data: '--text-field / --format / --ext', longDocs: '--long-docs', saveDtype: '--save-dtype',
  maskFraction: '--mask-fraction', maskSeed: '--mask-seed',
};

/** Settings a resumed run may change: they do not change the result. */
const FREE_ON_RESUME: ReadonlySet<keyof PruneSettings> = new Set(['device', 'devices', 'batchSize', 'saveDtype']);

/** What the command writes into --out (removed by --overwrite; nothing else is touched). */
const OUTPUTS = ['state.json', 'report.json', 'steps.txt', 'plot.svg', 'plot.png', 'model'];

const OPTIONS: OptionSpec = {
  model: { type: 'string' },
  forget: { type: 'string' },
  retain: { type: 'string' },
  eval: { type: 'string', multiple: true },
  'ff-frac': { type: 'string' },
  'attn-frac': { type: 'string' },
  steps: { type: 'string' },
  'collect-tokens': { type: 'string' },
  'eval-tokens': { type: 'string' },
  scoring: { type: 'string' },
  random: { type: 'boolean' },
  seed: { type: 'string' },
  'eval-fraction': { type: 'string' },
  'collect-once': { type: 'boolean' },
  'stop-forget-below': { type: 'string' },
  'stop-retain-drop': { type: 'string' },
  device: { type: 'string' },
  devices: { type: 'string' },
  dtype: { type: 'string' },
  'batch-size': { type: 'string' },
  'max-length': { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  overwrite: { type: 'boolean' },
  'save-dtype': { type: 'string' },
  'forget-stats': { type: 'string' },
  'retain-stats': { type: 'string' },
  ...MASKING_OPTIONS,
  ...DATA_OPTIONS,
  ...LAUNCH_OPTIONS,
};

const HELP = `Usage: excise prune --model DIR --forget SPEC --retain SPEC [options]
       excise prune --model DIR --forget-stats F.safetensors --retain-stats R.safetensors [options]

Prunes the neurons that matter far more to the forget data than to the retain data, step by step,
evaluating every set after each step. Writes into --out: report.json, steps.txt, plot.svg,
plot.png and state.json after every step, and the pruned model (model/, with excise.json) at the end.

A dataset SPEC is a file or a folder: a text or source file is one document, a .jsonl / .jsonl.gz
file holds one per line (field "text"), a .parquet file one per row (column "text"); a folder is
read for such files (--ext py: only its .py files). Each of forget and retain is split
deterministically: --eval-fraction of its documents for evaluation, the rest for statistics.

With --forget-stats and --retain-stats (files written by "excise collect" or "excise merge"), it
prunes once from those statistics instead (--ff-frac / --attn-frac of the neurons, --scoring),
evaluates any --eval sets before and after, and saves the pruned model and report.json.

Required:
  --model DIR               Hugging Face model folder (with tokenizer.json)
  --forget SPEC             the capability to remove
  --retain SPEC             what the model must keep doing

Method:
  --eval NAME=SPEC          an extra set evaluated at every step (repeatable)
  --ff-frac F               fraction of all FF neurons pruned per step, in [0, 1] (default 0.02)
  --attn-frac F             fraction of all attention neurons pruned per step, in [0, 1] (default 0)
  --steps N                 pruning steps (default 5)
  --collect-tokens N        tokens of each set for statistics per step (default 100k)
  --eval-tokens N           tokens of each set for evaluation (default 100k)
  --scoring S               importance: abs, freq, rms, std or sqrt (default abs)
  --random                  the baseline: prune as many neurons at random
  --seed N                  seeds the split and --random (default 0)
  --eval-fraction F         share of each dataset held out for evaluation (default 0.1)
  --collect-once            collect statistics once instead of before every step
  --stop-forget-below F     stop once forget top-1 accuracy is below F
  --stop-retain-drop F      stop once retain top-1 accuracy dropped by more than F from step 0
  --mask-fraction F         masked LMs (RoBERTa): share of the non-special tokens each evaluation
                            masks and predicts, in (0, 1] (default 0.15)
  --mask-seed N             masked LMs: seeds which tokens are masked (default 0)

Runtime:
  --device D                cpu (default), cuda, cuda:N, or auto (layers spread over the GPUs)
  --devices D1,D2,...       one model split over these devices (e.g. cuda:0,cuda:1)
  --dtype T                 float32, float16 or bfloat16 (default: float32 on CPU)
  --batch-size N            documents per batch (default 8)
  --max-length N            tokens per window (default: the model's context, at most 1024)

Data:
${dataHelp(true)}
Output:
  --out DIR                 output folder (default ./<model folder name>-excised)
  --resume                  continue the interrupted run in --out (its settings come from state.json)
  --overwrite               replace the outputs of an earlier run in --out
  --save-dtype T            the dtype of the saved model: float32, float16 or bfloat16
                            (default: the checkpoint's, whatever --dtype computed in)

Ctrl-C stops after the current batch, writes the report so far and exits with code 130, printing
the command that continues the run (--resume). A second Ctrl-C exits at once.
${LAUNCH_HELP}`;

/** The settings given on the command line (only those given), each checked. */
function givenSettings(values: ParsedValues): Partial<PruneSettings> {
  const s: Partial<PruneSettings> = {};
  const t = (name: string) => str(values, name);
  let v: string | undefined;
  if ((v = t('model')) !== undefined) s.model = resolve(v);
  if ((v = t('forget')) !== undefined) s.forget = resolve(v);
  if ((v = t('retain')) !== undefined) s.retain = resolve(v);
  const evalSpecs = values.eval as string[] | undefined;
  if (evalSpecs !== undefined) {
    s.evals = {};
    for (const e of evalSpecs) {
      const eq = e.indexOf('=');
      const name = eq > 0 ? e.slice(0, eq) : '';
      const spec = eq > 0 ? e.slice(eq + 1) : '';
      if (!name || !spec) throw new UsageError(`--eval: expected NAME=SPEC (e.g. --eval wiki=data/wiki.jsonl), received ${JSON.stringify(e)}`);
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new UsageError(`--eval: the name ${JSON.stringify(name)} may hold only letters, digits, "_", "." and "-"`);
      if (name === 'forget' || name === 'retain') throw new UsageError(`--eval: the name "${name}" is reserved; choose another`);
      if (name in s.evals) throw new UsageError(`--eval: the name "${name}" is given twice`);
      s.evals[name] = resolve(spec);
    }
  }
  if ((v = t('ff-frac')) !== undefined) s.ffFrac = parseFraction('ff-frac', v, { allowZero: true });
  if ((v = t('attn-frac')) !== undefined) s.attnFrac = parseFraction('attn-frac', v, { allowZero: true });
  if ((v = t('steps')) !== undefined) s.steps = parseCount('steps', v);
  if ((v = t('collect-tokens')) !== undefined) s.collectTokens = parseCount('collect-tokens', v, { suffixes: true });
  if ((v = t('eval-tokens')) !== undefined) s.evalTokens = parseCount('eval-tokens', v, { suffixes: true });
  if ((v = t('scoring')) !== undefined) {
    if (!SCORINGS.includes(v as Scoring)) throw new UsageError(`--scoring: expected one of ${SCORINGS.join(', ')}, received ${JSON.stringify(v)}`);
    s.scoring = v as Scoring;
  }
  if (flag(values, 'random')) s.selection = 'random';
  if ((v = t('seed')) !== undefined) s.seed = parseCount('seed', v, { allowZero: true });
  if ((v = t('eval-fraction')) !== undefined) {
    s.evalFraction = parseFraction('eval-fraction', v, { allowZero: false });
    if (s.evalFraction >= 1) throw new UsageError(`--eval-fraction: expected a fraction in (0, 1), received ${JSON.stringify(v)}`);
  }
  if (flag(values, 'collect-once')) s.iterative = false;
  if ((v = t('stop-forget-below')) !== undefined) s.stopForgetBelow = parseFraction('stop-forget-below', v, { allowZero: false });
  if ((v = t('stop-retain-drop')) !== undefined) s.stopRetainDrop = parseFraction('stop-retain-drop', v, { allowZero: true });
  const device = parseDevice(t('device'));
  if (device !== undefined) s.device = device;
  const devices = parseDevices(t('devices'));
  if (devices !== undefined) s.devices = devices;
  if (device !== undefined && devices !== undefined) throw new UsageError('--device and --devices: give one of them (--devices splits one model over several devices)');
  const dtype = parseDtype(t('dtype'));
  if (dtype !== undefined) s.dtype = dtype;
  if ((v = t('batch-size')) !== undefined) s.batchSize = parseCount('batch-size', v);
  if ((v = t('max-length')) !== undefined) s.maxLength = parseCount('max-length', v);
  const flags = parseDataFlags(values, ['forget', 'retain', ...Object.keys(s.evals ?? {})]);
  if (['text-field', 'format', 'ext'].some((f) => values[f] !== undefined)) {
    s.data = {};
    for (const set of ['forget', 'retain', ...Object.keys(s.evals ?? {})]) {
      const o = flags.forSet(set);
      if (Object.keys(o).length > 0) s.data[set] = o;
    }
  }
  if (flags.longDocs !== undefined) s.longDocs = flags.longDocs;
  const saveDtype = t('save-dtype');
  if (saveDtype !== undefined) s.saveDtype = parseDtype(saveDtype, '--save-dtype');
  Object.assign(s, parseMaskingFlags(values));
  return s;
}

function describeSetting(v: unknown): string {
  return typeof v === 'object' && v !== null ? JSON.stringify(v) : v === undefined ? '(not set)' : String(v);
}

/** On --resume: the saved settings; a flag given again must agree with them. */
export function resumeSettings(saved: PruneSettings, given: Partial<PruneSettings>, stateFile: string): PruneSettings {
  const merged: PruneSettings = { ...saved };
  // --device and --devices say where the model goes, one or the other: either given on resume
  // replaces the interrupted run's placement (a saved --devices would otherwise win over a new --device).
  if (given.device !== undefined || given.devices !== undefined) {
    delete merged.device;
    delete merged.devices;
  }
  for (const key of Object.keys(given) as Array<keyof PruneSettings>) {
    const value = given[key];
    if (FREE_ON_RESUME.has(key)) {
      (merged as unknown as Record<string, unknown>)[key] = value;
      continue;
    }
    if (JSON.stringify(value) !== JSON.stringify(saved[key])) {
      throw new UsageError(`--resume: ${FLAG_OF[key]} ${describeSetting(value)} differs from the interrupted run's ${describeSetting(saved[key])} (${stateFile}); leave it out to continue with the run's settings`);
    }
  }
  return merged;
}

function readSavedState(out: string): SavedState {
  const file = join(out, 'state.json');
  if (!existsSync(file)) throw new UsageError(`--resume: ${file} not found: there is no interrupted run to continue (start without --resume)`);
  let parsed: SavedState;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', `${file}: cannot be read as JSON (${(err as Error).message})`, { cause: err });
  }
  if (parsed?.version !== 1 || typeof parsed.cli !== 'object' || !Array.isArray(parsed.selections) || typeof parsed.report !== 'object') {
    throw new ExciseError('ERR_INVALID_ARGUMENT', `${file}: not a state written by excise prune`);
  }
  return parsed;
}

function checkOutputFolder(out: string, overwrite: boolean): void {
  checkWritable('--out', out, 'folder');
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new ExciseError('ERR_OUTPUT_EXISTS', `--out ${out} is a file, not a folder`);
  if (readdirSync(out).length === 0 || overwrite) return;
  const hint = existsSync(join(out, 'state.json')) ? ' (or --resume to continue the run it holds)' : '';
  throw new ExciseError('ERR_OUTPUT_EXISTS', `--out ${out} is not empty; pass --overwrite to replace its outputs${hint}`);
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** One line per finished step. */
function stepLine(report: PruneReport, totalSteps: number): string {
  const s = report.steps[report.steps.length - 1];
  const base = report.steps[0];
  const sets = Object.keys(s.metrics);
  const metrics = sets.map((name) => {
    const v = s.metrics[name].top1;
    const delta = s.step > 0 && base?.metrics[name] ? ` (${v - base.metrics[name].top1 >= 0 ? '+' : ''}${((v - base.metrics[name].top1) * 100).toFixed(1)})` : '';
    return `${name} ${percent(v)}${delta}`;
  }).join(', ');
  const secs = s.seconds.collect + s.seconds.prune + s.seconds.evaluate;
  if (s.step === 0) return `step 0/${totalSteps} (before pruning): top-1 ${metrics} [${secs.toFixed(1)}s]`;
  const p = prunedAt(report, s);
  const attn = p.attn > 0 || s.newlyPruned.attn > 0 ? `, ${p.attn} attn (${percent(p.attnShare)})` : '';
  return `step ${s.step}/${totalSteps}: pruned ${s.newlyPruned.ff} FF + ${s.newlyPruned.attn} attn, total ${p.ff} FF (${percent(p.ffShare)})${attn}; top-1 ${metrics} [${secs.toFixed(1)}s]`;
}

function progressLabel(e: ProgressEvent, steps: number): string {
  return `step ${e.step}/${steps} ${e.phase === 'collect' ? 'collecting' : 'evaluating'} ${e.set}`;
}

/** The output files of a run, kept or removed after a failure. */
function cleanupAfterFailure(out: string, firstCreated: string | undefined, resumable: boolean, io: CliIO, stateFile: string, hint: string): void {
  if (resumable) {
    io.stderr.write(`excise: the run failed; the state after its last finished step is in ${stateFile}\n`);
    io.stderr.write(`excise: after fixing the cause, continue with: ${hint}\n`);
    return;
  }
  // Nothing worth keeping: leave no trace (the folder this run created, or the files it wrote).
  if (firstCreated) removeCreated(firstCreated);
  else for (const name of OUTPUTS) rmSync(join(out, name), { recursive: true, force: true });
}

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'prune a capability out of a model (report, plots, resumable state, pruned model)',
  help: HELP,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs('prune', argv, OPTIONS);
    const launch = launchSettings(values, io.env);
    if (values['forget-stats'] !== undefined || values['retain-stats'] !== undefined) {
      if (launch || isDistributedWorker(io.env)) throw new UsageError('--nproc / --nnodes apply to pruning from datasets (--forget, --retain), not from statistics files');
      return pruneFromStats(values, io);
    }
    const given = givenSettings(values);
    const resume = flag(values, 'resume');
    const overwrite = flag(values, 'overwrite');
    if (resume && overwrite) throw new UsageError('--resume continues the run in --out and --overwrite replaces it: give one of them');
    const outFlag = str(values, 'out');
    if (resume && outFlag === undefined) throw new UsageError('--resume needs --out, the folder of the interrupted run');

    // 1. Settings: from the flags and defaults, or on --resume from state.json.
    let saved: SavedState | undefined;
    let settings: PruneSettings;
    let out: string;
    if (resume) {
      out = resolve(outFlag!);
      saved = readSavedState(out);
      settings = resumeSettings(saved.cli, given, join(out, 'state.json'));
      checkWritable('--out', out, 'folder');
    } else {
      for (const name of ['model', 'forget', 'retain'] as const) {
        if (given[name] === undefined) throw new UsageError(`missing required option --${name} for "excise prune" (see "excise prune --help")`);
      }
      settings = { ...DEFAULTS, ...given } as PruneSettings;
      out = resolve(outFlag ?? `${basename(settings.model)}-excised`);
      checkOutputFolder(out, overwrite);
    }
    if (settings.ffFrac === 0 && settings.attnFrac === 0) throw new UsageError('--ff-frac and --attn-frac are both 0: nothing would be pruned');
    if (isInside(join(out, 'model'), settings.model) || isInside(settings.model, join(out, 'model'))) {
      throw new UsageError(`--out ${out}: the pruned model would be saved into (or over) the model's own folder ${settings.model}; choose another --out`);
    }
    checkModelPath(resume ? settings.model : str(values, 'model')!, settings.model);

    // 2. The datasets: each must yield a document; forget and retain must differ, and both parts of their splits be non-empty.
    const dataOf = (set: string) => settings.data?.[set] ?? {};
    const forget = await openDataset('--forget', settings.forget, undefined, dataOf('forget'));
    const retain = await openDataset('--retain', settings.retain, undefined, dataOf('retain'));
    if (sameData(forget, retain)) {
      throw new UsageError(`--forget and --retain are the same data (${forget.source}): the retain set must be different data`);
    }
    const evals: Record<string, Dataset> = {};
    for (const [name, spec] of Object.entries(settings.evals)) evals[name] = await openDataset(`--eval ${name}`, spec, name, dataOf(name));
    for (const [label, ds] of [['--forget', forget], ['--retain', retain]] as const) {
      const parts = splitDataset(ds, { evalFraction: settings.evalFraction, seed: settings.seed });
      for (const [part, pds] of [['evaluation', parts.evaluate], ['statistics', parts.collect]] as const) {
        if (!(await hasDocument(pds))) {
          throw new ExciseError('ERR_DATASET_EMPTY', `${label}: no document of ${ds.source} falls in the ${part} part of the split (--eval-fraction ${settings.evalFraction}, --seed ${settings.seed}); the dataset needs more documents`);
        }
      }
    }

    if (launch) return launchWorkers('prune', argv, launch, io);
    reportDatasets(io, [['--forget', forget], ['--retain', retain], ...Object.entries(evals).map(([n, ds]) => [`--eval ${n}`, ds] as [string, Dataset])]);

    // 3. Ctrl-C: the first aborts after the current batch, the second exits at once.
    const controller = new AbortController();
    let interrupts = 0;
    let finishing = false;
    const onSigint = () => {
      interrupts++;
      if (interrupts === 1) {
        controller.abort();
        io.progress.log(finishing
          ? 'excise: interrupt: finishing writing the outputs (press Ctrl-C again to exit now)'
          : 'excise: interrupt: stopping after the current batch (press Ctrl-C again to exit now)');
      } else {
        io.progress.clear();
        io.stderr.write('excise: interrupted again: exiting now\n');
        process.exit(130);
      }
    };
    process.on('SIGINT', onSigint);
    let model: Model | undefined;
    const stateFile = join(out, 'state.json');
    const relaunch = isDistributedWorker(io.env) ? launchFlags(argv) : '';
    const resumeHint = `${invocation(io.env)} prune --out ${shellQuote(out)} --resume${relaunch}`;
    let group: ProcessGroup | undefined;
    let firstCreated: string | undefined;
    let wroteAnything = false;
    let lastState: PipelineState | undefined = saved ? (({ cli: _cli, ...state }) => state)(saved) : undefined;
    try {
      // 4. Several ranks: join the group (every rank has checked its flags; nothing is written yet). The model.
      group = await groupFromEnv(io.env);
      model = await loadTextModel(settings.model, settings.devices
        ? { devices: settings.devices, dtype: settings.dtype }
        : { device: workerDevice(settings.device, io.env), dtype: settings.dtype });
      checkMaxLength(model, settings.maxLength);
      if (saved && saved.report.model.architecture !== model.config.architecture) {
        throw new ExciseError('ERR_INVALID_ARGUMENT', `--resume: the interrupted run pruned a ${saved.report.model.architecture}, but ${settings.model} is a ${model.config.architecture}`);
      }
      const saveDtype = settings.saveDtype ?? checkpointDtype(settings.model) ?? model.dtype;
      if (controller.signal.aborted) {
        io.stderr.write('excise: interrupted before pruning started; nothing was written\n');
        return 130;
      }

      // 5. Only now is anything written, by rank 0 alone when several run.
      const writes = !group || group.isMain;
      if (overwrite && writes) for (const name of OUTPUTS) rmSync(join(out, name), { recursive: true, force: true });
      try {
        if (writes) firstCreated = mkdirSync(out, { recursive: true });
      } catch (err) {
        throw new ExciseError('ERR_IO', `--out ${out}: cannot create the folder: ${(err as Error).message}`, { cause: err });
      }
      const writeState = (state: PipelineState) => writeFileAtomic(stateFile, JSON.stringify({ ...state, cli: settings } satisfies SavedState) + '\n');
      const hookStep = io.env.EXCISE_TEST_SIGINT_AFTER_STEP !== undefined ? Number(io.env.EXCISE_TEST_SIGINT_AFTER_STEP) : undefined;

      const stopWhen = settings.stopForgetBelow !== undefined || settings.stopRetainDrop !== undefined
        ? { forgetTop1Below: settings.stopForgetBelow, retainTop1DropAbove: settings.stopRetainDrop } : undefined;
      const previouslyFinished = lastState !== undefined && (lastState.completedSteps >= settings.steps || lastState.report.stoppedBy === 'stopWhen' || lastState.report.stoppedBy === 'exhausted');
      let report: PruneReport;
      if (previouslyFinished) {
        // The run had finished (the model was perhaps not saved yet): re-apply its selections.
        for (const sel of lastState!.selections) await model.prune(sel);
        report = lastState!.report;
      } else {
        report = await selectivePrune(model, {
          forget, retain, evals,
          ffFrac: settings.ffFrac, attnFrac: settings.attnFrac, steps: settings.steps, iterative: settings.iterative,
          collectTokens: settings.collectTokens, evalTokens: settings.evalTokens, scoring: settings.scoring,
          selection: settings.selection, seed: settings.seed, evalFraction: settings.evalFraction,
          batchSize: settings.batchSize, maxLength: settings.maxLength, stopWhen,
          ...(settings.maskFraction !== undefined ? { maskFraction: settings.maskFraction } : {}),
          ...(settings.maskSeed !== undefined ? { maskSeed: settings.maskSeed } : {}),
          ...(settings.longDocs ? { longDocs: settings.longDocs } : {}),
          signal: controller.signal,
          resume: lastState,
          ...(group ? { group } : {}),
          onProgress: (e) => {
            if (e.phase !== 'prune') io.progress.update(progressLabel(e, settings.steps), e.tokens, e.totalTokens);
          },
          onStep: async (state) => {
            await writeState(state);
            wroteAnything = true;
            await writeReport(out, state.report);
            lastState = state;
            io.progress.log(stepLine(state.report, settings.steps));
            if (hookStep === state.completedSteps) process.kill(process.pid, 'SIGINT');
          },
        });
      }
      io.progress.clear();
      finishing = true;
      if (group) {
        // Interrupted: the peers may be inside a collective, so no barrier; close (they stop too).
        if (report.stoppedBy === 'aborted') await group.fail(new ExciseError('ERR_ABORTED', 'interrupted'));
        else await group.destroy();
        if (!writes) return report.stoppedBy === 'aborted' ? 130 : 0;
      }

      if (report.stoppedBy === 'aborted') {
        if (!lastState) {
          // Stopped while evaluating the unpruned model: there is nothing to report or resume.
          removeCreated(firstCreated);
          io.stderr.write('excise: interrupted before step 0 finished; nothing was written\n');
          return 130;
        }
        await writeReport(out, report);
        io.stdout.write(formatStepsTable(report));
        io.stderr.write(`excise: interrupted: stopped after step ${lastState.completedSteps} of ${settings.steps}; the state is in ${stateFile}\n`);
        io.stderr.write(`excise: to continue, run: ${resumeHint}\n`);
        return 130;
      }

      // 6. Finished: the final report and state, then the pruned model (in the checkpoint's dtype unless --save-dtype).
      await writeReport(out, report);
      if (lastState) await writeState({ ...lastState, report });
      await model.save(join(out, 'model'), { overwrite: true, dtype: saveDtype, metadata: { report, options: settings } });
      io.stdout.write(formatStepsTable(report));
      const why = report.stoppedBy === 'steps' ? '' : ` (stopped early: ${report.stoppedBy === 'stopWhen' ? 'a stop condition was met' : 'no unpruned neuron left to select'})`;
      const dtypeNote = saveDtype === model.dtype ? '' : ` (saved in ${saveDtype}${settings.saveDtype ? '' : ', the checkpoint\'s dtype'}; computed in ${model.dtype}${settings.saveDtype ? '' : '; --save-dtype chooses'})`;
      io.stdout.write(`\npruned model: ${join(out, 'model')}${dtypeNote}${why}\nreport: ${join(out, 'report.json')}, ${join(out, 'steps.txt')}, ${join(out, 'plot.png')}\n`);
      return 0;
    } catch (err) {
      io.progress.clear();
      if (group && !group.isMain) throw err;  // rank 0 owns the outputs
      // Keep a resumable state (a finished step of this run, or the run being resumed); else leave nothing behind.
      cleanupAfterFailure(out, firstCreated, (wroteAnything || saved !== undefined) && lastState !== undefined, io, stateFile, resumeHint);
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
      await model?.dispose();
    }
  },
};
