/**
 * Reads a differential corpus (scripts/dataset-corpus.py) with loadDataset and compares every case
 * with the reference readers' documents. Prints the counts and each disagreement.
 *
 *   /tmp/py/bin/python scripts/dataset-corpus.py /tmp/corpus && npx tsx scripts/check-dataset-corpus.ts /tmp/corpus
 *   npx tsx scripts/check-dataset-corpus.ts /tmp/corpus --lib /other/checkout/lib/index.ts   (another version's readers)
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkCorpus, type Loader } from '../test/helpers/dataset-corpus.js';

const args = process.argv.slice(2);
const dir = args[0];
if (!dir) throw new Error('usage: check-dataset-corpus.ts CORPUS_DIR [--lib PATH/TO/lib/index.ts]');
const libAt = args.indexOf('--lib');
const lib = libAt >= 0 ? resolve(args[libAt + 1]) : resolve(import.meta.dirname, '../lib/index.ts');
const { loadDataset } = (await import(pathToFileURL(lib).href)) as { loadDataset: Loader };
// An older loadDataset knows no `extensions` option: it reads a folder's .txt/.jsonl/.parquet files anyway.
let load: Loader = loadDataset;
let ignoreOptions: string[] = [];
try {
  loadDataset({ path: dir, extensions: ['json'] });
} catch (err) {
  if ((err as Error).message.includes('unknown option')) ignoreOptions = ['extensions'];
}
const r = await checkCorpus(resolve(dir), load, { ignoreOptions });
for (const f of r.failures) console.log(`DIFF ${f.name}: ${f.detail}`);
console.log(`${r.passed}/${r.cases} cases agree; ${r.matched}/${r.documents} reference documents matched; ${r.failures.length} cases differ`);
