/**
 * model.evaluate(): next-token top-1 / top-k accuracy, loss and perplexity, and the same accuracies
 * over targets outside the dataset's most common tokens, computed natively on the device in chunks
 * (no logits cross into JS). On a masked LM (RoBERTa) the same metrics are those of masked tokens:
 * a seeded share of each batch's real, non-special tokens is replaced by the mask token and each
 * masked position predicts its own original token (no shift).
 */
import { ExciseError, invalidArgument, withCallerStack, checkSignal, checkKeys, positiveInt } from '../errors.js';
import { LONG_DOCS, asDocumentSource, checkSource, newTokenUsage, tokenBatches, type DocumentProvider, type DocumentSource, type LongDocs, type TokenBatch, type TokenUsage } from '../data/batches.js';
import type { NativeModel } from '../native.js';
import { asGroupMember, checkGroup, type ProcessGroup } from '../distributed.js';
import type { Tokenizer } from '../tokenizer.js';

export interface EvaluateOptions {
  /** Tokens to read from the source (default 100 000). */
  maxTokens?: number;
  /** k of the top-k accuracy (default 10). */
  topK?: number;
  /** Documents per batch (default 8). */
  batchSize?: number;
  /** Tokens per row at most (default: the model's context, at most 1024). */
  maxLength?: number;
  /** Longer documents: 'split' into maxLength windows, no token lost (default; a window's first token is context only), or 'truncate'd (the reference implementation). */
  longDocs?: LongDocs;
  /** Token ids left out of top1Skip/topkSkip (default: the evaluated tokens' skipTopN most common). */
  skipTokens?: readonly number[];
  /** How many most common tokens to skip when skipTokens is not given (default 50). */
  skipTopN?: number;
  onProgress?: (tokens: number) => void;
  /** Stops after the current batch (ExciseError ERR_ABORTED). */
  signal?: AbortSignal;
  /**
   * A process group (initDistributed()): this rank evaluates every worldSize-th batch, the per-batch
   * counts are all-reduced and added in batch order, so every rank returns exactly the metrics of
   * one process. onProgress then counts this rank's tokens.
   */
  group?: ProcessGroup;
  /**
   * Masked LMs only (model.config.maskedLm): the share of real, non-special tokens replaced by the
   * mask token, each chosen independently with this probability (default 0.15, as RoBERTa's
   * training; 1 masks every one). Every chosen token becomes the mask token (the selective-pruning
   * reference's choice; no 80/10/10 random/unchanged split as Hugging Face's collator does).
   */
  maskFraction?: number;
  /** Masked LMs only: seed of the choice of masked tokens (integer in [0, 2^32), default 0); batch i's choice depends only on the seed and i. */
  maskSeed?: number;
  /** Masked LMs only: the mask token id (default: the tokenizer's "<mask>"). */
  maskTokenId?: number;
}

export interface EvalResult {
  /** Predicted positions (targets that are real tokens; for a masked LM the masked tokens). */
  tokens: number;
  /** Mean cross-entropy, nats per token. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Fraction of positions whose most likely next token is the target. */
  top1: number;
  /** Fraction of positions whose target is among the topK most likely. */
  topk: number;
  /** top1 over targets outside skipTokens (null when every target is one of them). */
  top1Skip: number | null;
  /** topk over targets outside skipTokens (null when every target is one of them). */
  topkSkip: number | null;
  /** Positions counted by the *Skip accuracies. */
  skipCounted: number;
  topK: number;
  /** The token ids left out of the *Skip accuracies. */
  skipTokens: number[];
  /** How the documents became tokens: longDocs, tokens used and dropped, whether maxTokens was met. */
  usage: TokenUsage;
}

export interface EvaluateTarget {
  handle: NativeModel;
  tokenizer: Tokenizer | undefined;
  config: { vocabSize: number; maxPositions: number; maskedLm?: boolean; bosTokenId?: number; eosTokenIds?: readonly number[]; padTokenId?: number };
}

/** How a masked LM's batches are masked (see EvaluateOptions.maskFraction). */
interface Masking {
  fraction: number;
  seed: number;
  maskTokenId: number;
  /** Never masked: the tokenizer's special tokens, the config's bos/eos/pad ids and the mask token. */
  special: Set<number>;
}

const MASK_OPTIONS = ['maskFraction', 'maskSeed', 'maskTokenId'] as const;

