// Living inside a host process: exiting with several models (main thread and worker threads), calls
// taking effect in call order, dispose with queued calls, no unhandled rejections, typed native
// handles, batch statistics that land whole, and facts (token counts, config) owned by the core.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRandomModel, loadModel, type Model } from '../lib/index.js';
import type { NativeModel } from '../lib/native.js';
import { goldenDir } from './helpers/golden.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const hostDir = join(root, 'test', 'fixtures', 'host');

function runChild(script: string, ...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(hostDir, script), ...args], { cwd: root, encoding: 'utf8', timeout: 90_000 });
  return { status: r.status, signal: r.signal, out: r.stdout + r.stderr };
}

/** The raw native handle behind a Model (tests only). */
function nativeOf(model: Model): NativeModel {
  return (model as unknown as { handle: NativeModel }).handle;
}

describe('exiting with several models', () => {
  it.each(['plain', 'disposed', 'queued', 'exit', 'exit-dispose'])('main thread, %s: exit code 0', (mode) => {
    const r = runChild('exit-models.ts', mode);
    expect(r.signal, r.out).toBeNull();
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`${mode}: 4 models`);
    if (mode === 'queued') expect(r.out).toContain('.'.repeat(20)); // every queued forward settled first
  });

  it.each(['end', 'dispose', 'terminate'])('worker threads with two models each, %s: exit code 0', (mode) => {
    const r = runChild('exit-workers.ts', mode);
    expect(r.signal, r.out).toBeNull();
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`workers ${mode}: ok`);
  });
});

// A seeded mix of calls; `run` issues them all at once (burst) or one after another (sequential).
type Call = { kind: 'forward' | 'collect' | 'evaluate' | 'prune' | 'restore' | 'generate'; arg: number };
function mixedCalls(n: number, seed: number): Call[] {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const kinds: Call['kind'][] = ['forward', 'collect', 'evaluate', 'prune', 'restore', 'generate'];
  return Array.from({ length: n }, () => ({ kind: kinds[Math.floor(rand() * kinds.length)], arg: Math.floor(rand() * 1000) }));
}

function issue(model: Model, call: Call): Promise<unknown> {
  const { vocabSize, nLayers, dMlp, nHeads, headDim } = model.config;
  const ids = (k: number, len: number) => Array.from({ length: len }, (_, i) => (k * 7 + i * 13) % vocabSize);
  const docs = [ids(call.arg, 9), ids(call.arg + 1, 5), ids(call.arg + 2, 12)];
  switch (call.kind) {
    case 'forward':
      return model.forward([ids(call.arg, 6)]).then((r) => Array.from(r.logits.slice(0, 200)));
    case 'generate':
      return model.generate(ids(call.arg, 4), { maxNewTokens: 3, stopAtEos: false });
    case 'collect':
      return model.collect(docs, { batchSize: 1 }).then((st) => Array.from(st.hook('blocks.1.mlp.pre_out').meanAbs));
    case 'evaluate':
      return model.evaluate(docs, { batchSize: 2 }).then((r) => [r.loss, r.top1, r.topk]);
    case 'prune': {
      const ff = Array.from({ length: nLayers }, (_, l) => [(call.arg + l * 31) % dMlp, (call.arg * 3 + l) % dMlp]);
      const attn = Array.from({ length: nLayers }, (_, l) => [(call.arg + l * 17) % (nHeads * headDim)]);
      return model.prune({ ff, attn });
    }
    case 'restore':
      return model.restore().then(() => 'restored');
  }
}

