/**
 * Iterative selective pruning, the whole method end to end:
 *
 *   evaluate (step 0) -> for each step: collect statistics on forget and retain (again each step
 *   unless iterative is false), score, select the top fractions among unpruned neurons, prune,
 *   evaluate forget, retain and any extra sets.
 *
 * Statistics are collected on one part of each dataset and metrics measured on another (a
 * deterministic split), as the reference does. After every finished step the caller gets a
 * PipelineState from which `resume` continues with the same result as an uninterrupted run.
 */
import { ExciseError, invalidArgument, checkKeys, positiveInt, nonNegativeInt, checkFraction } from './errors.js';
import { splitDataset, toDataset, type Dataset, type DatasetLike } from './data/datasets.js';
import type { Model } from './model.js';
import type { EvalResult } from './method/evaluate.js';
import { scoreNeurons, SCORINGS, type NeuronScores, type Scoring } from './method/scoring.js';
import { countFor, randomSelection, selectNeurons, type Selection } from './method/selection.js';
import type { ActivationStats } from './method/stats.js';
import { checkGroup, type ProcessGroup } from './distributed.js';

/** A dataset from loadDataset(), a path / spec string, or in-memory texts or token ids. */
export type DatasetInput = DatasetLike | readonly (readonly number[])[];

export interface StopWhen {
  /** Stop once forget top-1 accuracy is below this value. */
  forgetTop1Below?: number;
  /** Stop once retain top-1 accuracy has dropped by more than this (absolute) from step 0. */
  retainTop1DropAbove?: number;
}

export interface SelectivePruneOptions {
  forget: DatasetInput;
  retain: DatasetInput;
  /** Extra sets evaluated at every step, by name. */
  evals?: Record<string, DatasetInput>;
  /** Fraction of all FF neurons pruned per step (default 0.02). */
  ffFrac?: number;
  /** Fraction of all attention neurons pruned per step (default 0). */
  attnFrac?: number;
  /** Pruning steps (default 5). */
  steps?: number;
  /** Re-collect statistics before every step (default true); false collects once. */
  iterative?: boolean;
  /** Tokens of each set used for statistics per step (default 100 000). */
  collectTokens?: number;
  /** Tokens of each set used for evaluation (default 100 000). */
  evalTokens?: number;
  /** Importance statistic for both parts, or each (default 'abs'). */
  scoring?: Scoring | { ff?: Scoring; attn?: Scoring };
  eps?: { ff?: number; attn?: number };
  /**
   * Neuron scores from each step's forget and retain statistics, instead of scoreNeurons with
   * `scoring` and `eps` (e.g. the Wanda-style baseline of excise compare).
   */
  scorer?: (forget: ActivationStats, retain: ActivationStats) => NeuronScores | Promise<NeuronScores>;
  /** 'selective' (default) or 'random': the baseline pruning as many neurons at random. */
  selection?: 'selective' | 'random';
  /** Seeds the dataset split and random selection (default 0). */
  seed?: number;
  /** Fraction of each dataset held out for evaluation (default 0.1); statistics use the rest. */
  evalFraction?: number;
  batchSize?: number;
  maxLength?: number;
  /** Documents longer than maxLength: 'split' into windows or 'truncate'd (passed to collect and evaluate). */
  longDocs?: 'split' | 'truncate';
  /**
   * Masked LMs only (RoBERTa): the share of tokens each evaluation masks (default 0.15), its seed
   * (default 0) and the mask token (default the tokenizer's <mask>), as evaluate's options of the
   * same names. Every step masks the same tokens.
   */
  maskFraction?: number;
  maskSeed?: number;
  maskTokenId?: number;
  stopWhen?: StopWhen;
  /** Stops after the current batch; resolves with the report so far (stoppedBy 'aborted'). */
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Called after every finished step (step 0 included) with the state to resume from. */
  onStep?: (state: PipelineState) => void | Promise<void>;
  /** Continue an interrupted run (the model must be the unpruned original). */
  resume?: PipelineState;
  /**
   * A process group (initDistributed()): every collection and evaluation is shared out over the
   * ranks (see collect's `group`); every rank makes the same selection and prunes its own replica,
   * and returns the same report. `onStep` is called on rank 0 only (the one that writes state).
   */
  group?: ProcessGroup;
}

