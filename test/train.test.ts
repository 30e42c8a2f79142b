// Training through the decoder: the loss a step reports is the model's own cross-entropy, the
// schedule follows its formula, and a tiny model learns a batch.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandomModel, loadModel, readSafetensors, type Model } from '../lib/index.js';
import { fixturesDir, goldenDir } from './helpers/golden.js';

/** Every floating-point weight of a model, as float32 values (saved in float32 and read back). */
async function weightsOf(model: Model): Promise<Record<string, Float32Array>> {
  const dir = mkdtempSync(join(tmpdir(), 'excise-train-'));
  try {
    await model.save(dir, { overwrite: true, dtype: 'float32' });
    const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
    return Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, t.data as Float32Array]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const tinyLlama = {
  architectures: ['LlamaForCausalLM'], num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 4,
  num_key_value_heads: 2, intermediate_size: 64, vocab_size: 40, max_position_embeddings: 64,
};

describe('Trainer', () => {
  it("reports the batch's loss before its update, equal to evaluate()'s", async () => {
    for (const name of ['gpt2', 'llama', 'gpt_neox', 'opt']) {
      const model = await loadModel(join(goldenDir, name));
      const batch = [[5, 9, 13, 2, 40, 41, 7], [8, 8, 1, 60, 61, 62, 3]];
      const before = await model.evaluate(batch, { skipTopN: 0 });
      const trainer = model.trainer({ lr: 1e-2, warmupSteps: 0, totalSteps: 10 });
      const r = await trainer.step(batch);
      expect(r.step).toBe(1);
      expect(r.tokens).toBe(12);
      expect(Math.abs(r.loss - before.loss), name).toBeLessThan(1e-5);
      const after = await model.evaluate(batch, { skipTopN: 0 });
      expect(after.loss, `${name}: one step lowers the batch's loss`).toBeLessThan(before.loss);
      await trainer.close();
      await model.dispose();
    }
  });

  it('padding is not predicted: a padded batch has the loss of its real tokens', async () => {
    const model = await loadModel(join(goldenDir, 'qwen2'));
    const a = model.trainer({ lr: 1e-9, warmupSteps: 0 });
    const padded = await a.step([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0]], { attentionMask: [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]] });
    await a.close();
    const ev = await model.evaluate([[1, 2, 3, 4, 5], [6, 7, 8]], { skipTopN: 0 });
    expect(padded.tokens).toBe(6);
    expect(Math.abs(padded.loss - ev.loss)).toBeLessThan(1e-4);
    await model.dispose();
  });

  it('warmup then cosine decay to lr * minLrRatio', async () => {
    const model = await createRandomModel(tinyLlama, { seed: 1 });
    const t = model.trainer({ lr: 0.01, warmupSteps: 2, totalSteps: 6, minLrRatio: 0.1 });
    const lrs: number[] = [];
    for (let i = 0; i < 6; i++) lrs.push((await t.step([[1, 2, 3, 4]])).lr);
    const expected = [0.005, 0.01, ...[1, 2, 3, 4].map((s) => 0.001 + 0.5 * 0.009 * (1 + Math.cos(Math.PI * s / 4)))];
    lrs.forEach((lr, i) => expect(lr).toBeCloseTo(expected[i], 12));
    await t.close();
    await model.dispose();
  });

  it('a tiny model learns to continue a sequence', async () => {
    const model = await createRandomModel(tinyLlama, { seed: 2 });
    const seq = [3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 32, 38, 4, 6, 2];
    const t = model.trainer({ lr: 3e-3, warmupSteps: 5, totalSteps: 120, weightDecay: 0 });
    let first = 0, last = 0;
    for (let i = 0; i < 120; i++) {
      const r = await t.step([seq]);
      if (i === 0) first = r.loss;
      last = r.loss;
      expect(Number.isFinite(r.gradNorm)).toBe(true);
    }
    await t.close();
    expect(first).toBeGreaterThan(3); // ~ln(40) at random init
    expect(last).toBeLessThan(0.5);
    // What it learned is the greedy continuation.
    expect(await model.generate(seq.slice(0, 4), { maxNewTokens: 6, stopAtEos: false })).toEqual(seq.slice(4, 10));
    await model.dispose();
  });

  it('rowWeights: all 1 steps as no weights; the reported loss is the plain mean either way; -1 ascends', async () => {
    const batch = [[1, 2, 3, 4, 5], [6, 7, 8, 0, 0]];
    const attentionMask = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]];
    const stepOnce = async (rowWeights?: number[]) => {
      const model = await createRandomModel(tinyLlama, { seed: 3 }); // same seed: the same weights each time
      const before = await model.evaluate([batch[0]], { skipTopN: 0 });
      const t = model.trainer({ lr: 1e-2, warmupSteps: 0, totalSteps: 10 });
      const r = await t.step(batch, rowWeights ? { attentionMask, rowWeights } : { attentionMask });
      await t.close();
      const after = await model.evaluate([batch[0]], { skipTopN: 0 });
      const weights = await weightsOf(model);
      await model.dispose();
      return { r, before: before.loss, after: after.loss, weights };
    };
    const plain = await stepOnce();
    const ones = await stepOnce([1, 1]);
    const ascend = await stepOnce([-1, 1]);
    for (const w of [ones, ascend]) {
      expect(w.r.tokens).toBe(6);
      expect(Math.abs(w.r.loss - plain.r.loss)).toBeLessThan(1e-6); // unweighted mean over the 6 real tokens
    }
    expect(Math.abs(ones.r.gradNorm - plain.r.gradNorm)).toBeLessThan(1e-5 * plain.r.gradNorm);
    for (const [name, w] of Object.entries(plain.weights)) {
      const o = ones.weights[name];
      let maxDiff = 0;
      for (let i = 0; i < w.length; i++) maxDiff = Math.max(maxDiff, Math.abs(w[i] - o[i]));
      expect(maxDiff, name).toBeLessThan(1e-6);
    }
    expect(plain.after).toBeLessThan(plain.before); // descent on row 0
    expect(ascend.after).toBeGreaterThan(ascend.before); // weight -1: ascent on row 0
  });

  it('bad options and inputs', async () => {
    const model = await createRandomModel(tinyLlama);
    expect(() => model.trainer({ lr: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => model.trainer({ lr: 1e-3, beta1: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => model.trainer({ learningRate: 1 } as never)).toThrow(expect.objectContaining({ message: expect.stringContaining('learningRate') }));
    const t = model.trainer();
    await expect(t.step([[1]])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(t.step([[1, 99]])).rejects.toMatchObject({ code: 'ERR_TOKEN_OUT_OF_RANGE' });
    // A hole is not token 0, and a mask holds only 0 and 1 (holes included).
    // eslint-disable-next-line no-sparse-arrays
    await expect(t.step([[, 1, 2] as number[]])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('[0][0]') });
    // eslint-disable-next-line no-sparse-arrays
    await expect(t.step([[1, 2, 3]], { attentionMask: [[1, , 1] as number[]] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('attentionMask[0][1]') });
    await expect(t.step([[1, 2, 3]], { attentionMask: [[1, 2, 1]] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await t.close();
    await expect(t.step([[1, 2]])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await model.dispose();
  });

  it("AdamW steps equal PyTorch's torch.optim.AdamW (fixture: scripts/fixtures/make_adamw.py)", async () => {
    const ref = JSON.parse(readFileSync(join(fixturesDir, 'adamw', 'steps.json'), 'utf8')) as {
      options: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; gradClip: number };
      batch: number[][];
      steps: { loss: number; gradNorm: number }[];
    };
    const after = (await readSafetensors(join(fixturesDir, 'adamw', 'after.safetensors'))).tensors;
    const model = await loadModel(join(goldenDir, 'llama'));
    const before = await weightsOf(model);
    // A constant learning rate: no warmup, and the cosine decays to lr * 1.
    const t = model.trainer({ ...ref.options, warmupSteps: 0, totalSteps: ref.steps.length, minLrRatio: 1 });
    for (const [i, expected] of ref.steps.entries()) {
      const r = await t.step(ref.batch);
      expect(Math.abs(r.loss - expected.loss) / expected.loss, `step ${i + 1} loss`).toBeLessThan(1e-5);
      expect(Math.abs(r.gradNorm - expected.gradNorm) / expected.gradNorm, `step ${i + 1} gradient norm`).toBeLessThan(1e-4);
    }
    await t.close();
    const ours = await weightsOf(model);
    let worst = 0;
    let moved = 0;
    for (const [name, w] of Object.entries(ours)) {
      const torchW = after[name].data as Float32Array;
      for (let i = 0; i < w.length; i++) {
        worst = Math.max(worst, Math.abs(w[i] - torchW[i]));
        moved = Math.max(moved, Math.abs(before[name][i] - torchW[i]));
      }
    }
    console.log(`AdamW vs torch.optim.AdamW after ${ref.steps.length} steps: max |weight diff| = ${worst.toExponential(2)} (largest move ${moved.toExponential(2)})`);
    expect(moved).toBeGreaterThan(1e-3);  // the steps did move the weights (lr 1e-3, three steps)
    // Far below one step (lr 1e-3) and a third of the decay's own effect (~3e-5): a wrong moment, bias
    // correction, clip or decay shows.
    expect(worst).toBeLessThan(1e-5);
    await model.dispose();
  });

  it('bfloat16 training keeps small updates: float32 master weights, no stall', async () => {
    // lr 2e-5: each AdamW step moves a weight by about 2e-5, under half a bf16 ulp for |w| > 0.01
    // (>= 6e-5), so updates written straight into bf16 weights would round away, step after step.
    const m16 = await createRandomModel(tinyLlama, { seed: 3, dtype: 'bfloat16' });
    const before = await weightsOf(m16);
    const options = { lr: 2e-5, warmupSteps: 0, totalSteps: 20, minLrRatio: 1, weightDecay: 0, gradClip: 0 };
    const batch = [[3, 14, 15, 9, 26, 5, 35, 8], [9, 7, 9, 32, 38, 4, 6, 2]];
    const t16 = m16.trainer(options);
    for (let i = 0; i < 20; i++) await t16.step(batch);
    await t16.close();
    const after = await weightsOf(m16);
    let large = 0, changed = 0, movement = 0;
    for (const [name, w0] of Object.entries(before)) {
      if (!name.endsWith('proj.weight')) continue;  // the layers' matrices
      for (let i = 0; i < w0.length; i++) {
        if (Math.abs(w0[i]) <= 0.01) continue;
        large++;
        if (after[name][i] !== w0[i]) changed++;
        movement += Math.abs(after[name][i] - w0[i]);
      }
    }
    console.log(`bf16 training, 20 steps at lr 2e-5: ${changed}/${large} weights with |w| > 0.01 changed, mean move ${(movement / large).toExponential(2)}`);
    expect(large).toBeGreaterThan(1000);
    expect(changed / large).toBeGreaterThan(0.8);
    // About 20 steps x 2e-5 each, as in float32 (Adam's steps are ~lr): not a fraction of it.
    expect(movement / large).toBeGreaterThan(1e-4);
    await m16.dispose();
  });
});
