// Training through the decoder: the loss a step reports is the model's own cross-entropy, the
// schedule follows its formula, and a tiny model learns a batch.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createRandomModel, loadModel } from '../lib/index.js';
import { goldenDir } from './helpers/golden.js';

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
});
