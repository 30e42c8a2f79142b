/**
 * model.save(): a Hugging Face folder (config.json, safetensors weights, sharded above a size,
 * tokenizer files) plus excise.json recording what was pruned and how. Written atomically: into a
 * temporary sibling folder, then renamed into place. Never into the model's own source folder, and
 * never over an existing folder unless asked to.
 */
import { closeSync, constants as fsConstants, copyFileSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ExciseError, invalidArgument, withCallerStack, checkKeys } from './errors.js';
import { readRegularFile } from './files.js';
import type { NativeModel } from './native.js';

export interface SaveOptions {
  /** Replace an existing folder (default false). */
  overwrite?: boolean;
  /** Shard the weights above this many bytes per file (default 5 GB, as Hugging Face does). */
  maxShardSize?: number;
  /** Extra entries for excise.json (e.g. the pipeline's parameters and report). */
  metadata?: Record<string, unknown>;
  /** Write the floating-point weights in this dtype, converting on write (default: the model's dtype). */
  dtype?: 'float32' | 'float16' | 'bfloat16';
}

/** Files a model folder may carry besides its config and weights. */
const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt',
  'tokenizer.model', 'added_tokens.json', 'generation_config.json',
];

export interface SaveSource {
  handle: NativeModel;
  sourceDir: string | undefined;
  /** config.json as loaded (or as given to createRandomModel). */
  config: Record<string, unknown>;
  dtype: string;
  excise: Record<string, unknown>;
  /** Layers whose tensors may differ from the source checkpoint ('all' after training). */
  changedLayers?: ReadonlySet<number> | 'all';
}

/** safetensors dtype names of the float dtypes a model saves in. */
const SAFETENSORS_DTYPE: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** The JSON header of a safetensors file (tensor name -> { dtype, ... }), read without the data. */
function safetensorsHeader(file: string): Record<string, { dtype?: string }> {
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    if (readSync(fd, len, 0, 8, 0) !== 8) throw new Error('short file');
    const n = Number(len.readBigUInt64LE(0));
    if (n > 100 * 1024 * 1024) throw new Error('header too large');
    const header = Buffer.alloc(n);
    if (readSync(fd, header, 0, n, 8) !== n) throw new Error('short header');
    return JSON.parse(header.toString('utf8')) as Record<string, { dtype?: string }>;
  } finally {
    closeSync(fd);
  }
}

/** The transformer layer a checkpoint tensor belongs to (model.layers.3.…, transformer.h.3.…), or -1. */
function layerOf(name: string): number {
  const m = /(?:^|\.)(?:layers|h|layer|blocks|decoder\.layers)\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

/**
 * For a model loaded from a sharded checkpoint and saved in its layout and dtype: which shards hold a
 * tensor of a changed layer (to be written) and which hold none (to be copied byte for byte).
 * Undefined when the save cannot reuse the source's shards (not sharded, other dtype or shard size,
 * trained weights, other tensors).
 */
function reusableShards(src: SaveSource, dtype: string, tensorNames: string[], options: SaveOptions): { write: { file: string; names: string[] }[]; copy: string[]; index: string } | undefined {
  if (!src.sourceDir || src.changedLayers === undefined || src.changedLayers === 'all' || options.maxShardSize !== undefined) return undefined;
  const index = join(src.sourceDir, 'model.safetensors.index.json');
  if (!existsSync(index)) return undefined;
  let weightMap: Record<string, string>;
  try {
    weightMap = (JSON.parse(readRegularFile(index, 64 * 1024 * 1024, { missing: 'ERR_IO', invalid: 'ERR_IO' })) as { weight_map: Record<string, string> }).weight_map;
  } catch {
    return undefined;
  }
  if (!weightMap || typeof weightMap !== 'object') return undefined;
  const names = Object.keys(weightMap);
  if (names.length !== tensorNames.length || !tensorNames.every((n) => typeof weightMap[n] === 'string')) return undefined;
  const byFile = new Map<string, string[]>();
  for (const n of tensorNames) {
    const f = weightMap[n];
    if (f.includes('/') || f.startsWith('.')) return undefined;
    byFile.set(f, [...(byFile.get(f) ?? []), n]);
  }
  const wanted = SAFETENSORS_DTYPE[dtype];
  const write: { file: string; names: string[] }[] = [];
  const copy: string[] = [];
  for (const [file, fileNames] of byFile) {
    let header: Record<string, { dtype?: string }>;
    try {
      header = safetensorsHeader(join(src.sourceDir, file));
    } catch {
      return undefined;
    }
    // A float tensor stored in another dtype would be converted: the bytes would differ.
    for (const n of fileNames) {
      const d = header[n]?.dtype;
      if (d === undefined || (['F32', 'F16', 'BF16', 'F64'].includes(d) && d !== wanted)) return undefined;
    }
    if (fileNames.some((n) => (src.changedLayers as ReadonlySet<number>).has(layerOf(n)))) write.push({ file, names: fileNames });
    else copy.push(file);
  }
  return { write, copy, index };
}

function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep) && rel !== '..');
}

