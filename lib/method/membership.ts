/**
 * Membership inference: can an observer tell the documents a model saw (members: e.g. the forget
 * documents that were in its training data) from held-out documents of the same distribution
 * (non-members), from the model's likelihoods alone? Two standard attacks, each reported as the
 * ROC AUC of its score (0.5: indistinguishable):
 *
 * - loss (Yeom et al. 2018): score = -(mean next-token cross-entropy of the document);
 * - min-k% prob (Shi et al. 2024): score = mean of the k% lowest token log-probabilities.
 *
 * After unlearning, the forget set's AUC should fall toward 0.5 while the retain set's stays.
 * Each document is scored on its first maxLength tokens.
 */
import { ExciseError, invalidArgument, checkSignal, checkKeys, positiveInt, checkFraction } from '../errors.js';
import { asDocumentSource, checkSource, type DocumentProvider, type DocumentSource } from '../data/batches.js';
import type { Tokenizer } from '../tokenizer.js';
import { sequenceLogprobs, type LogprobTarget } from './logprobs.js';

export interface MembershipOptions {
  /** Documents read from each side at most (default 200). */
  maxDocuments?: number;
  /** Tokens per document at most (default: the model's context, at most 1024). */
  maxLength?: number;
  /** The fraction k of min-k% prob (default 0.2). */
  minKFraction?: number;
  /** Documents per forward pass (default 16). */
  batchSize?: number;
  signal?: AbortSignal;
}

export interface MembershipScores {
  /** Per document: mean next-token cross-entropy (nats). */
  loss: number[];
  /** Per document: mean of its k% lowest token log-probabilities. */
  minK: number[];
}

export interface MembershipResult {
  /** ROC AUC of -loss, members as positives. */
  lossAuc: number;
  /** ROC AUC of the min-k% score, members as positives. */
  minKAuc: number;
  minKFraction: number;
  members: MembershipScores;
  nonMembers: MembershipScores;
}

export interface MembershipTarget extends LogprobTarget {
  tokenizer: Tokenizer | undefined;
}

/**
 * ROC AUC of separating positives from negatives by score (higher = positive): the probability
 * that a random positive scores above a random negative, ties counting one half (Mann-Whitney U).
 */
export function rocAuc(positives: readonly number[], negatives: readonly number[]): number {
  if (positives.length === 0 || negatives.length === 0) throw new ExciseError('ERR_INVALID_ARGUMENT', 'rocAuc: both sides need at least one score');
  // Rank all scores together (average ranks for ties), then U = rank sum of positives - n(n+1)/2.
  const all = [...positives.map((s) => ({ s, pos: true })), ...negatives.map((s) => ({ s, pos: false }))].sort((a, b) => a.s - b.s);
  let rankSumPos = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j + 1 < all.length && all[j + 1].s === all[i].s) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) if (all[t].pos) rankSumPos += avgRank;
    i = j + 1;
  }
  const nP = positives.length, nN = negatives.length;
  return (rankSumPos - (nP * (nP + 1)) / 2) / (nP * nN);
}

/** Mean of the ceil(k * n) lowest values (at least one). */
export function minKMean(logprobs: ArrayLike<number>, k: number): number {
  const sorted = Array.from(logprobs).sort((a, b) => a - b);
  const n = Math.max(1, Math.ceil(k * sorted.length));
  let s = 0;
  for (let i = 0; i < n; i++) s += sorted[i];
  return s / n;
}

async function readDocuments(source: unknown, name: string, tokenizer: Tokenizer | undefined, maxDocuments: number, maxLength: number): Promise<number[][]> {
  const docs = asDocumentSource(source);
  checkSource(docs, name);
  const out: number[][] = [];
  const texts: string[] = [];
  for await (const doc of docs as DocumentSource) {
    if (out.length + texts.length >= maxDocuments) break;
    if (typeof doc === 'string') texts.push(doc);
    else if (Array.isArray(doc)) out.push(doc.slice(0, maxLength));  // only the first maxLength ids are copied
    else throw invalidArgument(`${name}: document`, 'a text or an array of token ids', doc);
  }
  if (texts.length > 0) {
    if (!tokenizer) throw new ExciseError('ERR_TOKENIZER_MISSING', `${name}: texts need the model's tokenizer.json; pass token ids instead`);
    for (const ids of await tokenizer.encodeBatch(texts)) out.push(ids.slice(0, maxLength));
  }
  const usable = out.filter((d) => d.length >= 2);
  if (usable.length === 0) throw new ExciseError('ERR_DATASET_EMPTY', `${name}: no document has two or more tokens`);
  return usable;
}

export async function membershipInference(target: MembershipTarget, members: DocumentSource | DocumentProvider, nonMembers: DocumentSource | DocumentProvider, options: MembershipOptions = {}): Promise<MembershipResult> {
  const allowed = ['maxDocuments', 'maxLength', 'minKFraction', 'batchSize', 'signal'];
  checkKeys('membershipInference', options, allowed);
  const maxDocuments = positiveInt('membershipInference: maxDocuments', options.maxDocuments ?? 200);
  const maxLength = positiveInt('membershipInference: maxLength', options.maxLength ?? Math.min(target.config.maxPositions, 1024));
  if (maxLength > target.config.maxPositions) throw new ExciseError('ERR_INVALID_ARGUMENT', `membershipInference: maxLength ${maxLength} exceeds the model's ${target.config.maxPositions} positions`);
  if (maxLength < 2) throw invalidArgument('membershipInference: maxLength', 'at least 2', maxLength);
  const k = options.minKFraction ?? 0.2;
  checkFraction('membershipInference: minKFraction', k, false);
  const batchSize = positiveInt('membershipInference: batchSize', options.batchSize ?? 16);
  checkSignal('membershipInference', options.signal);

  const side = async (source: unknown, name: string): Promise<MembershipScores> => {
    const docs = await readDocuments(source, name, target.tokenizer, maxDocuments, maxLength);
    const { logprobs } = await sequenceLogprobs(target, docs, { batchSize, signal: options.signal, where: name });
    return {
      loss: logprobs.map((lp) => -lp.reduce((a, b) => a + b, 0) / lp.length),
      minK: logprobs.map((lp) => minKMean(lp, k)),
    };
  };
  const m = await side(members, 'membershipInference(members)');
  const n = await side(nonMembers, 'membershipInference(nonMembers)');
  return {
    lossAuc: rocAuc(m.loss.map((x) => -x), n.loss.map((x) => -x)),
    minKAuc: rocAuc(m.minK, n.minK),
    minKFraction: k,
    members: m,
    nonMembers: n,
  };
}
