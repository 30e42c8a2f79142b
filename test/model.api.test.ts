// The Model API: generation with a KV cache, concurrency, responsiveness, disposal.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createRandomModel, loadModel, runtimeInfo } from '../lib/index.js';
import { goldenCases, goldenDir, maxAbsDiff } from './helpers/golden.js';

function argmaxLast(logits: Float32Array, vocab: number): number {
  const off = logits.length - vocab;
  let k = 0;
  for (let v = 1; v < vocab; v++) if (logits[off + v] > logits[off + k]) k = v;
  return k;
}

describe('generate', () => {
  it.each(goldenCases)('%s: greedy generation with the KV cache equals re-running the whole sequence', async (name) => {
    const model = await loadModel(join(goldenDir, name));
    const prompt = [5, 17, 42, 8, 61];
    const generated = await model.generate(prompt, { maxNewTokens: 8, stopAtEos: false });
    expect(generated).toHaveLength(8);
    const seq = [...prompt];
    for (let i = 0; i < 8; i++) {
      const { logits } = await model.forward([seq]);
      seq.push(argmaxLast(logits, model.config.vocabSize));
    }
    expect(generated).toEqual(seq.slice(prompt.length));
    await model.dispose();
  });

  it('sampling is reproducible for a seed and differs across seeds', async () => {
    const model = await loadModel(join(goldenDir, 'llama'));
    const opts = { maxNewTokens: 12, temperature: 1.5, topK: 20, stopAtEos: false };
    const a = await model.generate([1, 2, 3], { ...opts, seed: 7 });
    const b = await model.generate([1, 2, 3], { ...opts, seed: 7 });
    const c = await model.generate([1, 2, 3], { ...opts, seed: 8 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    await model.dispose();
  });

  it('stops at the end-of-sequence token when asked', async () => {
    const model = await loadModel(join(goldenDir, 'llama'));
    const free = await model.generate([3, 4], { maxNewTokens: 30, stopAtEos: false });
    // Make the first generated token the EOS id by asking for it directly: use it as the stop set.
    const eos = model.config.eosTokenIds[0];
    const stopped = await model.generate([3, 4], { maxNewTokens: 30 });
    const cut = free.indexOf(eos);
    expect(stopped).toEqual(cut >= 0 ? free.slice(0, cut + 1) : free);
    await model.dispose();
  });

  it('a text prompt without a tokenizer is a clear error', async () => {
    const model = await loadModel(join(goldenDir, 'gpt2'));
    await expect(model.generate('hello', { maxNewTokens: 2 })).rejects.toMatchObject({ code: 'ERR_TOKENIZER_MISSING' });
    await model.dispose();
  });
});

describe('concurrency and responsiveness', () => {
  it('concurrent forwards on one model give the same results as sequential ones', async () => {
    const model = await loadModel(join(goldenDir, 'qwen2'));
    const inputs = [[[1, 2, 3, 4]], [[9, 8, 7, 6]], [[5, 5, 5, 5]], [[60, 61, 62, 63]]];
    const sequential = [];
    for (const x of inputs) sequential.push((await model.forward(x)).logits);
    const parallel = await Promise.all(inputs.map((x) => model.forward(x)));
    parallel.forEach((r, i) => expect(maxAbsDiff(r.logits, sequential[i])).toBe(0));
    await model.dispose();
  });

  it('timers keep firing during a long forward (work runs off the JS thread)', async () => {
    const model = await createRandomModel({
      architectures: ['GPT2LMHeadModel'], n_layer: 6, n_embd: 384, n_head: 6, n_positions: 512, vocab_size: 2048,
    });
    const ids = Array.from({ length: 8 }, (_, b) => Array.from({ length: 512 }, (_, t) => (b * 131 + t * 7) % 2048));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    const started = performance.now();
    await model.forward(ids);
    const elapsed = performance.now() - started;
    clearInterval(timer);
    // A forward that blocked the event loop would let no tick through before it resolved.
    expect(ticks).toBeGreaterThan(Math.min(5, Math.floor(elapsed / 20)));
    console.log(`forward took ${elapsed.toFixed(0)} ms; ${ticks} timer ticks fired meanwhile`);
    await model.dispose();
  });

  it('dispose waits for queued work, then later calls fail with ERR_MODEL_DISPOSED', async () => {
    const model = await loadModel(join(goldenDir, 'opt'));
    const pending = model.forward([[1, 2, 3]]);
    await model.dispose();
    await expect(pending).resolves.toHaveProperty('shape', [1, 3, 97]);
    await expect(model.forward([[1, 2, 3]])).rejects.toMatchObject({ code: 'ERR_MODEL_DISPOSED' });
    await model.dispose(); // idempotent
  });
});

describe('forward inputs', () => {
  it('accepts a flat Int32Array with its shape, identical to number[][]', async () => {
    const model = await loadModel(join(goldenDir, 'gpt_neox'));
    const rows = [[1, 2, 3], [4, 5, 6]];
    const a = await model.forward(rows);
    const b = await model.forward({ data: Int32Array.from(rows.flat()), shape: [2, 3] });
    expect(maxAbsDiff(a.logits, b.logits)).toBe(0);
    expect(b.shape).toEqual([2, 3, 97]);
    await model.dispose();
  });

  it('captures only the hook points asked for, with their shapes', async () => {
    const model = await loadModel(join(goldenDir, 'llama'));
    const out = await model.forward([[1, 2, 3, 4, 5]], { capture: ['blocks.1.mlp.pre_out', 'blocks.0.attn.pre_out'] });
    expect(Object.keys(out.activations!).sort()).toEqual(['blocks.0.attn.pre_out', 'blocks.1.mlp.pre_out']);
    expect(out.activations!['blocks.1.mlp.pre_out'].shape).toEqual([1, 5, 96]);
    expect(out.activations!['blocks.0.attn.pre_out'].shape).toEqual([1, 5, 64]);
    await model.dispose();
  });

  it('a random model built from a config runs and reports its size', async () => {
    const model = await createRandomModel({
      architectures: ['LlamaForCausalLM'], num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 4,
      num_key_value_heads: 2, intermediate_size: 64, vocab_size: 50,
    }, { seed: 3 });
    expect(model.config).toMatchObject({ family: 'llama', nLayers: 2, dModel: 32, nKvHeads: 2, headDim: 8, dMlp: 64 });
    // embed + lm_head + per layer (2 norms + q,k,v,o + gate, up, down) + final norm
    expect(model.parameterCount).toBe(2 * 50 * 32 + 2 * (2 * 32 + 32 * 32 + 2 * 16 * 32 + 32 * 32 + 3 * 32 * 64) + 32);
    const out = await model.forward([[1, 2, 3]]);
    expect(out.logits.every(Number.isFinite)).toBe(true);
    await model.dispose();
  });
});

describe('runtimeInfo', () => {
  it('names the LibTorch version', () => {
    const info = runtimeInfo();
    expect(info.torchVersion).toMatch(/^\d+\.\d+/);
    expect(typeof info.cudaAvailable).toBe('boolean');
  });
});
