/**
 * The differential check of the dataset readers: every case of a corpus written by
 * scripts/dataset-corpus.py is read with loadDataset and compared, document by document, with the
 * reference reader's documents (pyarrow, Python's json), or with the error it refuses the file with.
 * Shared by test/datasets.diff.test.ts (the committed small corpus) and scripts/check-dataset-corpus.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type CorpusExpectation = { docs: string[]; skipped: number } | { error: string; at: string };
export interface CorpusCase { name: string; path: string; options?: Record<string, unknown>; expect: CorpusExpectation }

/** What the check needs of a loaded dataset (summary() where the readers count skipped documents). */
interface Readable { documents(): AsyncIterable<string>; summary?(): { skipped: number } }
export type Loader = (spec: Record<string, unknown>) => Readable;

export interface CaseOutcome { name: string; ok: boolean; expected: number; matched: number; detail: string }
export interface CorpusOutcome { cases: number; passed: number; documents: number; matched: number; failures: CaseOutcome[] }

export function readCorpus(dir: string): CorpusCase[] {
  return (JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { cases: CorpusCase[] }).cases;
}

/** Expected documents found in `got`, with multiplicity. */
function matchedCount(expected: readonly string[], got: readonly string[]): number {
  const left = new Map<string, number>();
  for (const g of got) left.set(g, (left.get(g) ?? 0) + 1);
  let n = 0;
  for (const e of expected) {
    const k = left.get(e) ?? 0;
    if (k > 0) { n++; left.set(e, k - 1); }
  }
  return n;
}

function show(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…(${s.length})` : s);
}

export async function checkCase(dir: string, c: CorpusCase, load: Loader, options: { ignoreOptions?: readonly string[] } = {}): Promise<CaseOutcome> {
  const spec: Record<string, unknown> = { path: join(dir, c.path), ...c.options };
  for (const k of options.ignoreOptions ?? []) delete spec[k];
  const expected = 'docs' in c.expect ? c.expect.docs.length : 0;
  const got: string[] = [];
  let ds: Readable | undefined;
  let error: unknown;
  try {
    ds = load(spec);
    for await (const d of ds.documents()) got.push(d);
  } catch (err) {
    error = err;
  }
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = (error as Error | undefined)?.message ?? String(error);
  if ('error' in c.expect) {
    const ok = error !== undefined && code === c.expect.error && message.includes(c.expect.at);
    return { name: c.name, ok, expected, matched: 0, detail: ok ? '' : error ? `refused with ${String(code)}: ${message}` : `read ${got.length} documents; expected ${c.expect.error} at "${c.expect.at}"` };
  }
  const want = c.expect.docs;
  if (error !== undefined) {
    return { name: c.name, ok: false, expected, matched: matchedCount(want, got), detail: `${typeof code === 'string' ? code : 'UNCODED'}: ${message}` };
  }
  const matched = matchedCount(want, got);
  const same = got.length === want.length && got.every((d, i) => d === want[i]);
  const skipped = ds?.summary ? ds.summary().skipped : undefined;
  const skippedOk = skipped === undefined || skipped === c.expect.skipped;
  let detail = '';
  if (!same) {
    const i = got.findIndex((d, k) => d !== want[k]);
    detail = i === -1 ? `${got.length} documents, expected ${want.length}` : `document ${i}: ${show(got[i])}, expected ${want[i] === undefined ? 'none' : show(want[i])}`;
  } else if (!skippedOk) {
    detail = `skipped ${skipped}, expected ${c.expect.skipped}`;
  }
  return { name: c.name, ok: same && skippedOk, expected, matched, detail };
}

export async function checkCorpus(dir: string, load: Loader, options: { ignoreOptions?: readonly string[] } = {}): Promise<CorpusOutcome> {
  const out: CorpusOutcome = { cases: 0, passed: 0, documents: 0, matched: 0, failures: [] };
  for (const c of readCorpus(dir)) {
    const r = await checkCase(dir, c, load, options);
    out.cases++;
    out.documents += r.expected;
    out.matched += r.matched;
    if (r.ok) out.passed++;
    else out.failures.push(r);
  }
  return out;
}
