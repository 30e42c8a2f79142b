/**
 * compareMethods (excise compare): selective pruning and baselines on the same data, with the same
 * budget steps and the same evaluations, then a relearning attack on each result.
 *
 *   selective            selectivePrune (the method)
 *   random               as many neurons per step, chosen at random
 *   wanda                neurons by the Wanda-style |W|·‖X‖ forget/retain ratio (method/wanda.ts)
 *   gradient-ascent      optimizer steps maximizing the loss on forget rows
 *   gradient-difference  ascent on forget rows, descent on retain rows
 *
 * A budget step is ffFrac (+ attnFrac) of the neurons for the pruning methods and `gradient.steps`
 * optimizer steps for the gradient methods; every method is evaluated after each budget step on
 * the held-out part of forget and retain (the same split selectivePrune uses). After the last step:
 * multiple-choice accuracy and membership inference AUC per set, then the relearning attack.
 * Each method starts from a freshly loaded model.
 */
import { ExciseError, invalidArgument, positiveInt } from './errors.js';
import { splitDataset, toDataset, type Dataset, type DatasetLike } from './data/datasets.js';
import { loadModel, type Device, type Dtype, type Model } from './model.js';
import { selectivePrune, type PruneReport } from './pipeline.js';
import type { ChoiceItem } from './method/choices.js';
import { outputColumnNorms, wandaScores } from './method/wanda.js';
import { packRows, relearningAttack, type AttackMetrics, type RelearnReport } from './method/unlearn.js';

export type CompareMethod = 'selective' | 'random' | 'wanda' | 'gradient-ascent' | 'gradient-difference';
export const COMPARE_METHODS: readonly CompareMethod[] = ['selective', 'random', 'wanda', 'gradient-ascent', 'gradient-difference'];

export interface CompareOptions {
  /** The model folder (each method loads it afresh). */
  model: string;
  /** As loadModel's: a device, 'auto', or `devices` for one model split over several. */
  device?: Device | 'auto';
  devices?: readonly Device[];
  dtype?: Dtype;
  forget: DatasetLike;
  retain: DatasetLike;
  /** Default: all of COMPARE_METHODS. */
  methods?: readonly CompareMethod[];
  /** Budget steps (default 5). */
  steps?: number;
  /** Pruning methods: fraction of FF neurons per step (default 0.02). */
  ffFrac?: number;
  /** Pruning methods: fraction of attention neurons per step (default 0). */
  attnFrac?: number;
  collectTokens?: number;
  evalTokens?: number;
  evalFraction?: number;
  seed?: number;
  /** Gradient methods: optimizer steps per budget step (default 5), lr (default 3e-4), rows per step (8), tokens per row (128). */
  gradient?: { steps?: number; lr?: number; batchSize?: number; seqLength?: number };
  /** Multiple-choice sets evaluated at the start and after the last step, by set name (forget, retain, ...). */
  choices?: Record<string, string | readonly ChoiceItem[]>;
  choicesOptions?: { targetDelimiter?: string; maxItems?: number };
  /** Membership inference per set: members (documents the model saw) against non-members. */
  membership?: Record<string, { members: DatasetLike; nonMembers: DatasetLike }>;
  membershipOptions?: { maxDocuments?: number; maxLength?: number };
  /** The relearning attack after the last step (false: none). */
  attack?: false | { data: DatasetLike; steps?: number; lr?: number; batchSize?: number; seqLength?: number; keepPruned?: boolean };
  /** One line per phase, for a progress display. */
  onProgress?: (line: string) => void;
}

export interface CurvePoint {
  step: number;
  forgetTop1: number;
  retainTop1: number;
}

export interface SetSummary {
  choices?: { acc: number; accNorm: number; items: number };
  membership?: { lossAuc: number; minKAuc: number };
}

export interface MethodReport {
  method: CompareMethod;
  /** What one budget step is for this method. */
  budget: string;
  curve: CurvePoint[];
  /** Top-1 after the last step minus at the start, in points (negative = fell). */
  forgetDrop: number;
  retainDrop: number;
  /** Relative falls: (start - end) / start. */
  forgetRelDrop: number;
  retainRelDrop: number;
  /** forgetRelDrop / retainRelDrop (Infinity when retain did not fall). */
  selectivity: number;
  sets: Record<string, SetSummary>;
  attack?: RelearnReport;
  /** Seconds of the unlearning itself (statistics + pruning, or optimizer steps), then of everything. */
  seconds: { method: number; total: number };
}

