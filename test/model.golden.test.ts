// The decoder against Hugging Face transformers' own outputs: logits and every hook point, float32,
// padded row included (tolerance 1e-4), and bf16 loosely.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { loadModel, type Model } from '../lib/index.js';
import { goldenCases, goldenDir, forwardDiffs, maxAbsDiff, readGolden, type Golden } from './helpers/golden.js';

const TOL_F32 = 1e-4;

describe.each(goldenCases)('%s matches Hugging Face', (name) => {
  const dir = join(goldenDir, name);
  let model: Model;
  let golden: Golden;

  beforeAll(async () => {
    golden = await readGolden(dir);
    model = await loadModel(dir, { device: 'cpu', dtype: 'float32' });
  });
  afterAll(async () => model?.dispose());

  it('logits and every hook point, float32, padded batch', async () => {
    const diffs = await forwardDiffs(model, golden, name);
    for (const [k, v] of Object.entries(diffs)) expect(v, k).toBeLessThan(TOL_F32);
  });

  it('the padded row equals that row run alone, unpadded', async () => {
    const row = golden.inputIds[1];
    const valid = golden.attentionMask[1].filter((m) => m === 1).length;
    const alone = await model.forward([row.slice(0, valid)]);
    const vocab = model.config.vocabSize;
    const padded = golden.tensors.logits.data.subarray(row.length * vocab, row.length * vocab + valid * vocab);
    expect(maxAbsDiff(alone.logits, padded)).toBeLessThan(TOL_F32);
  });

  it('config reports the checkpoint sizes', () => {
    const c = model.config;
    expect(c.nLayers).toBe(2);
    expect(c.vocabSize).toBe(97);
    expect(c.nHeads * c.headDim).toBe(golden.tensors['attn_pre_out.0'].shape[2]);
    expect(c.dMlp).toBe(golden.tensors['mlp_pre_out.0'].shape[2]);
  });
});

describe.each(['gpt2', 'llama'])('%s in bfloat16', (name) => {
  it('stays close to Hugging Face bf16 logits', async () => {
    const dir = join(goldenDir, name);
    const golden = await readGolden(dir);
    const model = await loadModel(dir, { dtype: 'bfloat16' });
    expect(model.dtype).toBe('bfloat16');
    const out = await model.forward(golden.inputIds, { attentionMask: golden.attentionMask });
    const ref = golden.tensors.logits_bf16_from_pretrained;
    const vocab = model.config.vocabSize;
    const valid = (i: number) => golden.attentionMask[Math.floor(i / vocab / 12)][Math.floor(i / vocab) % 12] === 1;
    const diff = maxAbsDiff(out.logits, ref.data, valid);
    console.log(`${name} bf16 max |excise - HF bf16| = ${diff.toFixed(3)}`);
    expect(diff).toBeLessThan(0.5);
    // Top-1 predictions agree with float32 HF at almost every real position.
    const f32 = golden.tensors.logits.data;
    let agree = 0;
    let total = 0;
    for (let p = 0; p < out.logits.length / vocab; p++) {
      if (!valid(p * vocab)) continue;
      const argmax = (a: Float32Array) => { let k = 0; for (let v = 1; v < vocab; v++) if (a[p * vocab + v] > a[p * vocab + k]) k = v; return k; };
      total++;
      if (argmax(out.logits) === argmax(f32)) agree++;
    }
    expect(agree / total).toBeGreaterThan(0.8);
    await model.dispose();
  });
});