describe('calls take effect in the order they were made', () => {
  let burst: Model;
  let sequential: Model;
  beforeAll(async () => {
    burst = await loadModel(join(goldenDir, 'llama'));
    sequential = await loadModel(join(goldenDir, 'llama'));
  });
  afterAll(async () => {
    await burst?.dispose();
    await sequential?.dispose();
  });

  it('a burst of 60 mixed calls gives exactly the results of the same calls made one at a time', async () => {
    const calls = mixedCalls(60, 12345);
    expect(new Set(calls.map((c) => c.kind)).size).toBe(6);
    const expected: unknown[] = [];
    for (const c of calls) expected.push(await issue(sequential, c));
    const got = await Promise.all(calls.map((c) => issue(burst, c)));
    for (let i = 0; i < calls.length; i++) expect(got[i], `call ${i} (${calls[i].kind})`).toEqual(expected[i]);
    expect(burst.masks).toEqual(sequential.masks);
  });

  it('two models bursting at once each keep their own order', async () => {
    const a = await loadModel(join(goldenDir, 'gpt2'));
    const calls = mixedCalls(30, 777);
    const expected: unknown[] = [];
    for (const c of calls) expected.push(await issue(a, c));
    await a.restore();
    const [gotA, gotB] = await Promise.all([
      Promise.all(calls.map((c) => issue(a, c))),
      Promise.all(calls.map((c) => issue(burst, c))),
    ]);
    expect(gotA).toEqual(expected);
    expect(gotB.length).toBe(30);
    await a.dispose();
  });

  it('a save made after a prune (neither awaited) saves the pruned model', async () => {
    const m = await loadModel(join(goldenDir, 'llama'));
    const out = mkdtempSync(join(tmpdir(), 'excise-order-'));
    try {
      const selection = { ff: [[1, 2, 3], [4]], attn: [[], []] };
      const pruned = m.prune(selection);
      const saved = m.save(join(out, 'm'));
      const restored = m.restore();
      await Promise.all([pruned, saved, restored]);
      const excise = JSON.parse(readFileSync(join(out, 'm', 'excise.json'), 'utf8'));
      expect(excise.pruned.ff).toEqual([3, 1]);
      expect(excise.prunes).toHaveLength(1);
      expect(m.masks.counts.ff).toEqual([0, 0]);
    } finally {
      rmSync(out, { recursive: true, force: true });
      await m.dispose();
    }
  });

  it('trainer steps take their place among the model\'s other calls', async () => {
    const cfg = { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 32, intermediate_size: 48, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, vocab_size: 64, max_position_embeddings: 64, rms_norm_eps: 1e-5 };
    const make = () => createRandomModel(cfg, { seed: 3 });
    const rows = [[1, 2, 3, 4, 5, 6, 7, 8]];
    const seq = await make();
    const t1 = seq.trainer({ lr: 1e-2, warmupSteps: 0 });
    const before = (await seq.forward(rows)).logits;
    await t1.step(rows);
    const after = (await seq.forward(rows)).logits;
    await t1.close();
    const burst = await make();
    const t2 = burst.trainer({ lr: 1e-2, warmupSteps: 0 });
    const [b, , a] = await Promise.all([burst.forward(rows), t2.step(rows), burst.forward(rows), t2.close()]);
    expect(Array.from(b.logits)).toEqual(Array.from(before));
    expect(Array.from(a.logits)).toEqual(Array.from(after));
    expect(Array.from(a.logits)).not.toEqual(Array.from(before));
    await seq.dispose();
    await burst.dispose();
  });
});

describe('dispose', () => {
  it('calls made before dispose() all succeed, in order; calls after it fail with ERR_MODEL_DISPOSED', async () => {
    const m = await loadModel(join(goldenDir, 'opt'));
    const docs = [[1, 2, 3, 4, 5], [6, 7, 8]];
    const before = [
      m.forward([[1, 2, 3]]),
      m.collect(docs),
      m.prune({ ff: [[0, 1], [2]], attn: [[], []] }),
      m.evaluate(docs),
      m.restore(),
      m.forward([[1, 2, 3]]),
    ];
    const disposed = m.dispose();
    const after = m.forward([[1, 2, 3]]).then(() => 'resolved', (e) => e.code);
    const results = await Promise.allSettled(before);
    expect(results.map((r) => r.status)).toEqual(Array(6).fill('fulfilled'));
    await disposed;
    expect(await after).toBe('ERR_MODEL_DISPOSED');
    await expect(m.collect(docs)).rejects.toMatchObject({ code: 'ERR_MODEL_DISPOSED' });
    await m.dispose();
  });
});