export interface CompareReport {
  model: string;
  options: { steps: number; ffFrac: number; attnFrac: number; gradient: { steps: number; lr: number; batchSize: number; seqLength: number }; seed: number };
  /** The unmodified model. */
  base: { forgetTop1: number; retainTop1: number; sets: Record<string, SetSummary> };
  methods: MethodReport[];
  seconds: number;
}

const relDrop = (start: number, end: number) => (start > 0 ? (start - end) / start : 0);

export async function compareMethods(options: CompareOptions): Promise<CompareReport> {
  if (options === null || typeof options !== 'object') throw invalidArgument('compareMethods(options)', 'an options object', options);
  const methods = options.methods ?? COMPARE_METHODS;
  for (const m of methods) if (!COMPARE_METHODS.includes(m)) throw invalidArgument('methods', `a list of ${COMPARE_METHODS.join(', ')}`, m);
  if (methods.length === 0) throw invalidArgument('methods', 'at least one method', methods);
  const steps = options.steps ?? 5;
  positiveInt('steps', steps);
  const ffFrac = options.ffFrac ?? 0.02, attnFrac = options.attnFrac ?? 0;
  const seed = options.seed ?? 0;
  const evalFraction = options.evalFraction ?? 0.1;
  const collectTokens = options.collectTokens ?? 100_000, evalTokens = options.evalTokens ?? 100_000;
  const g = { steps: options.gradient?.steps ?? 5, lr: options.gradient?.lr ?? 3e-4, batchSize: options.gradient?.batchSize ?? 8, seqLength: options.gradient?.seqLength ?? 128 };
  const log = options.onProgress ?? (() => {});
  const forget = toDataset(options.forget), retain = toDataset(options.retain);
  const forgetSplit = splitDataset(forget, { evalFraction, seed });
  const retainSplit = splitDataset(retain, { evalFraction, seed });
  const load = () => loadModel(options.model, { device: options.device, dtype: options.dtype, ...(options.devices ? { devices: options.devices } : {}) });
  const t0 = performance.now();

  const top1Of = async (model: Model, ds: Dataset) => (await model.evaluate(ds, { maxTokens: evalTokens })).top1;
  const summarize = async (model: Model, label: string): Promise<Record<string, SetSummary>> => {
    const sets: Record<string, SetSummary> = {};
    for (const [name, src] of Object.entries(options.choices ?? {})) {
      log(`${label}: multiple choice (${name})`);
      const r = await model.evaluateChoices(src, { ...options.choicesOptions });
      (sets[name] ??= {}).choices = { acc: r.acc, accNorm: r.accNorm, items: r.items };
    }
    for (const [name, { members, nonMembers }] of Object.entries(options.membership ?? {})) {
      log(`${label}: membership inference (${name})`);
      const r = await model.membershipInference(toDataset(members), toDataset(nonMembers), { ...options.membershipOptions });
      (sets[name] ??= {}).membership = { lossAuc: r.lossAuc, minKAuc: r.minKAuc };
    }
    return sets;
  };

  // The unmodified model: accuracy, multiple choice, membership inference.
  const baseModel = await load();
  let base: CompareReport['base'];
  let norms: Awaited<ReturnType<typeof outputColumnNorms>> | undefined;
  try {
    if (baseModel.config.maskedLm) {
      // Refused now, not after the pruning methods have run: a masked LM has no next-token
      // predictions for training (the gradient methods, the attack) or log-likelihood scoring.
      const nextToken = [
        ...methods.filter((m) => m === 'gradient-ascent' || m === 'gradient-difference'),
        ...(options.attack ? ['the relearning attack'] : []),
        ...(Object.keys(options.choices ?? {}).length > 0 ? ['multiple choice'] : []),
        ...(Object.keys(options.membership ?? {}).length > 0 ? ['membership inference'] : []),
      ];
      if (nextToken.length > 0) {
        throw new ExciseError('ERR_NOT_CAUSAL_LM', `compare: ${options.model} (${baseModel.config.architecture}) is a masked language model; ${nextToken.join(', ')} need${nextToken.length === 1 ? 's' : ''} next-token predictions (compare it with methods selective, random and wanda, without an attack, choices or membership)`);
      }
    }
    log('base model: evaluating');
    const forgetTop1 = await top1Of(baseModel, forgetSplit.evaluate);
    const retainTop1 = await top1Of(baseModel, retainSplit.evaluate);
    base = { forgetTop1, retainTop1, sets: await summarize(baseModel, 'base model') };
    if (methods.includes('wanda')) norms = await outputColumnNorms(baseModel);
  } finally {
    await baseModel.dispose();
  }
  const reference: Record<string, AttackMetrics> = { forget: { top1: base.forgetTop1, loss: NaN }, retain: { top1: base.retainTop1, loss: NaN } };

  const reports: MethodReport[] = [];
  for (const method of methods) {
    const model = await load();
    const tm = performance.now();
    try {
      let curve: CurvePoint[];
      let methodSeconds: number;
      let budget: string;
      if (method === 'selective' || method === 'random' || method === 'wanda') {
        log(`${method}: ${steps} steps of ${ffFrac * 100}% FF${attnFrac ? ` + ${attnFrac * 100}% attention` : ''} neurons`);
        const report: PruneReport = await selectivePrune(model, {
          forget, retain, ffFrac, attnFrac, steps, collectTokens, evalTokens, evalFraction, seed,
          selection: method === 'random' ? 'random' : 'selective',
          ...(method === 'wanda' ? { scorer: (f, r) => wandaScores(norms!, f, r) } : {}),
        });
        curve = report.steps.map((s) => ({ step: s.step, forgetTop1: s.metrics.forget.top1, retainTop1: s.metrics.retain.top1 }));
        methodSeconds = report.steps.reduce((a, s) => a + s.seconds.collect + s.seconds.prune, 0);
        budget = `${ffFrac * 100}% FF${attnFrac ? ` + ${attnFrac * 100}% attn` : ''} neurons`;
      } else {
        log(`${method}: ${steps} × ${g.steps} optimizer steps (lr ${g.lr})`);
        const ascentOnly = method === 'gradient-ascent';
        const half = ascentOnly ? g.batchSize : Math.max(1, Math.floor(g.batchSize / 2));
        const total = steps * g.steps;
        const fRows = await packRows(model, forgetSplit.collect, { seqLength: g.seqLength, maxRows: half * total });
        const rRows = ascentOnly ? [] : await packRows(model, retainSplit.collect, { seqLength: g.seqLength, maxRows: (g.batchSize - half) * total });
        curve = [{ step: 0, forgetTop1: base.forgetTop1, retainTop1: base.retainTop1 }];
        methodSeconds = 0;
        const trainer = model.trainer({ lr: g.lr, warmupSteps: 0, totalSteps: total, minLrRatio: 1, weightDecay: 0, gradClip: 1 });
        let k = 0;
        try {
          for (let s = 1; s <= steps; s++) {
            const ts = performance.now();
            for (let i = 0; i < g.steps; i++, k++) {
              const batch: number[][] = [];
              const weights: number[] = [];
              for (let j = 0; j < half; j++) { batch.push(fRows[(k * half + j) % fRows.length]); weights.push(-1); }
              if (!ascentOnly) for (let j = 0; j < g.batchSize - half; j++) { batch.push(rRows[(k * (g.batchSize - half) + j) % rRows.length]); weights.push(1); }
              await trainer.step(batch, { rowWeights: weights });
            }
            methodSeconds += (performance.now() - ts) / 1000;
            curve.push({ step: s, forgetTop1: await top1Of(model, forgetSplit.evaluate), retainTop1: await top1Of(model, retainSplit.evaluate) });
          }
        } finally {
          await trainer.close();
        }
        budget = `${g.steps} optimizer steps`;
      }
      const last = curve[curve.length - 1];
      const forgetRelDrop = relDrop(base.forgetTop1, last.forgetTop1), retainRelDrop = relDrop(base.retainTop1, last.retainTop1);
      const sets = await summarize(model, method);
      let attack: RelearnReport | undefined;
      if (options.attack) {
        const a = options.attack;
        log(`${method}: relearning attack (${a.steps ?? 20} steps)`);
        attack = await relearningAttack(model, {
          data: toDataset(a.data), evals: { forget: forgetSplit.evaluate, retain: retainSplit.evaluate }, evalTokens, reference,
          before: { forget: { top1: last.forgetTop1, loss: NaN }, retain: { top1: last.retainTop1, loss: NaN } },
          steps: a.steps, lr: a.lr, batchSize: a.batchSize, seqLength: a.seqLength, keepPruned: a.keepPruned,
        });
      }
      reports.push({
        method, budget, curve,
        forgetDrop: last.forgetTop1 - base.forgetTop1, retainDrop: last.retainTop1 - base.retainTop1, forgetRelDrop, retainRelDrop,
        selectivity: retainRelDrop > 0 ? forgetRelDrop / retainRelDrop : Infinity,
        sets, attack, seconds: { method: methodSeconds, total: (performance.now() - tm) / 1000 },
      });
    } finally {
      await model.dispose();
    }
  }
  if (reports.length === 0) throw new ExciseError('ERR_INTERNAL', 'compare: no method ran');
  return { model: options.model, options: { steps, ffFrac, attnFrac, gradient: g, seed }, base, methods: reports, seconds: (performance.now() - t0) / 1000 };
}

