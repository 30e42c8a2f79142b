// The dataset layer: formats, folders, errors, streaming, split and shuffle.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { constants as zlibConstants, createGzip, gzipSync } from 'node:zlib';
import { ExciseError } from '../lib/errors.js';
import {
  datasetFromTexts, isDataset, loadDataset, sameData, shuffleDataset, splitDataset, toDataset, type Dataset,
} from '../lib/data/datasets.js';
import { hashIndex, mix32, seededUint32 } from '../lib/data/hash.js';
import { newTokenUsage, tokenBatches } from '../lib/data/batches.js';

const fixtures = resolve(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'datasets');
const expectedParquet: string[] = JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8')).documents;

let scratch: string;
let n = 0;
beforeAll(() => { scratch = mkdtempSync(join(tmpdir(), 'excise-datasets-')); });
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh path in the scratch folder; writes `content` when given (folders are created as needed). */
function file(name: string, content?: string | Uint8Array): string {
  const path = join(scratch, `${n++}`, name);
  mkdirSync(dirname(path), { recursive: true });
  if (content !== undefined) writeFileSync(path, content);
  return path;
}

const jsonl = (rows: unknown[], eol = '\n') => rows.map((r) => JSON.stringify(r)).join(eol) + eol;

async function all(ds: Dataset): Promise<string[]> {
  const out: string[] = [];
  for await (const d of ds.documents()) out.push(d);
  return out;
}

async function expectError(p: Promise<unknown> | (() => unknown), code: string, ...mentions: string[]): Promise<ExciseError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(ExciseError);
  const e = err as ExciseError;
  expect(e.code, e.message).toBe(code);
  for (const m of mentions) expect(e.message).toContain(m);
  return e;
}

const TRICKY = [
  'def f(x):\n    return x * 2\n',
  'Ünïcödé 日本語 🙂🚀 Ελληνικά العربية',
  'a "quoted" \\ backslash\tand tab',
  'carriage\r\nreturn and a \u2028 line separator and \u2029',
  'x'.repeat(300_000), // longer than a read chunk
  'last',
];

describe('txt', () => {
  it('a .txt file is one document, read exactly', async () => {
    const text = 'first line\nsecond line\r\n\nÜnïcödé 🙂\n';
    const ds = loadDataset(file('doc.txt', text));
    expect(await all(ds)).toEqual([text]);
    expect(ds.name).toBe('doc.txt');
  });

  it('strips a UTF-8 byte order mark', async () => {
    expect(await all(loadDataset(file('bom.txt', '\ufeffhello')))).toEqual(['hello']);
  });

  it('an empty .txt file has no documents', async () => {
    await expectError(all(loadDataset(file('empty.txt', ''))), 'ERR_DATASET_EMPTY', 'empty.txt');
  });
});

describe('jsonl', () => {
  it('round-trips texts: unicode, newlines and escapes inside strings, long lines', async () => {
    const ds = loadDataset(file('a.jsonl', jsonl(TRICKY.map((text, i) => ({ id: i, text })))));
    expect(await all(ds)).toEqual(TRICKY);
  });

  it('skips blank lines and empty or null texts; accepts CRLF, no final newline and a BOM', async () => {
    const body = '\ufeff' + [
      JSON.stringify({ text: 'one' }), '', '   ', JSON.stringify({ text: '' }), JSON.stringify({ text: null }),
      JSON.stringify({ text: 'two' }), JSON.stringify({ text: 'three' }),
    ].join('\r\n');
    expect(await all(loadDataset(file('b.jsonl', body)))).toEqual(['one', 'two', 'three']);
  });

  it('is re-iterable: every pass streams the same documents from the start', async () => {
    const ds = loadDataset(file('c.jsonl', jsonl(TRICKY.map((text) => ({ text })))));
    const first: string[] = [];
    for await (const d of ds.documents()) { first.push(d); if (first.length === 2) break; }
    expect(first).toEqual(TRICKY.slice(0, 2));
    expect(await all(ds)).toEqual(TRICKY);
    expect(await all(ds)).toEqual(TRICKY);
  });

  it('.jsonl.gz, including multi-member gzip; gzip is told by content, not name', async () => {
    const rows = jsonl(TRICKY.map((text) => ({ text })));
    expect(await all(loadDataset(file('a.jsonl.gz', gzipSync(rows))))).toEqual(TRICKY);
    const half = Math.floor(TRICKY.length / 2);
    const multi = Buffer.concat([gzipSync(jsonl(TRICKY.slice(0, half).map((text) => ({ text })))), gzipSync(jsonl(TRICKY.slice(half).map((text) => ({ text }))))]);
    expect(await all(loadDataset(file('multi.jsonl.gz', multi)))).toEqual(TRICKY);
    expect(await all(loadDataset(file('actually-gzipped.jsonl', gzipSync(rows))))).toEqual(TRICKY);
  });

  it('textField picks another field', async () => {
    const path = file('d.jsonl', jsonl([{ text: 'no', content: 'yes 1' }, { content: 'yes 2' }]));
    expect(await all(loadDataset({ path, textField: 'content' }))).toEqual(['yes 1', 'yes 2']);
  });

  it('format overrides the extension', async () => {
    const path = file('data.ndjson', jsonl([{ text: 'a' }, { text: 'b' }]));
    expect(await all(loadDataset({ path, format: 'jsonl' }))).toEqual(['a', 'b']);
  });
});

