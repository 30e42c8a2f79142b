/**
 * model.collect(): activation statistics over a dataset, accumulated natively on the model's
 * device. Batches stream through; only the per-neuron sums ever reach JS, once, at the end.
 */
import { ExciseError, invalidArgument, withCallerStack, checkSignal, checkKeys, positiveInt } from '../errors.js';
import { LONG_DOCS, asDocumentSource, checkSource, newTokenUsage, tokenBatches, type DocumentProvider, type DocumentSource, type LongDocs } from '../data/batches.js';
import type { NativeModel } from '../native.js';
import { asGroupMember, checkGroup, type ProcessGroup } from '../distributed.js';
import type { Tokenizer } from '../tokenizer.js';
import { ActivationStats, SUM_KEYS, sumsFromExport, type NeuronSums } from './stats.js';

export interface CollectOptions {
  /** Hook points (default: every layer's mlp.pre_out and attn.pre_out). */
  hooks?: readonly string[];
  /** Stop after this many tokens (default: the whole source). */
  maxTokens?: number;
  /** Documents per batch (default 8). */
  batchSize?: number;
  /** Tokens per row at most (default: the model's context, at most 1024). */
  maxLength?: number;
  /** Longer documents: 'split' into maxLength windows, no token lost (default), or 'truncate'd. The result's `usage` says what happened. */
  longDocs?: LongDocs;
  /** Called after each batch with the tokens done so far. */
  onProgress?: (tokens: number) => void;
  /** Stops after the current batch (ExciseError ERR_ABORTED). */
  signal?: AbortSignal;
  /**
   * A process group (initDistributed()): this rank runs every worldSize-th batch of the same batches
   * one process would make, and the float64 sums are all-reduced, so every rank returns the
   * statistics of the whole source. onProgress then counts this rank's tokens.
   */
  group?: ProcessGroup;
}

export interface CollectTarget {
  handle: NativeModel;
  tokenizer: Tokenizer | undefined;
  config: { architecture: string; nLayers: number; dMlp: number; nHeads: number; headDim: number; vocabSize: number; maxPositions: number };
  hookNames: string[];
}

