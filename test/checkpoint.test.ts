// Checkpoint layouts real hubs use: sharded weights with an index, and names without the base-model prefix.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, readSafetensors, writeSafetensors, type SafetensorsTensor } from '../lib/index.js';
import { goldenDir, maxAbsDiff, readGolden } from './helpers/golden.js';

let scratch: string;
beforeAll(() => { scratch = mkdtempSync(join(tmpdir(), 'excise-ckpt-')); });
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function logitsOf(dir: string, name: string): Promise<{ ours: Float32Array; ref: Float32Array }> {
  const golden = await readGolden(join(goldenDir, name));
  const model = await loadModel(dir);
  const out = await model.forward(golden.inputIds, { attentionMask: golden.attentionMask });
  await model.dispose();
  return { ours: out.logits, ref: golden.tensors.logits.data };
}

describe('checkpoint layouts', () => {
  it('sharded weights through model.safetensors.index.json', async () => {
    const dir = join(scratch, 'sharded');
    cpSync(join(goldenDir, 'llama'), dir, { recursive: true });
    const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
    unlinkSync(join(dir, 'model.safetensors'));
    const names = Object.keys(tensors);
    const shards: Record<string, SafetensorsTensor>[] = [{}, {}, {}];
    const weightMap: Record<string, string> = {};
    names.forEach((n, i) => {
      shards[i % 3][n] = tensors[n];
      weightMap[n] = `model-0000${(i % 3) + 1}-of-00003.safetensors`;
    });
    for (let s = 0; s < 3; s++) await writeSafetensors(join(dir, `model-0000${s + 1}-of-00003.safetensors`), shards[s], { format: 'pt' });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    const { ours, ref } = await logitsOf(dir, 'llama');
    expect(maxAbsDiff(ours, ref)).toBeLessThan(1e-4);
  });

  it('GPT-2 names without the "transformer." prefix (as the original hub upload has them)', async () => {
    const dir = join(scratch, 'unprefixed');
    cpSync(join(goldenDir, 'gpt2'), dir, { recursive: true });
    const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
    const renamed = Object.fromEntries(Object.entries(tensors).map(([n, t]) => [n.replace(/^transformer\./, ''), t]));
    await writeSafetensors(join(dir, 'model.safetensors'), renamed, { format: 'pt' });
    const model = await loadModel(dir);
    expect(model.tensorNames()).toContain('h.0.attn.c_attn.weight');
    await model.dispose();
    const { ours, ref } = await logitsOf(dir, 'gpt2');
    expect(maxAbsDiff(ours, ref)).toBeLessThan(1e-4);
  });

  it('an index naming a shard outside the folder is refused', async () => {
    const dir = join(scratch, 'escape');
    cpSync(join(goldenDir, 'llama'), dir, { recursive: true });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.embed_tokens.weight': '../x.safetensors' } }));
    await expect(loadModel(dir)).rejects.toMatchObject({ code: 'ERR_SAFETENSORS_INVALID' });
  });
});
