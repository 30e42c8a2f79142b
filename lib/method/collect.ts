/**
 * model.collect(): activation statistics over a dataset, accumulated natively on the model's
 * device. Batches stream through; only the per-neuron sums ever reach JS, once, at the end.
 */
import { ExciseError, invalidArgument, withCallerStack } from '../errors.js';
import { asDocumentSource, checkSource, tokenBatches, type DocumentProvider, type DocumentSource } from '../data/batches.js';
import type { NativeModel } from '../native.js';
import type { Tokenizer } from '../tokenizer.js';
import { ActivationStats, type NeuronSums } from './stats.js';

export interface CollectOptions {
  /** Hook points (default: every layer's mlp.pre_out and attn.pre_out). */
  hooks?: readonly string[];
  /** Stop after this many tokens (default: the whole source). */
  maxTokens?: number;
  /** Documents per batch (default 8). */
  batchSize?: number;
  /** Tokens per document at most (default: the model's context, at most 1024). */
  maxLength?: number;
  /** Called after each batch with the tokens done so far. */
  onProgress?: (tokens: number) => void;
  /** Stops after the current batch (ExciseError ERR_ABORTED). */
  signal?: AbortSignal;
}

export interface CollectTarget {
  handle: NativeModel;
  tokenizer: Tokenizer | undefined;
  config: { architecture: string; nLayers: number; dMlp: number; nHeads: number; headDim: number; vocabSize: number; maxPositions: number };
  hookNames: string[];
}

function positiveInt(name: string, v: unknown, allowInfinity = false): number {
  if (allowInfinity && v === Infinity) return Infinity;
  if (!Number.isInteger(v) || (v as number) < 1) throw invalidArgument(name, 'a positive integer', v);
  return v as number;
}

export async function collectStats(target: CollectTarget, sourceOrDataset: DocumentSource | DocumentProvider, options: CollectOptions = {}): Promise<ActivationStats> {
  const source = asDocumentSource(sourceOrDataset);
  const allowed = ['hooks', 'maxTokens', 'batchSize', 'maxLength', 'onProgress', 'signal'];
  for (const k of Object.keys(options)) {
    if (!allowed.includes(k)) throw new ExciseError('ERR_INVALID_ARGUMENT', `collect: unknown option "${k}" (expected one of: ${allowed.join(', ')})`);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArgument('collect: onProgress', 'a function', options.onProgress);
  checkSource(source, 'collect(source)');
  const { config } = target;
  const hooks = options.hooks ?? target.hookNames;
  if (!Array.isArray(hooks) || hooks.length === 0) throw invalidArgument('collect: hooks', 'a non-empty array of hook names', hooks);
  const valid = new Set(target.hookNames);
  for (const h of hooks) {
    if (!valid.has(h)) throw new ExciseError('ERR_INVALID_ARGUMENT', `collect: unknown hook point "${h}" (expected blocks.{0..${config.nLayers - 1}}.mlp.pre_out or blocks.{L}.attn.pre_out)`);
  }
  const maxTokens = positiveInt('collect: maxTokens', options.maxTokens ?? Infinity, true);
  const batchSize = positiveInt('collect: batchSize', options.batchSize ?? 8);
  const maxLength = positiveInt('collect: maxLength', options.maxLength ?? Math.min(config.maxPositions, 1024));
  if (maxLength > config.maxPositions) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', `collect: maxLength ${maxLength} exceeds the model's ${config.maxPositions} positions`);
  }
  const uniqueHooks = [...new Set(hooks)];
  const session = target.handle.statsBegin(uniqueHooks);
  let tokens = 0;
  // Keep at most two batches queued natively: enough to keep the device busy, bounded memory.
  const inFlight: Promise<void>[] = [];
  for await (const b of tokenBatches(source, { tokenizer: target.tokenizer, vocabSize: config.vocabSize, maxTokens, maxLength, batchSize })) {
    if (options.signal?.aborted) {
      await Promise.allSettled(inFlight);
      throw new ExciseError('ERR_ABORTED', 'collect: aborted');
    }
    inFlight.push(withCallerStack(() => target.handle.collectBatch(session, b.data, b.batch, b.seq, b.mask, b.tokens)));
    tokens += b.tokens;
    if (inFlight.length >= 2) await inFlight.shift();
    options.onProgress?.(tokens);
  }
  await Promise.all(inFlight);
  if (tokens === 0) throw new ExciseError('ERR_INVALID_ARGUMENT', 'collect: the source has no tokens');
  const exported = await target.handle.statsExport(session);
  const sums = new Map<string, NeuronSums>();
  for (const h of uniqueHooks) sums.set(h, exported.hooks[h]);
  return new ActivationStats(exported.tokens, sums, {
    architecture: config.architecture,
    nLayers: config.nLayers,
    dMlp: config.dMlp,
    attnDim: config.nHeads * config.headDim,
  });
}