export async function collectStats(target: CollectTarget, sourceOrDataset: DocumentSource | DocumentProvider, options: CollectOptions = {}): Promise<ActivationStats> {
  const source = asDocumentSource(sourceOrDataset);
  const allowed = ['hooks', 'maxTokens', 'batchSize', 'maxLength', 'longDocs', 'onProgress', 'signal', 'group'];
  checkKeys('collect', options, allowed);
  checkSource(source, 'collect(source)');
  const { config } = target;
  const hooks = options.hooks ?? target.hookNames;
  if (!Array.isArray(hooks) || hooks.length === 0) throw invalidArgument('collect: hooks', 'a non-empty array of hook names', hooks);
  const valid = new Set(target.hookNames);
  for (const h of hooks) {
    if (!valid.has(h)) throw new ExciseError('ERR_INVALID_ARGUMENT', `collect: unknown hook point "${h}" (expected blocks.{0..${config.nLayers - 1}}.mlp.pre_out or blocks.{L}.attn.pre_out)`);
  }
  const onProgress = options.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidArgument('collect: onProgress', 'a function', onProgress);
  checkSignal('collect', options.signal);
  const maxTokensOption = options.maxTokens ?? Infinity;
  const maxTokens = maxTokensOption === Infinity ? Infinity : positiveInt('collect: maxTokens', maxTokensOption);
  const batchSize = positiveInt('collect: batchSize', options.batchSize ?? 8);
  const maxLength = positiveInt('collect: maxLength', options.maxLength ?? Math.min(config.maxPositions, 1024));
  if (maxLength > config.maxPositions) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', `collect: maxLength ${maxLength} exceeds the model's ${config.maxPositions} positions`);
  }
  const longDocs = options.longDocs ?? 'split';
  if (!LONG_DOCS.includes(longDocs)) throw invalidArgument('collect: longDocs', `one of ${LONG_DOCS.map((l) => `'${l}'`).join(', ')}`, longDocs);
  const group = checkGroup('collect', options.group);
  const usage = newTokenUsage(longDocs, maxLength, maxTokens);
  const uniqueHooks = [...new Set(hooks)];
  return asGroupMember(group, () => collectInto(target, source, { uniqueHooks, maxTokens, batchSize, maxLength, longDocs, usage, onProgress, signal: options.signal, group }));
}

async function collectInto(target: CollectTarget, source: DocumentSource, o: {
  uniqueHooks: string[]; maxTokens: number; batchSize: number; maxLength: number; longDocs: LongDocs; usage: ReturnType<typeof newTokenUsage>;
  onProgress?: (tokens: number) => void; signal?: AbortSignal; group?: ProcessGroup;
}): Promise<ActivationStats> {
  const { config } = target;
  const { uniqueHooks, maxTokens, batchSize, maxLength, longDocs, usage, onProgress, group } = o;
  const session = target.handle.statsBegin(uniqueHooks);
  // Real tokens as the native core counted them (from each batch's mask): the statistics' own
  // denominator. `read` counts what was sent, for progress.
  let counted = 0;
  let read = 0;
  // Keep at most two batches queued natively: enough to keep the device busy, bounded memory.
  // Every batch promise gets a handler the moment it exists, and on any failure (a batch, the
  // source, an abort) the batches still in flight are awaited before the error propagates: no
  // rejection is ever left unhandled, and no batch still runs after collect() has settled.
  const inFlight: Promise<number>[] = [];
  const settleInFlight = () => Promise.allSettled(inFlight.splice(0));
  let batchIndex = -1;
  try {
    for await (const b of tokenBatches(source, { tokenizer: target.tokenizer, vocabSize: config.vocabSize, maxTokens, maxLength, batchSize, longDocs, usage })) {
      if (o.signal?.aborted) throw new ExciseError('ERR_ABORTED', 'collect: aborted');
      batchIndex++;
      if (group && !group.ownsBatch(batchIndex)) continue;  // another rank's batch
      group?.checkPeers();
      const batchDone = withCallerStack(() => target.handle.collectBatch(session, b.data, b.batch, b.seq, b.mask));
      batchDone.catch(() => {});  // handled where it is awaited; this keeps it from counting as unhandled meanwhile
      inFlight.push(batchDone);
      read += b.tokens;
      if (inFlight.length >= 2) counted += await inFlight.shift()!;
      onProgress?.(read);
    }
    while (inFlight.length > 0) counted += await inFlight.shift()!;
  } catch (err) {
    await settleInFlight();
    throw err;
  }
  // One process: nothing counted is an error at once. In a group, only if no rank counted a token.
  if (counted === 0 && !group) throw new ExciseError('ERR_INVALID_ARGUMENT', 'collect: the source has no tokens');
  const exported = await target.handle.statsExport(session);
  const sums = new Map<string, NeuronSums>();
  let tokens = exported.tokens;
  for (const h of uniqueHooks) {
    const exportedSums = exported.hooks[h];
    if (group && (exportedSums === undefined || Object.keys(exportedSums).length === 0)) {
      // A rank that ran no batch (fewer batches than ranks) exported no sums: its share is zeros.
      const width = h.endsWith('.mlp.pre_out') ? config.dMlp : config.nHeads * config.headDim;
      sums.set(h, Object.fromEntries(SUM_KEYS.map((k) => [k, new Float64Array(width)])) as NeuronSums);
    } else {
      sums.set(h, sumsFromExport(h, exportedSums));
    }
  }
  if (group) {
    tokens = await allReduceSums(group, sums, tokens);
    counted = tokens;
  }
  if (counted === 0) throw new ExciseError('ERR_INVALID_ARGUMENT', 'collect: the source has no tokens');
  const stats = new ActivationStats(tokens, sums, {
    architecture: config.architecture,
    nLayers: config.nLayers,
    dMlp: config.dMlp,
    attnDim: config.nHeads * config.headDim,
  });
  stats.usage = usage;
  return stats;
}

/**
 * Replaces every rank's sums by their total over the group: one float64 all-reduce of
 * [tokens, then each hook's sums (STAT_SUMS order)] (in place in `sums`); resolves to the total token count.
 */
async function allReduceSums(group: ProcessGroup, sums: Map<string, NeuronSums>, tokens: number): Promise<number> {
  let length = 1;
  for (const s of sums.values()) for (const k of SUM_KEYS) length += s[k].length;
  const packed = new Float64Array(length);
  packed[0] = tokens;
  let at = 1;
  for (const s of sums.values()) for (const k of SUM_KEYS) { packed.set(s[k], at); at += s[k].length; }
  const total = await group.allReduceSum(packed);
  at = 1;
  for (const s of sums.values()) for (const k of SUM_KEYS) { s[k] = total.slice(at, at + s[k].length); at += s[k].length; }
  return total[0];
}
