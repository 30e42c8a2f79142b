/**
 * Datasets: named, re-iterable, streaming sources of texts for the forget and retain sides.
 *
 *   loadDataset('data/python')                          a folder of source / text / .jsonl(.gz) / .parquet files
 *   loadDataset('cpython/Lib', { extensions: ['py'] })  only the .py files, one document each
 *   loadDataset({ path: 'code.jsonl.gz', textField: 'content' })
 *   datasetFromTexts(['some text', 'more text'], 'prose')
 *   splitDataset(ds, { evalFraction: 0.1, seed: 0 })    => { collect, evaluate }, disjoint
 *   shuffleDataset(ds, { seed: 1, bufferSize: 10_000 })
 *
 * Formats: a plain-text file (.txt, .md, .rst, source code: .py, .ts, .c, .rs, ... see
 * TEXT_EXTENSIONS) is ONE document (the whole file); `.jsonl` / `.jsonl.gz` hold one JSON object
 * per line, the text in field `text` (or `textField`); `.parquet` holds it in column `text` (or
 * `textField`). A folder is read recursively, files in sorted path order, hidden entries ignored,
 * files chosen by extension (`extensions`, default: all of the above). Empty texts ("" and null)
 * are skipped everywhere: a dataset never yields an empty document, so document indices (for
 * splits) count only real documents. Texts come back exactly as stored; a document that is not
 * valid UTF-8 is skipped and counted (summary(), onSkip), never altered.
 *
 * Every `documents()` call streams from the start: a multi-GB jsonl.gz is read line by line, a
 * parquet file row group by row group. Paths, extensions and parquet columns are checked when the
 * dataset is loaded; problems inside a file (a bad JSON line, a missing field) surface while it is
 * read, naming the file and line. A loaded dataset whose files hold no document at all is an
 * ERR_DATASET_EMPTY error at the end of the pass.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, resolve, sep } from 'node:path';
import { ExciseError, checkKeys, describeValue, invalidArgument } from '../errors.js';
import { unitHash, seededUint32, randomBelow } from './hash.js';
import { checkParquetFile, displayPath, ioError, readJsonl, readParquet, readTxt, type DatasetFormat, type FilePath } from './readers.js';

export type { DatasetFormat } from './readers.js';

export interface DatasetOptions {
  /** A supported file or a folder of them. */
  path: string;
  /** The JSON field / parquet column holding the text (default "text"). */
  textField?: string;
  /** A label for reports (default: the file or folder name). */
  name?: string;
  /**
   * Read files as this format whatever their extension. On a folder: with `extensions`, every
   * chosen file is read as this format; without, only the files whose extension implies it.
   */
  format?: DatasetFormat;
  /**
   * The file extensions a folder is read for, without or with the dot: ['py', 'pyi'],
   * ['jsonl.gz']. jsonl, jsonl.gz and parquet are read as such; every other extension as plain
   * text, one document per file. Default: DEFAULT_EXTENSIONS (structured formats, text, source code).
   */
  extensions?: readonly string[];
  /** Called for each document skipped because it is not valid UTF-8 ("file", "file:line" or "file#row N"). */
  onSkip?: (where: string) => void;
}

/** Per extension ("py", "jsonl.gz", "" for none): files chosen, and in the latest pass files opened, documents and skips. */
export interface ExtensionSummary { files: number; read: number; documents: number; skipped: number }

/**
 * What a file dataset reads: fixed at load (files, byExtension[].files, ignored), and counted in
 * the latest pass over documents(), complete or stopped early (the rest).
 */
export interface DatasetSummary {
  /** Files the dataset reads. */
  files: number;
  byExtension: Record<string, ExtensionSummary>;
  /** Files in the folder that were not chosen, by extension (hidden entries are not counted). */
  ignored: Record<string, number>;
  /** Documents yielded in the latest pass. */
  documents: number;
  /** Documents skipped in the latest pass because they are not valid UTF-8. */
  skipped: number;
  /** Where the first (at most 10) skipped documents were. */
  skippedAt: string[];
  /** Whether the latest pass read every file to the end (false before the first pass). */
  complete: boolean;
}

