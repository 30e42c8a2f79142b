/**
 * Trains the demo model's byte-level BPE tokenizer on the train splits of the bundled corpora
 * (assets/corpora/{prose,python,javascript}/train.jsonl.gz) with Hugging Face's `tokenizers` package,
 * and writes assets/demo-model/tokenizer.json: VOCAB_SIZE tokens, "<|endoftext|>" = 0, "<|pad|>" = 1,
 * then the 256 byte symbols, then the learned merges. Byte-level: every string encodes, and decodes
 * back exactly.
 *
 * How, given what the Node binding offers (tokenizers 0.23.2): it can train a model only through
 * `Tokenizer.train(files)`, which uses the model's default trainer. For BPE that is the library's
 * `BpeTrainer::default()`: 30 000 tokens, no special tokens, an alphabet of the characters seen; none
 * of it can be set from JavaScript (the `Trainer` class has no constructor or factory). So:
 *
 *   1. train once to the default 30 000 tokens, with the byte-level pre-tokenizer;
 *   2. keep the merges in the order the trainer learned them until the vocabulary has VOCAB_SIZE
 *      tokens, after the special tokens and all 256 byte symbols. BpeTrainer picks each merge from the
 *      pair counts alone and treats the vocabulary size only as the point to stop at, so this prefix
 *      is what training with vocab_size = VOCAB_SIZE, these special tokens and the full byte-level
 *      initial alphabet would have learned (ties between equally frequent pairs break by token id,
 *      and the ids keep their relative order);
 *   3. assemble tokenizer.json (BPE model, ByteLevel pre-tokenizer and decoder, the special tokens as
 *      added tokens), load and save it through the library, and check it.
 *
 * Newlines: `train(files)` reads its files line by line, so no training "word" could contain a
 * newline, while encoding whole documents makes words like "\n" + indentation (the byte-level
 * pre-tokenizer splits on whitespace runs). The training files therefore hold one document per line
 * with each "\n" written as "\v" (vertical tab; the corpora contain none): both are whitespace to the
 * pre-tokenizer, which splits the text the same way, and both are one byte. The learned tokens then
 * swap the two bytes' symbols back, so the merges are those of the documents as written.
 *
 * Run: npx tsx scripts/train-tokenizer.ts   (after scripts/build-corpora.ts; a few seconds)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** Tokens in all: the special tokens, the 256 byte symbols and the merged tokens. */
const VOCAB_SIZE = 4096;
const SPECIAL_TOKENS = ['<|endoftext|>', '<|pad|>'];
const CORPORA = ['prose', 'python', 'javascript'];

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CORPORA_DIR = join(ROOT, 'assets', 'corpora');
const OUT = join(ROOT, 'assets', 'demo-model', 'tokenizer.json');
const require = createRequire(import.meta.url);

interface Encoding {
  getIds(): number[];
}
interface NativeTokenizer {
  setPreTokenizer(p: unknown): void;
  train(files: string[]): void;
  save(path: string, pretty?: boolean): void;
  encodeBatch(texts: string[], options?: { addSpecialTokens?: boolean }): Promise<Encoding[]>;
  decodeBatch(ids: number[][], skipSpecialTokens: boolean): Promise<string[]>;
  getVocabSize(withAddedTokens?: boolean): number;
  tokenToId(token: string): number | null;
}
interface TokenizersModule {
  Tokenizer: { new (model: unknown): NativeTokenizer; fromString(json: string): NativeTokenizer; fromFile(file: string): NativeTokenizer };
  BPE: { empty(): unknown };
  byteLevelPreTokenizer(addPrefixSpace?: boolean, useRegex?: boolean): unknown;
  byteLevelAlphabet(): string[];
}
const tokenizers = require('tokenizers') as TokenizersModule;

/** The byte-level symbols of "\n" and "\v" (bytes 0x0a and 0x0b map to U+010A and U+010B). */
const NEWLINE_SYMBOL = '\u010a';
const VTAB_SYMBOL = '\u010b';

function readSplit(corpus: string, split: 'train' | 'test'): string[] {
  const file = join(CORPORA_DIR, corpus, `${split}.jsonl.gz`);
  let data: Buffer;
  try {
    data = gunzipSync(readFileSync(file));
  } catch (err) {
    throw new Error(`${relative(ROOT, file)}: ${(err as Error).message} (run scripts/build-corpora.ts first)`);
  }
  return data.toString('utf8').split('\n').filter((l) => l.length > 0).map((l) => (JSON.parse(l) as { text: string }).text);
}

function swapNewlineSymbols(token: string): string {
  return token.replace(/[\u010a\u010b]/g, (c) => (c === NEWLINE_SYMBOL ? VTAB_SYMBOL : NEWLINE_SYMBOL));
}

/** Step 1: the library's BPE training to its default size, on the train splits. */
function trainDefault(docsByCorpus: string[][], workDir: string): { vocab: Record<string, number>; merges: Array<[string, string]>; model: Record<string, unknown>; preTokenizer: unknown } {
  const files = docsByCorpus.map((docs, i) => {
    const file = join(workDir, `${CORPORA[i]}.txt`);
    for (const d of docs) {
      if (d.includes('\v')) throw new Error(`a ${CORPORA[i]} document contains "\\v", which stands for "\\n" in training`);
    }
    writeFileSync(file, docs.map((d) => d.replaceAll('\n', '\v') + '\n').join(''));
    return file;
  });
  const trainer = new tokenizers.Tokenizer(tokenizers.BPE.empty());
  trainer.setPreTokenizer(tokenizers.byteLevelPreTokenizer(false, true));
  trainer.train(files);
  const saved = join(workDir, 'trained.json');
  trainer.save(saved);
  const json = JSON.parse(readFileSync(saved, 'utf8')) as { model: Record<string, unknown>; pre_tokenizer: unknown };
  const { vocab, merges, ...model } = json.model as { vocab: Record<string, number>; merges: Array<[string, string] | string> };
  return {
    vocab,
    // Older versions write a merge as "a b", newer ones as ["a", "b"].
    merges: merges.map((m) => (typeof m === 'string' ? (m.split(' ') as [string, string]) : m)),
    model,
    preTokenizer: json.pre_tokenizer,
  };
}