/**
 * The temporary folder of a save in progress: `.{target}.excise-incomplete-save-{pid}-{8 hex}`,
 * holding a marker file with the writer's pid and host. A save killed midway (kill -9, power
 * loss) leaves it behind; a later save in the same parent folder removes it once that process is
 * gone (see removeStaleSaves).
 */
const INCOMPLETE_SAVE = /^\..+\.excise-incomplete-save-(\d+)-[0-9a-f]{8}$/;
export const SAVE_MARKER = '.excise-incomplete-save.json';

/**
 * mkdir -p, one level at a time: Node's recursive mkdir loops forever where a folder cannot be
 * made and its parent exists (ENOENT under /proc).
 */
function makeFolders(dir: string): void {
  if (existsSync(dir)) return;
  const up = dirname(dir);
  if (up !== dir) makeFolders(up);
  try {
    mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';  // EPERM: alive, someone else's
  }
}

/**
 * Removes the folders of saves that died midway in `parent`. Only what is provably such a folder
 * goes: a real folder (not a link) whose name matches the pattern, holding a regular marker file
 * that names the same pid and this host, and that pid no longer running here. Anything else is
 * left alone. Returns the folders removed.
 */
export function removeStaleSaves(parent: string): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return removed;
  }
  for (const name of entries) {
    const m = INCOMPLETE_SAVE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const dir = join(parent, name);
    try {
      if (!lstatSync(dir).isDirectory()) continue;
      const marker = JSON.parse(readRegularFile(join(dir, SAVE_MARKER), 64 * 1024, { missing: 'ERR_IO', invalid: 'ERR_IO' })) as { excise?: unknown; pid?: unknown; host?: unknown };
      if (marker.excise !== 'incomplete-save' || marker.pid !== pid || marker.host !== hostname()) continue;
      if (pid === process.pid || !processIsGone(pid)) continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // Unreadable marker, raced with another cleaner ...: not provably ours, keep it.
    }
  }
  return removed;
}