function maskingOf(target: EvaluateTarget, options: EvaluateOptions): Masking | undefined {
  const given = MASK_OPTIONS.filter((k) => options[k] !== undefined);
  if (!target.config.maskedLm) {
    if (given.length > 0) throw new ExciseError('ERR_INVALID_ARGUMENT', `evaluate: ${given.join(', ')} apply to masked language models only; this model predicts the next token`);
    return undefined;
  }
  const fraction = options.maskFraction ?? 0.15;
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) throw invalidArgument('evaluate: maskFraction', 'a number in (0, 1]', fraction);
  const seed = options.maskSeed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw invalidArgument('evaluate: maskSeed', 'an integer in [0, 2^32)', seed);
  const maskTokenId = options.maskTokenId ?? target.tokenizer?.tokenToId('<mask>');
  if (maskTokenId === undefined) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', 'evaluate: maskTokenId is needed: this masked language model has no tokenizer with a "<mask>" token');
  }
  if (!Number.isInteger(maskTokenId) || maskTokenId < 0 || maskTokenId >= target.config.vocabSize) {
    throw invalidArgument('evaluate: maskTokenId', `a token id in [0, ${target.config.vocabSize})`, maskTokenId);
  }
  const { bosTokenId, eosTokenIds = [], padTokenId } = target.config;
  const special = new Set<number>([maskTokenId, ...eosTokenIds, ...(target.tokenizer?.specialTokenIds() ?? [])]);
  if (bosTokenId !== undefined) special.add(bosTokenId);
  if (padTokenId !== undefined) special.add(padTokenId);
  return { fraction, seed, maskTokenId, special };
}

/** A uniform [0, 1) stream for batch `batch` under `seed` (mulberry32 from a mixed 32-bit state). */
function maskRandom(seed: number, batch: number): () => number {
  let s = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(batch + 1, 0xc2b2ae35)) >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Batch `index` with its chosen tokens replaced by the mask token: the ids to run and the labels
 * (original token at each masked position, -1 elsewhere). Padding and special tokens are never chosen.
 */
function maskBatch(b: TokenBatch, index: number, m: Masking): { ids: Int32Array; labels: Int32Array } {
  const ids = Int32Array.from(b.data);
  const labels = new Int32Array(ids.length).fill(-1);
  const random = maskRandom(m.seed, index);
  for (let i = 0; i < ids.length; i++) {
    if ((b.mask && b.mask[i] === 0) || m.special.has(ids[i])) continue;
    if (random() < m.fraction) {
      labels[i] = ids[i];
      ids[i] = m.maskTokenId;
    }
  }
  return { ids, labels };
}