const pts = (v: number) => `${v >= 0 ? '+' : ''}${(100 * v).toFixed(1)}`;
const pc = (v: number | undefined) => (v === undefined ? '—' : `${(100 * v).toFixed(1)}%`);

/** The comparison as a Markdown table (the README's). */
export function formatCompareTable(r: CompareReport): string {
  const setNames = [...new Set([...Object.keys(r.base.sets), ...r.methods.flatMap((m) => Object.keys(m.sets))])];
  const mcSets = setNames.filter((s) => r.base.sets[s]?.choices);
  const miaSets = setNames.filter((s) => r.base.sets[s]?.membership);
  const head = ['method', 'budget / step', 'forget top-1 (pts, rel.)', 'retain top-1 (pts, rel.)', 'selectivity',
    ...mcSets.map((s) => `MC ${s} acc`), ...miaSets.map((s) => `MIA ${s} AUC (loss / min-k)`), 'attack: forget recovery', 'attack: retain change', 'time'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`];
  lines.push(`| (unmodified) | — | ${pc(r.base.forgetTop1)} | ${pc(r.base.retainTop1)} | — | ${mcSets.map((s) => pc(r.base.sets[s].choices?.acc)).join(' | ')}${mcSets.length ? ' | ' : ''}${miaSets.map((s) => `${r.base.sets[s].membership!.lossAuc.toFixed(3)} / ${r.base.sets[s].membership!.minKAuc.toFixed(3)}`).join(' | ')}${miaSets.length ? ' | ' : ''}— | — | — |`);
  for (const m of r.methods) {
    const rec = m.attack?.recovery.forget;
    const cells = [
      m.method, `${m.budget} × ${m.curve.length - 1}`,
      `${pts(m.forgetDrop)} (${pts(-m.forgetRelDrop)}%)`,
      `${pts(m.retainDrop)} (${pts(-m.retainRelDrop)}%)`,
      Number.isFinite(m.selectivity) ? m.selectivity.toFixed(1) : '∞',
      ...mcSets.map((s) => pc(m.sets[s]?.choices?.acc)),
      ...miaSets.map((s) => (m.sets[s]?.membership ? `${m.sets[s].membership!.lossAuc.toFixed(3)} / ${m.sets[s].membership!.minKAuc.toFixed(3)}` : '—')),
      rec === undefined ? '—' : rec === null ? 'n/a' : `${(100 * rec).toFixed(0)}%`,
      m.attack ? pts(m.attack.change.retain) : '—',
      `${m.seconds.method.toFixed(1)} s`,
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
