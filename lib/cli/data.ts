/**
 * The data flags every command that reads datasets shares, and the lines that say what was read:
 *
 *   --text-field NAME       jsonl field / parquet column holding the text (loadDataset's textField)
 *   --format F              read files as txt, jsonl or parquet whatever their extension (format)
 *   --ext py,pyi            in folders, read files with these extensions as text (extensions)
 *   --long-docs split|truncate   documents longer than the context (longDocs)
 *
 * On `prune` a flag applies to every dataset, or, written SET=VALUE (SET: forget, retain or an
 * --eval name), to that one only; flags for one set override flags for all.
 *
 * This file is the one place that knows the dataset layer's option names and summary shapes, so
 * that changes there are one edit here.
 */
import { ExciseError } from '../errors.js';
import { loadDataset, type Dataset, type DatasetFormat, type DatasetOptions } from '../data/datasets.js';
import { UsageError, type OptionSpec, type ParsedValues } from './args.js';

export const DATA_OPTIONS: OptionSpec = {
  'text-field': { type: 'string', multiple: true },
  format: { type: 'string', multiple: true },
  ext: { type: 'string', multiple: true },
  'long-docs': { type: 'string' },
};

/** Help lines for DATA_OPTIONS; `perSet` adds the SET=VALUE form (prune). */
export function dataHelp(perSet: boolean): string {
  const scoped = perSet ? `  Each data flag applies to every dataset, or, written SET=VALUE (SET: forget, retain or an
  --eval name, e.g. --ext forget=py), to that dataset only.
` : '';
  return `  --text-field NAME         the jsonl field / parquet column holding the text (default "text")
  --format F                read every file as txt, jsonl or parquet, whatever its extension
  --ext LIST                in folders, read only the files with these extensions (e.g. --ext py,pyi;
                            default: text, source code, .jsonl, .parquet); plain files are one document
  --long-docs MODE          documents longer than --max-length: split (default: read in windows)
                            or truncate (only their first window)
${scoped}`;
}

export type LongDocs = 'split' | 'truncate';

/** The dataset options of one set (only those given). */
export interface SetDataOptions {
  textField?: string;
  format?: DatasetFormat;
  extensions?: string[];
}

const FORMATS: readonly DatasetFormat[] = ['txt', 'jsonl', 'parquet'];

function checkFormat(v: string): DatasetFormat {
  if (!FORMATS.includes(v as DatasetFormat)) throw new UsageError(`--format: expected txt, jsonl or parquet, received ${JSON.stringify(v)}`);
  return v as DatasetFormat;
}

function checkExtensions(v: string): string[] {
  const list = v.split(',').map((e) => e.trim().replace(/^\*?\./, '').toLowerCase()).filter((e) => e.length > 0);
  if (list.length === 0 || list.some((e) => !/^[a-z0-9_+-]+(\.[a-z0-9_+-]+)*$/.test(e))) {
    throw new UsageError(`--ext: expected comma-separated file extensions (e.g. py,pyi), received ${JSON.stringify(v)}`);
  }
  return [...new Set(list)];
}

/**
 * The data flags, per set: `sets` are the datasets the command reads (for prune: forget, retain
 * and the --eval names; otherwise one, and SET=VALUE is not recognized).
 */
export function parseDataFlags(values: ParsedValues, sets: readonly string[]): { forSet(set: string): SetDataOptions; longDocs?: LongDocs } {
  const all: SetDataOptions = {};
  const one = new Map<string, SetDataOptions>();
  const scoped = sets.length > 1;
  const apply = (flag: string, key: keyof SetDataOptions, parse: (v: string) => SetDataOptions[typeof key]) => {
    for (const raw of (values[flag] as string[] | undefined) ?? []) {
      if (raw.length === 0) throw new UsageError(`--${flag}: expected a non-empty value`);
      const eq = raw.indexOf('=');
      const set = scoped && eq > 0 ? raw.slice(0, eq) : undefined;
      if (set !== undefined && sets.includes(set)) {
        const v = raw.slice(eq + 1);
        if (v.length === 0) throw new UsageError(`--${flag} ${raw}: expected a value after "${set}="`);
        const target = one.get(set) ?? {};
        if (target[key] !== undefined) throw new UsageError(`--${flag} is given twice for ${set}`);
        (target as Record<string, unknown>)[key] = parse(v);
        one.set(set, target);
      } else {
        if (all[key] !== undefined) {
          throw new UsageError(`--${flag} is given twice${scoped ? ` (to give one dataset its own, write --${flag} SET=VALUE with SET one of ${sets.join(', ')})` : ''}`);
        }
        (all as Record<string, unknown>)[key] = parse(raw);
      }
    }
  };
  apply('text-field', 'textField', (v) => v);
  apply('format', 'format', checkFormat);
  apply('ext', 'extensions', checkExtensions);
  const longDocsText = values['long-docs'];
  let longDocs: LongDocs | undefined;
  if (longDocsText !== undefined) {
    if (longDocsText !== 'split' && longDocsText !== 'truncate') throw new UsageError(`--long-docs: expected split or truncate, received ${JSON.stringify(longDocsText)}`);
    longDocs = longDocsText;
  }
  return { forSet: (set) => ({ ...all, ...(one.get(set) ?? {}) }), ...(longDocs ? { longDocs } : {}) };
}