/** The n most frequent token ids in the batches (ties: lower id first), leaving out `exclude`. */
export function mostCommonTokens(batches: readonly TokenBatch[], n: number, exclude?: ReadonlySet<number>): number[] {
  const counts = new Map<number, number>();
  for (const b of batches) {
    for (let i = 0; i < b.data.length; i++) {
      if ((b.mask && b.mask[i] === 0) || exclude?.has(b.data[i])) continue;
      counts.set(b.data[i], (counts.get(b.data[i]) ?? 0) + 1);
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, n).map(([id]) => id);
}

export async function evaluateModel(target: EvaluateTarget, sourceOrDataset: DocumentSource | DocumentProvider, options: EvaluateOptions = {}): Promise<EvalResult> {
  const allowed = ['maxTokens', 'topK', 'batchSize', 'maxLength', 'longDocs', 'skipTokens', 'skipTopN', 'onProgress', 'signal', 'group', ...MASK_OPTIONS];
  checkKeys('evaluate', options, allowed);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArgument('evaluate: onProgress', 'a function', options.onProgress);
  checkSignal('evaluate', options.signal);
  const source = asDocumentSource(sourceOrDataset);
  checkSource(source, 'evaluate(source)');
  const { config } = target;
  const maxTokens = options.maxTokens === Infinity ? Infinity : positiveInt('evaluate: maxTokens', options.maxTokens ?? 100_000);
  const topK = positiveInt('evaluate: topK', options.topK ?? 10);
  const batchSize = positiveInt('evaluate: batchSize', options.batchSize ?? 8);
  const maxLength = positiveInt('evaluate: maxLength', options.maxLength ?? Math.min(config.maxPositions, 1024));
  if (maxLength > config.maxPositions) throw new ExciseError('ERR_INVALID_ARGUMENT', `evaluate: maxLength ${maxLength} exceeds the model's ${config.maxPositions} positions`);
  const longDocs = options.longDocs ?? 'split';
  if (!LONG_DOCS.includes(longDocs)) throw invalidArgument('evaluate: longDocs', `one of ${LONG_DOCS.map((l) => `'${l}'`).join(', ')}`, longDocs);
  const usage = newTokenUsage(longDocs, maxLength, maxTokens);
  const skipTopN = options.skipTopN ?? 50;
  if (!Number.isInteger(skipTopN) || skipTopN < 0) throw invalidArgument('evaluate: skipTopN', 'an integer >= 0', skipTopN);
  if (options.skipTokens !== undefined && (!Array.isArray(options.skipTokens) || !options.skipTokens.every((t) => Number.isInteger(t)))) {
    throw invalidArgument('evaluate: skipTokens', 'an array of token ids', options.skipTokens);
  }
  const masking = maskingOf(target, options);

  const group = checkGroup('evaluate', options.group);
  return asGroupMember(group, async () => {
  // The evaluated tokens are read first (maxTokens ids: small), so the most common ones are known.
  const batches: TokenBatch[] = [];
  for await (const b of tokenBatches(source, { tokenizer: target.tokenizer, vocabSize: config.vocabSize, maxTokens, maxLength, batchSize, longDocs, usage })) batches.push(b);
  if (batches.length === 0) throw new ExciseError('ERR_INVALID_ARGUMENT', 'evaluate: the source has no tokens');
  // A masked LM's targets are never special tokens: the most common ones are counted among the rest.
  const skipTokens = options.skipTokens ? [...options.skipTokens] : mostCommonTokens(batches, skipTopN, masking?.special);
  const skip = Int32Array.from(skipTokens);

  // Per batch: [tokens, lossSum, top1, topk, skipTokens, top1Skip, topkSkip]. With a group, each rank
  // fills its own batches' rows (the others stay 0), the table is all-reduced (x + 0 is exact), and
  // the rows are added in batch order: the same additions, in the same order, as one process.
  const perBatch = new Float64Array(batches.length * BATCH_FIELDS);
  let done = 0;
  // Two batches queued natively, as collect does: the model thread starts the next batch while JS
  // records the last one, so the device never waits on a round trip through the JS thread. Every
  // batch promise is handled the moment it exists, and on failure the ones still in flight are
  // awaited before the error propagates (no batch runs after evaluate() has settled).
  type BatchSums = Awaited<ReturnType<typeof target.handle.evaluateBatch>>;
  const inFlight: { sums: Promise<BatchSums>; index: number; tokens: number }[] = [];
  const record = async () => {
    const next = inFlight.shift()!;
    const r = await next.sums;
    perBatch.set([r.tokens, r.lossSum, r.top1, r.topk, r.skipTokens, r.top1Skip, r.topkSkip], next.index * BATCH_FIELDS);
    done += next.tokens;
    options.onProgress?.(done);
  };
  try {
    for (let i = 0; i < batches.length; i++) {
      if (options.signal?.aborted) throw new ExciseError('ERR_ABORTED', 'evaluate: aborted');
      if (group && !group.ownsBatch(i)) continue;  // another rank's batch
      group?.checkPeers();
      const b = batches[i];
      // A masked LM runs the batch with its chosen tokens masked; the labels say what each predicts.
      const m = masking ? maskBatch(b, i, masking) : undefined;
      const sums = withCallerStack(() => m
        ? target.handle.evaluateBatch(m.ids, b.batch, b.seq, b.mask, skip, topK, m.labels)
        : target.handle.evaluateBatch(b.data, b.batch, b.seq, b.mask, skip, topK));
      sums.catch(() => {});  // handled where it is awaited
      inFlight.push({ sums, index: i, tokens: b.tokens });
      if (inFlight.length >= 2) await record();
    }
    while (inFlight.length > 0) await record();
  } catch (err) {
    await Promise.allSettled(inFlight.splice(0).map((f) => f.sums));
    throw err;
  }
  const rows = group ? await group.allReduceSum(perBatch) : perBatch;
  let tokens = 0, lossSum = 0, top1 = 0, topk = 0, skipCounted = 0, top1Skip = 0, topkSkip = 0;
  for (let at = 0; at < rows.length; at += BATCH_FIELDS) {
    tokens += rows[at]; lossSum += rows[at + 1]; top1 += rows[at + 2]; topk += rows[at + 3];
    skipCounted += rows[at + 4]; top1Skip += rows[at + 5]; topkSkip += rows[at + 6];
  }
  if (tokens === 0 && masking) throw new ExciseError('ERR_INVALID_ARGUMENT', `evaluate: no token was masked (maskFraction ${masking.fraction} of the real, non-special tokens)`);
  if (tokens === 0) throw new ExciseError('ERR_INVALID_ARGUMENT', 'evaluate: no document has two or more tokens, so nothing can be predicted');
  const loss = lossSum / tokens;
  return {
    tokens,
    loss,
    perplexity: Math.exp(loss),
    top1: top1 / tokens,
    topk: topk / tokens,
    top1Skip: skipCounted > 0 ? top1Skip / skipCounted : null,
    topkSkip: skipCounted > 0 ? topkSkip / skipCounted : null,
    skipCounted,
    topK,
    skipTokens,
    usage,
  };
  });
}

const BATCH_FIELDS = 7;
