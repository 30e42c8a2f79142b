/**
 * Turning documents into padded token batches for the native core. Documents are read as a
 * stream; within a window of documents they are sorted by length so that batches carry little
 * padding. Padding never changes a statistic or a metric: it is masked out natively.
 *
 * A document longer than the context (maxLength) is split into context-sized windows, each its
 * own row, so no token is lost (longDocs 'split', the default), or cut to its first maxLength
 * tokens (longDocs 'truncate', what the reference implementation does). TokenUsage counts both.
 */
import { ExciseError, invalidArgument } from '../errors.js';
import type { Tokenizer } from '../tokenizer.js';

/** Documents: texts (need the model's tokenizer) or token-id sequences; sync or async iterable. */
export type DocumentSource = Iterable<string | readonly number[]> | AsyncIterable<string | readonly number[]>;

export interface TokenBatch {
  /** [batch, seq] row-major ids; padding positions hold 0. */
  data: Int32Array;
  /** [batch, seq], 1 = token, 0 = padding; null when no row is padded. */
  mask: Int32Array | null;
  batch: number;
  seq: number;
  /** Real (non-padding) tokens in the batch. */
  tokens: number;
}

/** How long documents are fitted to the context: split into windows (no token lost) or truncated. */
export type LongDocs = 'split' | 'truncate';
export const LONG_DOCS: readonly LongDocs[] = ['split', 'truncate'];

/** How documents became tokens: what collect and evaluate report as `usage`. */
export interface TokenUsage {
  longDocs: LongDocs;
  /** Tokens per row at most (the context used). */
  maxLength: number;
  /** Documents that contributed tokens. */
  documents: number;
  /** Tokens fed to the model. */
  tokensUsed: number;
  /** Tokens cut off documents longer than maxLength (longDocs 'truncate'; 0 with 'split'). */
  tokensDropped: number;
  /** Documents longer than maxLength: split into windows ('split') or truncated ('truncate'). */
  longDocuments: number;
  /** Rows fed to the model (a split document gives one per window). */
  rows: number;
  /** The token budget asked for (null: the whole source). */
  maxTokens: number | null;
  /** False when the source ran out before maxTokens tokens. */
  budgetMet: boolean;
}

export function newTokenUsage(longDocs: LongDocs, maxLength: number, maxTokens: number): TokenUsage {
  return {
    longDocs, maxLength, documents: 0, tokensUsed: 0, tokensDropped: 0, longDocuments: 0, rows: 0,
    maxTokens: maxTokens === Infinity ? null : maxTokens, budgetMet: maxTokens === Infinity,
  };
}

export interface BatchOptions {
  tokenizer?: Tokenizer;
  vocabSize: number;
  /** Stop after this many tokens in all (the last document is cut to fit). */
  maxTokens: number;
  /** Tokens per row at most: longer documents are split or truncated (longDocs). */
  maxLength: number;
  /** Default 'split'. */
  longDocs?: LongDocs;
  /** Filled in as batches are made. */
  usage?: TokenUsage;
  batchSize: number;
  /** Documents read ahead and sorted by length before batching. */
  window?: number;
}

