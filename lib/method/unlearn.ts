/**
 * Training-based unlearning baselines and the relearning attack, all through the native trainer
 * (model.trainer(), native/train.cc) on the model's own device:
 *
 * - gradient ascent: maximize the next-token loss on forget rows (row weight -1);
 * - gradient difference: ascent on forget rows and descent on retain rows in the same batch
 *   (weights -1 and +1: the loss is -CE(forget) + CE(retain) over the batch's tokens);
 * - relearning attack: plain fine-tuning of all weights on forget-distribution data that is
 *   disjoint from the evaluation data, then re-evaluation: how much of the lost forget accuracy
 *   comes back (recovery fraction), and what it does to retain.
 *
 * Documents become training rows the way scripts/train-demo.ts packs them: token ids of each
 * document, then the EOS token, concatenated and cut into rows of seqLength tokens.
 */
import { ExciseError, invalidArgument, checkKeys, positiveInt, positiveNumber } from '../errors.js';
import { asDocumentSource, checkSource, type DocumentProvider, type DocumentSource } from '../data/batches.js';
import type { Model } from '../model.js';
import type { TrainOptions } from '../train.js';

/** Anything model.evaluate() accepts as a source. */
export type TrainSource = DocumentSource | DocumentProvider;

export interface PackOptions {
  /** Tokens per row (default 128, at most the model's context). */
  seqLength?: number;
  /** Rows at most (default: every full row of the source). */
  maxRows?: number;
}

/** Token ids of the documents, each followed by EOS, concatenated and cut into full rows. */
export async function packRows(model: Model, source: TrainSource, options: PackOptions = {}): Promise<number[][]> {
  const seqLength = options.seqLength ?? Math.min(128, model.config.maxPositions);
  if (!Number.isInteger(seqLength) || seqLength < 2 || seqLength > model.config.maxPositions) {
    throw invalidArgument('seqLength', `an integer in [2, ${model.config.maxPositions}]`, seqLength);
  }
  const maxRows = options.maxRows ?? Infinity;
  const eos = model.config.eosTokenIds[0] ?? model.config.bosTokenId;
  const docs = asDocumentSource(source);
  checkSource(docs, 'training data');
  const rows: number[][] = [];
  // Tokens not yet cut into a row. Appended with a loop, not push(...doc): spreading a document of
  // a few hundred thousand ids overflows the call stack.
  let stream: number[] = [];
  const append = (ids: readonly number[]) => {
    for (let i = 0; i < ids.length; i++) stream.push(ids[i]);
    if (eos !== undefined) stream.push(eos);
  };
  const texts: string[] = [];
  const flush = async () => {
    if (texts.length === 0) return;
    for (const ids of await model.tokenizer.encodeBatch(texts, { addSpecialTokens: false })) append(ids);
    texts.length = 0;
  };
  // Rows are sliced at an advancing offset and the remainder copied once, not after every row.
  const cut = () => {
    let start = 0;
    while (stream.length - start >= seqLength && rows.length < maxRows) { rows.push(stream.slice(start, start + seqLength)); start += seqLength; }
    if (start > 0) stream = stream.slice(start);
  };
  for await (const doc of docs as DocumentSource) {
    if (rows.length >= maxRows) break;
    if (typeof doc === 'string') {
      texts.push(doc);
      if (texts.length >= 64) { await flush(); cut(); }
    } else {
      append(doc);
      cut();
    }
  }
  await flush();
  cut();
  if (rows.length === 0) throw new ExciseError('ERR_DATASET_EMPTY', `training data: fewer than ${seqLength} tokens, not one full row`);
  return rows;
}

export interface TrainLoopOptions {
  /** Optimizer steps (default 20). */
  steps?: number;
  /** Rows per step (default 8); gradient difference takes half forget, half retain. */
  batchSize?: number;
  /** Constant learning rate (default 1e-4), no warmup; AdamW, no weight decay, clipping at 1. */
  lr?: number;
  /** Tokens per row (default 128). */
  seqLength?: number;
  /** Zero every pruned weight slice again after each step (default true). */
  keepPruned?: boolean;
  onStep?: (step: number, loss: number) => void;
  signal?: AbortSignal;
}

