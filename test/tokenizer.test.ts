// tokenizer.json through the official `tokenizers` package; synchronous encode/decode.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
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
