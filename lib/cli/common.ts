/**
 * What several commands share: the process's streams, opening a dataset (checked to yield a
 * document before anything is written) and loading a model that can read text.
 */
import { mkdtempSync, realpathSync, rmdirSync, rmSync, statSync, type Stats } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ExciseError } from '../errors.js';
import type { Dataset } from '../data/datasets.js';
import { datasetError, datasetSummaryLine, loadDatasetWith, type SetDataOptions } from './data.js';
import { loadModel, type Device, type Dtype, type Model } from '../model.js';
import { ForwardedProgress } from './launch.js';
import { Progress } from './progress.js';

/** A subcommand: parses its own arguments and returns the exit code. */
export interface Command {
  name: string;
  /** One line for `excise --help`. */
  summary: string;
  /** The text of `excise <name> --help`. */
  help: string;
  run(argv: string[], io: CliIO): Promise<number>;
}

export interface CliIO {
  stdout: { write(chunk: string): boolean };
  stderr: { write(chunk: string): boolean; isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
  progress: Progress;
}

export function processIO(): CliIO {
  // A worker started by --nproc reports progress to its launcher, which adds the workers up.
  const progress = process.env.EXCISE_LAUNCHED_WORKER === '1' && process.send ? new ForwardedProgress(process.stderr) : new Progress(process.stderr);
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, progress };
}

/** Whether the dataset yields at least one document (reads only up to the first one). */
export async function hasDocument(ds: Dataset): Promise<boolean> {
  try {
    for await (const _ of ds.documents()) return true; // leaving the loop closes the stream
    return false;
  } catch (err) {
    if (err instanceof ExciseError && err.code === 'ERR_DATASET_EMPTY') return false;
    throw err;
  }
}

/**
 * A dataset from the command line, checked to hold at least one document; errors name the flag
 * (e.g. "--forget").
 */
export async function openDataset(label: string, spec: string, name?: string, options: SetDataOptions = {}): Promise<Dataset> {
  let ds: Dataset;
  try {
    ds = loadDatasetWith(spec, name, options);
  } catch (err) {
    throw datasetError(label, err);
  }
  let ok: boolean;
  try {
    ok = await hasDocument(ds);
  } catch (err) {
    throw datasetError(label, err);
  }
  if (!ok) throw new ExciseError('ERR_DATASET_EMPTY', `${label}: dataset ${ds.source} has no documents (no non-empty text)`);
  return ds;
}

/**
 * Says on stderr what each folder dataset reads (files chosen and not, by extension), once every
 * dataset has been checked: a refused run prints only its error.
 */
export function reportDatasets(io: CliIO, datasets: Array<[label: string, ds: Dataset]>): void {
  for (const [label, ds] of datasets) {
    let folder = false;
    try {
      folder = statSync(ds.source).isDirectory();
    } catch {
      // not a path (in-memory texts)
    }
    const line = folder ? datasetSummaryLine(label, ds) : undefined;
    if (line) io.progress.log(line);
  }
}

/** Loads a model for text datasets: it must have a tokenizer.json. */
export async function loadTextModel(dir: string, options: { device?: string; devices?: readonly string[]; dtype?: Dtype }): Promise<Model> {
  const model = await loadModel(dir, options as { device?: Device; devices?: Device[]; dtype?: Dtype }); // devices checked by parseDevice(s)
  if (!model.hasTokenizer) {
    await model.dispose();
    throw new ExciseError('ERR_TOKENIZER_MISSING', `${model.dir}: no tokenizer.json, so the datasets' texts cannot be tokenized`);
  }
  return model;
}

export function checkMaxLength(model: Model, maxLength: number | undefined): void {
  if (maxLength !== undefined && maxLength > model.config.maxPositions) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', `--max-length ${maxLength} exceeds the model's ${model.config.maxPositions} positions`);
  }
}

/**
 * Checks, before any work, that `path` can be written: a folder (`kind` 'folder', created later if
 * missing) or a file written atomically beside itself ('file'). Finds the nearest existing folder
 * and creates and removes a probe in it, so read-only places, a file in the way and permissions
 * are all caught the way the real write would meet them. Nothing is left behind.
 */
export function checkWritable(label: string, path: string, kind: 'folder' | 'file'): void {
  const abs = resolve(path);
  let existing = kind === 'file' ? dirname(abs) : abs;
  for (;;) {
    let st: Stats | undefined;
    try {
      st = statSync(existing);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOTDIR: a file further up is in the way, found on the way up.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        throw new ExciseError('ERR_IO', `${label} ${abs}: cannot be checked: ${(err as Error).message}`, { cause: err });
      }
    }
    if (st) {
      if (!st.isDirectory()) {
        const what = existing === abs ? `${label} ${abs} is a file, not a folder` : `${label} ${abs}: cannot be created, ${existing} is a file`;
        throw new ExciseError('ERR_OUTPUT_EXISTS', what);
      }
      break;
    }
    const up = dirname(existing);
    if (up === existing) break;
    existing = up;
  }
  try {
    rmdirSync(mkdtempSync(join(existing, '.excise-write-check-')));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const where = existing === abs ? abs : `${existing} (to create ${abs})`;
    throw new ExciseError('ERR_IO', `${label}: cannot write into ${where}: ${code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EROFS' ? 'read-only file system' : (err as Error).message}; choose another ${label}`, { cause: err });
  }
}

/** Removes a folder this run created (and the parents it created), e.g. after a failed run. */
export function removeCreated(firstCreated: string | undefined): void {
  if (firstCreated) rmSync(firstCreated, { recursive: true, force: true });
}

/** A path or word as a shell word: unchanged when plain, else single-quoted. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * How to run excise again from where the user is, for printed commands (e.g. the resume hint):
 * "excise" when that name on PATH is this program; "npx excise" when this is a local dependency
 * of the project the user is in (node_modules/.bin/excise); "npx tsx lib/cli/main.ts" in a
 * checkout of excise run from source; otherwise node and the script's path.
 */
export function invocation(env: NodeJS.ProcessEnv, script: string | undefined = process.argv[1], cwd: string = process.cwd()): string {
  if (!script) return 'excise';
  const abs = resolve(script);
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return undefined;
    }
  };
  const shown = (p: string) => {
    const rel = relative(cwd, p);
    return shellQuote(rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : p);
  };
  if (abs.endsWith('.ts')) return `npx tsx ${shown(abs)}`;
  const self = real(abs);
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && self !== undefined && real(join(dir, 'excise')) === self) return 'excise';
  }
  const nm = abs.lastIndexOf(`${sep}node_modules${sep}`);
  if (nm >= 0) {
    const project = abs.slice(0, nm);
    const rel = relative(project, cwd);
    if (!rel.startsWith('..') && !isAbsolute(rel)) return 'npx excise';
  }
  return `node ${shown(abs)}`;
}
