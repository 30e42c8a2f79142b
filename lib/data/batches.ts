/**
 * Turning documents into padded token batches for the native core. Documents are read as a
 * stream; within a window of documents they are sorted by length so that batches carry little
 * padding. Padding never changes a statistic or a metric: it is masked out natively.
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

export interface BatchOptions {
  tokenizer?: Tokenizer;
  vocabSize: number;
  /** Stop after this many tokens in all (the last document is cut to fit). */
  maxTokens: number;
  /** Each document is truncated to this many tokens. */
  maxLength: number;
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
  const windowSize = options.window ?? batchSize * 32;
  let remaining = maxTokens;
  let docIndex = 0;
  let pendingTexts: string[] = [];
  let window: number[][] = [];

  const accept = (ids: readonly number[], index: number) => {
    let doc = ids.length > maxLength ? ids.slice(0, maxLength) : ids;
    if (doc.length > remaining) doc = doc.slice(0, remaining);
    if (doc.length === 0) return;
    for (let t = 0; t < doc.length; t++) {
      const id = doc[t];
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new ExciseError('ERR_TOKEN_OUT_OF_RANGE', `document ${index}: token ${t} is ${id}, outside the vocabulary [0, ${vocabSize})`);
      }
    }
    window.push([...doc]);
    remaining -= doc.length;
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
  yield* emit(true);
}
