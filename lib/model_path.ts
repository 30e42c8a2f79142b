/**
 * What a model path points at, before the native loader reads it: excise reads a Hugging Face
 * folder (config.json plus safetensors weights). A path that is something else (a weights file, a
 * GGUF file, a folder with only PyTorch .bin weights, a Hub id that is not a local folder) gets a
 * message saying what excise reads and what to do, instead of "not found".
 *
 * Also the dtype of a checkpoint's weights as stored (read from a safetensors header), so that a
 * model computed in another dtype can be saved back in the dtype it came in.
 */
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { ExciseError } from './errors.js';
import type { Dtype } from './model.js';

const WHAT_EXCISE_READS = 'excise reads a Hugging Face model folder: config.json, model.safetensors (or a sharded model.safetensors.index.json) and tokenizer.json';
const CONVERT = 'convert it with transformers: AutoModelForCausalLM.from_pretrained(path).save_pretrained(out, safe_serialization=True), and copy the tokenizer files';

function listSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** A Hub id ("org/name"), as written on huggingface.co: two plain parts, no leading "." or "/". */
function looksLikeHubId(given: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(given) && !given.startsWith('.') && !/\.(gguf|safetensors|bin|pt|pth)$/i.test(given);
}

/**
 * Checks that `abs` (resolved from `given`) is a folder excise can read a model from; otherwise
 * throws ERR_MODEL_NOT_FOUND (no folder at the path) or ERR_WEIGHTS_MISSING (a folder without
 * safetensors weights) with what to do. Deeper checks (config, tensors) stay with the loader.
 */
export function checkModelPath(given: string, abs: string): void {
  if (!existsSync(abs)) {
    if (looksLikeHubId(given)) {
      throw new ExciseError('ERR_MODEL_NOT_FOUND',
        `${abs}: no such folder. "${given}" looks like a Hugging Face Hub id, but excise does not download models: ` +
        `download it first (e.g. "hf download ${given} --local-dir models/${basename(given)}") and pass that folder (models/${basename(given)})`);
    }
    throw new ExciseError('ERR_MODEL_NOT_FOUND', `${abs}: model folder not found (${WHAT_EXCISE_READS})`);
  }
  const stats = statSync(abs);
  if (!stats.isDirectory()) {
    const ext = extname(abs).toLowerCase();
    if (ext === '.gguf') {
      throw new ExciseError('ERR_MODEL_NOT_FOUND',
        `${abs} is a GGUF file (llama.cpp's format), which excise does not read; ${WHAT_EXCISE_READS}. ` +
        `Use the original Hugging Face checkpoint the GGUF was made from`);
    }
    const parent = dirname(abs);
    const parentIsModel = existsSync(join(parent, 'config.json'));
    if (ext === '.safetensors' || basename(abs) === 'config.json' || basename(abs) === 'model.safetensors.index.json') {
      throw new ExciseError('ERR_MODEL_NOT_FOUND',
        `${abs} is a file; excise takes the model's folder, not one of its files${parentIsModel ? `: pass ${parent}` : ''} (${WHAT_EXCISE_READS})`);
    }
    if (ext === '.bin' || ext === '.pt' || ext === '.pth') {
      throw new ExciseError('ERR_MODEL_NOT_FOUND',
        `${abs} is a PyTorch weights file; ${WHAT_EXCISE_READS}. To use these weights, ${CONVERT}`);
    }
    throw new ExciseError('ERR_MODEL_NOT_FOUND', `${abs} is a file, not a model folder (${WHAT_EXCISE_READS})`);
  }
  const entries = listSafe(abs);
  const has = (pred: (e: string) => boolean) => entries.some(pred);
  if (has((e) => e.endsWith('.safetensors') || e === 'model.safetensors.index.json')) return;
  if (has((e) => /\.(bin|pt|pth)$/.test(e))) {
    throw new ExciseError('ERR_WEIGHTS_MISSING',
      `${abs} holds PyTorch .bin weights but no safetensors; ${WHAT_EXCISE_READS}. ${CONVERT[0].toUpperCase()}${CONVERT.slice(1)}`);
  }
  const gguf = entries.find((e) => e.toLowerCase().endsWith('.gguf'));
  if (gguf) {
    throw new ExciseError('ERR_WEIGHTS_MISSING',
      `${abs} holds a GGUF file (${gguf}, llama.cpp's format), which excise does not read; ${WHAT_EXCISE_READS}. ` +
      `Use the original Hugging Face checkpoint the GGUF was made from`);
  }
  // A folder without weights: the native loader names what is missing (config.json, weights).
}

const SAFETENSORS_FLOATS: Record<string, Dtype> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * The dtype of a checkpoint's floating-point weights as stored: read from the header of its
 * (first) safetensors file. Undefined when the folder has none, or the dtype is not one excise
 * computes in.
 */
export function checkpointDtype(dir: string): Dtype | undefined {
  const entries = listSafe(dir).filter((e) => e.endsWith('.safetensors')).sort();
  const file = entries.includes('model.safetensors') ? 'model.safetensors' : entries[0];
  if (!file) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(join(dir, file), 'r');
    const lenBuf = Buffer.alloc(8);
    if (readSync(fd, lenBuf, 0, 8, 0) !== 8) return undefined;
    const len = Number(lenBuf.readBigUInt64LE(0));
    if (!Number.isSafeInteger(len) || len <= 0 || len > 100_000_000) return undefined;
    const header = Buffer.alloc(len);
    if (readSync(fd, header, 0, len, 8) !== len) return undefined;
    const parsed = JSON.parse(header.toString('utf8')) as Record<string, { dtype?: string }>;
    const counts = new Map<Dtype, number>();
    for (const [name, t] of Object.entries(parsed)) {
      const d = name === '__metadata__' ? undefined : SAFETENSORS_FLOATS[t?.dtype ?? ''];
      if (d) counts.set(d, (counts.get(d) ?? 0) + 1);
    }
    // The most common floating dtype (a checkpoint may keep a few tensors, e.g. norms, in float32).
    return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
