/**
 * What several commands share: the process's streams, opening a dataset (checked to yield a
 * document before anything is written) and loading a model that can read text.
 */
import { ExciseError } from '../errors.js';
import { loadDataset, type Dataset } from '../data/datasets.js';
import { loadModel, type Device, type Dtype, type Model } from '../model.js';
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
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, progress: new Progress(process.stderr) };
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

/** loadDataset(spec), checked to hold at least one document; errors name the flag (e.g. "--forget"). */
export async function openDataset(label: string, spec: string, name?: string): Promise<Dataset> {
  let ds: Dataset;
  try {
    ds = loadDataset(name ? { path: spec, name } : spec);
  } catch (err) {
    if (err instanceof ExciseError) throw new ExciseError(err.code, `${label}: ${err.message}`, { cause: err });
    throw err;
  }
  let ok: boolean;
  try {
    ok = await hasDocument(ds);
  } catch (err) {
    if (err instanceof ExciseError) throw new ExciseError(err.code, `${label}: ${err.message}`, { cause: err });
    throw err;
  }
  if (!ok) throw new ExciseError('ERR_DATASET_EMPTY', `${label}: dataset ${ds.source} has no documents (no non-empty text)`);
  return ds;
}

/** Loads a model for text datasets: it must have a tokenizer.json. */
export async function loadTextModel(dir: string, options: { device?: string; dtype?: Dtype }): Promise<Model> {
  const model = await loadModel(dir, options as { device?: Device; dtype?: Dtype }); // device checked by parseDevice
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