/** A dataset read from files: also says what it read (see DatasetSummary). */
export interface FileDataset extends Dataset {
  summary(): DatasetSummary;
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

/** Plain-text extensions read by default, one document per file: prose markup and source code. */
export const TEXT_EXTENSIONS: readonly string[] = [
  'txt', 'text', 'md', 'markdown', 'rst', 'adoc', 'org', 'tex',
  'py', 'pyi', 'pyx', 'js', 'mjs', 'cjs', 'jsx', 'ts', 'tsx', 'mts', 'cts', 'vue', 'svelte',
  'c', 'h', 'cc', 'cpp', 'cxx', 'hpp', 'hh', 'hxx', 'cu', 'cuh', 'm', 'mm', 'java', 'kt', 'kts', 'scala', 'groovy',
  'go', 'rs', 'rb', 'php', 'cs', 'fs', 'swift', 'dart', 'lua', 'pl', 'pm', 'r', 'jl', 'hs', 'ml', 'mli',
  'ex', 'exs', 'erl', 'hrl', 'clj', 'cljs', 'el', 'lisp', 'scm', 'zig', 'nim', 'sol',
  'sql', 'sh', 'bash', 'zsh', 'fish', 'ps1', 'bat', 'awk', 'vim', 'f', 'f90', 'f95', 'asm', 's', 'v', 'sv', 'vhd',
  'html', 'htm', 'css', 'scss', 'sass', 'less', 'xml', 'yaml', 'yml', 'toml', 'ini', 'cfg', 'conf',
  'proto', 'graphql', 'cmake', 'mk', 'gradle', 'tf',
];
const STRUCTURED_EXTENSIONS: readonly string[] = ['jsonl', 'jsonl.gz', 'parquet'];
/** What a folder is read for when `extensions` is not given. */
export const DEFAULT_EXTENSIONS: readonly string[] = [...STRUCTURED_EXTENSIONS, ...TEXT_EXTENSIONS];
const SUPPORTED = '.jsonl, .jsonl.gz, .parquet, plain text and source files (.txt, .md, .py, .ts, .c, ...; one document per file), or a folder of these';
const DEFAULT_TEXT_FIELD = 'text';

// ---------------------------------------------------------------------------------------------
// identity, for sameData

type Identity =
  | { kind: 'files'; root: string; textField: string; format: DatasetFormat | null; extensions: string }
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
    case 'files': return b.kind === 'files' && a.root === b.root && a.textField === b.textField && a.format === b.format && a.extensions === b.extensions;
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

interface DataFile { path: FilePath; format: DatasetFormat; ext: string }

class FilesDataset extends BaseDataset implements FileDataset {
  private latest: DatasetSummary;

  constructor(name: string, source: string, private readonly files: readonly DataFile[], private readonly textField: string,
    private readonly ignored: Record<string, number>, private readonly onSkip: ((where: string) => void) | undefined) {
    super(name, source);
    this.latest = this.emptySummary();
  }

  private emptySummary(): DatasetSummary {
    const byExtension: Record<string, ExtensionSummary> = {};
    for (const f of this.files) (byExtension[f.ext] ??= { files: 0, read: 0, documents: 0, skipped: 0 }).files++;
    return { files: this.files.length, byExtension, ignored: { ...this.ignored }, documents: 0, skipped: 0, skippedAt: [], complete: false };
  }

  summary(): DatasetSummary {
    const s = this.latest;
    return { ...s, byExtension: Object.fromEntries(Object.entries(s.byExtension).map(([k, v]) => [k, { ...v }])), ignored: { ...s.ignored }, skippedAt: [...s.skippedAt] };
  }

