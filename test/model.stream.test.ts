// Generation on the decode engine: continuous batching (concurrent = sequential), per-request
// sampling, streaming text, AbortSignal, stop strings, top-p, log-probabilities, max time, call
// order with prune, and scoring continuations, against numbers computed here from forward() logits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExciseError, loadModel, type Model } from '../lib/index.js';
import { GenerationStream } from '../lib/generation.js';
import type { DecodeScheduler, EngineEvent } from '../lib/engine.js';
import { goldenDir } from './helpers/golden.js';

/** Masked LMs (RoBERTa) cannot generate: model.roberta.test.ts checks that they refuse. */
const isMaskedLm = (dir: string) => JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).architectures?.[0]?.endsWith('ForMaskedLM') === true;

const demoDir = join(goldenDir, '..', '..', '..', 'assets', 'demo-model');

/** log_softmax of one row of logits, in float64. */
function logSoftmax(logits: Float32Array, offset: number, vocab: number): Float64Array {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) max = Math.max(max, logits[offset + v]);
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(vocab);
  for (let v = 0; v < vocab; v++) out[v] = logits[offset + v] - lse;
  return out;
}

/** Sixteen different prompts of different lengths (token ids). */
function prompts(vocab: number): number[][] {
  return Array.from({ length: 16 }, (_, i) => Array.from({ length: 3 + ((i * 5) % 11) }, (_, t) => (i * 97 + t * 31 + 7) % vocab));
}