describe('no unhandled rejections', () => {
  let unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeAll(() => process.on('unhandledRejection', onUnhandled));
  afterAll(() => {
    process.off('unhandledRejection', onUnhandled);
    delete process.env.EXCISE_TEST_FAIL_STATS_HOOK;
  });

  it('collect: a failing batch with another in flight rejects once, and nothing is left unhandled', async () => {
    const m = await loadModel(join(goldenDir, 'gpt2'));
    unhandled = [];
    process.env.EXCISE_TEST_FAIL_STATS_HOOK = '1';
    const docs = Array.from({ length: 12 }, (_, i) => [i + 1, i + 2, i + 3, i + 4]);
    await expect(m.collect(docs, { batchSize: 1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
    delete process.env.EXCISE_TEST_FAIL_STATS_HOOK;
    await new Promise((r) => setTimeout(r, 50));
    expect(unhandled).toEqual([]);
    // The model is still usable.
    await expect(m.collect(docs, { batchSize: 1 })).resolves.toBeDefined();
    await m.dispose();
  });

  it('collect: a source that fails with batches in flight rejects with its error', async () => {
    const m = await loadModel(join(goldenDir, 'gpt2'));
    unhandled = [];
    async function* failing() {
      for (let i = 0; i < 5; i++) yield [1, 2, 3, 4, 5, 6];
      throw new Error('the source broke');
    }
    await expect(m.collect(failing(), { batchSize: 1 })).rejects.toThrow('the source broke');
    await new Promise((r) => setTimeout(r, 50));
    expect(unhandled).toEqual([]);
    await m.dispose();
  });
});

describe('the native boundary', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(join(goldenDir, 'gpt2'));
  });
  afterAll(async () => model?.dispose());

  it('refuses a handle of the wrong kind with ERR_INVALID_ARGUMENT instead of crashing', async () => {
    const h = nativeOf(model);
    const trainer = h.trainerCreate({ lr: 1e-3, minLrRatio: 0.1, warmupSteps: 0, totalSteps: 10, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, gradClip: 1 });
    const session = h.statsBegin(['blocks.0.mlp.pre_out']);
    const ids = Int32Array.from([1, 2, 3]);
    const bad = [trainer, {}, null, 42, 'session'] as unknown[];
    for (const [i, v] of bad.entries()) {
      expect(() => h.collectBatch(v as never, ids, 1, 3, null), `bad handle ${i}`).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
      expect(() => h.statsExport(v as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
    for (const v of [session, {}, 7]) {
      expect(() => h.trainStep(v as never, ids, 1, 3, null)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
      expect(() => h.trainerClose(v as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
    await h.statsExport(session);
    await h.trainerClose(trainer);
  });

  it('refuses a session or trainer made on another model', async () => {
    const other = await loadModel(join(goldenDir, 'llama'));
    const h = nativeOf(model);
    const foreignSession = nativeOf(other).statsBegin(other.hookNames());
    const foreignTrainer = nativeOf(other).trainerCreate({ lr: 1e-3, minLrRatio: 0.1, warmupSteps: 0, totalSteps: 10, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, gradClip: 1 });
    const ids = Int32Array.from([1, 2, 3]);
    expect(() => h.collectBatch(foreignSession, ids, 1, 3, null)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('another model') }));
    expect(() => h.statsExport(foreignSession)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => h.trainStep(foreignTrainer, ids, 1, 3, null)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('another model') }));
    expect(() => h.trainerClose(foreignTrainer)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    await other.dispose();
  });

  it('dispose() closes the model\'s trainers; closing one afterwards still settles', async () => {
    const m = await loadModel(join(goldenDir, 'gpt2'));
    const t = m.trainer({ lr: 1e-3, warmupSteps: 0 });
    await t.step([[1, 2, 3, 4]]);
    await m.dispose();
    await expect(t.close()).resolves.toBeUndefined();
    await expect(t.step([[1, 2, 3, 4]])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('the native model class cannot be constructed from JS', () => {
    const h = nativeOf(model);
    const NativeModelClass = (h as unknown as { constructor: new (...a: unknown[]) => unknown }).constructor;
    const session = nativeOf(model).statsBegin(['blocks.0.mlp.pre_out']);
    for (const arg of [session, undefined, {}, 1]) {
      expect(() => new NativeModelClass(arg)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
  });

  it('collect counts real tokens natively from the mask, whatever JS claims', async () => {
    const h = nativeOf(model);
    const session = h.statsBegin(['blocks.0.mlp.pre_out']);
    const ids = Int32Array.from([5, 6, 7, 8, 9, 10, 11, 12]);
    // A stray extra argument (the old token count) changes nothing.
    const call = h.collectBatch as unknown as (...a: unknown[]) => Promise<number>;
    await expect(call.call(h, session, ids, 2, 4, Int32Array.from([1, 1, 1, 0, 1, 1, 0, 0]), 1000)).resolves.toBe(5);
    await expect(h.collectBatch(session, ids, 2, 4, null)).resolves.toBe(8);
    const exported = await h.statsExport(session);
    expect(exported.tokens).toBe(13);
  });

  it('a batch that fails part-way leaves the statistics as they were (whole batches or nothing)', async () => {
    const h = nativeOf(model);
    const hooks = model.hookNames();
    const a = Int32Array.from([5, 6, 7, 8, 9, 10]);
    const b = Int32Array.from([11, 3, 4, 90, 2, 1]);
    const clean = h.statsBegin(hooks);
    await h.collectBatch(clean, a, 1, 6, null);
    await h.collectBatch(clean, b, 1, 6, null);
    const expected = await h.statsExport(clean);

    const faulty = h.statsBegin(hooks);
    await h.collectBatch(faulty, a, 1, 6, null);
    for (const failAt of [1, 2, hooks.length]) {
      process.env.EXCISE_TEST_FAIL_STATS_HOOK = String(failAt);
      await expect(h.collectBatch(faulty, b, 1, 6, null)).rejects.toMatchObject({ code: 'ERR_OUT_OF_MEMORY' });
      delete process.env.EXCISE_TEST_FAIL_STATS_HOOK;
    }
    await h.collectBatch(faulty, b, 1, 6, null);
    const got = await h.statsExport(faulty);
    expect(got.tokens).toBe(expected.tokens);
    for (const hook of hooks) {
      for (const k of ['sum', 'sumAbs', 'sumSq', 'sumSqrtAbs', 'countPositive'] as const) {
        expect(Array.from(got.hooks[hook][k]), `${hook}.${k}`).toEqual(Array.from(expected.hooks[hook][k]));
      }
    }
  });

  it('config.json is parsed once, natively, and saved back as parsed', async () => {
    const h = nativeOf(model);
    const fromFile = JSON.parse(readFileSync(join(goldenDir, 'gpt2', 'config.json'), 'utf8'));
    expect(h.sourceConfig()).toEqual(fromFile);
    // A fresh object each time: nothing JS does to it reaches the core.
    const c = h.sourceConfig();
    c.n_layer = 99;
    expect(h.sourceConfig().n_layer).toBe(fromFile.n_layer);
    // A key named __proto__ stays an ordinary key.
    const odd = await createRandomModel(JSON.parse('{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","n_embd":16,"n_head":2,"n_layer":1,"n_positions":32,"vocab_size":40,"__proto__":{"x":1}}'));
    const cfg = nativeOf(odd).sourceConfig();
    expect(Object.prototype.hasOwnProperty.call(cfg, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(cfg)).toBe(Object.prototype);
    await odd.dispose();
  });
});
