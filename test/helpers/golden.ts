/**
 * Reference fixtures computed by Hugging Face transformers (test/fixtures/hf-golden, and the
 * variants made by scripts/fixtures/make_variants.py): each folder holds a model plus
 * golden.safetensors with input_ids, attention_mask, logits and every hook point's activations.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../../lib/safetensors.js';

export const fixturesDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const goldenDir = join(fixturesDir, 'hf-golden');
export const goldenCases = ['gpt2', 'opt', 'gpt_neox', 'llama', 'qwen2'] as const;

export interface Golden {
  inputIds: number[][];
  attentionMask: number[][];
  tensors: Record<string, { shape: number[]; data: Float32Array }>;
  prune: { mlp: number[][]; attn: number[][] };
}

function toRows(data: ArrayLike<number | bigint>, shape: number[]): number[][] {
  const [b, s] = shape;
  const rows: number[][] = [];
  for (let i = 0; i < b; i++) rows.push(Array.from({ length: s }, (_, t) => Number(data[i * s + t])));
  return rows;
}

export async function readGolden(dir: string): Promise<Golden> {
  const g = await readSafetensors(join(dir, 'golden.safetensors'));
  const tensors: Golden['tensors'] = {};
  for (const [name, t] of Object.entries(g.tensors)) {
    if (t.dtype === 'F32') tensors[name] = { shape: t.shape, data: t.data };
  }
  const ids = g.tensors.input_ids;
  const mask = g.tensors.attention_mask;
  return {
    inputIds: toRows(ids.data as ArrayLike<number | bigint>, ids.shape),
    attentionMask: toRows(mask.data as ArrayLike<number | bigint>, mask.shape),
    tensors,
    prune: JSON.parse(readFileSync(join(dir, 'prune.json'), 'utf8')),
  };
}

/** max |a - b| over all elements, optionally only where `include(i)` holds. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, include?: (i: number) => boolean): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (include && !include(i)) continue;
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates as a failure
  }
  return m;
}