/** loadDataset with the CLI's flags: only the options given are passed on. */
export function loadDatasetWith(path: string, name: string | undefined, options: SetDataOptions): Dataset {
  const spec: DatasetOptions & Record<string, unknown> = { path };
  if (name !== undefined) spec.name = name;
  if (options.textField !== undefined) spec.textField = options.textField;
  if (options.format !== undefined) spec.format = options.format;
  if (options.extensions !== undefined) spec.extensions = options.extensions; // without the dot: ["py", "pyi"]
  return loadDataset(spec);
}

/** The longDocs option for collect / evaluate / selectivePrune, when given. */
export function longDocsOption(longDocs: LongDocs | undefined): Record<string, unknown> {
  return longDocs ? { longDocs } : {};
}

/** The dataset layer's account of a folder (ds.summary(), when the dataset has one). */
interface SummaryLike {
  files: number;
  byExtension: Record<string, { files: number }>;
  ignored: Record<string, number>;
}

/** Counts by extension, largest first, the first `max`: "300 .py, 3 .txt, and 4 more extensions". */
function byExtension(counts: Array<[string, number]>, max = Infinity): string {
  const sorted = counts.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const shown = sorted.slice(0, max).map(([ext, n]) => `${n} ${ext ? `.${ext}` : '(no extension)'}`);
  if (sorted.length > max) shown.push(`and ${sorted.length - max} more extensions`);
  return shown.join(', ');
}

/**
 * What a dataset reads, as the dataset layer reports it at load (files chosen and not chosen, by
 * extension): one line, or undefined for a dataset without a summary.
 */
export function datasetSummaryLine(label: string, ds: Dataset): string | undefined {
  const summary = (ds as Dataset & { summary?: () => SummaryLike }).summary;
  const s = typeof summary === 'function' ? summary.call(ds) : undefined;
  if (!s || typeof s.byExtension !== 'object') return undefined;
  const read = byExtension(Object.entries(s.byExtension).map(([ext, e]) => [ext, e.files]));
  const ignored = Object.entries(s.ignored ?? {});
  const notRead = ignored.length > 0 ? `; not read: ${byExtension(ignored, 5)} (--ext chooses)` : '';
  return `${label}: ${ds.source}: ${s.files} file${s.files === 1 ? '' : 's'} (${read})${notRead}`;
}

/** The dataset layer's token usage of a collect / evaluate run. */
interface UsageLike {
  longDocs: LongDocs;
  maxLength: number;
  tokensUsed: number;
  tokensDropped: number;
  longDocuments: number;
}

/**
 * Tokens used, and what happened to long documents, from a collect / evaluate result's usage: one
 * line, or undefined when there is no usage.
 */
export function tokensLine(label: string, result: unknown): string | undefined {
  const u = (result as { usage?: UsageLike } | undefined)?.usage;
  if (!u || typeof u.tokensUsed !== 'number') return undefined;
  const parts = [`${u.tokensUsed} tokens used`];
  if (u.longDocuments > 0) {
    const docs = `${u.longDocuments} document${u.longDocuments === 1 ? '' : 's'} longer than ${u.maxLength} tokens`;
    parts.push(u.longDocs === 'truncate'
      ? `${docs} truncated, ${u.tokensDropped} tokens dropped (--long-docs split reads them whole)`
      : `${docs} read in windows`);
  }
  return `${label}: ${parts.join('; ')}`;
}

/** Rewrites the dataset layer's API wording (option names) into the CLI's flags. */
export function cliWording(message: string): string {
  return message
    .replace(/\bthe textField option\b/g, 'the --text-field flag')
    .replace(/\bthe extensions option\b/g, 'the --ext flag')
    .replace(/\bextensions: \['([^']*)'\]/g, '--ext $1')
    .replace(/\bformat: 'txt' \| 'jsonl' \| 'parquet'/g, '--format txt (or jsonl, parquet)')
    .replace(/\bformat: '(txt|jsonl|parquet)'/g, '--format $1')
    .replace(/\blongDocs: '(split|truncate)'/g, '--long-docs $1');
}

/** The CLI wording of an ExciseError from the dataset layer, prefixed by the flag (e.g. "--forget"). */
export function datasetError(label: string, err: unknown): unknown {
  if (err instanceof ExciseError) return new ExciseError(err.code, `${label}: ${err.message}`, { cause: err });
  return err;
}
