/**
 * Datasets: named, re-iterable, streaming sources of texts for the forget and retain sides.
 *
 *   loadDataset('data/python')                          a folder of .txt / .jsonl / .jsonl.gz / .parquet
 *   loadDataset({ path: 'code.jsonl.gz', textField: 'content' })
 *   datasetFromTexts(['some text', 'more text'], 'prose')
 *   splitDataset(ds, { evalFraction: 0.1, seed: 0 })    => { collect, evaluate }, disjoint
 *   shuffleDataset(ds, { seed: 1, bufferSize: 10_000 })
 *
 * Formats: a `.txt` file is ONE document (the whole file); `.jsonl` / `.jsonl.gz` hold one JSON
 * object per line, the text in field `text` (or `textField`); `.parquet` holds it in column `text`
 * (or `textField`). A folder is read recursively, files in sorted path order, hidden files and
 * unknown extensions ignored. Empty texts ("" and null) are skipped everywhere: a dataset never
 * yields an empty document, so document indices (for splits) count only real documents.
 *
 * Every `documents()` call streams from the start: a multi-GB jsonl.gz is read line by line, a
 * parquet file row group by row group. Paths, extensions and parquet columns are checked when the
 * dataset is loaded; problems inside a file (a bad JSON line, a missing field) surface while it is
 * read, naming the file and line. A loaded dataset whose files hold no document at all is an
 * ERR_DATASET_EMPTY error at the end of the pass.
 */
import { readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, extname, join, relative, resolve } from 'node:path';
import { ExciseError, describeValue, invalidArgument } from '../errors.js';
import { unitHash, seededUint32, randomBelow } from './hash.js';
import { checkParquetFile, ioError, readJsonl, readParquet, readTxt, type DatasetFormat } from './readers.js';

export type { DatasetFormat } from './readers.js';

export interface DatasetOptions {
  /** A supported file or a folder of them. */
  path: string;
  /** The JSON field / parquet column holding the text (default "text"). */
  textField?: string;
  /** A label for reports (default: the file or folder name). */
  name?: string;
  /** Read files as this format whatever their extension; on a folder, only files of this format. */
  format?: DatasetFormat;
}

export interface Dataset {
  readonly name: string;
  /** Where the documents come from: an absolute path, or a description of in-memory texts. */
  readonly source: string;
  /** Streams the documents from the start; every call is a new, identical pass. */
  documents(): AsyncIterable<string>;
}

/** Anything toDataset accepts. */
export type DatasetLike = Dataset | string | DatasetOptions | readonly string[];

export interface SplitOptions {
  /** Expected fraction of documents in `evaluate`, in [0, 1] (default 0.1). */
  evalFraction?: number;
  /** A non-negative integer (default 0). */
  seed?: number;
}

export interface ShuffleOptions {
  /** A non-negative integer (default 0). */
  seed?: number;
  /** Documents held at once; a larger buffer mixes more (default 10000). */
  bufferSize?: number;
}

const FORMATS: readonly DatasetFormat[] = ['txt', 'jsonl', 'parquet'];
const SUPPORTED = '.txt (one document per file), .jsonl, .jsonl.gz, .parquet, or a folder of these';
const DEFAULT_TEXT_FIELD = 'text';

// ---------------------------------------------------------------------------------------------
// identity, for sameData

type Identity =
  | { kind: 'files'; root: string; textField: string; format: DatasetFormat | null }
  | { kind: 'texts'; texts: readonly string[] }
  | { kind: 'split'; base: Identity; part: 'collect' | 'evaluate'; seed: number; evalFraction: number }
  | { kind: 'shuffle'; base: Identity; seed: number; bufferSize: number }
  | { kind: 'other'; dataset: Dataset };

const identities = new WeakMap<Dataset, Identity>();

function identityOf(ds: Dataset): Identity {
  return identities.get(ds) ?? { kind: 'other', dataset: ds };
}

function sameIdentity(a: Identity, b: Identity): boolean {
  switch (a.kind) {
    case 'files': return b.kind === 'files' && a.root === b.root && a.textField === b.textField && a.format === b.format;
    case 'texts': return b.kind === 'texts' && a.texts === b.texts;
    case 'split': return b.kind === 'split' && a.part === b.part && a.seed === b.seed && a.evalFraction === b.evalFraction && sameIdentity(a.base, b.base);
    case 'shuffle': return b.kind === 'shuffle' && a.seed === b.seed && a.bufferSize === b.bufferSize && sameIdentity(a.base, b.base);
    case 'other': return b.kind === 'other' && a.dataset === b.dataset;
  }
}

/**
 * Whether two datasets are certainly the same data (so that, e.g., forget and retain would cancel
 * out): the same file or folder (after resolving symbolic links) read with the same text field and
 * format, or the same in-memory array, through the same splits and shuffles. Otherwise only the
 * very same object. A heuristic: identical content in two different files is not detected.
 */