  async *documents(): AsyncGenerator<string> {
    const pass = this.emptySummary();
    this.latest = pass;
    for (const { path, format, ext } of this.files) {
      const perExt = pass.byExtension[ext];
      perExt.read++;
      const onInvalid = (where: string) => {
        pass.skipped++;
        perExt.skipped++;
        if (pass.skippedAt.length < 10) pass.skippedAt.push(where);
        this.onSkip?.(where);
      };
      const reader = format === 'txt' ? readTxt(path, onInvalid) : format === 'jsonl' ? readJsonl(path, this.textField, onInvalid) : readParquet(path, this.textField, onInvalid);
      for await (const text of reader) {
        pass.documents++;
        perExt.documents++;
        yield text;
      }
    }
    pass.complete = true;
    if (pass.documents === 0) {
      const what = this.files.length === 1 ? displayPath(this.files[0].path) : `${this.source} (${this.files.length} files)`;
      const why = pass.skipped > 0 ? `: ${pass.skipped} documents were skipped as not valid UTF-8 (first at ${pass.skippedAt[0]})` : '';
      throw new ExciseError('ERR_DATASET_EMPTY', `dataset "${this.name}" has no documents: ${what} holds no non-empty text${why}`);
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

/** A file name's extension, lowercased, without the dot: "py", "jsonl.gz", "" for none. */
function extensionOf(file: string): string {
  const name = file.slice(file.lastIndexOf(sep) + 1).toLowerCase();
  if (name.endsWith('.jsonl.gz')) return 'jsonl.gz';
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1) : '';
}

/** The format an extension is read as: structured ones as such, the rest as plain text. */
function formatOfExtension(ext: string): DatasetFormat {
  return ext === 'jsonl' || ext === 'jsonl.gz' ? 'jsonl' : ext === 'parquet' ? 'parquet' : 'txt';
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

const SEP = Buffer.from(sep);

/**
 * Files under `root` whose extension is chosen, recursively, hidden entries skipped, sorted by
 * relative path (code-unit order). Names are read as bytes, so a file whose name is not valid
 * UTF-8 is read too (through a Buffer path). Also counts the files not chosen, by extension.
 */
function listFolder(root: string, chosen: ReadonlySet<string>, format: DatasetFormat | null): { files: DataFile[]; ignored: Record<string, number> } {
  const found: { rel: string; raw: Buffer; file: DataFile }[] = [];
  const ignored: Record<string, number> = {};
  const visited = new Set<string>();
  const rootBytes = Buffer.from(root);
  const walk = (dir: Buffer) => {
    let entries: Buffer[];
    try {
      const st = statSync(dir);
      const key = `${st.dev}:${st.ino}`;
      if (visited.has(key)) return; // a symbolic link cycle
      visited.add(key);
      entries = readdirSync(dir, { encoding: 'buffer' });
    } catch (err) {
      throw ioError(displayPath(dir), err);
    }
    for (const entry of entries) {
      if (entry[0] === 0x2e) continue; // hidden
      const path = Buffer.concat([dir, SEP, entry]);
      let stats: Stats;
      try {
        stats = statSync(path);
      } catch {
        continue; // a dangling link
      }
      if (stats.isDirectory()) {
        walk(path);
      } else if (stats.isFile()) {
        const ext = extensionOf(entry.toString('utf8'));
        if (!chosen.has(ext) || (format !== null && chosen === DEFAULT_SET && formatOfExtension(ext) !== format)) {
          ignored[ext] = (ignored[ext] ?? 0) + 1;
          continue;
        }
        const raw = path.subarray(rootBytes.length + SEP.length);
        found.push({
          rel: raw.toString('utf8').split('\\').join('/'),
          raw,
          file: { path: isUtf8(path) ? path.toString('utf8') : path, format: format ?? formatOfExtension(ext), ext },
        });
      }
    }
  };
  walk(rootBytes);
  found.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : Buffer.compare(a.raw, b.raw)));
  return { files: found.map((f) => f.file), ignored };
}

const DEFAULT_SET: ReadonlySet<string> = new Set(DEFAULT_EXTENSIONS);

/** "12 .json, 3 .csv, 1 without an extension", most common first. */
function describeCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const shown = entries.slice(0, 8).map(([ext, n]) => `${n} ${ext ? `.${ext}` : 'without an extension'}`);
  if (entries.length > 8) shown.push(`${entries.length - 8} more extensions`);
  return shown.join(', ');
}

interface CheckedOptions {
  path: string; textField: string; name?: string; format: DatasetFormat | null;
  extensions: readonly string[] | null; onSkip?: (where: string) => void;
}

const OPTIONS = ['path', 'textField', 'name', 'format', 'extensions', 'onSkip'];

function checkOptions(spec: unknown, more: unknown): CheckedOptions {
  if (typeof spec === 'string') spec = { ...(more as object | undefined), path: spec };
  else if (more !== undefined) throw invalidArgument('loadDataset(spec, options)', 'no second argument when spec is an object', more);
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw invalidArgument('loadDataset(spec)', 'a path or { path, textField?, name?, format?, extensions? }', spec);
  }
  const options = spec as Record<string, unknown>;
  checkKeys('loadDataset', options, OPTIONS);
  const { path, textField = DEFAULT_TEXT_FIELD, name, format, extensions, onSkip } = options;
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('loadDataset: path', 'a non-empty string', path);
  if (typeof textField !== 'string' || textField.length === 0) throw invalidArgument('loadDataset: textField', 'a non-empty string', textField);
  if (name !== undefined && (typeof name !== 'string' || name.length === 0)) throw invalidArgument('loadDataset: name', 'a non-empty string', name);
  if (format !== undefined && !FORMATS.includes(format as DatasetFormat)) {
    throw new ExciseError('ERR_DATASET_UNSUPPORTED', `loadDataset: format must be one of ${FORMATS.join(', ')}; received ${describeValue(format)}`);
  }
  if (onSkip !== undefined && typeof onSkip !== 'function') throw invalidArgument('loadDataset: onSkip', 'a function', onSkip);
  let exts: string[] | null = null;
  if (extensions !== undefined) {
    if (!Array.isArray(extensions) || extensions.length === 0) throw invalidArgument('loadDataset: extensions', 'a non-empty array of extensions such as ["py", "pyi"]', extensions);
    exts = extensions.map((e: unknown) => {
      if (typeof e !== 'string' || !/^\.?[^./\\\s]+(\.[^./\\\s]+)*$/.test(e)) throw invalidArgument('loadDataset: extensions', 'extensions such as "py", ".md" or "jsonl.gz"', e);
      return e.replace(/^\./, '').toLowerCase();
    });
  }
  return { path, textField, name: name as string | undefined, format: (format as DatasetFormat | undefined) ?? null, extensions: exts, onSkip: onSkip as CheckedOptions['onSkip'] };
}