describe('parquet', () => {
  for (const codec of ['snappy', 'zstd', 'gzip', 'brotli', 'plain']) {
    it(`${codec}: every row group, in order; null and empty texts skipped`, async () => {
      const ds = loadDataset(join(fixtures, `${codec}.parquet`));
      expect(await all(ds)).toEqual(expectedParquet);
      expect(await all(ds)).toEqual(expectedParquet);
    });
  }

  it('textField picks the column (large_string, data page v2, zstd)', async () => {
    expect(await all(loadDataset({ path: join(fixtures, 'content-v2.parquet'), textField: 'content' }))).toEqual(expectedParquet);
  });

  it('a missing column is an error at load time, listing the columns', async () => {
    await expectError(() => loadDataset(join(fixtures, 'content-v2.parquet')), 'ERR_DATASET_INVALID', 'content-v2.parquet', '"text"', 'content', 'textField');
  });

  it('a column that is not text is an error at load time', async () => {
    await expectError(() => loadDataset(join(fixtures, 'not-text.parquet')), 'ERR_DATASET_INVALID', 'not-text.parquet', 'INT64');
  });

  it('a file that is not parquet is an error at load time', async () => {
    await expectError(() => loadDataset(file('bad.parquet', 'not a parquet file at all')), 'ERR_DATASET_INVALID', 'bad.parquet');
    const bytes = readFileSync(join(fixtures, 'zstd.parquet'));
    await expectError(() => loadDataset(file('truncated.parquet', bytes.subarray(0, bytes.length - 5))), 'ERR_DATASET_INVALID', 'truncated.parquet');
  });

  it('a corrupted data page is an error while reading, naming the file', async () => {
    const bytes = Buffer.from(readFileSync(join(fixtures, 'zstd.parquet')));
    for (let i = 4; i < 400; i++) bytes[i] ^= 0x5a; // the data pages follow the leading "PAR1"; the footer stays intact
    const path = file('corrupt.parquet', bytes);
    await expectError(all(loadDataset(path)), 'ERR_DATASET_INVALID', 'corrupt.parquet');
  });
});