export interface TrainLoopResult {
  steps: number;
  /** Unweighted mean cross-entropy per step, before its update (forget rows and retain rows together). */
  losses: number[];
  seconds: number;
}

function loopOptions(o: TrainLoopOptions, where: string) {
  const steps = o.steps ?? 20;
  positiveInt(`${where}: steps`, steps);
  const batchSize = o.batchSize ?? 8;
  positiveInt(`${where}: batchSize`, batchSize);
  const lr = o.lr ?? 1e-4;
  positiveNumber(`${where}: lr`, lr);
  const train: TrainOptions = { lr, warmupSteps: 0, totalSteps: steps, minLrRatio: 1, weightDecay: 0, gradClip: 1 };
  return { steps, batchSize, train, keepPruned: o.keepPruned ?? true };
}

/**
 * Training is next-token only: a masked LM is refused before any data is read or evaluated (the
 * trainer would refuse it too, but only after the evaluations and packing that come first).
 */
function requireCausalLm(model: Model, where: string): void {
  if (model.config.maskedLm) {
    throw new ExciseError('ERR_NOT_CAUSAL_LM', `${where}: ${model.dir ?? 'this model'} (${model.config.architecture}) is a masked language model; ${where} trains on next-token predictions`);
  }
}

/**
 * Runs `steps` optimizer steps: each takes the next rows of each group (cycling) with the group's
 * loss weight (+1 descent, -1 ascent), all in one batch.
 */
async function trainLoop(model: Model, groups: Array<{ rows: number[][]; weight: number; perStep: number }>, o: TrainLoopOptions, where: string): Promise<TrainLoopResult> {
  const { steps, train, keepPruned } = loopOptions(o, where);
  const t0 = performance.now();
  const trainer = model.trainer(train);
  const losses: number[] = [];
  const cursor = groups.map(() => 0);
  try {
    for (let s = 0; s < steps; s++) {
      if (o.signal?.aborted) throw new ExciseError('ERR_ABORTED', `${where}: aborted`);
      const batch: number[][] = [];
      const weights: number[] = [];
      groups.forEach((g, gi) => {
        for (let k = 0; k < g.perStep; k++) {
          batch.push(g.rows[cursor[gi] % g.rows.length]);
          weights.push(g.weight);
          cursor[gi]++;
        }
      });
      const allOne = weights.every((w) => w === 1);
      const r = await trainer.step(batch, allOne ? {} : { rowWeights: weights });
      if (keepPruned) await model.rezeroPruned();
      losses.push(r.loss);
      o.onStep?.(s + 1, r.loss);
    }
  } finally {
    await trainer.close();
  }
  return { steps, losses, seconds: (performance.now() - t0) / 1000 };
}

/** Gradient ascent on forget data: maximizes its next-token loss for `steps` steps. */
export async function gradientAscent(model: Model, forget: TrainSource, options: TrainLoopOptions = {}): Promise<TrainLoopResult> {
  requireCausalLm(model, 'gradientAscent');
  const { batchSize } = loopOptions(options, 'gradientAscent');
  const rows = await packRows(model, forget, { seqLength: options.seqLength, maxRows: batchSize * (options.steps ?? 20) });
  return trainLoop(model, [{ rows, weight: -1, perStep: batchSize }], options, 'gradientAscent');
}

/** Gradient difference: ascent on forget rows and descent on retain rows, half a batch each. */
export async function gradientDifference(model: Model, forget: TrainSource, retain: TrainSource, options: TrainLoopOptions = {}): Promise<TrainLoopResult> {
  requireCausalLm(model, 'gradientDifference');
  const { batchSize, steps } = loopOptions(options, 'gradientDifference');
  const half = Math.max(1, Math.floor(batchSize / 2));
  const f = await packRows(model, forget, { seqLength: options.seqLength, maxRows: half * steps });
  const r = await packRows(model, retain, { seqLength: options.seqLength, maxRows: half * steps });
  return trainLoop(model, [{ rows: f, weight: -1, perStep: half }, { rows: r, weight: 1, perStep: Math.max(1, batchSize - half) }], options, 'gradientDifference');
}