export async function saveModelFolder(src: SaveSource, dir: string, options: SaveOptions = {}): Promise<void> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument('save(dir)', 'a folder path', dir);
  const allowed = ['overwrite', 'maxShardSize', 'metadata', 'dtype'];
  checkKeys('save', options, allowed);
  const maxShard = options.maxShardSize ?? 5 * 1024 ** 3;
  if (!Number.isInteger(maxShard) || maxShard < 1) throw invalidArgument('save: maxShardSize', 'a positive integer number of bytes', maxShard);
  if (options.dtype !== undefined && !['float32', 'float16', 'bfloat16'].includes(options.dtype)) {
    throw new ExciseError('ERR_INVALID_DTYPE', `save: dtype must be 'float32', 'float16' or 'bfloat16'; received ${JSON.stringify(options.dtype)}`);
  }
  const dtype = options.dtype ?? src.dtype;
  if (options.overwrite !== undefined && typeof options.overwrite !== 'boolean') throw invalidArgument('save: overwrite', 'true or false', options.overwrite);
  if (options.metadata !== undefined && (options.metadata === null || typeof options.metadata !== 'object' || Array.isArray(options.metadata))) {
    throw invalidArgument('save: metadata', 'an object', options.metadata);
  }
  let exciseJson: string;
  try {
    exciseJson = JSON.stringify({ ...src.excise, ...(options.metadata ?? {}) }, null, 2) + '\n';
  } catch (err) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', `save: metadata must be plain JSON data (${(err as Error).message})`);
  }
  const target = realOrResolved(dir);
  if (src.sourceDir) {
    const source = realOrResolved(src.sourceDir);
    if (isInside(target, source) || isInside(source, target)) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', `save: ${target} is or contains the model's source folder ${source}; save the pruned model elsewhere`);
    }
  }
  const exists = existsSync(target);
  if (exists && !options.overwrite) {
    throw new ExciseError('ERR_OUTPUT_EXISTS', `save: ${target} already exists (pass { overwrite: true } to replace it)`);
  }
  const parent = dirname(target);
  const tmp = join(parent, `.${basename(target)}.excise-incomplete-save-${process.pid}-${randomBytes(4).toString('hex')}`);
  let madeTmp = false;
  try {
    makeFolders(parent);
    removeStaleSaves(parent);
    mkdirSync(tmp);
    madeTmp = true;
    const marker = join(tmp, SAVE_MARKER);
    writeFileSync(marker, JSON.stringify({ excise: 'incomplete-save', pid: process.pid, host: hostname(), target, startedAt: new Date().toISOString() }) + '\n');
    // A sharded checkpoint saved in its own layout and dtype: only the shards holding a changed
    // layer are written; the others are copied byte for byte (a reflink where the file system
    // has them), and so is the index.
    const reuse = reusableShards(src, dtype, src.handle.tensorNames(), options);
    if (reuse) {
      if (reuse.write.length > 0) await withCallerStack(() => src.handle.saveWeights(tmp, maxShard, dtype, reuse.write));
      for (const f of reuse.copy) copyFileSync(join(src.sourceDir!, f), join(tmp, f), fsConstants.COPYFILE_FICLONE);
      copyFileSync(reuse.index, join(tmp, 'model.safetensors.index.json'));
    } else {
      const { files, weightMap, totalSize } = await withCallerStack(() => src.handle.saveWeights(tmp, maxShard, dtype));
      if (files.length > 1) {
        writeFileSync(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
      }
    }
    const config: Record<string, unknown> = { ...src.config };
    // The weights are written in the model's dtype; say so where transformers looks.
    if ('torch_dtype' in config && !('dtype' in config)) config.torch_dtype = dtype;
    else config.dtype = dtype;
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    if (src.sourceDir) {
      for (const f of TOKENIZER_FILES) {
        const from = join(src.sourceDir, f);
        if (!existsSync(from)) continue;
        // A FIFO or device under a tokenizer file's name would block the copy or never end.
        if (!statSync(from).isFile()) throw new ExciseError('ERR_IO', `save: ${from} is not a regular file, so it cannot be copied`);
        copyFileSync(from, join(tmp, f));
      }
    }
    writeFileSync(join(tmp, 'excise.json'), exciseJson);
    unlinkSync(marker);
    if (exists) {
      // Replace: move the old folder aside, move the new one in, then delete the old one.
      const old = join(parent, `.${basename(target)}.excise-old-${process.pid}-${randomBytes(4).toString('hex')}`);
      renameSync(target, old);
      try {
        renameSync(tmp, target);
      } catch (err) {
        renameSync(old, target);
        throw err;
      }
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, target);
    }
  } catch (err) {
    if (madeTmp) rmSync(tmp, { recursive: true, force: true });
    if (err instanceof ExciseError) throw err;
    throw new ExciseError('ERR_IO', `save: could not write ${target}: ${(err as Error).message}`, { cause: err });
  }
}
