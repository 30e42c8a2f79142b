// The differential check of the dataset readers on the committed corpus (test/fixtures/datasets-diff,
// written by `python3 scripts/dataset-corpus.py test/fixtures/datasets-diff --small` with pyarrow and
// Hugging Face datasets): every case is read with loadDataset and compared document by document with
// what pyarrow / Python's json module return, or with the error they refuse it with. The larger
// corpus (1 MB texts, more seeds) runs with scripts/check-dataset-corpus.ts.
import { describe, expect, it } from 'vitest';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset } from '../lib/data/datasets.js';
import { checkCase, readCorpus, type Loader } from './helpers/dataset-corpus.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'datasets-diff');
const cases = readCorpus(dir);

describe('readers agree with pyarrow and a strict JSON reader', () => {
  it('the corpus covers every kind of case', () => {
    const kinds = new Set(cases.map((c) => c.name.split(' ')[0]));
    expect([...kinds].sort()).toEqual(['datasets', 'folder', 'jsonl', 'parquet', 'txt']);
    expect(cases.filter((c) => 'error' in c.expect).length).toBeGreaterThan(30);
    expect(cases.some((c) => 'docs' in c.expect && c.expect.skipped > 0)).toBe(true);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const r = await checkCase(dir, c, loadDataset as unknown as Loader);
    expect(r.detail).toBe('');
    expect(r.ok).toBe(true);
    expect(r.matched).toBe(r.expected);
  });
});