/** Top-1 accuracy (and anything else) of a set, as the attack compares it. */
export interface AttackMetrics { top1: number; loss: number }

export interface RelearnOptions extends TrainLoopOptions {
  /** Forget-distribution documents to fine-tune on: must be disjoint from the evaluation sets. */
  data: TrainSource;
  /** Sets evaluated before and after the attack, by name (e.g. forget and retain). */
  evals: Record<string, TrainSource>;
  /** Each set's metrics on the model before unlearning: recovery is measured against them. */
  reference?: Record<string, AttackMetrics>;
  /** Tokens evaluated per set (default 10 000). */
  evalTokens?: number;
  /** Each set's metrics right before the attack (else evaluated first). */
  before?: Record<string, AttackMetrics>;
}

export interface RelearnReport {
  steps: number;
  keepPruned: boolean;
  losses: number[];
  before: Record<string, AttackMetrics>;
  after: Record<string, AttackMetrics>;
  /**
   * Per set with a reference: (top-1 after - top-1 before) / (reference top-1 - top-1 before), the
   * fraction of the accuracy lost to unlearning that the attack brought back (null when nothing was lost).
   */
  recovery: Record<string, number | null>;
  /** Per set: top-1 after - top-1 before the attack. */
  change: Record<string, number>;
  seconds: number;
}

/**
 * The relearning attack: fine-tunes every weight of the (unlearned) model in place on `data` for
 * `steps` steps, then evaluates `evals` again. With keepPruned (default), pruned neurons are put
 * back to zero after every step (a pruned FF neuron gets a zero gradient anyway: its input row and
 * output column are both zero; the option also covers attention neurons whose value row is shared).
 */
export async function relearningAttack(model: Model, options: RelearnOptions): Promise<RelearnReport> {
  if (options === null || typeof options !== 'object') throw invalidArgument('relearningAttack(model, options)', 'an options object', options);
  const allowed = ['data', 'evals', 'reference', 'evalTokens', 'before', 'steps', 'batchSize', 'lr', 'seqLength', 'keepPruned', 'onStep', 'signal'];
  checkKeys('relearningAttack', options, allowed);
  requireCausalLm(model, 'relearningAttack');
  if (options.evals === null || typeof options.evals !== 'object' || Object.keys(options.evals).length === 0) {
    throw invalidArgument('relearningAttack: evals', 'at least one named evaluation set', options.evals);
  }
  const { batchSize, steps, keepPruned } = loopOptions(options, 'relearningAttack');
  const evalTokens = options.evalTokens ?? 10_000;
  const t0 = performance.now();
  const measure = async () => {
    const out: Record<string, AttackMetrics> = {};
    for (const [name, src] of Object.entries(options.evals)) {
      const r = await model.evaluate(src, { maxTokens: evalTokens, signal: options.signal });
      out[name] = { top1: r.top1, loss: r.loss };
    }
    return out;
  };
  const before = options.before ?? await measure();
  const rows = await packRows(model, options.data, { seqLength: options.seqLength, maxRows: batchSize * steps });
  const loop = await trainLoop(model, [{ rows, weight: 1, perStep: batchSize }], options, 'relearningAttack');
  const after = await measure();
  const recovery: Record<string, number | null> = {};
  const change: Record<string, number> = {};
  for (const name of Object.keys(after)) {
    change[name] = after[name].top1 - before[name].top1;
    const ref = options.reference?.[name];
    if (ref) {
      const lost = ref.top1 - before[name].top1;
      recovery[name] = lost > 1e-9 ? (after[name].top1 - before[name].top1) / lost : null;
    }
  }
  return { steps, keepPruned, losses: loop.losses, before, after, recovery, change, seconds: (performance.now() - t0) / 1000 };
}