describe('the decode engine', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(demoDir);
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('16 concurrent greedy requests give exactly the tokens of the same requests made one at a time', async () => {
    const ps = prompts(model.config.vocabSize);
    const sequential: number[][] = [];
    for (const p of ps) sequential.push(await model.generate(p, { maxNewTokens: 8, stopAtEos: false }));
    const concurrent = await Promise.all(ps.map((p) => model.generate(p, { maxNewTokens: 8, stopAtEos: false })));
    expect(concurrent).toEqual(sequential);
    // With fewer slots than requests, the rest wait for a slot and still get the same tokens.
    model.configureEngine({ maxBatch: 3 });
    const queued = await Promise.all(ps.map((p, i) => model.generate(p, { maxNewTokens: 3 + (i % 6), stopAtEos: false })));
    expect(queued).toEqual(sequential.map((s, i) => s.slice(0, 3 + (i % 6))));
    model.configureEngine({ maxBatch: 16 });
  });

  it('greedy decoding matches argmax of forward() over the whole sequence (the cached positions are right)', async () => {
    const p = prompts(model.config.vocabSize)[5];
    // Run it next to other requests, so it decodes in a batch with other positions.
    const [generated] = await Promise.all([
      model.generate(p, { maxNewTokens: 6, stopAtEos: false }),
      ...prompts(model.config.vocabSize).slice(0, 6).map((q) => model.generate(q, { maxNewTokens: 9, stopAtEos: false })),
    ]);
    const seq = [...p];
    for (let i = 0; i < 6; i++) {
      const { logits } = await model.forward([seq]);
      const lp = logSoftmax(logits, (seq.length - 1) * model.config.vocabSize, model.config.vocabSize);
      seq.push(lp.indexOf(Math.max(...lp)));
    }
    expect(generated).toEqual(seq.slice(p.length));
  });

  it('each request samples with its own generator: the same seed gives the same tokens alone or in a batch', async () => {
    const opts = { maxNewTokens: 10, temperature: 1.2, topK: 50, stopAtEos: false };
    const alone = await model.generate([5, 6, 7], { ...opts, seed: 11 });
    const batched = await Promise.all([
      model.generate([9, 9, 9, 9], { ...opts, seed: 3 }),
      model.generate([5, 6, 7], { ...opts, seed: 11 }),
      model.generate([1, 2], { ...opts, seed: 4, temperature: 0 }),
    ]);
    expect(batched[1]).toEqual(alone);
    expect(await model.generate([5, 6, 7], { ...opts, seed: 12 })).not.toEqual(alone);
    // top-p that keeps only the most likely token is greedy decoding.
    const greedy = await model.generate([5, 6, 7], { maxNewTokens: 10, stopAtEos: false });
    expect(await model.generate([5, 6, 7], { ...opts, topK: 0, topP: 1e-6, seed: 1 })).toEqual(greedy);
  });

  it('log-probabilities of the chosen tokens and the top alternatives equal log_softmax of forward() logits', async () => {
    const prompt = 'def main():\n    ';
    const stream = model.stream(prompt, { maxNewTokens: 5, logprobs: 3, stopAtEos: false });
    const r = await stream.result;
    expect(r.logprobs).toHaveLength(5);
    const ids = [...model.tokenizer.encode(prompt), ...r.tokens];
    const { logits } = await model.forward([ids]);
    const vocab = model.config.vocabSize;
    const promptLen = ids.length - r.tokens.length;
    r.logprobs!.forEach((lp, i) => {
      const ref = logSoftmax(logits, (promptLen - 1 + i) * vocab, vocab);
      expect(lp.token).toBe(r.tokens[i]);
      expect(Math.abs(lp.logprob - ref[lp.token])).toBeLessThan(1e-4);
      const best = [...ref.keys()].sort((a, b) => ref[b] - ref[a]).slice(0, 3);
      expect(lp.top.map((t) => t.token)).toEqual(best);
      lp.top.forEach((t) => expect(Math.abs(t.logprob - ref[t.token])).toBeLessThan(1e-4));
    });
  });

  it('stream chunks concatenate to the generated text; stop strings cut it', async () => {
    const prompt = 'The history of the city';
    const full = await model.generate(prompt, { maxNewTokens: 24, stopAtEos: false });
    let streamed = '';
    const tokens: number[] = [];
    const stream = model.stream(prompt, { maxNewTokens: 24, stopAtEos: false });
    for await (const chunk of stream) {
      streamed += chunk.text;
      tokens.push(chunk.token);
    }
    expect(streamed).toBe(full);
    expect((await stream.result).text).toBe(full);
    expect(model.tokenizer.decode(tokens)).toBe(full);
    // A stop string taken from the middle of that text ends the generation right before it.
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
    const cut = model.stream(prompt, { maxNewTokens: 24, stopAtEos: false, stop: [stop] });
    let cutText = '';
    for await (const chunk of cut) cutText += chunk.text;
    const r = await cut.result;
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(full.slice(0, full.indexOf(stop)));
    expect(cutText).toBe(r.text);
  });

  it('an AbortSignal stops a stream at once and frees its slot within one decoding step', async () => {
    const controller = new AbortController();
    const stream = model.stream([3, 4, 5], { maxNewTokens: 200, stopAtEos: false, signal: controller.signal });
    let seen = 0;
    let tokensAtAbort = 0;
    await expect((async () => {
      for await (const _ of stream) {
        if (++seen === 3) {
          tokensAtAbort = model.engineStats.tokens;
          controller.abort();
        }
      }
    })()).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(seen).toBe(3);
    await expect(stream.result).rejects.toBeInstanceOf(ExciseError);
    // The next request runs after the engine has dropped the aborted one: at most the step that
    // was running and the one whose result was on its way produced tokens for it.
    await model.generate([1, 2], { maxNewTokens: 1 });
    const extra = model.engineStats.tokens - tokensAtAbort - 1;
    expect(extra).toBeLessThanOrEqual(2);
    expect(model.engineStats.active).toBe(0);
    // An already aborted signal rejects without starting.
    await expect(model.generate([1], { maxNewTokens: 3, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await expect(model.forward([[1, 2]], { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('maxTime ends a generation with the tokens so far', async () => {
    const r = await model.generateDetailed([7, 8], { maxNewTokens: 250, stopAtEos: false, maxTime: 30 });
    expect(r.finishReason).toBe('time');
    expect(r.tokens.length).toBeLessThan(250);
  });

  it('a prune made after a generate (neither awaited) does not change that generate; one made before does', async () => {
    const p = [11, 12, 13, 14];
    const before = await model.generate(p, { maxNewTokens: 10, stopAtEos: false });
    const { nLayers, dMlp } = model.config;
    const selection = { ff: Array.from({ length: nLayers }, () => Array.from({ length: dMlp / 2 }, (_, i) => i * 2)), attn: Array.from({ length: nLayers }, () => []) };
    const first = model.generate(p, { maxNewTokens: 10, stopAtEos: false });
    const pruned = model.prune(selection);
    const second = model.generate(p, { maxNewTokens: 10, stopAtEos: false });
    const [a, , b] = await Promise.all([first, pruned, second]);
    expect(a).toEqual(before);
    const { logits } = await model.forward([p]);
    const lp = logSoftmax(logits, (p.length - 1) * model.config.vocabSize, model.config.vocabSize);
    expect(b[0]).toBe(lp.indexOf(Math.max(...lp)));  // the pruned model's own greedy token
    expect(b).not.toEqual(before);
    await model.restore();
    expect(await model.generate(p, { maxNewTokens: 10, stopAtEos: false })).toEqual(before);
  });

  it('score: continuation log-probabilities equal log_softmax of forward() logits, batched with padding', async () => {
    const requests = [
      { prompt: [5, 6, 7, 8], continuation: [9, 10] },
      { prompt: [100], continuation: [200, 300, 400, 500] },
      { prompt: 'import os\n', continuation: 'import sys' },
    ];
    const scores = await model.score(requests, { batchSize: 2 });
    const vocab = model.config.vocabSize;
    for (const [i, s] of scores.entries()) {
      const r = requests[i];
      const p = typeof r.prompt === 'string' ? model.tokenizer.encode(r.prompt) : r.prompt;
      const c = typeof r.continuation === 'string' ? model.tokenizer.encode(r.continuation, { addSpecialTokens: false }) : r.continuation;
      expect(s.tokens).toEqual(c);
      expect(s.count).toBe(c.length);
      const { logits } = await model.forward([[...p, ...c]]);
      let sum = 0;
      let greedy = true;
      c.forEach((tok, j) => {
        const ref = logSoftmax(logits, (p.length - 1 + j) * vocab, vocab);
        expect(Math.abs(s.logprobs[j] - ref[tok])).toBeLessThan(1e-4);
        sum += ref[tok];
        greedy &&= ref.indexOf(Math.max(...ref)) === tok;
      });
      expect(Math.abs(s.sum - sum)).toBeLessThan(1e-3);
      expect(s.greedy).toBe(greedy);
    }
    await expect(model.score([{ prompt: [], continuation: [1] }])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('bad options are refused with what was expected', async () => {
    await expect(model.generate([1], { maxNewTokens: 2, topP: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('topP') });
    expect(() => model.stream([1], { maxNewTokens: 2, logprobs: -2 })).toThrow(/logprobs/);
    expect(() => model.stream([1], { maxNewTokens: 2, stop: [''] })).toThrow(/stop/);
    expect(() => model.stream([1], { maxNewTokens: 2, signal: 'x' as unknown as AbortSignal })).toThrow(/signal/);
    expect(() => model.stream(Array(300).fill(1), { maxNewTokens: 2 })).toThrow(/positions per sequence/);
  });
});

describe('batched decoding across architectures', () => {
  const variantsDir = join(goldenDir, '..', 'hf-variants');
  const cases = [
    ...['gpt2', 'opt', 'gpt_neox', 'llama', 'qwen2'].map((n) => join(goldenDir, n)),
    // Every variant: sliding windows (each row masked by its own position), post-LN OPT, MQA, sequential
    // NeoX, and the other families' positions (interleaved / partial rotary, local and global bases),
    // q/k norms and soft-capping, all with rows decoded side by side at different positions.
    ...readdirSync(variantsDir, { withFileTypes: true }).filter((d) => d.isDirectory() && !isMaskedLm(join(variantsDir, d.name))).map((d) => join(variantsDir, d.name)),
  ];
  it.each(cases)('%s: 6 concurrent greedy requests = the same one at a time = argmax of forward()', async (dir) => {
    const model = await loadModel(dir);
    try {
      const vocab = model.config.vocabSize;
      const ps = Array.from({ length: 6 }, (_, i) => Array.from({ length: 2 + i + (i % 2) * 3 }, (_, t) => (i * 13 + t * 7 + 1) % vocab));
      const opts = { maxNewTokens: 7, stopAtEos: false };
      const sequential: number[][] = [];
      for (const p of ps) sequential.push(await model.generate(p, opts));
      expect(await Promise.all(ps.map((p) => model.generate(p, opts)))).toEqual(sequential);
      // The longest prompt, re-run whole: every cached position and window is right.
      const seq = [...ps[5]];
      for (let i = 0; i < 7; i++) {
        const { logits } = await model.forward([seq]);
        const lp = logSoftmax(logits, (seq.length - 1) * vocab, vocab);
        seq.push(lp.indexOf(Math.max(...lp)));
      }
      expect(sequential[5]).toEqual(seq.slice(ps[5].length));
    } finally {
      await model.dispose();
    }
  });
});

describe('incremental text', () => {
  it('never splits a UTF-8 character across chunks, whatever the token boundaries', async () => {
    const model = await loadModel(demoDir);
    try {
      const text = 'naïve café — 東京 🙂 done';
      const ids = model.tokenizer.encode(text, { addSpecialTokens: false });
      // Feed these ids through a GenerationStream as if the engine had generated them.
      let listener: ((e: EngineEvent) => void) | undefined;
      const scheduler = { submit: (_r: unknown, l: (e: EngineEvent) => void) => { listener = l; return 1; }, cancel: () => {} } as unknown as DecodeScheduler;
      const stream = new GenerationStream({
        scheduler, tokenizer: model.tokenizer, stop: [], maxTime: undefined, signal: undefined,
        request: { prompt: new Int32Array([1]), maxNewTokens: ids.length, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [], logprobs: -1 },
      }, 1);
      ids.forEach((token, i) => listener!({ id: 1, token, logprob: 0, ...(i === ids.length - 1 ? { finish: 'length' as const } : {}) }));
      const chunks: string[] = [];
      for await (const c of stream) chunks.push(c.text);
      expect(chunks.join('')).toBe(text);
      for (const c of chunks) expect(c).not.toContain('\uFFFD');
      expect(chunks.length).toBe(ids.length);
      // The case matters: some tokens here are parts of a character (alone they decode to U+FFFD).
      expect(ids.some((id) => model.tokenizer.decode([id]).includes('\uFFFD'))).toBe(true);
    } finally {
      await model.dispose();
    }
  });
});

describe('incremental text, long generations', () => {
  /** Feeds `ids` through a GenerationStream as if the engine had generated them; counts the ids the tokenizer decodes. */
  async function streamTexts(model: Model, ids: number[], stop: string[] = []): Promise<{ chunks: string[]; result: string; decodedIds: number }> {
    let decodedIds = 0;
    // The real tokenizer, with its decodeAsync counted (the work incremental decoding does).
    const tokenizer = Object.create(model.tokenizer) as Model['tokenizer'];
    tokenizer.decodeAsync = (batch, options) => {
      decodedIds += batch.length;
      return model.tokenizer.decodeAsync(batch, options);
    };
    let listener: ((e: EngineEvent) => void) | undefined;
    const scheduler = { submit: (_r: unknown, l: (e: EngineEvent) => void) => { listener = l; return 1; }, cancel: () => {} } as unknown as DecodeScheduler;
    const stream = new GenerationStream({
      scheduler, tokenizer, stop, maxTime: undefined, signal: undefined,
      request: { prompt: new Int32Array([1]), maxNewTokens: ids.length, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [], logprobs: -1 },
    }, 1);
    ids.forEach((token, i) => listener!({ id: 1, token, logprob: 0, ...(i === ids.length - 1 ? { finish: 'length' as const } : {}) }));
    const chunks: string[] = [];
    for await (const c of stream) chunks.push(c.text);
    return { chunks, result: (await stream.result).text, decodedIds };
  }

  it('decodes a window per token (linear work) and the chunks concatenate exactly to decode(all tokens)', async () => {
    const model = await loadModel(demoDir);
    try {
      // Text: multi-byte characters whose tokens are parts of characters, about 1000 tokens.
      const text = Array.from({ length: 40 }, (_, i) => `${i}: naïve café — 東京 🙂🎉 Ünïcödé ${'ж'.repeat(i % 5)} done.\n`).join('');
      const ids = model.tokenizer.encode(text, { addSpecialTokens: false });
      expect(ids.length).toBeGreaterThan(800);
      expect(ids.filter((id) => model.tokenizer.decode([id]).includes('\uFFFD')).length).toBeGreaterThan(50);
      const { chunks, result, decodedIds } = await streamTexts(model, ids);
      expect(chunks.join('')).toBe(model.tokenizer.decode(ids));
      expect(result).toBe(model.tokenizer.decode(ids));
      for (const c of chunks) expect(c).not.toContain('\uFFFD');
      expect(chunks.length).toBe(ids.length);
      // Decoding everything after each token would decode ids.length^2 / 2 ids (here > 300,000).
      expect(decodedIds).toBeLessThan(10 * ids.length);

      // Arbitrary token ids (invalid UTF-8 byte runs, special tokens): still exactly decode(all).
      let seed = 12345;
      const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const noise = Array.from({ length: 600 }, () => Math.floor(rand() * model.config.vocabSize));
      const r = await streamTexts(model, noise);
      expect(r.chunks.join('')).toBe(model.tokenizer.decode(noise));
      expect(r.decodedIds).toBeLessThan(10 * noise.length);

      // A stop string deep into the generation cuts the text exactly where decode(all) has it.
      const stopped = await streamTexts(model, ids, ['東京 🙂🎉 Ünïcödé жжж']);
      const expected = text.slice(0, text.indexOf('東京 🙂🎉 Ünïcödé жжж'));
      expect(stopped.result).toBe(expected);
      expect(stopped.chunks.join('')).toBe(expected);
    } finally {
      await model.dispose();
    }
  });
});

describe('cancel racing the steps in flight', () => {
  it('tokens that arrive after cancel() (from a step already in flight) are not in the result: tokens and text agree', async () => {
    const model = await loadModel(demoDir);
    try {
      const ids = model.tokenizer.encode(' the river runs to the sea', { addSpecialTokens: false });
      let listener: ((e: EngineEvent) => void) | undefined;
      // The engine's cancel takes effect at its next step: events of the step in flight still come.
      const scheduler = { submit: (_r: unknown, l: (e: EngineEvent) => void) => { listener = l; return 1; }, cancel: () => {} } as unknown as DecodeScheduler;
      const stream = new GenerationStream({
        scheduler, tokenizer: model.tokenizer, stop: [], maxTime: undefined, signal: undefined,
        request: { prompt: new Int32Array([1]), maxNewTokens: ids.length, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [], logprobs: -1 },
      }, 1);
      const before = ids.slice(0, 3);
      for (const token of before) listener!({ id: 1, token, logprob: 0 });
      stream.cancel();
      for (const token of ids.slice(3)) listener!({ id: 1, token, logprob: 0 });
      listener!({ id: 1, token: -1, logprob: 0, finish: 'cancelled' });
      const r = await stream.result;
      expect(r.finishReason).toBe('cancelled');
      expect(r.tokens).toEqual(before);
      expect(r.text).toBe(model.tokenizer.decode(before));
    } finally {
      await model.dispose();
    }
  });
});

describe('batched decoding on every architecture fixture', () => {
  // Each family's positions (learned, OPT offset, rotary halves / interleaved / partial, local and
  // global bases), windows and soft-capping must hold for rows decoded side by side at different
  // positions: greedy tokens of concurrent requests equal argmax of forward() over the whole sequence.
  const variantsDir = join(goldenDir, '..', 'hf-variants');
  const dirs = [
    ...['gpt2', 'opt', 'gpt_neox', 'llama', 'qwen2'].map((c) => join(goldenDir, c)),
    ...readdirSync(variantsDir, { withFileTypes: true }).filter((d) => d.isDirectory() && !isMaskedLm(join(variantsDir, d.name))).map((d) => join(variantsDir, d.name)),
  ];
  it.each(dirs)('%s', async (dir) => {
    const model = await loadModel(dir);
    try {
      const vocab = model.config.vocabSize;
      const ps = prompts(vocab).slice(0, 4);
      const steps = 5;
      const generated = await Promise.all(ps.map((p) => model.generate(p, { maxNewTokens: steps, stopAtEos: false })));
      for (const [i, p] of ps.entries()) {
        const seq = [...p];
        for (let s = 0; s < steps; s++) {
          const { logits } = await model.forward([seq], { lastPositionOnly: true });
          const row = Array.from(logits);
          seq.push(row.indexOf(Math.max(...row)));
        }
        expect(generated[i], `request ${i}`).toEqual(seq.slice(p.length));
      }
    } finally {
      await model.dispose();
    }
  });
});
