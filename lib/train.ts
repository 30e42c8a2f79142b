/**
 * Training a model in place: each step runs the decoder's own forward with autograd, next-token
 * cross-entropy over real tokens, backward, global gradient clipping and AdamW, on the model's
 * thread and device. Used to train the bundled demo model; also handy for fine-tuning tiny models.
 */
import { ExciseError, invalidArgument, withCallerStack, checkKeys, positiveInt, positiveNumber } from './errors.js';
import type { NativeModel, NativeTrainer } from './native.js';
import type { CallOrder } from './call_order.js';

export interface TrainOptions {
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** Linear warmup steps from 0 (default 100). */
  warmupSteps?: number;
  /** Steps of the schedule: cosine decay from lr to lr * minLrRatio (default 1000). */
  totalSteps?: number;
  minLrRatio?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay on weight matrices (not embeddings, norms or biases); default 0.1. */
  weightDecay?: number;
  /** Clip the global gradient norm to this (default 1; 0 disables). */
  gradClip?: number;
}

export interface TrainStepResult {
  /** Mean next-token cross-entropy of the batch, before the update. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate of this step. */
  lr: number;
  /** 1-based step count. */
  step: number;
  /** Predicted positions in the batch. */
  tokens: number;
}

export interface TrainStepOptions {
  /** 1 = token, 0 = padding (not predicted); the shape of inputIds. */
  attentionMask?: readonly (readonly number[])[];
  /**
   * One finite weight per row (default all 1): the step minimizes the sum over real tokens of
   * weight × cross-entropy, divided by the real tokens. -1 on every row is gradient ascent; -1 on
   * forget rows and 1 on retain rows is gradient difference. The reported loss stays unweighted.
   */
  rowWeights?: readonly number[];
}

function rowWeightsOf(w: unknown, batch: number): Float64Array | undefined {
  if (w === undefined) return undefined;
  if (!Array.isArray(w) || w.length !== batch) throw invalidArgument('trainer.step: rowWeights', `an array of ${batch} numbers (one per row)`, w);
  for (let i = 0; i < batch; i++) {
    if (typeof w[i] !== 'number' || !Number.isFinite(w[i])) throw invalidArgument(`trainer.step: rowWeights[${i}]`, 'a finite number', w[i]);
  }
  return Float64Array.from(w as number[]);
}

type Batch = { data: Int32Array; batch: number; seq: number; mask: Int32Array | null };

export class Trainer {
  private closed = false;

  /** @internal Use model.trainer(). */
  constructor(
    private readonly handle: NativeModel,
    private readonly native: NativeTrainer,
    private readonly vocabSize: number,
    /** The model's call order: steps take their place among the model's other calls. */
    private readonly order: CallOrder,
  ) {}

  /**
   * One optimizer step on a batch of token ids ([batch, seq]; rows of equal length, padding marked
   * by attentionMask = 0 is not predicted).
   */
  async step(inputIds: readonly (readonly number[])[], options: TrainStepOptions = {}): Promise<TrainStepResult> {
    if (this.closed) throw new ExciseError('ERR_INVALID_ARGUMENT', 'trainer.step: the trainer is closed');
    if (options === null || typeof options !== 'object') throw invalidArgument('trainer.step(options)', 'an options object', options);
    for (const k of Object.keys(options)) {
      if (k !== 'attentionMask' && k !== 'rowWeights') throw new ExciseError('ERR_INVALID_ARGUMENT', `trainer.step: unknown option "${k}" (expected attentionMask, rowWeights)`);
    }
    const b = flatten(inputIds, options.attentionMask, this.vocabSize);
    const weights = rowWeightsOf(options.rowWeights, b.batch);
    return withCallerStack(() => this.order.single(() => this.handle.trainStep(this.native, b.data, b.batch, b.seq, b.mask, weights)));
  }

  /** Ends training: the weights stop tracking gradients and the optimizer state is freed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.order.single(() => this.handle.trainerClose(this.native));
  }
}

function flatten(rows: readonly (readonly number[])[], maskRows: readonly (readonly number[])[] | undefined, vocab: number): Batch {
  if (!Array.isArray(rows) || rows.length === 0 || !Array.isArray(rows[0])) throw invalidArgument('trainer.step(inputIds)', 'a non-empty number[][]', rows);
  const seq = rows[0].length;
  if (seq < 2) throw invalidArgument('trainer.step(inputIds)', 'rows of at least 2 tokens', rows[0]);
  const data = new Int32Array(rows.length * seq);
  // Plain index loops, not forEach: forEach skips the holes of a sparse array ([ , 1, 2]).
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (!Array.isArray(r) || r.length !== seq) throw new ExciseError('ERR_INVALID_ARGUMENT', `trainer.step: rows must have equal lengths (row 0 has ${seq}, row ${i} has ${r?.length})`);
    for (let t = 0; t < seq; t++) {
      const id = r[t];
      if (!Number.isInteger(id)) throw invalidArgument(`trainer.step(inputIds)[${i}][${t}]`, 'an integer token id', id);
      if (id < 0 || id >= vocab) throw new ExciseError('ERR_TOKEN_OUT_OF_RANGE', `trainer.step: token ${id} at [${i}, ${t}] is outside the vocabulary [0, ${vocab})`);
      data[i * seq + t] = id;
    }
  }
  let mask: Int32Array | null = null;
  if (maskRows !== undefined) {
    if (!Array.isArray(maskRows) || maskRows.length !== rows.length || maskRows.some((m) => !Array.isArray(m) || m.length !== seq)) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', 'trainer.step: attentionMask must have the shape of inputIds');
    }
    mask = new Int32Array(rows.length * seq);
    for (let i = 0; i < rows.length; i++) {
      for (let t = 0; t < seq; t++) {
        const m = maskRows[i][t];
        if (m !== 0 && m !== 1) throw invalidArgument(`trainer.step: attentionMask[${i}][${t}]`, '0 or 1', m);
        mask[i * seq + t] = m;
      }
    }
  }
  return { data, batch: rows.length, seq, mask };
}

export function trainOptions(o: TrainOptions): Required<TrainOptions> {
  const allowed = ['lr', 'warmupSteps', 'totalSteps', 'minLrRatio', 'beta1', 'beta2', 'eps', 'weightDecay', 'gradClip'];
  checkKeys('trainer', o, allowed);
  const r: Required<TrainOptions> = {
    lr: o.lr ?? 1e-3, warmupSteps: o.warmupSteps ?? 100, totalSteps: o.totalSteps ?? 1000, minLrRatio: o.minLrRatio ?? 0.1,
    beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.95, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0.1, gradClip: o.gradClip ?? 1,
  };
  const positive = (k: keyof TrainOptions) => positiveNumber(`trainer: ${k}`, r[k]);
  const nonNegative = (k: keyof TrainOptions) => { if (!(typeof r[k] === 'number' && r[k] >= 0 && Number.isFinite(r[k]))) throw invalidArgument(`trainer: ${k}`, 'a number >= 0', r[k]); };
  positive('lr'); positive('eps'); nonNegative('weightDecay'); nonNegative('gradClip'); nonNegative('minLrRatio');
  for (const k of ['beta1', 'beta2'] as const) if (!(r[k] >= 0 && r[k] < 1)) throw invalidArgument(`trainer: ${k}`, 'a number in [0, 1)', r[k]);
  positiveInt('trainer: totalSteps', r.totalSteps);
  if (!Number.isInteger(r.warmupSteps) || r.warmupSteps < 0) throw invalidArgument('trainer: warmupSteps', 'an integer >= 0', r.warmupSteps);
  return r;
}
