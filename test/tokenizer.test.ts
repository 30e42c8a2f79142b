// tokenizer.json through the official `tokenizers` package; synchronous encode/decode.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, Tokenizer, type Model } from '../lib/index.js';
import { fixturesDir, goldenDir } from './helpers/golden.js';

const tokenizerFile = join(fixturesDir, 'tokenizer', 'tokenizer.json');

describe('Tokenizer', () => {
  it('encodes and decodes synchronously', () => {
    const tok = Tokenizer.fromFile(tokenizerFile);
    // WordLevel vocabulary of the fixture: the=2 quick=3 brown=4 fox=5; unknown words -> [UNK]=0.
    expect(tok.encode('The quick brown fox')).toEqual([2, 3, 4, 5]);
    expect(tok.encode('the zebra')).toEqual([2, 0]);
    expect(tok.decode([10, 11])).toBe('hello world');
    expect(tok.vocabSize).toBe(52);
    tok.dispose();
  });

  it('encodeBatch agrees with encode', async () => {
    const tok = Tokenizer.fromFile(tokenizerFile);
    const texts = ['hello world', 'def f ( x ) : return x + 1', 'the lazy dog'];
    expect(await tok.encodeBatch(texts)).toEqual(texts.map((t) => tok.encode(t)));
    tok.dispose();
  });

  it('a missing file', () => {
    expect(() => Tokenizer.fromFile('/nonexistent/tokenizer.json')).toThrow(expect.objectContaining({ code: 'ERR_TOKENIZER_MISSING' }));
  });
});

describe('a model with a tokenizer', () => {
  let dir: string;
  let model: Model;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'excise-tok-'));
    cpSync(join(goldenDir, 'llama'), dir, { recursive: true });
    cpSync(tokenizerFile, join(dir, 'tokenizer.json'));
    model = await loadModel(dir);
  });
  afterAll(async () => {
    await model.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('generates text from a text prompt, the same as from its ids', async () => {
    const prompt = 'def f ( x ) : return';
    const ids = model.tokenizer.encode(prompt);
    const fromIds = await model.generate(ids, { maxNewTokens: 6, stopAtEos: false });
    const fromText = await model.generate(prompt, { maxNewTokens: 6, stopAtEos: false });
    // The random model may emit ids beyond this small vocabulary; those decode to nothing.
    expect(fromText).toBe(model.tokenizer.decode(fromIds.filter((i) => i < model.tokenizer.vocabSize)));
    expect(typeof fromText).toBe('string');
  });
});

