/**
 * Multiple-choice evaluation, scored the way lm-evaluation-harness scores `multiple_choice` tasks:
 * each choice is a continuation of the question, its log-likelihood is the sum of the log
 * probabilities of the continuation's tokens given the context, and the answer is the choice with
 * the highest sum (acc) or the highest sum per character of the choice (acc_norm).
 *
 * Tokenization follows the harness's `_encode_pair`: trailing whitespace of the context moves to the
 * front of the continuation, the pair is encoded whole, and the continuation's tokens are those
 * after the context's own encoding; an empty context is the model's BOS (else EOS) token. No special
 * tokens are added. k-shot prompts prepend k examples drawn (seeded) from a separate set, each
 * "question + delimiter + its answer", joined by a blank line, as the harness formats them.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ExciseError, invalidArgument, checkSignal, checkKeys, positiveInt, nonNegativeInt } from '../errors.js';
import type { Tokenizer } from '../tokenizer.js';
import { sequenceLogprobs, type LogprobTarget } from './logprobs.js';

/** One question: the context, the candidate continuations, and the index of the right one. */
export interface ChoiceItem {
  question: string;
  choices: string[];
  answer: number;
}

export interface ChoicesOptions {
  /** Examples for k-shot prompts: a jsonl file of the same format, or items (never the evaluated ones). */
  fewshot?: string | readonly ChoiceItem[];
  /** k: examples per prompt (default 0; needs `fewshot`). */
  numFewshot?: number;
  /** Seeds the draw of few-shot examples (default 1234, as the harness). */
  seed?: number;
  /** Between a question and a choice (default ' '). */
  targetDelimiter?: string;
  /** Between few-shot examples and before the question (default '\n\n'). */
  fewshotDelimiter?: string;
  /** Score only the first N items. */
  maxItems?: number;
  /** Sequences (question + one choice) per forward pass (default 16). */
  batchSize?: number;
  /** Tokens per scored sequence at most: longer contexts lose their start (default: the model's context, at most 1024). */
  maxLength?: number;
  signal?: AbortSignal;
  /** Called with the sequences scored so far, and their total. */
  onProgress?: (done: number, total: number) => void;
}

export interface ChoiceItemResult {
  answer: number;
  /** argmax of logLikelihoods (ties: the first). */
  predicted: number;
  /** argmax of logLikelihoods / choice length in characters. */
  predictedNorm: number;
  /** Sum of the continuation's token log-probabilities, per choice (nats). */
  logLikelihoods: number[];
  /** Per choice: every continuation token was the model's most likely one. */
  greedy: boolean[];
}

export interface ChoicesResult {
  items: number;
  /** Fraction of items whose highest-likelihood choice is the answer. */
  acc: number;
  /** The same with each log-likelihood divided by its choice's length in characters. */
  accNorm: number;
  /** Sample standard errors, sqrt(p (1 - p) / (n - 1)) as the harness reports them (0 for one item). */
  accStderr: number;
  accNormStderr: number;
  numFewshot: number;
  /** Scored sequences whose context was cut at the start to fit maxLength. */
  truncated: number;
  perItem: ChoiceItemResult[];
}

export interface ChoicesTarget extends LogprobTarget {
  tokenizer: Tokenizer | undefined;
  config: LogprobTarget['config'] & { bosTokenId?: number; eosTokenIds: readonly number[] };
}

function checkItem(item: unknown, where: string): ChoiceItem {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) throw new ExciseError('ERR_DATASET_INVALID', `${where}: expected an object with question, choices and answer`);
  const { question, choices, answer } = item as Record<string, unknown>;
  if (typeof question !== 'string') throw new ExciseError('ERR_DATASET_INVALID', `${where}: "question" must be a string, received ${JSON.stringify(question)}`);
  if (!Array.isArray(choices) || choices.length < 2 || !choices.every((c) => typeof c === 'string' && c.length > 0)) {
    throw new ExciseError('ERR_DATASET_INVALID', `${where}: "choices" must be an array of at least 2 non-empty strings, received ${JSON.stringify(choices)?.slice(0, 200)}`);
  }
  if (!Number.isInteger(answer) || (answer as number) < 0 || (answer as number) >= choices.length) {
    throw new ExciseError('ERR_DATASET_INVALID', `${where}: "answer" must be an index into choices (0..${choices.length - 1}), received ${JSON.stringify(answer)}`);
  }
  return { question, choices: [...choices] as string[], answer: answer as number };
}