export function sameData(a: Dataset, b: Dataset): boolean {
  if (!isDataset(a)) throw invalidArgument('sameData(a, b): a', 'a dataset', a);
  if (!isDataset(b)) throw invalidArgument('sameData(a, b): b', 'a dataset', b);
  return a === b || sameIdentity(identityOf(a), identityOf(b));
}

// ---------------------------------------------------------------------------------------------
// the dataset objects

/** Base class: the documents plus async iteration, so a dataset can be passed where a DocumentSource is expected. */
abstract class BaseDataset implements Dataset, AsyncIterable<string> {
  constructor(readonly name: string, readonly source: string) {}
  abstract documents(): AsyncIterable<string>;
  [Symbol.asyncIterator](): AsyncIterator<string> {
    return this.documents()[Symbol.asyncIterator]();
  }
  toString(): string {
    return `Dataset(${this.name})`;
  }
}

interface DataFile { path: string; format: DatasetFormat }

class FileDataset extends BaseDataset {
  constructor(name: string, source: string, private readonly files: readonly DataFile[], private readonly textField: string) {
    super(name, source);
  }

  async *documents(): AsyncGenerator<string> {
    let count = 0;
    for (const { path, format } of this.files) {
      const reader = format === 'txt' ? readTxt(path) : format === 'jsonl' ? readJsonl(path, this.textField) : readParquet(path, this.textField);
      for await (const text of reader) {
        count++;
        yield text;
      }
    }
    if (count === 0) {
      const what = this.files.length === 1 ? this.files[0].path : `${this.source} (${this.files.length} files)`;
      throw new ExciseError('ERR_DATASET_EMPTY', `dataset "${this.name}" has no documents: ${what} holds no non-empty text`);
    }
  }
}

class TextsDataset extends BaseDataset {
  constructor(name: string, private readonly texts: readonly string[]) {
    super(name, `<${texts.length} texts in memory>`);
  }

  async *documents(): AsyncGenerator<string> {
    let count = 0;
    for (let i = 0; i < this.texts.length; i++) {
      const text = this.texts[i];
      if (typeof text !== 'string') throw invalidArgument(`dataset "${this.name}": texts[${i}]`, 'a string', text);
      if (text.length === 0) continue;
      count++;
      yield text;
    }
    if (count === 0) throw new ExciseError('ERR_DATASET_EMPTY', `dataset "${this.name}" has no documents: every text is empty`);
  }
}

class DerivedDataset extends BaseDataset {
  constructor(name: string, source: string, private readonly stream: () => AsyncGenerator<string>) {
    super(name, source);
  }

  documents(): AsyncGenerator<string> {
    return this.stream();
  }
}

// ---------------------------------------------------------------------------------------------
// loading

/** The format an extension implies, or null. */
function formatOf(file: string): DatasetFormat | null {
  const lower = file.toLowerCase();
  if (lower.endsWith('.txt')) return 'txt';
  if (lower.endsWith('.jsonl') || lower.endsWith('.jsonl.gz')) return 'jsonl';
  if (lower.endsWith('.parquet')) return 'parquet';
  return null;
}

function statPath(path: string): Stats {
  try {
    return statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ExciseError('ERR_DATASET_NOT_FOUND', `dataset not found: ${path}`, { cause: err });
    throw ioError(path, err);
  }
}

/** Supported files under `root`, recursively, hidden entries skipped, sorted by relative path (code-unit order). */
function listFolder(root: string, only: DatasetFormat | null): DataFile[] {
  const found: { rel: string; file: DataFile }[] = [];
  const visited = new Set<string>();
  const walk = (dir: string) => {
    let real: string;
    let entries: string[];
    try {
      real = realpathSync(dir);
      if (visited.has(real)) return; // a symbolic link cycle
      visited.add(real);
      entries = readdirSync(dir);
    } catch (err) {
      throw ioError(dir, err);
    }
    for (const entry of entries) {
      if (entry.startsWith('.')) continue;
      const path = join(dir, entry);
      let stats: Stats;
      try {
        stats = statSync(path);
      } catch {
        continue; // a dangling link
      }
      if (stats.isDirectory()) {
        walk(path);
      } else if (stats.isFile()) {
        const format = formatOf(entry);
        if (format && (only === null || format === only)) found.push({ rel: relative(root, path).split('\\').join('/'), file: { path, format } });
      }
    }
  };
  walk(root);
  found.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  return found.map((f) => f.file);
}