describe('folders', () => {
  it('reads supported files recursively in sorted path order, skipping hidden files and unknown extensions', async () => {
    const root = file('corpus');
    const put = (rel: string, content: string | Uint8Array) => { mkdirSync(dirname(join(root, rel)), { recursive: true }); writeFileSync(join(root, rel), content); };
    put('b.txt', 'B');
    put('a/2.jsonl', jsonl([{ text: 'A2-1' }, { text: 'A2-2' }]));
    put('a/1.jsonl.gz', gzipSync(jsonl([{ text: 'A1' }])));
    put('a/z/deep.txt', 'AZ');
    put('C.txt', 'C'); // upper case sorts first (code-unit order, the same everywhere)
    put('notes.md', 'MD'); // markdown and source files are plain text, one document each
    put('data.csv', 'ignored');
    put('.hidden.txt', 'ignored');
    put('.cache/x.jsonl', jsonl([{ text: 'ignored' }]));
    writeFileSync(join(root, 'p.parquet'), readFileSync(join(fixtures, 'snappy.parquet')));
    const ds = loadDataset(root);
    expect(ds.name).toBe('corpus');
    expect(ds.source).toBe(root);
    expect(await all(ds)).toEqual(['C', 'A1', 'A2-1', 'A2-2', 'AZ', 'B', 'MD', ...expectedParquet]);
    expect(ds.summary()).toMatchObject({
      files: 7, documents: 7 + expectedParquet.length, skipped: 0, complete: true, ignored: { csv: 1 },
      byExtension: { txt: { files: 3, read: 3, documents: 3, skipped: 0 }, md: { files: 1, documents: 1 }, jsonl: { files: 1, documents: 2 }, 'jsonl.gz': { files: 1, documents: 1 } },
    });
    expect(await all(loadDataset({ path: root, format: 'txt' }))).toEqual(['C', 'AZ', 'B', 'MD']);
    expect(await all(loadDataset(root, { extensions: ['.TXT', 'jsonl.gz'] }))).toEqual(['C', 'A1', 'AZ', 'B']);
    // with extensions, format says how every chosen file is read
    expect(await all(loadDataset(root, { extensions: ['csv'], format: 'txt' }))).toEqual(['ignored']);
  });

  it('textField applies to every file of the folder', async () => {
    const root = file('fielded');
    mkdirSync(root);
    writeFileSync(join(root, 'a.jsonl'), jsonl([{ content: 'J' }]));
    writeFileSync(join(root, 'b.parquet'), readFileSync(join(fixtures, 'content-v2.parquet')));
    expect(await all(loadDataset({ path: root, textField: 'content' }))).toEqual(['J', ...expectedParquet]);
  });

  it('follows symbolic links, and survives a link cycle', async () => {
    const root = file('linked');
    mkdirSync(join(root, 'real'), { recursive: true });
    writeFileSync(join(root, 'real', 'x.txt'), 'X');
    symlinkSync(root, join(root, 'real', 'loop'));
    expect(await all(loadDataset(root))).toEqual(['X']);
  });

  it('an empty folder, or one with no supported files, is ERR_DATASET_EMPTY', async () => {
    const empty = file('empty-folder');
    mkdirSync(empty);
    await expectError(() => loadDataset(empty), 'ERR_DATASET_EMPTY', empty);
    const other = file('other-folder');
    mkdirSync(other);
    writeFileSync(join(other, 'x.csv'), 'a,b');
    writeFileSync(join(other, '.y.txt'), 'hidden');
    await expectError(() => loadDataset(other), 'ERR_DATASET_EMPTY', other, '.jsonl');
  });

  it('a folder whose files hold no text is ERR_DATASET_EMPTY while reading', async () => {
    const root = file('blank');
    mkdirSync(root);
    writeFileSync(join(root, 'a.jsonl'), '\n\n');
    writeFileSync(join(root, 'b.jsonl'), jsonl([{ text: '' }]));
    await expectError(all(loadDataset(root)), 'ERR_DATASET_EMPTY', 'blank');
  });
});

describe('source folders', () => {
  const tree = (name: string, files: Record<string, string | Uint8Array>) => {
    const root = file(name);
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(dirname(join(root, rel)), { recursive: true });
      writeFileSync(join(root, rel), content);
    }
    return root;
  };

  it('reads source files as one document each, by extension, and counts what it read and left', async () => {
    const root = tree('src', {
      'pkg/__init__.py': '', 'pkg/core.py': 'def f():\n    return 1\n', 'pkg/core.pyi': 'def f() -> int: ...\n',
      'README.md': '# title\n', 'setup.cfg': '[metadata]\n', 'data.json': '{}', 'Makefile': 'all:\n', 'lib.so': new Uint8Array([0x7f, 0x45, 0xff]),
    });
    const ds = loadDataset(root, { extensions: ['py', 'pyi'] });
    expect(await all(ds)).toEqual(['def f():\n    return 1\n', 'def f() -> int: ...\n']);
    const s = ds.summary();
    expect(s.files).toBe(3);
    expect(s.byExtension).toEqual({ py: { files: 2, read: 2, documents: 1, skipped: 0 }, pyi: { files: 1, read: 1, documents: 1, skipped: 0 } });
    expect(s.ignored).toEqual({ md: 1, cfg: 1, json: 1, '': 1, so: 1 });
    // by default: every text and source extension (not .json, .so or a name without one)
    expect(await all(loadDataset(root))).toEqual(['# title\n', 'def f():\n    return 1\n', 'def f() -> int: ...\n', '[metadata]\n']);
  });

  it('a folder where nothing matched is ERR_DATASET_EMPTY naming what it holds', async () => {
    const root = tree('nothing', { 'a.json': '{}', 'b.json': '{}', 'c.csv': 'x', '.hidden.py': 'x' });
    await expectError(() => loadDataset(root, { extensions: ['py'] }), 'ERR_DATASET_EMPTY', root, '.py', '2 .json, 1 .csv', 'extensions');
    await expectError(() => loadDataset(root), 'ERR_DATASET_EMPTY', '2 .json, 1 .csv');
  });

  it('skips and counts files that are not valid UTF-8, and reports each', async () => {
    const root = tree('latin1', { 'a.py': 'ok = 1\n', 'b.py': new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a]), 'c.py': '\ufeffbom = 2\n' });
    const seen: string[] = [];
    const ds = loadDataset(root, { onSkip: (where) => seen.push(where) });
    expect(await all(ds)).toEqual(['ok = 1\n', 'bom = 2\n']); // a file's BOM is an encoding mark, dropped
    expect(seen).toEqual([join(root, 'b.py')]);
    expect(ds.summary()).toMatchObject({ documents: 2, skipped: 1, skippedAt: [join(root, 'b.py')], byExtension: { py: { files: 3, documents: 2, skipped: 1 } } });
    const only = tree('only-latin1', { 'x.txt': new Uint8Array([0xff]) });
    await expectError(all(loadDataset(only)), 'ERR_DATASET_EMPTY', 'not valid UTF-8');
  });

  it('reads a file whose name is not valid UTF-8', async () => {
    const root = file('byte-names');
    mkdirSync(root);
    writeFileSync(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0x62, 0xff, 0x2e, 0x74, 0x78, 0x74])]), 'from a byte name');
    writeFileSync(join(root, 'c.txt'), 'C');
    const ds = loadDataset(root);
    expect(await all(ds)).toEqual(['from a byte name', 'C']);
    expect(ds.summary().files).toBe(2);
  });

  it('sameData tells apart the same folder read for different extensions', () => {
    const root = tree('same', { 'a.py': 'x', 'b.md': 'y' });
    expect(sameData(loadDataset(root), loadDataset(root))).toBe(true);
    expect(sameData(loadDataset(root, { extensions: ['py'] }), loadDataset(root, { extensions: ['.PY'] }))).toBe(true);
    expect(sameData(loadDataset(root, { extensions: ['py'] }), loadDataset(root))).toBe(false);
  });

  it('checks the extensions option', async () => {
    const root = tree('opts', { 'a.py': 'x' });
    await expectError(() => loadDataset(root, { extensions: [] }), 'ERR_INVALID_ARGUMENT', 'extensions');
    await expectError(() => loadDataset(root, { extensions: ['a/b'] }), 'ERR_INVALID_ARGUMENT', 'extensions');
    await expectError(() => loadDataset({ path: root }, { extensions: ['py'] }), 'ERR_INVALID_ARGUMENT');
  });
});