/** Step 2: the specials, all 256 byte symbols (in code point order, as the trainer orders its alphabet), the first merges. */
function truncate(trained: ReturnType<typeof trainDefault>): { vocab: Record<string, number>; merges: Array<[string, string]>; learnedMerges: number } {
  const vocab = new Map<string, number>();
  const add = (t: string) => {
    if (!vocab.has(t)) vocab.set(t, vocab.size);
  };
  for (const t of SPECIAL_TOKENS) add(t);
  const alphabet = [...tokenizers.byteLevelAlphabet()].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  if (alphabet.length !== 256) throw new Error(`byteLevelAlphabet() has ${alphabet.length} symbols, expected 256`);
  for (const c of alphabet) add(c);
  for (const c of Object.keys(trained.vocab)) {
    if ([...c].length === 1 && !vocab.has(swapNewlineSymbols(c))) throw new Error(`trained alphabet symbol ${JSON.stringify(c)} is not a byte-level symbol`);
  }
  const merges: Array<[string, string]> = [];
  for (const [a0, b0] of trained.merges) {
    if (vocab.size >= VOCAB_SIZE) break;
    const a = swapNewlineSymbols(a0);
    const b = swapNewlineSymbols(b0);
    if (!vocab.has(a) || !vocab.has(b)) throw new Error(`merge ${a0} ${b0} uses a token not learned before it`);
    merges.push([a, b]);
    add(a + b);
  }
  if (vocab.size < VOCAB_SIZE) throw new Error(`the trainer learned only ${trained.merges.length} merges: ${vocab.size} tokens < ${VOCAB_SIZE}`);
  return { vocab: Object.fromEntries(vocab), merges, learnedMerges: trained.merges.length };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const train = CORPORA.map((c) => readSplit(c, 'train'));
  const test = CORPORA.map((c) => readSplit(c, 'test'));
  for (const [i, docs] of [...train, ...test].entries()) {
    for (const d of docs) {
      for (const s of SPECIAL_TOKENS) if (d.includes(s)) throw new Error(`a document of ${CORPORA[i % CORPORA.length]} contains the special token ${s}`);
    }
  }

  const workDir = mkdtempSync(join(tmpdir(), 'excise-tokenizer-'));
  let trained: ReturnType<typeof trainDefault>;
  try {
    trained = trainDefault(train, workDir);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  const tTrain = performance.now();
  const { vocab, merges, learnedMerges } = truncate(trained);

  // Step 3: the tokenizer, read and written by the library itself.
  const byteLevel = trained.preTokenizer as { type: string };
  if (byteLevel?.type !== 'ByteLevel') throw new Error(`unexpected pre-tokenizer ${JSON.stringify(byteLevel)}`);
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content) => ({
      id: vocab[content],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    // The decoder has no factory in the Node binding; ByteLevel's settings serialize the same way.
    decoder: byteLevel,
    model: { ...trained.model, vocab, merges },
  };
  mkdirSync(dirname(OUT), { recursive: true });
  tokenizers.Tokenizer.fromString(JSON.stringify(json)).save(OUT, true);

  // Checks, on the file as written.
  const tok = tokenizers.Tokenizer.fromFile(OUT);
  const size = tok.getVocabSize(true);
  if (size !== VOCAB_SIZE) throw new Error(`${OUT}: ${size} tokens, expected ${VOCAB_SIZE}`);
  SPECIAL_TOKENS.forEach((s, id) => {
    if (tok.tokenToId(s) !== id) throw new Error(`${s} has id ${tok.tokenToId(s)}, expected ${id}`);
  });
  console.log(`${relative(ROOT, OUT)}: ${size} tokens (${SPECIAL_TOKENS.length} special, 256 bytes, the first ${merges.length} of ${learnedMerges} merges learned)`);
  console.log('tokens per character on the test splits (characters: Unicode code points):');
  for (const [i, docs] of test.entries()) {
    const ids = (await tok.encodeBatch(docs, { addSpecialTokens: false })).map((e) => e.getIds());
    const decoded = await tok.decodeBatch(ids, false);
    const bad = decoded.findIndex((d, j) => d !== docs[j]);
    if (bad >= 0) throw new Error(`${CORPORA[i]} test document ${bad} does not survive encode + decode`);
    const tokens = ids.reduce((s, x) => s + x.length, 0);
    const characters = docs.reduce((s, d) => s + [...d].length, 0);
    console.log(`  ${CORPORA[i].padEnd(10)} ${(tokens / characters).toFixed(4)}  (${tokens.toLocaleString('en-US')} tokens, ${characters.toLocaleString('en-US')} characters, ${docs.length} documents round-trip exactly)`);
  }
  console.log(`trained in ${((tTrain - t0) / 1000).toFixed(1)} s, ${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
}

await main();
