// The Model API: generation with a KV cache, concurrency, responsiveness, disposal.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createRandomModel, loadModel, runtimeInfo, setTf32 } from '../lib/index.js';
import { goldenCases, goldenDir, maxAbsDiff, readGolden } from './helpers/golden.js';

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

describe('forward logits', () => {
  it('arrive in an array of their own (zero-copy from the native tensor), equal to Hugging Face', async () => {
    const golden = await readGolden(join(goldenDir, 'llama'));
    const model = await loadModel(join(goldenDir, 'llama'));
    const out = await model.forward(golden.inputIds, { attentionMask: golden.attentionMask, capture: ['blocks.0.mlp.pre_out'] });
    expect(out.logits.byteOffset).toBe(0);
    expect(out.logits.buffer.byteLength).toBe(out.logits.byteLength);
    expect(maxAbsDiff(out.logits, golden.tensors.logits.data)).toBeLessThan(1e-4);
    expect(maxAbsDiff(out.activations!['blocks.0.mlp.pre_out'].data, golden.tensors['mlp_pre_out.0'].data)).toBeLessThan(1e-4);
    // Each call owns its arrays: a later call does not write into an earlier result.
    const kept = Float32Array.from(out.logits);
    await model.forward([[7, 8, 9]]);
    expect(maxAbsDiff(out.logits, kept)).toBe(0);
    await model.dispose();
  });

  it("lastPositionOnly: each row's last real token, equal to that row of the full logits", async () => {
    for (const name of ['gpt2', 'llama']) {
      const model = await loadModel(join(goldenDir, name));
      const ids = [[5, 9, 13, 2, 40, 41], [8, 8, 1, 60, 0, 0], [3, 4, 5, 6, 7, 8]];
      const attentionMask = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]];
      const full = await model.forward(ids, { attentionMask });
      const last = await model.forward(ids, { attentionMask, lastPositionOnly: true });
      const vocab = model.config.vocabSize;
      expect(last.shape).toEqual([3, 1, vocab]);
      for (const [row, position] of [[0, 5], [1, 3], [2, 5]]) {
        const expected = full.logits.subarray((row * 6 + position) * vocab, (row * 6 + position + 1) * vocab);
        expect(maxAbsDiff(last.logits.subarray(row * vocab, (row + 1) * vocab), expected), `${name} row ${row}`).toBeLessThan(1e-5);
      }
      const unpadded = await model.forward([[1, 2, 3]], { lastPositionOnly: true });
      const unpaddedFull = await model.forward([[1, 2, 3]]);
      expect(maxAbsDiff(unpadded.logits, unpaddedFull.logits.subarray(2 * vocab))).toBeLessThan(1e-5);
      await expect(model.forward([[1]], { lastPositionOnly: 1 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await model.dispose();
    }
  });
});

describe('devices', () => {
  it("'cuda:N' names: malformed ones are ERR_INVALID_DEVICE, well-formed ones this machine lacks ERR_DEVICE_UNAVAILABLE", async () => {
    const dir = join(goldenDir, 'gpt2');
    for (const device of ['cuda:', 'cuda:-1', 'cuda:1.0', 'cuda:01', 'cuda:1000', 'CUDA', ' cuda', 'cuda:0 ', 'gpu']) {
      await expect(loadModel(dir, { device: device as never }), device).rejects.toMatchObject({ code: 'ERR_INVALID_DEVICE', message: expect.stringContaining(JSON.stringify(device)) });
    }
    const info = runtimeInfo();
    const missing = info.cudaAvailable ? [`cuda:${info.cudaDeviceCount}`, 'cuda:999'] : ['cuda', 'cuda:0', 'cuda:7', 'cuda:999'];
    for (const device of missing) {
      for (const load of [() => loadModel(dir, { device: device as never }), () => createRandomModel({ architectures: ['GPT2LMHeadModel'], n_layer: 1, n_embd: 16, n_head: 2, vocab_size: 20 }, { device: device as never })]) {
        await expect(load(), device).rejects.toMatchObject({
          code: 'ERR_DEVICE_UNAVAILABLE',
          message: expect.stringMatching(info.cudaAvailable ? /CUDA device\(s\) are visible/ : info.cudaBuild ? /no GPU is visible/ : /CPU-only build of LibTorch/),
        });
      }
    }
  });
});

describe('runtimeInfo', () => {
  it('names the LibTorch version', () => {
    const info = runtimeInfo();
    expect(info.torchVersion).toMatch(/^\d+\.\d+/);
    expect(typeof info.cudaAvailable).toBe('boolean');
  });

  it('TF32 is off by default, opt-in, and changes nothing on the CPU', async () => {
    expect(runtimeInfo().tf32).toBe(false);
    const model = await loadModel(join(goldenDir, 'llama'));
    const before = await model.forward([[1, 2, 3, 4]]);
    setTf32(true);
    try {
      expect(runtimeInfo().tf32).toBe(true);
      const after = await model.forward([[1, 2, 3, 4]]);
      expect(maxAbsDiff(after.logits, before.logits)).toBe(0);
    } finally {
      setTf32(false);
    }
    expect(runtimeInfo().tf32).toBe(false);
    expect(() => setTf32('yes' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    await model.dispose();
  });
});