describe('exact bytes', () => {
  it('a jsonl line that is not valid UTF-8 is skipped and reported with its line', async () => {
    const body = Buffer.concat([Buffer.from('{"text": "a"}\n{"text": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n{"text": "\ufeffb"}\n')]);
    const path = file('latin1.jsonl', body);
    const seen: string[] = [];
    const ds = loadDataset(path, { onSkip: (w) => seen.push(w) });
    expect(await all(ds)).toEqual(['a', '\ufeffb']);
    expect(seen).toEqual([`${path}:2`]);
    expect(ds.summary().skipped).toBe(1);
  });

  it('a line of non-JSON whitespace (NBSP, U+3000, U+2028, form feed, vertical tab) is refused at its line', async () => {
    for (const ws of ['\u00a0', '\u3000', '\u2028', '\f', '\v']) {
      const path = file('ws.jsonl', `{"text": "a"}\n \t \n${ws}\n`);
      await expectError(all(loadDataset(path)), 'ERR_DATASET_INVALID', `${path}:3`, 'not valid JSON');
    }
  });
});

describe('errors', () => {
  it('a missing path names it', async () => {
    const missing = join(scratch, 'no-such-thing.jsonl');
    await expectError(() => loadDataset(missing), 'ERR_DATASET_NOT_FOUND', missing);
    await expectError(() => loadDataset(join(scratch, 'no-dir', 'x.txt')), 'ERR_DATASET_NOT_FOUND', 'no-dir');
  });

  it('an unsupported extension lists the supported formats', async () => {
    const path = file('data.csv', 'a,b\n');
    await expectError(() => loadDataset(path), 'ERR_DATASET_UNSUPPORTED', 'data.csv', '.csv', '.txt', '.jsonl', '.jsonl.gz', '.parquet');
    await expectError(() => loadDataset({ path, format: 'csv' as never }), 'ERR_DATASET_UNSUPPORTED', 'csv');
  });

  it('a line that is not JSON names the file and line number', async () => {
    const path = file('bad.jsonl', [JSON.stringify({ text: 'ok' }), '', '{"text": "unterminated'].join('\n'));
    const ds = loadDataset(path);
    const seen: string[] = [];
    await expectError((async () => { for await (const d of ds.documents()) seen.push(d); })(), 'ERR_DATASET_INVALID', `${path}:3`, 'not valid JSON');
    expect(seen).toEqual(['ok']);
  });

  it('a bad line inside a .jsonl.gz names the line too', async () => {
    const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ text: `doc ${i}` }));
    lines[776] = 'not json';
    const path = file('bad.jsonl.gz', gzipSync(lines.join('\n')));
    await expectError(all(loadDataset(path)), 'ERR_DATASET_INVALID', `${path}:777`);
  });

  it('a missing field names the file, line, field and the fields present', async () => {
    const path = file('nofield.jsonl', jsonl([{ text: 'a' }, { body: 'b', id: 2 }]));
    await expectError(all(loadDataset(path)), 'ERR_DATASET_INVALID', `${path}:2`, '"text"', 'body, id', 'textField');
    await expectError(all(loadDataset({ path, textField: 'body' })), 'ERR_DATASET_INVALID', `${path}:1`, '"body"');
  });

  it('a non-string text and a line that is not an object are errors', async () => {
    await expectError(all(loadDataset(file('num.jsonl', jsonl([{ text: 42 }])))), 'ERR_DATASET_INVALID', 'num.jsonl:1', 'number');
    await expectError(all(loadDataset(file('arr.jsonl', jsonl([['text']])))), 'ERR_DATASET_INVALID', 'arr.jsonl:1', 'array');
  });

  it('a corrupted gzip file', async () => {
    const gz = gzipSync(jsonl(Array.from({ length: 2000 }, (_, i) => ({ text: `document ${i} ${'y'.repeat(i % 50)}` }))));
    await expectError(all(loadDataset(file('trunc.jsonl.gz', gz.subarray(0, gz.length >> 1)))), 'ERR_DATASET_INVALID', 'trunc.jsonl.gz', 'gzip');
  });

  it('a file removed after loading is ERR_DATASET_NOT_FOUND on the next pass', async () => {
    const path = file('gone.jsonl', jsonl([{ text: 'x' }]));
    const ds = loadDataset(path);
    unlinkSync(path);
    await expectError(all(ds), 'ERR_DATASET_NOT_FOUND', path);
  });

  it('bad options', async () => {
    const path = file('opts.jsonl', jsonl([{ text: 'x' }]));
    await expectError(() => loadDataset({ path, textfield: 'x' } as never), 'ERR_INVALID_ARGUMENT', 'textfield', 'textField');
    await expectError(() => loadDataset({ path, textField: '' }), 'ERR_INVALID_ARGUMENT', 'textField');
    await expectError(() => loadDataset(''), 'ERR_INVALID_ARGUMENT', 'path');
    await expectError(() => loadDataset(42 as never), 'ERR_INVALID_ARGUMENT', 'loadDataset');
    await expectError(() => datasetFromTexts([]), 'ERR_DATASET_EMPTY');
    await expectError(() => datasetFromTexts(['a', 3 as never]), 'ERR_INVALID_ARGUMENT', 'texts[1]');
    await expectError(() => toDataset(42 as never), 'ERR_INVALID_ARGUMENT', 'dataset');
    const ds = datasetFromTexts(['a']);
    await expectError(() => splitDataset(ds, { evalFraction: 1.5 }), 'ERR_INVALID_ARGUMENT', 'evalFraction');
    await expectError(() => splitDataset(ds, { seed: -1 }), 'ERR_INVALID_ARGUMENT', 'seed');
    await expectError(() => splitDataset(ds, { fraction: 0.1 } as never), 'ERR_INVALID_ARGUMENT', 'fraction');
    await expectError(() => shuffleDataset(ds, { bufferSize: 0 }), 'ERR_INVALID_ARGUMENT', 'bufferSize');
    await expectError(() => splitDataset({} as never), 'ERR_INVALID_ARGUMENT', 'splitDataset');
  });
});