function isAsyncIterable(x: unknown): x is AsyncIterable<unknown> {
  return x != null && typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

function isIterable(x: unknown): x is Iterable<unknown> {
  return x != null && typeof (x as Iterable<unknown>)[Symbol.iterator] === 'function' && typeof x !== 'string';
}

/** Anything with a re-iterable documents() stream (a Dataset from loadDataset()). */
export interface DocumentProvider {
  documents(): AsyncIterable<string | readonly number[]> | Iterable<string | readonly number[]>;
}

/** A Dataset's document stream, or the source itself. */
export function asDocumentSource(source: unknown): unknown {
  if (source !== null && typeof source === 'object' && typeof (source as DocumentProvider).documents === 'function') {
    return (source as DocumentProvider).documents();
  }
  return source;
}

export function checkSource(source: unknown, name: string): asserts source is DocumentSource {
  if (!isAsyncIterable(source) && !isIterable(source)) {
    throw invalidArgument(name, 'an array or (async) iterable of texts or token-id arrays', source);
  }
}

async function* documents(source: DocumentSource): AsyncGenerator<string | readonly number[]> {
  if (isAsyncIterable(source)) yield* source;
  else yield* source as Iterable<string | readonly number[]>;
}

function pack(docs: number[][]): TokenBatch {
  const seq = Math.max(...docs.map((d) => d.length));
  const batch = docs.length;
  const data = new Int32Array(batch * seq);
  const mask = new Int32Array(batch * seq);
  let padded = false;
  let tokens = 0;
  docs.forEach((d, b) => {
    data.set(d, b * seq);
    mask.fill(1, b * seq, b * seq + d.length);
    if (d.length < seq) padded = true;
    tokens += d.length;
  });
  return { data, mask: padded ? mask : null, batch, seq, tokens };
}

/** Yields padded batches of at most batchSize documents until maxTokens tokens. */
export async function* tokenBatches(source: DocumentSource, options: BatchOptions): AsyncGenerator<TokenBatch> {
  const { tokenizer, vocabSize, maxTokens, maxLength, batchSize } = options;
  const longDocs = options.longDocs ?? 'split';
  const usage = options.usage ?? newTokenUsage(longDocs, maxLength, maxTokens);
  const windowSize = options.window ?? batchSize * 32;
  let remaining = maxTokens;
  let docIndex = 0;
  let pendingTexts: string[] = [];
  let window: number[][] = [];

  const accept = (ids: readonly number[], index: number) => {
    let end = ids.length;
    if (ids.length > maxLength) {
      usage.longDocuments++;
      if (longDocs === 'truncate') {
        usage.tokensDropped += ids.length - maxLength;
        end = maxLength;
      }
    }
    let used = false;
    // Rows of at most maxLength tokens: the whole document in windows, or its first maxLength.
    for (let start = 0; start < end && remaining > 0; start += maxLength) {
      const stop = Math.min(start + maxLength, end, start + remaining);
      for (let t = start; t < stop; t++) {
        const id = ids[t];
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
          throw new ExciseError('ERR_TOKEN_OUT_OF_RANGE', `document ${index}: token ${t} is ${id}, outside the vocabulary [0, ${vocabSize})`);
        }
      }
      window.push(ids.slice(start, stop) as number[]);
      remaining -= stop - start;
      usage.tokensUsed += stop - start;
      usage.rows++;
      used = true;
    }
    if (used) usage.documents++;
  };
  const flushTexts = async () => {
    if (pendingTexts.length === 0) return;
    if (!tokenizer) throw new ExciseError('ERR_TOKENIZER_MISSING', 'texts need the model\'s tokenizer.json; this model has none (pass token ids instead)');
    const encoded = await tokenizer.encodeBatch(pendingTexts);
    const first = docIndex - pendingTexts.length;
    pendingTexts = [];
    encoded.forEach((ids, i) => { if (remaining > 0) accept(ids, first + i); });
  };
  function* emit(all: boolean): Generator<TokenBatch> {
    // Longest first, stable: batches of similar lengths, deterministic for a given input order.
    const order = window.map((d, i) => [d, i] as const).sort((a, b) => b[0].length - a[0].length || a[1] - b[1]).map(([d]) => d);
    const full = all ? order.length : order.length - (order.length % batchSize);
    for (let i = 0; i < full; i += batchSize) yield pack(order.slice(i, Math.min(i + batchSize, full)));
    window = order.slice(full);
  }

  for await (const doc of documents(source)) {
    if (remaining <= 0) break;
    if (typeof doc === 'string') {
      pendingTexts.push(doc);
      docIndex++;
      if (pendingTexts.length >= batchSize * 8) await flushTexts();
    } else if (Array.isArray(doc) || ArrayBuffer.isView(doc)) {
      await flushTexts();
      accept(Array.from(doc as ArrayLike<number>), docIndex++);
    } else {
      throw invalidArgument(`document ${docIndex}`, 'a text or an array of token ids', doc);
    }
    if (window.length >= windowSize) yield* emit(false);
  }
  await flushTexts();
  if (remaining <= 0) usage.budgetMet = true;
  yield* emit(true);
}