// tokenizer.json content the tokenizers crate accepts at load and then panics on at encode time,
// which aborts the whole process (a Rust panic crosses no JS boundary): refused at load instead.
describe('tokenizer.json that would abort the process', () => {
  let scratch: string;
  beforeAll(() => { scratch = mkdtempSync(join(tmpdir(), 'excise-tokpanic-')); });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  const base = () => JSON.parse(readFileSync(tokenizerFile, 'utf8'));
  const seqA = { Sequence: { id: 'A', type_id: 0 } };
  const seqB = { Sequence: { id: 'B', type_id: 1 } };
  const cls = { SpecialToken: { id: '[CLS]', type_id: 0 } };
  const template = (single: unknown[], special: Record<string, unknown>) =>
    ({ type: 'TemplateProcessing', single, pair: [seqA, seqB], special_tokens: special });
  const write = (name: string, tok: unknown) => {
    const file = join(scratch, `${name}.json`);
    writeFileSync(file, JSON.stringify(tok));
    return file;
  };
  const refused = (file: string, ...mentions: string[]) => {
    let err: unknown;
    try { Tokenizer.fromFile(file); } catch (e) { err = e; }
    expect(err).toMatchObject({ name: 'ExciseError', code: 'ERR_TOKENIZER_INVALID' });
    for (const m of mentions) expect((err as Error).message).toContain(m);
  };

  it('a template naming a special token that is not defined', () => {
    refused(write('undefined-special', { ...base(), post_processor: template([cls, seqA], {}) }), 'post_processor.single', '[CLS]');
    // Also inside a Sequence of post-processors.
    const nested = { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, template([cls, seqA], {})] };
    refused(write('nested', { ...base(), post_processor: nested }), 'post_processor.processors[1]', '[CLS]');
  });

  it('a special token with more ids than tokens, a single template using $B, a Strip decoder with stop', () => {
    refused(write('ids-tokens', { ...base(), post_processor: template([cls, seqA], { '[CLS]': { id: '[CLS]', ids: [1, 2], tokens: ['[CLS]'] } }) }), '2 ids but 1 tokens');
    refused(write('single-b', { ...base(), post_processor: template([seqA, seqB], {}) }), 'sequence A');
    refused(write('strip', { ...base(), decoder: { type: 'Strip', content: ' ', start: 0, stop: 2 } }), 'Strip');
  });

  it('a SentencePiece precompiled_charsmap whose trie reaches outside itself', () => {
    refused(write('charsmap-short', { ...base(), normalizer: { type: 'Precompiled', precompiled_charsmap: 'AAAA' } }), 'precompiled_charsmap');
    // One unit whose offset sends the first input byte past the end of a 1-unit trie.
    const map = Buffer.alloc(8);
    map.writeUInt32LE(4, 0);
    map.writeUInt32LE(1 << 10, 4);
    refused(write('charsmap-outside', { ...base(), normalizer: { type: 'Sequence', normalizers: [{ type: 'Precompiled', precompiled_charsmap: map.toString('base64') }] } }), 'normalizer.normalizers[0]', 'outside the trie');
  });

  it('a BPE merge whose result is not in the vocabulary', () => {
    const bpe = { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: { a: 0, b: 1 }, merges: ['a b'] };
    refused(write('bpe-merge', { ...base(), model: bpe }), 'model.merges[0]', '"a", "b"');
    const tok = Tokenizer.fromFile(write('bpe-ok', { ...base(), normalizer: null, pre_tokenizer: null, decoder: null, added_tokens: [], model: { ...bpe, vocab: { a: 0, b: 1, ab: 2 }, merges: [['a', 'b']] } }));
    expect(tok.encode('abba')).toEqual([2, 1, 0]);
    tok.dispose();
  });

  it('through loadModel too, before any encode', async () => {
    const dir = join(scratch, 'model');
    cpSync(join(goldenDir, 'llama'), dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...base(), post_processor: template([cls, seqA], {}) }));
    await expect(loadModel(dir)).rejects.toMatchObject({ code: 'ERR_TOKENIZER_INVALID' });
  });

  it('a valid template still adds its special token', () => {
    const tok = Tokenizer.fromFile(write('valid', { ...base(), post_processor: template([cls, seqA], { '[CLS]': { id: '[CLS]', ids: [1], tokens: ['<eos>'] } }) }));
    expect(tok.encode('the quick')).toEqual([1, 2, 3]);
    expect(tok.encode('the quick', { addSpecialTokens: false })).toEqual([2, 3]);
    tok.dispose();
  });

  it('truncation and padding in the file are dropped, as transformers does (a stride >= max_length panics)', async () => {
    const tok = Tokenizer.fromFile(write('truncation', {
      ...base(),
      truncation: { direction: 'Right', max_length: 2, strategy: 'LongestFirst', stride: 5 },
      padding: { strategy: { Fixed: 8 }, direction: 'Right', pad_to_multiple_of: null, pad_id: 0, pad_type_id: 0, pad_token: '[UNK]' },
    }));
    expect(tok.encode('The quick brown fox')).toEqual([2, 3, 4, 5]);
    expect(await tok.encodeBatch(['The quick brown fox', 'the'])).toEqual([[2, 3, 4, 5], [2]]);
    tok.dispose();
  });
});