function checkOptions(spec: unknown): { path: string; textField: string; name?: string; format: DatasetFormat | null } {
  if (typeof spec === 'string') spec = { path: spec };
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw invalidArgument('loadDataset(spec)', 'a path or { path, textField?, name?, format? }', spec);
  }
  const options = spec as Record<string, unknown>;
  const allowed = ['path', 'textField', 'name', 'format'];
  for (const k of Object.keys(options)) {
    if (!allowed.includes(k)) throw new ExciseError('ERR_INVALID_ARGUMENT', `loadDataset: unknown option "${k}" (expected one of: ${allowed.join(', ')})`);
  }
  const { path, textField = DEFAULT_TEXT_FIELD, name, format } = options;
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('loadDataset: path', 'a non-empty string', path);
  if (typeof textField !== 'string' || textField.length === 0) throw invalidArgument('loadDataset: textField', 'a non-empty string', textField);
  if (name !== undefined && (typeof name !== 'string' || name.length === 0)) throw invalidArgument('loadDataset: name', 'a non-empty string', name);
  if (format !== undefined && !FORMATS.includes(format as DatasetFormat)) {
    throw new ExciseError('ERR_DATASET_UNSUPPORTED', `loadDataset: format must be one of ${FORMATS.join(', ')}; received ${describeValue(format)}`);
  }
  return { path, textField, name: name as string | undefined, format: (format as DatasetFormat | undefined) ?? null };
}

/**
 * A dataset from a file or folder (see the module comment for the formats). Checked now: the path
 * exists (ERR_DATASET_NOT_FOUND), its extension is supported (ERR_DATASET_UNSUPPORTED), a folder
 * holds at least one supported file (ERR_DATASET_EMPTY), and each parquet file has a text column
 * `textField` (ERR_DATASET_INVALID). Nothing else is read until `documents()`.
 */
export function loadDataset(spec: string | DatasetOptions): Dataset {
  const { path: given, textField, name, format } = checkOptions(spec);
  const path = resolve(given);
  const stats = statPath(path);
  let files: DataFile[];
  if (stats.isDirectory()) {
    files = listFolder(path, format);
    if (files.length === 0) {
      throw new ExciseError('ERR_DATASET_EMPTY',
        `dataset folder ${path} holds no ${format ? `${format} ` : ''}files (supported: ${SUPPORTED}; hidden files are ignored)`);
    }
  } else if (stats.isFile() || stats.isFIFO() || stats.isCharacterDevice()) {
    // A pipe (a FIFO, /dev/stdin) streams too, once: a second pass would find it drained.
    const fileFormat = format ?? formatOf(path);
    if (!fileFormat) {
      throw new ExciseError('ERR_DATASET_UNSUPPORTED',
        `unsupported dataset file ${path} (extension "${extname(path) || 'none'}"); supported: ${SUPPORTED}, or pass format: ${FORMATS.map((f) => `'${f}'`).join(' | ')}`);
    }
    if (fileFormat === 'parquet' && !stats.isFile()) {
      throw new ExciseError('ERR_DATASET_UNSUPPORTED', `parquet needs a regular file (read from its end); ${path} is a pipe or device`);
    }
    files = [{ path, format: fileFormat }];
  } else {
    throw new ExciseError('ERR_DATASET_UNSUPPORTED', `dataset path ${path} is neither a file nor a folder`);
  }
  for (const f of files) if (f.format === 'parquet') checkParquetFile(f.path, textField);

  let root: string;
  try {
    root = realpathSync(path);
  } catch (err) {
    throw ioError(path, err);
  }
  const usesField = files.some((f) => f.format !== 'txt');
  const ds = new FileDataset(name ?? (basename(path) || path), path, files, textField);
  identities.set(ds, { kind: 'files', root, textField: usesField ? textField : '', format: stats.isDirectory() ? format : null });
  return ds;
}

/**
 * An in-memory dataset. The array is used as it is, not copied (sameData recognizes it): change it
 * and later passes see the change. Empty strings are skipped like everywhere else.
 */
export function datasetFromTexts(texts: readonly string[], name = 'texts'): Dataset {
  if (!Array.isArray(texts)) throw invalidArgument('datasetFromTexts(texts)', 'an array of strings', texts);
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument('datasetFromTexts(texts, name): name', 'a non-empty string', name);
  if (texts.length === 0) throw new ExciseError('ERR_DATASET_EMPTY', `datasetFromTexts: dataset "${name}" has no texts`);
  for (let i = 0; i < texts.length; i++) {
    if (typeof texts[i] !== 'string') throw invalidArgument(`datasetFromTexts: texts[${i}]`, 'a string', texts[i]);
  }
  const ds = new TextsDataset(name, texts);
  identities.set(ds, { kind: 'texts', texts });
  return ds;
}

/** Whether `x` implements Dataset (a name, a source and a documents() method). */
export function isDataset(x: unknown): x is Dataset {
  if (x === null || typeof x !== 'object') return false;
  const d = x as Partial<Dataset>;
  return typeof d.name === 'string' && typeof d.source === 'string' && typeof d.documents === 'function';
}

