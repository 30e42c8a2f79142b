// The bundled corpora (scripts/build-corpora.ts) and the demo tokenizer (scripts/train-tokenizer.ts), as committed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { Tokenizer } from '../lib/tokenizer.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const corporaDir = join(root, 'assets', 'corpora');
const tokenizerFile = join(root, 'assets', 'demo-model', 'tokenizer.json');
const CORPORA = ['prose', 'python', 'javascript'] as const;
const SPLITS = ['train', 'test'] as const;
const VOCAB_SIZE = 4096;

interface Doc {
  text: string;
  source: string;
}

function read(corpus: string, split: string): Doc[] {
  const lines = gunzipSync(readFileSync(join(corporaDir, corpus, `${split}.jsonl.gz`))).toString('utf8').split('\n');
  expect(lines.pop()).toBe(''); // every line, the last too, ends with "\n"
  return lines.map((line) => JSON.parse(line) as Doc);
}

const docs = new Map<string, Doc[]>();
function get(corpus: string, split: string): Doc[] {
  const key = `${corpus}/${split}`;
  if (!docs.has(key)) docs.set(key, read(corpus, split));
  return docs.get(key)!;
}

describe('bundled corpora', () => {
  it('exist with their README and LICENSES, a few MB in all', () => {
    let bytes = 0;
    for (const c of CORPORA) for (const s of SPLITS) bytes += statSync(join(corporaDir, c, `${s}.jsonl.gz`)).size;
    expect(bytes).toBeGreaterThan(1_000_000);
    expect(bytes).toBeLessThan(8_000_000);
    for (const f of ['README.md', 'LICENSES.md', 'licenses/python3.11-LICENSE.txt', 'licenses/three.js-LICENSE.txt']) {
      expect(existsSync(join(corporaDir, f)), f).toBe(true);
    }
  });

  for (const c of CORPORA) {
    describe(c, () => {
      it('decompress and parse to {text, source} documents of a sensible size', () => {
        for (const s of SPLITS) {
          const list = get(c, s);
          expect(list.length).toBeGreaterThan(s === 'train' ? 1000 : 100);
          for (const d of list) {
            expect(Object.keys(d).sort()).toEqual(['source', 'text']);
            expect(typeof d.text).toBe('string');
            expect(typeof d.source).toBe('string');
            expect(d.source.length).toBeGreaterThan(0);
            expect(d.text.length).toBeGreaterThanOrEqual(200);
            expect(d.text.length).toBeLessThanOrEqual(4000);
            expect(d.text).toBe(d.text.trimEnd());
          }
        }
      });

      it('train and test are disjoint, about 90/10, with no duplicates even up to whitespace', () => {
        const seen = new Map<string, string>();
        for (const s of SPLITS) {
          for (const d of get(c, s)) {
            const key = d.text.replace(/\s+/g, ' ').trim();
            expect(seen.get(key), `${d.source} appears twice`).toBeUndefined();
            seen.set(key, s);
          }
        }
        const test = get(c, 'test').length / (get(c, 'test').length + get(c, 'train').length);
        expect(test).toBeGreaterThan(0.06);
        expect(test).toBeLessThan(0.14);
      });
    });
  }
});

describe('demo tokenizer', () => {
  let tok: Tokenizer;
  beforeAll(() => {
    tok = Tokenizer.fromFile(tokenizerFile);
  });
  afterAll(() => tok.dispose());

  it('has the vocabulary size and special tokens it was trained with', () => {
    expect(tok.vocabSize).toBe(VOCAB_SIZE);
    expect(tok.tokenToId('<|endoftext|>')).toBe(0);
    expect(tok.tokenToId('<|pad|>')).toBe(1);
  });

  for (const c of CORPORA) {
    it(`round-trips ${c} test documents exactly, at well under one token per character`, async () => {
      const sample = get(c, 'test').slice(0, 40).map((d) => d.text); // written in seeded-hash order: a uniform sample
      const ids = await tok.encodeBatch(sample);
      let tokens = 0;
      let chars = 0;
      sample.forEach((text, i) => {
        expect(tok.decode(ids[i])).toBe(text);
        expect(ids[i].every((id) => id >= 2 && id < VOCAB_SIZE)).toBe(true);
        tokens += ids[i].length;
        chars += [...text].length;
      });
      expect(tok.encode(sample[0])).toEqual(ids[0]);
      expect(tokens / chars).toBeLessThan(0.5);
    });
  }

  it('round-trips any text: bytes never seen in training, emoji, CRLF, control characters', () => {
    for (const text of ['\u0000\u0001\u0007\u000b\u007f', 'naïve café — “quotes” 🦀 日本語', 'a\r\nb\r\n', '\t\tx\n\n\n   ', ' leading space', '']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
    // The special tokens are whole tokens, and decoding leaves them out unless asked.
    const ids = tok.encode('a<|endoftext|>b');
    expect(ids).toContain(0);
    expect(tok.decode(ids)).toBe('ab');
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe('a<|endoftext|>b');
  });
});