/**
 * A dataset from a file or folder (see the module comment for the formats), as
 * `loadDataset(path, options?)` or `loadDataset({ path, ...options })`. Checked now: the path
 * exists (ERR_DATASET_NOT_FOUND), a file's extension is supported (ERR_DATASET_UNSUPPORTED), a
 * folder holds at least one chosen file (ERR_DATASET_EMPTY, naming what it holds instead), and each
 * parquet file has one text column `textField` (ERR_DATASET_INVALID). Nothing else is read until
 * `documents()`; `summary()` tells what was read and skipped.
 */
export function loadDataset(spec: string | DatasetOptions, options?: Omit<DatasetOptions, 'path'>): FileDataset {
  const { path: given, textField, name, format, extensions, onSkip } = checkOptions(spec, options);
  const path = resolve(given);
  const stats = statPath(path);
  const chosen = extensions ? new Set(extensions) : DEFAULT_SET;
  let files: DataFile[];
  let ignored: Record<string, number> = {};
  if (stats.isDirectory()) {
    ({ files, ignored } = listFolder(path, chosen, format));
    if (files.length === 0) {
      const wanted = extensions ? extensions.map((e) => `.${e}`).join(', ') : format ? `${format} ` : 'supported';
      const holds = Object.keys(ignored).length ? `it holds ${describeCounts(ignored)}` : 'it holds no files';
      throw new ExciseError('ERR_DATASET_EMPTY',
        `dataset folder ${path} holds no ${wanted} files: ${holds} (hidden entries are ignored); choose extensions with the extensions option${extensions ? '' : ` (supported by default: ${SUPPORTED})`}`);
    }
  } else if (stats.isFile() || stats.isFIFO() || stats.isCharacterDevice()) {
    // A pipe (a FIFO, /dev/stdin) streams too, once: a second pass would find it drained.
    const ext = extensionOf(path);
    const fileFormat = format ?? (chosen.has(ext) ? formatOfExtension(ext) : null);
    if (!fileFormat) {
      throw new ExciseError('ERR_DATASET_UNSUPPORTED',
        `unsupported dataset file ${path} (extension "${ext ? `.${ext}` : 'none'}"); supported: ${SUPPORTED}; or pass extensions: ['${ext || 'txt'}'] or format: ${FORMATS.map((f) => `'${f}'`).join(' | ')}`);
    }
    if (fileFormat === 'parquet' && !stats.isFile()) {
      throw new ExciseError('ERR_DATASET_UNSUPPORTED', `parquet needs a regular file (read from its end); ${path} is a pipe or device`);
    }
    files = [{ path, format: fileFormat, ext }];
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
  const ds = new FilesDataset(name ?? (basename(path) || path), path, files, textField, ignored, onSkip);
  identities.set(ds, {
    kind: 'files', root, textField: usesField ? textField : '', format: stats.isDirectory() ? format : null,
    extensions: stats.isDirectory() ? [...chosen].sort().join(',') : '',
  });
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
  throw invalidArgument('dataset', 'a Dataset, a path, { path, textField?, name?, format?, extensions? } or an array of texts', x);
}

// ---------------------------------------------------------------------------------------------
// split and shuffle

function checkSeed(where: string, seed: unknown): number {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) throw invalidArgument(`${where}: seed`, 'a non-negative integer', seed);
  return seed;
}

/** An optional options argument of split/shuffle: {} when absent, else an object of `allowed` keys only. */
function optionsOf(where: string, options: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw invalidArgument(`${where}: options`, `{ ${allowed.join(', ')} }`, options);
  checkKeys(where, options, allowed);
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
  const o = optionsOf('splitDataset', options, ['evalFraction', 'seed']);
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
  const o = optionsOf('shuffleDataset', options, ['seed', 'bufferSize']);
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