/** Reads a choices file: jsonl or jsonl.gz, one `{ "question", "choices": [...], "answer": index }` per line. */
export function readChoicesFile(path: string): ChoiceItem[] {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('choices file', 'a path to a .jsonl or .jsonl.gz file', path);
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new ExciseError('ERR_DATASET_NOT_FOUND', `${path}: no such file`);
    throw new ExciseError('ERR_IO', `${path}: cannot read (${e.code ?? e.message})`);
  }
  if (path.endsWith('.gz')) {
    try { raw = gunzipSync(raw); } catch { throw new ExciseError('ERR_DATASET_INVALID', `${path}: not a valid gzip file`); }
  }
  const items: ChoiceItem[] = [];
  const lines = raw.toString('utf8').replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((line, i) => {
    if (/^[ \t]*$/.test(line)) return;
    let parsed: unknown;
    try { parsed = JSON.parse(line); } catch { throw new ExciseError('ERR_DATASET_INVALID', `${path}:${i + 1}: not a JSON object`); }
    items.push(checkItem(parsed, `${path}:${i + 1}`));
  });
  if (items.length === 0) throw new ExciseError('ERR_DATASET_EMPTY', `${path}: no questions`);
  return items;
}

function asItems(source: unknown, name: string): ChoiceItem[] {
  if (typeof source === 'string') return readChoicesFile(source);
  if (!Array.isArray(source)) throw invalidArgument(name, 'a .jsonl path or an array of { question, choices, answer }', source);
  if (source.length === 0) throw new ExciseError('ERR_DATASET_EMPTY', `${name}: no questions`);
  return source.map((it, i) => checkItem(it, `${name}[${i}]`));
}

/** mulberry32: a small seeded generator, so the few-shot draw is reproducible across platforms. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** k distinct indices of [0, n), drawn with the generator (partial Fisher-Yates). */
function sampleIndices(n: number, k: number, rand: () => number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, k);
}

/** Trailing whitespace of the context moves to the front of the continuation (the harness's rule). */
function splitPair(context: string, continuation: string): { context: string; continuation: string } {
  const trailing = context.length - context.trimEnd().length;
  if (trailing === 0) return { context, continuation };
  return { context: context.slice(0, context.length - trailing), continuation: context.slice(context.length - trailing) + continuation };
}

/**
 * The harness's context/continuation split: [context ids, continuation ids]. Trailing whitespace
 * of the context belongs to the continuation; the continuation's ids are those that follow the
 * context's own encoding within the encoding of the whole string.
 */
export function encodePair(tokenizer: Tokenizer, context: string, continuation: string, prefixToken: number): [number[], number[]] {
  ({ context, continuation } = splitPair(context, continuation));
  const whole = tokenizer.encode(context + continuation, { addSpecialTokens: false });
  const contextIds = context.length > 0 ? tokenizer.encode(context, { addSpecialTokens: false }) : [];
  return pairFromEncodings(whole, contextIds, prefixToken);
}

/**
 * [context ids, continuation ids] from the encodings of context + continuation and of the context
 * alone (after splitPair): the continuation is what follows the context's ids in the whole; a
 * context of no ids stands as the prefix token. encodePair and evaluateChoices both split this way.
 */
function pairFromEncodings(whole: number[], contextIds: number[], prefixToken: number): [number[], number[]] {
  return [contextIds.length > 0 ? contextIds : [prefixToken], whole.slice(contextIds.length)];
}