export interface ProgressEvent {
  step: number;
  phase: 'evaluate' | 'collect' | 'prune';
  /** forget, retain or an extra set's name. */
  set: string;
  tokens: number;
  totalTokens: number;
}

/** Metrics of one set at one step. */
export type SetMetrics = Pick<EvalResult, 'tokens' | 'loss' | 'perplexity' | 'top1' | 'topk' | 'top1Skip' | 'topkSkip'>;

export interface StepReport {
  /** 0 is the model before pruning. */
  step: number;
  metrics: Record<string, SetMetrics>;
  /** Pruned neurons per layer after this step (cumulative). */
  pruned: { ff: number[]; attn: number[] };
  /** Neurons this step pruned. */
  newlyPruned: { ff: number; attn: number };
  seconds: { collect: number; prune: number; evaluate: number };
}

export interface PruneReport {
  model: { architecture: string; nLayers: number; dMlp: number; attnNeurons: number; source: string | null };
  options: {
    ffFrac: number; attnFrac: number; steps: number; iterative: boolean; collectTokens: number; evalTokens: number;
    scoring: { ff: Scoring; attn: Scoring }; eps: { ff: number; attn: number }; selection: 'selective' | 'random';
    seed: number; evalFraction: number; sets: { forget: string; retain: string; evals: Record<string, string> };
    /** Masked LMs: how evaluation masked tokens (see SelectivePruneOptions.maskFraction). */
    masking?: { fraction: number; seed: number; maskTokenId?: number };
  };
  steps: StepReport[];
  stoppedBy: 'steps' | 'stopWhen' | 'aborted' | 'exhausted';
  /** Total pruned neurons. */
  totalPruned: { ff: number; attn: number };
}

/** Everything needed to continue a run: the selections made so far, in order, and the report. */
export interface PipelineState {
  version: 1;
  completedSteps: number;
  selections: Selection[];
  /** Each evaluation set's most common tokens, fixed at step 0. */
  skipTokens: Record<string, number[]>;
  report: PruneReport;
}

/**
 * A pipeline dataset: loadDataset()/toDataset() for texts and paths; an array of token-id sequences
 * becomes a dataset of those sequences (for models without a tokenizer).
 */
function asDataset(input: DatasetInput, name: string): Dataset {
  if (Array.isArray(input) && input.length > 0 && typeof input[0] !== 'string') {
    const docs = input as readonly (readonly number[])[];
    const ds = {
      name,
      source: `${docs.length} token sequences`,
      async *documents() { yield* docs; },
    };
    return ds as unknown as Dataset; // documents are token ids; batching accepts both
  }
  if (Array.isArray(input) && input.length === 0) throw new ExciseError('ERR_DATASET_EMPTY', `${name}: the dataset has no documents`);
  return toDataset(input as DatasetLike);
}