/** A Dataset as it is; a path or DatasetOptions through loadDataset; an array of texts through datasetFromTexts. */
export function toDataset(x: DatasetLike): Dataset {
  if (isDataset(x)) return x;
  if (typeof x === 'string') return loadDataset(x);
  if (Array.isArray(x)) return datasetFromTexts(x as readonly string[]);
  if (x !== null && typeof x === 'object' && typeof (x as DatasetOptions).path === 'string') return loadDataset(x as DatasetOptions);
  throw invalidArgument('dataset', 'a Dataset, a path, { path, textField?, name?, format? } or an array of texts', x);
}

// ---------------------------------------------------------------------------------------------
// split and shuffle

function checkSeed(where: string, seed: unknown): number {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) throw invalidArgument(`${where}: seed`, 'a non-negative integer', seed);
  return seed;
}

function checkKeys(where: string, options: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw invalidArgument(`${where}: options`, `{ ${allowed.join(', ')} }`, options);
  for (const k of Object.keys(options)) {
    if (!allowed.includes(k)) throw new ExciseError('ERR_INVALID_ARGUMENT', `${where}: unknown option "${k}" (expected one of: ${allowed.join(', ')})`);
  }
  return options as Record<string, unknown>;
}

/**
 * Splits a dataset into documents for collecting statistics and documents for evaluation, so that
 * no evaluation text was seen while collecting. Document i (counting from 0 in documents() order)
 * goes to `evaluate` iff hash(seed, i) / 2^32 < evalFraction: no count of documents is needed, the
 * split is the same on every pass and machine, the parts are disjoint and together hold every
 * document, and `evaluate` gets evalFraction of them in expectation. Both parts stream the base.
 */
export function splitDataset(ds: Dataset, options?: SplitOptions): { collect: Dataset; evaluate: Dataset } {
  if (!isDataset(ds)) throw invalidArgument('splitDataset(ds)', 'a dataset', ds);
  const o = checkKeys('splitDataset', options, ['evalFraction', 'seed']);
  const evalFraction = o.evalFraction ?? 0.1;
  if (typeof evalFraction !== 'number' || !(evalFraction >= 0 && evalFraction <= 1)) {
    throw invalidArgument('splitDataset: evalFraction', 'a number in [0, 1]', evalFraction);
  }
  const seed = checkSeed('splitDataset', o.seed ?? 0);
  const part = (which: 'collect' | 'evaluate'): Dataset => {
    const wantEval = which === 'evaluate';
    const d = new DerivedDataset(`${ds.name}:${which}`, ds.source, async function* () {
      let i = 0;
      for await (const text of ds.documents()) {
        if ((unitHash(seed, i++) < evalFraction) === wantEval) yield text;
      }
    });
    identities.set(d, { kind: 'split', base: identityOf(ds), part: which, seed, evalFraction });
    return d;
  };
  return { collect: part('collect'), evaluate: part('evaluate') };
}

/**
 * A seeded buffered shuffle: documents fill a buffer of bufferSize; each further document replaces
 * a uniformly chosen one, which is yielded; at the end the rest come out in random order. Streaming
 * (bufferSize documents in memory), a permutation of the base, and the same order on every pass
 * for a seed. Documents move at most about bufferSize places earlier, so for a global shuffle of a
 * sorted source use a buffer as large as the dataset.
 */
export function shuffleDataset(ds: Dataset, options?: ShuffleOptions): Dataset {
  if (!isDataset(ds)) throw invalidArgument('shuffleDataset(ds)', 'a dataset', ds);
  const o = checkKeys('shuffleDataset', options, ['seed', 'bufferSize']);
  const seed = checkSeed('shuffleDataset', o.seed ?? 0);
  const bufferSize = o.bufferSize ?? 10_000;
  if (typeof bufferSize !== 'number' || !Number.isSafeInteger(bufferSize) || bufferSize < 1 || bufferSize > 2 ** 32) {
    throw invalidArgument('shuffleDataset: bufferSize', 'a positive integer', bufferSize);
  }
  const d = new DerivedDataset(ds.name, ds.source, async function* () {
    const next = seededUint32(seed);
    const buffer: string[] = [];
    for await (const text of ds.documents()) {
      if (buffer.length < bufferSize) {
        buffer.push(text);
        continue;
      }
      const j = randomBelow(next, bufferSize);
      const out = buffer[j];
      buffer[j] = text;
      yield out;
    }
    // Fisher-Yates over what is left.
    for (let i = buffer.length - 1; i > 0; i--) {
      const j = randomBelow(next, i + 1);
      const t = buffer[i];
      buffer[i] = buffer[j];
      buffer[j] = t;
    }
    yield* buffer;
  });
  identities.set(d, { kind: 'shuffle', base: identityOf(ds), seed, bufferSize });
  return d;
}