describe('streaming', () => {
  const LINES = 200_000;
  let big: string;
  beforeAll(async () => {
    // 200k lines (about 24 MB of JSON), gzip-streamed to disk; the last line is not JSON, so any
    // reader that parsed the whole file before yielding would fail.
    big = file('big.jsonl.gz');
    const gz = createGzip({ level: 1 });
    const done = once(gz.pipe(createWriteStream(big)), 'finish');
    for (let i = 0; i < LINES; i++) {
      if (!gz.write(JSON.stringify({ id: i, text: `document ${i} ${'lorem ipsum '.repeat(8)}` }) + '\n')) await once(gz, 'drain');
    }
    gz.end('this last line is not JSON\n');
    await done;
  });

  it('yields the first documents without reading the whole file', async () => {
    const first: string[] = [];
    for await (const d of loadDataset(big).documents()) {
      first.push(d);
      if (first.length === 10) break;
    }
    expect(first.map((d) => d.split(' ')[1])).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  it('a full pass streams every line, then reports the bad last line by number', async () => {
    let count = 0;
    await expectError((async () => {
      for await (const d of loadDataset(big).documents()) {
        if (d.length === 0) throw new Error('empty');
        count++;
      }
    })(), 'ERR_DATASET_INVALID', `:${LINES + 1}`);
    expect(count).toBe(LINES);
  });

  it.skipIf(process.platform === 'win32')('reads from a FIFO as data arrives (gzip-compressed, flushed in two parts)', async () => {
    const fifo = join(scratch, 'stream.fifo');
    execFileSync('mkfifo', [fifo]);
    const ds = loadDataset({ path: fifo, format: 'jsonl' });
    let secondPartWritten = false;
    let releaseWriter!: () => void;
    const firstTenRead = new Promise<void>((r) => { releaseWriter = r; });
    const writer = (async () => {
      const gz = createGzip();
      const out = createWriteStream(fifo);
      gz.pipe(out);
      for (let i = 0; i < 10; i++) gz.write(JSON.stringify({ text: `early ${i}` }) + '\n');
      gz.flush(zlibConstants.Z_SYNC_FLUSH);
      await firstTenRead; // the rest is written only once the reader has the first ten documents
      secondPartWritten = true;
      for (let i = 0; i < 1000; i++) gz.write(JSON.stringify({ text: `late ${i}` }) + '\n');
      gz.end();
      await once(out, 'close');
    })();
    const docs: string[] = [];
    for await (const d of ds.documents()) {
      docs.push(d);
      if (docs.length === 10) {
        expect(secondPartWritten).toBe(false);
        releaseWriter();
      }
    }
    await writer;
    expect(docs.length).toBe(1010);
    expect(docs[0]).toBe('early 0');
    expect(docs[1009]).toBe('late 999');
  });
});

describe('in-memory texts, isDataset, toDataset', () => {
  it('datasetFromTexts yields the texts, empty ones skipped, on every pass', async () => {
    const ds = datasetFromTexts(['a', '', 'b'], 'mine');
    expect(ds.name).toBe('mine');
    expect(await all(ds)).toEqual(['a', 'b']);
    expect(await all(ds)).toEqual(['a', 'b']);
    await expectError(all(datasetFromTexts(['', ''])), 'ERR_DATASET_EMPTY');
  });

  it('isDataset and toDataset', async () => {
    const path = file('t.jsonl', jsonl([{ text: 'j' }, { body: 'k' }]));
    const ds = loadDataset(path);
    expect(isDataset(ds)).toBe(true);
    expect(isDataset(datasetFromTexts(['x']))).toBe(true);
    expect(isDataset({ name: 'n', source: 's', documents: async function* () { yield 'x'; } })).toBe(true);
    for (const x of [null, undefined, 'path', ['a'], { name: 'n', documents: () => [] }, 42]) expect(isDataset(x)).toBe(false);
    expect(toDataset(ds)).toBe(ds);
    expect(await all(toDataset(['p', 'q']))).toEqual(['p', 'q']);
    await expectError(all(toDataset(path)), 'ERR_DATASET_INVALID', ':2');
    expect(await all(toDataset({ path: file('u.jsonl', jsonl([{ body: 'k' }])), textField: 'body' }))).toEqual(['k']);
  });

  it('a dataset is an async iterable, usable wherever documents are expected', async () => {
    const ds = datasetFromTexts(['abc', 'de']);
    const got: string[] = [];
    for await (const d of ds as unknown as AsyncIterable<string>) got.push(d);
    expect(got).toEqual(['abc', 'de']);
    const tokenizer = { encodeBatch: async (texts: string[]) => texts.map((t) => [...t].map((c) => c.charCodeAt(0) - 96)) };
    const batches = [];
    for await (const b of tokenBatches(ds as unknown as AsyncIterable<string>, { tokenizer: tokenizer as never, vocabSize: 30, maxTokens: 100, maxLength: 10, batchSize: 4 })) batches.push(b);
    expect(batches.reduce((s, b) => s + b.tokens, 0)).toBe(5);
  });
});

describe('long documents', () => {
  const rows = async (docs: number[][], options: Partial<Parameters<typeof tokenBatches>[1]>) => {
    const usage = newTokenUsage(options.longDocs ?? 'split', options.maxLength ?? 4, options.maxTokens ?? Infinity);
    const out: number[][] = [];
    for await (const b of tokenBatches(docs, { vocabSize: 100, maxTokens: Infinity, maxLength: 4, batchSize: 1, usage, ...options })) {
      out.push(Array.from(b.data.subarray(0, b.tokens)));
    }
    return { out, usage };
  };
  const doc = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

  it('are split into context-sized windows by default: no token lost', async () => {
    const { out, usage } = await rows([doc, [11, 12]], {});
    expect(out).toEqual([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10], [11, 12]]);
    expect(usage).toEqual({ longDocs: 'split', maxLength: 4, documents: 2, tokensUsed: 12, tokensDropped: 0, longDocuments: 1, rows: 4, maxTokens: null, budgetMet: true });
  });

  it('or truncated, counting the tokens dropped', async () => {
    const { out, usage } = await rows([doc, [11, 12]], { longDocs: 'truncate' });
    expect(out).toEqual([[1, 2, 3, 4], [11, 12]]);
    expect(usage).toMatchObject({ longDocs: 'truncate', documents: 2, tokensUsed: 6, tokensDropped: 6, longDocuments: 1, rows: 2 });
  });

  it('say whether the token budget was met', async () => {
    const met = await rows([doc, [11, 12]], { maxTokens: 6 });
    expect(met.out).toEqual([[1, 2, 3, 4], [5, 6]]);
    expect(met.usage).toMatchObject({ tokensUsed: 6, maxTokens: 6, budgetMet: true, documents: 1 });
    const short = await rows([doc], { maxTokens: 20 });
    expect(short.usage).toMatchObject({ tokensUsed: 10, maxTokens: 20, budgetMet: false });
  });

  it('an out-of-range id names its place in the document', async () => {
    await expectError(rows([[1, 2, 3, 4, 5, 500]], {}), 'ERR_TOKEN_OUT_OF_RANGE', 'document 0: token 5 is 500');
  });
});

describe('sameData', () => {
  it('the same file or folder (through links and relative paths) with the same text field', async () => {
    const path = file('same.jsonl', jsonl([{ text: 'a', body: 'b' }]));
    const link = join(scratch, 'same-link.jsonl');
    symlinkSync(path, link);
    const a = loadDataset(path);
    expect(sameData(a, loadDataset(path))).toBe(true);
    expect(sameData(a, loadDataset({ path: link, name: 'other name' }))).toBe(true);
    expect(sameData(a, loadDataset({ path, textField: 'body' }))).toBe(false);
    expect(sameData(a, loadDataset(file('copy.jsonl', jsonl([{ text: 'a', body: 'b' }]))))).toBe(false);
    const dir = dirname(path);
    expect(sameData(loadDataset(dir), loadDataset(dir + '/'))).toBe(true);
    expect(sameData(loadDataset(dir), a)).toBe(false);
  });

  it('the same array, not an equal one; splits and shuffles compare by their parameters', async () => {
    const texts = ['a', 'b', 'c'];
    const a = datasetFromTexts(texts, 'x');
    expect(sameData(a, datasetFromTexts(texts, 'y'))).toBe(true);
    expect(sameData(a, datasetFromTexts([...texts]))).toBe(false);
    expect(sameData(a, a)).toBe(true);
    const s1 = splitDataset(a, { seed: 3 });
    const s2 = splitDataset(datasetFromTexts(texts), { seed: 3 });
    expect(sameData(s1.collect, s2.collect)).toBe(true);
    expect(sameData(s1.collect, s1.evaluate)).toBe(false);
    expect(sameData(s1.collect, splitDataset(a, { seed: 4 }).collect)).toBe(false);
    expect(sameData(s1.collect, a)).toBe(false);
    expect(sameData(shuffleDataset(a, { seed: 1 }), shuffleDataset(a, { seed: 1 }))).toBe(true);
    expect(sameData(shuffleDataset(a, { seed: 1 }), shuffleDataset(a, { seed: 2 }))).toBe(false);
    const custom: Dataset = { name: 'c', source: 'c', documents: async function* () { yield 'a'; } };
    expect(sameData(custom, custom)).toBe(true);
    expect(sameData(custom, { ...custom })).toBe(false);
  });
});

describe('splitDataset', () => {
  const N = 10_000;
  const texts = Array.from({ length: N }, (_, i) => `doc ${i}`);
  const base = datasetFromTexts(texts, 'base');

  it('is disjoint, covers everything, keeps order, and is the same on every pass', async () => {
    const { collect, evaluate } = splitDataset(base, { evalFraction: 0.1, seed: 7 });
    expect(collect.name).toBe('base:collect');
    expect(evaluate.name).toBe('base:evaluate');
    const c = await all(collect);
    const e = await all(evaluate);
    expect(c.length + e.length).toBe(N);
    const cs = new Set(c);
    expect(e.some((d) => cs.has(d))).toBe(false);
    expect(new Set([...c, ...e]).size).toBe(N);
    const idx = (d: string) => Number(d.slice(4));
    expect(c.map(idx)).toEqual([...c.map(idx)].sort((x, y) => x - y));
    expect(await all(collect)).toEqual(c);
    expect(await all(splitDataset(base, { evalFraction: 0.1, seed: 7 }).evaluate)).toEqual(e);
    // Binomial(10000, 0.1): sd 30.
    expect(Math.abs(e.length - 1000)).toBeLessThan(150);
  });

  it('is a fixed function of (seed, index): exact for a seed', async () => {
    const small = datasetFromTexts(Array.from({ length: 20 }, (_, i) => `${i}`));
    const e = (await all(splitDataset(small, { evalFraction: 0.25, seed: 0 }).evaluate)).map(Number);
    const expected = Array.from({ length: 20 }, (_, i) => i).filter((i) => hashIndex(0, i) / 2 ** 32 < 0.25);
    expect(e).toEqual(expected);
    // Pinned values: a change of hash would silently move documents between the parts.
    expect(e).toMatchInlineSnapshot(`
      [
        1,
        2,
        7,
        13,
        16,
        17,
        18,
        19,
      ]
    `);
    expect([mix32(0), mix32(1), mix32(0xdeadbeef), hashIndex(0, 0), hashIndex(1, 0), hashIndex(0, 2 ** 40)]).toMatchInlineSnapshot(`
      [
        0,
        1753845952,
        3861431939,
        3852771561,
        3279811573,
        2185182884,
      ]
    `);
  });

  it('depends on the seed; fractions 0 and 1 put everything on one side', async () => {
    const a = await all(splitDataset(base, { seed: 1 }).evaluate);
    const b = await all(splitDataset(base, { seed: 2 }).evaluate);
    expect(a).not.toEqual(b);
    expect(Math.abs(a.length - 1000)).toBeLessThan(150); // the default fraction is 0.1
    expect(await all(splitDataset(base, { evalFraction: 0 }).evaluate)).toEqual([]);
    expect((await all(splitDataset(base, { evalFraction: 0 }).collect)).length).toBe(N);
    expect((await all(splitDataset(base, { evalFraction: 1 }).evaluate)).length).toBe(N);
    for (const f of [0.01, 0.3, 0.5, 0.9]) {
      const got = (await all(splitDataset(base, { evalFraction: f, seed: 11 }).evaluate)).length;
      expect(Math.abs(got - f * N)).toBeLessThan(5 * Math.sqrt(N * f * (1 - f)) + 1);
    }
  });

  it('splits a file dataset without counting it, and composes with shuffle', async () => {
    const path = file('split.jsonl.gz', gzipSync(jsonl(texts.slice(0, 500).map((text) => ({ text })))));
    const ds = loadDataset(path);
    const { collect, evaluate } = splitDataset(ds, { evalFraction: 0.2, seed: 5 });
    const e = await all(evaluate);
    expect(e).toEqual(await all(splitDataset(datasetFromTexts(texts.slice(0, 500)), { evalFraction: 0.2, seed: 5 }).evaluate));
    expect((await all(collect)).length + e.length).toBe(500);
    expect(collect.source).toBe(path);
    const shuffledCollect = shuffleDataset(collect, { seed: 1, bufferSize: 64 });
    expect((await all(shuffledCollect)).sort()).toEqual((await all(collect)).sort());
  });
});

describe('shuffleDataset', () => {
  const texts = Array.from({ length: 5000 }, (_, i) => `doc ${i}`);
  const base = datasetFromTexts(texts);

  it('is a permutation, the same on every pass for a seed, different for another seed', async () => {
    const s = shuffleDataset(base, { seed: 42, bufferSize: 100 });
    const a = await all(s);
    expect(a.length).toBe(texts.length);
    expect([...a].sort()).toEqual([...texts].sort());
    expect(a).not.toEqual(texts);
    expect(await all(s)).toEqual(a);
    expect(await all(shuffleDataset(base, { seed: 42, bufferSize: 100 }))).toEqual(a);
    expect(await all(shuffleDataset(base, { seed: 43, bufferSize: 100 }))).not.toEqual(a);
    expect(await all(shuffleDataset(base, { seed: 42, bufferSize: 101 }))).not.toEqual(a);
  });

  it('a buffer as large as the data is a full shuffle; a buffer of 1 keeps the order', async () => {
    const full = await all(shuffleDataset(base, { seed: 3, bufferSize: 1_000_000 }));
    expect([...full].sort()).toEqual([...texts].sort());
    // Fully mixed: the first tenth of the output draws from the whole input.
    const positions = full.slice(0, 500).map((d) => Number(d.slice(4)));
    expect(Math.max(...positions)).toBeGreaterThan(4000);
    expect(await all(shuffleDataset(base, { seed: 3, bufferSize: 1 }))).toEqual(texts);
    expect((await all(shuffleDataset(base))).length).toBe(texts.length); // defaults: seed 0, 10000
  });

  it('streams: the first document comes out after bufferSize have been read', async () => {
    let read = 0;
    const counting: Dataset = {
      name: 'counting', source: 'counting',
      documents: async function* () { for (const t of texts) { read++; yield t; } },
    };
    for await (const _ of shuffleDataset(counting, { seed: 1, bufferSize: 50 }).documents()) break;
    expect(read).toBe(51);
  });

  it('the seeded generator is uniform enough', () => {
    const next = seededUint32(9);
    const bins = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) bins[Math.floor((next() / 2 ** 32) * 10)]++;
    for (const b of bins) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });
});
