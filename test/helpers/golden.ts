/**
 * Reference fixtures computed by Hugging Face transformers (test/fixtures/hf-golden, and the
 * variants made by scripts/fixtures/make_variants.py): each folder holds a model plus
 * golden.safetensors with input_ids, attention_mask, logits and every hook point's activations.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { readSafetensors } from '../../lib/safetensors.js';
import type { Model } from '../../lib/model.js';

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

/**
 * Runs the golden batch with every hook point captured and returns max |excise - HF| for the
 * logits and each hook point, after checking every shape. Logs the diffs under `label`.
 */
export async function forwardDiffs(
  model: { forward: Model['forward']; hookNames(): string[]; config: { nLayers: number } },
  golden: Golden,
  label: string,
): Promise<Record<string, number>> {
  const out = await model.forward(golden.inputIds, { attentionMask: golden.attentionMask, capture: model.hookNames() });
  const ref = golden.tensors.logits;
  expect(out.shape).toEqual(ref.shape);
  const diffs: Record<string, number> = { logits: maxAbsDiff(out.logits, ref.data) };
  for (let l = 0; l < model.config.nLayers; l++) {
    for (const [site, key] of [['mlp', 'mlp_pre_out'], ['attn', 'attn_pre_out']] as const) {
      const act = out.activations![`blocks.${l}.${site}.pre_out`];
      const expected = golden.tensors[`${key}.${l}`];
      expect(act.shape).toEqual(expected.shape);
      diffs[`${key}.${l}`] = maxAbsDiff(act.data, expected.data);
    }
  }
  console.log(`${label} max |excise - HF|:`, Object.entries(diffs).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', '));
  return diffs;
}
