/**
 * model.evaluate(): next-token top-1 / top-k accuracy, loss and perplexity, and the same accuracies
 * over targets outside the dataset's most common tokens, computed natively on the device in chunks
 * (no logits cross into JS).
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
}

export interface EvalResult {
  /** Predicted positions (targets that are real tokens). */
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
  config: { vocabSize: number; maxPositions: number };
}

/** The n most frequent token ids in the batches (ties: lower id first). */
export function mostCommonTokens(batches: readonly TokenBatch[], n: number): number[] {
  const counts = new Map<number, number>();
  for (const b of batches) {
    for (let i = 0; i < b.data.length; i++) {
      if (b.mask && b.mask[i] === 0) continue;
      counts.set(b.data[i], (counts.get(b.data[i]) ?? 0) + 1);
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, n).map(([id]) => id);
}

export async function evaluateModel(target: EvaluateTarget, sourceOrDataset: DocumentSource | DocumentProvider, options: EvaluateOptions = {}): Promise<EvalResult> {
  const allowed = ['maxTokens', 'topK', 'batchSize', 'maxLength', 'longDocs', 'skipTokens', 'skipTopN', 'onProgress', 'signal', 'group'];
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

  const group = checkGroup('evaluate', options.group);
  return asGroupMember(group, async () => {
  // The evaluated tokens are read first (maxTokens ids: small), so the most common ones are known.
  const batches: TokenBatch[] = [];
  for await (const b of tokenBatches(source, { tokenizer: target.tokenizer, vocabSize: config.vocabSize, maxTokens, maxLength, batchSize, longDocs, usage })) batches.push(b);
  if (batches.length === 0) throw new ExciseError('ERR_INVALID_ARGUMENT', 'evaluate: the source has no tokens');
  const skipTokens = options.skipTokens ? [...options.skipTokens] : mostCommonTokens(batches, skipTopN);
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
      const sums = withCallerStack(() => target.handle.evaluateBatch(b.data, b.batch, b.seq, b.mask, skip, topK));
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