function describeSet(d: Dataset): string {
  return d.source ?? d.name;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export async function selectivePrune(model: Model, options: SelectivePruneOptions): Promise<PruneReport> {
  if (options === null || typeof options !== 'object') throw invalidArgument('selectivePrune(model, options)', 'an options object', options);
  const allowed = ['forget', 'retain', 'evals', 'ffFrac', 'attnFrac', 'steps', 'iterative', 'collectTokens', 'evalTokens', 'scoring',
    'eps', 'scorer', 'selection', 'seed', 'evalFraction', 'batchSize', 'maxLength', 'longDocs', 'maskFraction', 'maskSeed', 'maskTokenId', 'stopWhen', 'signal', 'onProgress', 'onStep', 'resume', 'group'];
  checkKeys('selectivePrune', options, allowed);
  const ffFrac = checkFraction('ffFrac', options.ffFrac ?? 0.02, true);
  const attnFrac = checkFraction('attnFrac', options.attnFrac ?? 0, true);
  if (ffFrac === 0 && attnFrac === 0) throw new ExciseError('ERR_INVALID_ARGUMENT', 'ffFrac and attnFrac are both 0: nothing would be pruned');
  const steps = positiveInt('steps', options.steps ?? 5);
  const iterative = options.iterative ?? true;
  const collectTokens = positiveInt('collectTokens', options.collectTokens ?? 100_000);
  const evalTokens = positiveInt('evalTokens', options.evalTokens ?? 100_000);
  const scoringOpt = options.scoring ?? 'abs';
  const scoring = typeof scoringOpt === 'string' ? { ff: scoringOpt, attn: scoringOpt } : { ff: scoringOpt.ff ?? 'abs', attn: scoringOpt.attn ?? 'abs' };
  for (const [part, s] of Object.entries(scoring)) if (!SCORINGS.includes(s)) throw invalidArgument(`scoring (${part})`, `one of ${SCORINGS.join(', ')}`, s);
  const eps = { ff: options.eps?.ff ?? 1e-3, attn: options.eps?.attn ?? 1e-4 };
  if (options.scorer !== undefined && typeof options.scorer !== 'function') throw invalidArgument('scorer', 'a function (forget, retain) => NeuronScores', options.scorer);
  const selectionMode = options.selection ?? 'selective';
  if (selectionMode !== 'selective' && selectionMode !== 'random') throw invalidArgument('selection', "'selective' or 'random'", selectionMode);
  const seed = options.seed ?? 0;
  nonNegativeInt('seed', seed);
  const evalFraction = checkFraction('evalFraction', options.evalFraction ?? 0.1, false);
  if (evalFraction >= 1) throw invalidArgument('evalFraction', 'a fraction in (0, 1)', evalFraction);
  const batchSize = options.batchSize;
  const maxLength = options.maxLength;
  const longDocs = options.longDocs !== undefined ? { longDocs: options.longDocs } : {};
  const group = checkGroup('selectivePrune', options.group);
  const grouped = group ? { group } : {};
  // Masked LMs evaluate masked tokens (evaluate's masking options, checked there: here only whether they apply).
  const maskGiven = (['maskFraction', 'maskSeed', 'maskTokenId'] as const).filter((k) => options[k] !== undefined);
  if (!model.config.maskedLm && maskGiven.length > 0) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', `selectivePrune: ${maskGiven.join(', ')} apply to masked language models only; this model predicts the next token`);
  }
  const masking: { fraction: number; seed: number; maskTokenId?: number } | undefined = model.config.maskedLm
    ? { fraction: checkFraction('maskFraction', options.maskFraction ?? 0.15, false), seed: nonNegativeInt('maskSeed', options.maskSeed ?? 0) }
    : undefined;
  if (masking && masking.seed > 0xffffffff) throw invalidArgument('maskSeed', 'an integer in [0, 2^32)', masking.seed);
  if (masking && options.maskTokenId !== undefined) {
    const id = options.maskTokenId;
    if (!Number.isInteger(id) || id < 0 || id >= model.config.vocabSize) throw invalidArgument('maskTokenId', `a token id in [0, ${model.config.vocabSize})`, id);
    masking.maskTokenId = id;
  }
  const maskOptions = masking ? { maskFraction: masking.fraction, maskSeed: masking.seed, ...(masking.maskTokenId !== undefined ? { maskTokenId: masking.maskTokenId } : {}) } : {};

  // Datasets: each split deterministically into a part for statistics and a part for evaluation.
  const forget = asDataset(options.forget, 'forget');
  const retain = asDataset(options.retain, 'retain');
  const forgetSplit = splitDataset(forget, { evalFraction, seed });
  const retainSplit = splitDataset(retain, { evalFraction, seed });
  const evalSets: Array<[string, Dataset]> = [['forget', forgetSplit.evaluate], ['retain', retainSplit.evaluate]];
  for (const [name, input] of Object.entries(options.evals ?? {})) {
    if (name === 'forget' || name === 'retain') throw new ExciseError('ERR_INVALID_ARGUMENT', `evals: "${name}" is reserved; choose another name`);
    evalSets.push([name, asDataset(input, name)]);
  }

  const { nLayers, dMlp, nHeads, headDim } = model.config;
  const attnNeurons = nHeads * headDim;
  const signal = options.signal;
  const aborted = () => signal?.aborted === true;
  // Stopped by the signal: this rank's ERR_ABORTED, or, with a group, a peer that stopped for the
  // same Ctrl-C first (its closed connection fails this rank's collective).
  const isAbort = (err: unknown) => err instanceof ExciseError &&
    (err.code === 'ERR_ABORTED' || (group !== undefined && aborted() && err.code === 'ERR_RANK_FAILED'));
  const progress = (step: number, phase: ProgressEvent['phase'], set: string, totalTokens: number) => (tokens: number) =>
    options.onProgress?.({ step, phase, set, tokens, totalTokens });

  let report: PruneReport;
  let selections: Selection[] = [];
  let startStep = 1;
  let scores: NeuronScores | undefined;
  // The most common tokens of each evaluation set are fixed at step 0, so every step's skip
  // accuracies count the same targets.
  const skipTokens = new Map<string, number[]>();
  const collectStats = async (step: number) => {
    const collectOpts = (set: string) => ({ maxTokens: collectTokens, batchSize, maxLength, ...longDocs, ...grouped, signal, onProgress: progress(step, 'collect', set, collectTokens) });
    const forgetStats: ActivationStats = await model.collect(forgetSplit.collect, collectOpts('forget'));
    const retainStats: ActivationStats = await model.collect(retainSplit.collect, collectOpts('retain'));
    if (options.scorer) return options.scorer(forgetStats, retainStats);
    return scoreNeurons(forgetStats, retainStats, { ffScoring: scoring.ff, attnScoring: scoring.attn, ffEps: eps.ff, attnEps: eps.attn });
  };
  if (options.resume) {
    const st = options.resume;
    if (st.version !== 1 || !Array.isArray(st.selections) || st.selections.length !== st.completedSteps || !st.report || !st.skipTokens) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', 'resume: not a state written by selectivePrune');
    }
    if (model.masks.counts.ff.some((c) => c > 0) || model.masks.counts.attn.some((c) => c > 0)) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', 'resume: the model is already pruned; load the original model to resume');
    }
    // Without re-collection every step scores with the unpruned model's statistics: take them now,
    // before re-applying the finished steps, exactly as the uninterrupted run did at step 1.
    if (!iterative && selectionMode === 'selective' && st.completedSteps >= 1) scores = await collectStats(1);
    for (const sel of st.selections) await model.prune(sel);
    for (const [name, ids] of Object.entries(st.skipTokens)) skipTokens.set(name, ids);
    selections = [...st.selections];
    report = structuredClone(st.report);
    report.stoppedBy = 'steps';
    startStep = st.completedSteps + 1;
  } else {
    report = {
      model: { architecture: model.config.architecture, nLayers, dMlp, attnNeurons, source: model.dir ?? null },
      options: {
        ffFrac, attnFrac, steps, iterative, collectTokens, evalTokens, scoring, eps, selection: selectionMode, seed, evalFraction,
        sets: { forget: describeSet(forget), retain: describeSet(retain), evals: Object.fromEntries(evalSets.slice(2).map(([n, d]) => [n, describeSet(d)])) },
        ...(masking ? { masking } : {}),
      },
      steps: [],
      stoppedBy: 'steps',
      totalPruned: { ff: 0, attn: 0 },
    };
  }

  const evaluateAll = async (step: number): Promise<{ metrics: Record<string, SetMetrics>; seconds: number }> => {
    const t0 = performance.now();
    const metrics: Record<string, SetMetrics> = {};
    for (const [name, ds] of evalSets) {
      const r = await model.evaluate(ds, {
        maxTokens: evalTokens, batchSize, maxLength, ...longDocs, ...grouped, ...maskOptions, skipTokens: skipTokens.get(name), signal,
        onProgress: progress(step, 'evaluate', name, evalTokens),
      });
      skipTokens.set(name, r.skipTokens);
      metrics[name] = { tokens: r.tokens, loss: r.loss, perplexity: r.perplexity, top1: r.top1, topk: r.topk, top1Skip: r.top1Skip, topkSkip: r.topkSkip };
    }
    return { metrics, seconds: (performance.now() - t0) / 1000 };
  };
  const checkpoint = async () => {
    if (group && !group.isMain) return;  // rank 0 alone writes state
    await options.onStep?.({
      version: 1, completedSteps: selections.length, selections: structuredClone(selections),
      skipTokens: Object.fromEntries(skipTokens), report: structuredClone(report),
    });
  };
  const finish = (stoppedBy: PruneReport['stoppedBy']) => {
    report.stoppedBy = stoppedBy;
    const counts = model.masks.counts;
    report.totalPruned = { ff: sum(counts.ff), attn: sum(counts.attn) };
    return report;
  };
  // After an abort mid-step, put the model back to the last finished step.
  const rollBack = async () => {
    const counts = model.masks.counts;
    const expected = selections.reduce((n, s) => n + sum(s.ff.map((l) => l.length)) + sum(s.attn.map((l) => l.length)), 0);
    if (sum(counts.ff) + sum(counts.attn) !== expected) {
      await model.restore();
      for (const sel of selections) await model.prune(sel);
    }
  };

  try {
    if (startStep === 1 && report.steps.length === 0) {
      const ev = await evaluateAll(0);
      report.steps.push({ step: 0, metrics: ev.metrics, pruned: { ff: Array(nLayers).fill(0), attn: Array(nLayers).fill(0) }, newlyPruned: { ff: 0, attn: 0 }, seconds: { collect: 0, prune: 0, evaluate: ev.seconds } });
      await checkpoint();
    }
    const baseTop1 = report.steps[0].metrics;
    for (let step = startStep; step <= steps; step++) {
      if (aborted()) return finish('aborted');
      // 1. Statistics (every step when iterative, else once).
      const tc = performance.now();
      if (selectionMode === 'selective' && (iterative || !scores)) scores = await collectStats(step);
      const collectSeconds = (performance.now() - tc) / 1000;
      // 2. Selection among the unpruned neurons, and pruning.
      const tp = performance.now();
      const pruned = model.masks;
      const selection = selectionMode === 'random'
        ? randomSelection(model, { ffFrac, attnFrac, seed: seed * 1_000_003 + step, pruned })
        : selectNeurons(scores!, { ffFrac, attnFrac, pruned });
      const nSelected = { ff: sum(selection.ff.map((l) => l.length)), attn: sum(selection.attn.map((l) => l.length)) };
      if (nSelected.ff + nSelected.attn === 0) return finish('exhausted');
      if (group) await checkSameSelection(group, selection);
      options.onProgress?.({ step, phase: 'prune', set: 'model', tokens: 0, totalTokens: 0 });
      await model.prune(selection);
      const pruneSeconds = (performance.now() - tp) / 1000;
      // 3. Evaluation.
      let ev;
      try {
        ev = await evaluateAll(step);
      } catch (err) {
        if (isAbort(err)) {
          await rollBack();
          return finish('aborted');
        }
        throw err;
      }
      selections.push(selection);
      const counts = model.masks.counts;
      report.steps.push({ step, metrics: ev.metrics, pruned: { ff: counts.ff, attn: counts.attn }, newlyPruned: nSelected, seconds: { collect: collectSeconds, prune: pruneSeconds, evaluate: ev.seconds } });
      finish('steps');
      await checkpoint();
      const stop = options.stopWhen;
      if (stop) {
        const m = ev.metrics;
        if (stop.forgetTop1Below !== undefined && m.forget.top1 < stop.forgetTop1Below) return finish('stopWhen');
        if (stop.retainTop1DropAbove !== undefined && baseTop1.retain.top1 - m.retain.top1 > stop.retainTop1DropAbove) return finish('stopWhen');
      }
    }
    return finish('steps');
  } catch (err) {
    if (isAbort(err)) {
      await rollBack();
      return finish('aborted');
    }
    throw err;
  }
}

/**
 * Every rank computes the selection from the same all-reduced statistics, so they agree; this checks
 * it (one all-reduce of a fingerprint) rather than letting replicas drift apart silently.
 */
async function checkSameSelection(group: ProcessGroup, selection: Selection): Promise<void> {
  let h = 0;
  const mix = (v: number) => { h = (h * 31 + v + 1) % 1_000_000_007; };
  for (const part of [selection.ff, selection.attn]) for (const layer of part) { mix(-1); for (const n of layer) mix(n); }
  const all = await group.allReduceSum(Float64Array.of(h, h * h % 1_000_000_007));
  if (all[0] !== h * group.worldSize || all[1] !== (h * h % 1_000_000_007) * group.worldSize) {
    throw new ExciseError('ERR_INTERNAL', `selectivePrune: rank ${group.rank}'s selection differs from another rank's (the replicas would diverge)`);
  }
}

/** How many neurons one step prunes for a model at these fractions. */
export function neuronsPerStep(model: Model, ffFrac: number, attnFrac: number): { ff: number; attn: number } {
  const { nLayers, dMlp, nHeads, headDim } = model.config;
  return { ff: countFor(ffFrac, nLayers * dMlp), attn: countFor(attnFrac, nLayers * nHeads * headDim) };
}