export async function evaluateChoices(target: ChoicesTarget, source: string | readonly ChoiceItem[], options: ChoicesOptions = {}): Promise<ChoicesResult> {
  const allowed = ['fewshot', 'numFewshot', 'seed', 'targetDelimiter', 'fewshotDelimiter', 'maxItems', 'batchSize', 'maxLength', 'signal', 'onProgress'];
  checkKeys('evaluateChoices', options, allowed);
  const numFewshot = options.numFewshot ?? 0;
  if (!Number.isInteger(numFewshot) || numFewshot < 0) throw invalidArgument('evaluateChoices: numFewshot', 'an integer >= 0', numFewshot);
  if (numFewshot > 0 && options.fewshot === undefined) throw new ExciseError('ERR_INVALID_ARGUMENT', `evaluateChoices: numFewshot ${numFewshot} needs fewshot (a file or items to draw the examples from)`);
  const seed = options.seed ?? 1234;
  nonNegativeInt('evaluateChoices: seed', seed);
  const targetDelimiter = options.targetDelimiter ?? ' ';
  const fewshotDelimiter = options.fewshotDelimiter ?? '\n\n';
  if (typeof targetDelimiter !== 'string') throw invalidArgument('evaluateChoices: targetDelimiter', 'a string', targetDelimiter);
  if (typeof fewshotDelimiter !== 'string') throw invalidArgument('evaluateChoices: fewshotDelimiter', 'a string', fewshotDelimiter);
  const batchSize = positiveInt('evaluateChoices: batchSize', options.batchSize ?? 16);
  const { maxPositions } = target.config;
  const maxLength = positiveInt('evaluateChoices: maxLength', options.maxLength ?? Math.min(maxPositions, 1024));
  if (maxLength > maxPositions) throw new ExciseError('ERR_INVALID_ARGUMENT', `evaluateChoices: maxLength ${maxLength} exceeds the model's ${maxPositions} positions`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArgument('evaluateChoices: onProgress', 'a function', options.onProgress);
  checkSignal('evaluateChoices', options.signal);
  if (!target.tokenizer) throw new ExciseError('ERR_TOKENIZER_MISSING', 'evaluateChoices: the model has no tokenizer.json, so questions cannot be encoded');
  const tokenizer = target.tokenizer;

  let items = asItems(source, 'evaluateChoices(source)');
  if (options.maxItems !== undefined) items = items.slice(0, positiveInt('evaluateChoices: maxItems', options.maxItems));
  const pool = options.fewshot !== undefined && numFewshot > 0 ? asItems(options.fewshot, 'evaluateChoices: fewshot') : [];
  if (numFewshot > pool.length) throw new ExciseError('ERR_INVALID_ARGUMENT', `evaluateChoices: numFewshot ${numFewshot} exceeds the ${pool.length} few-shot examples`);
  const prefixToken = target.config.bosTokenId ?? target.config.eosTokenIds[0];
  if (prefixToken === undefined) throw new ExciseError('ERR_INVALID_ARGUMENT', 'evaluateChoices: the model has neither a BOS nor an EOS token to stand for an empty question');

  // One draw per item, in item order, from one seeded generator (as the harness's sampler).
  const rand = seededRandom(seed);
  const pairs: Array<{ item: number; choice: string; context: string; continuation: string }> = [];
  for (const [n, item] of items.entries()) {
    let context = item.question;
    if (numFewshot > 0) {
      const shots = sampleIndices(pool.length, numFewshot, rand).map((i) => pool[i]);
      context = shots.map((s) => s.question + targetDelimiter + s.choices[s.answer]).join(fewshotDelimiter) + fewshotDelimiter + item.question;
    }
    for (const choice of item.choices) pairs.push({ item: n, choice, ...splitPair(context, targetDelimiter + choice) });
  }
  // Every string encoded in one batch call (the synchronous encode is a round trip per string).
  const encoded = await tokenizer.encodeBatch(pairs.flatMap((p) => [p.context + p.continuation, p.context]), { addSpecialTokens: false });
  const sequences: number[][] = [];
  const continuationLengths: number[] = [];
  let truncated = 0;
  pairs.forEach((p, i) => {
    const [ctx, cont] = pairFromEncodings(encoded[2 * i], p.context.length > 0 ? encoded[2 * i + 1] : [], prefixToken);
    if (cont.length === 0) throw new ExciseError('ERR_DATASET_INVALID', `evaluateChoices: item ${p.item}: choice ${JSON.stringify(p.choice)} encodes to no tokens`);
    if (cont.length >= maxLength) throw new ExciseError('ERR_INVALID_ARGUMENT', `evaluateChoices: item ${p.item}: choice ${JSON.stringify(p.choice.slice(0, 40))} has ${cont.length} tokens; maxLength ${maxLength} leaves no room for context`);
    let seq = [...ctx, ...cont];
    // Keep the end: the continuation and as much of the context as fits (the harness cuts the left too).
    if (seq.length > maxLength) { seq = seq.slice(seq.length - maxLength); truncated++; }
    sequences.push(seq);
    continuationLengths.push(cont.length);
  });
  const total = sequences.length;
  const scored = await sequenceLogprobs(target, sequences, {
    batchSize, signal: options.signal, where: 'evaluateChoices', onProgress: (done) => options.onProgress?.(done, total),
  });

  const perItem: ChoiceItemResult[] = [];
  let k = 0, correct = 0, correctNorm = 0;
  for (const item of items) {
    const lls: number[] = [];
    const greedy: boolean[] = [];
    for (let c = 0; c < item.choices.length; c++, k++) {
      const lp = scored.logprobs[k], g = scored.greedy[k], n = continuationLengths[k];
      let sum = 0, allGreedy = true;
      for (let t = lp.length - n; t < lp.length; t++) { sum += lp[t]; allGreedy &&= g[t] === 1; }
      lls.push(sum);
      greedy.push(allGreedy);
    }
    const argmax = (xs: number[]) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);
    const predicted = argmax(lls);
    const predictedNorm = argmax(lls.map((ll, c) => ll / [...item.choices[c]].length));
    if (predicted === item.answer) correct++;
    if (predictedNorm === item.answer) correctNorm++;
    perItem.push({ answer: item.answer, predicted, predictedNorm, logLikelihoods: lls, greedy });
  }
  const n = items.length;
  const stderr = (p: number) => (n > 1 ? Math.sqrt((p * (1 - p)) / (n - 1)) : 0);
  const acc = correct / n, accNorm = correctNorm / n;
  return { items: n, acc, accNorm, accStderr: stderr(acc), accNormStderr: stderr(accNorm), numFewshot, truncated, perItem };
}
