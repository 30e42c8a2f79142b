// Activation statistics collected natively, checked against Hugging Face's captured activations.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActivationStats, STAT_SUMS, createRandomModel, loadModel, type Model, type NeuronSums, type NeuronStats } from '../lib/index.js';
import { fixturesDir, goldenCases, goldenDir, readGolden, type Golden } from './helpers/golden.js';

const variantsDir = join(fixturesDir, 'hf-variants');
const variantCases = existsSync(variantsDir) ? readdirSync(variantsDir).filter((d) => existsSync(join(variantsDir, d, 'golden.safetensors'))) : [];
const allCases = [...goldenCases.map((c) => join(goldenDir, c)), ...variantCases.map((c) => join(variantsDir, c))];

/** Statistics computed in the test from HF's captured activations, over the unmasked tokens only. */
function referenceStats(golden: Golden, key: string): NeuronStats {
  const { shape, data } = golden.tensors[key];
  const [b, s, w] = shape;
  const sum = new Float64Array(w), sumAbs = new Float64Array(w), sumSq = new Float64Array(w), sqrtAbs = new Float64Array(w), pos = new Float64Array(w);
  let tokens = 0;
  for (let i = 0; i < b; i++) {
    for (let t = 0; t < s; t++) {
      if (golden.attentionMask[i][t] !== 1) continue;
      tokens++;
      for (let n = 0; n < w; n++) {
        const x = data[(i * s + t) * w + n];
        sum[n] += x; sumAbs[n] += Math.abs(x); sumSq[n] += x * x; sqrtAbs[n] += Math.sqrt(Math.abs(x)); if (x > 0) pos[n]++;
      }
    }
  }
  const mean = sum.map((v) => v / tokens);
  return {
    tokens,
    mean,
    meanAbs: sumAbs.map((v) => v / tokens),
    rms: sumSq.map((v) => Math.sqrt(v / tokens)),
    std: sumSq.map((v, n) => Math.sqrt(Math.max(0, v / tokens - mean[n] ** 2))),
    freq: pos.map((v) => v / tokens),
    meanSqrtAbs: sqrtAbs.map((v) => v / tokens),
  };
}

function maxDiff(a: Float64Array, b: Float64Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The fixture's rows without their padding: collect() batches and pads them itself. */
function documents(golden: Golden): number[][] {
  return golden.inputIds.map((row, i) => row.slice(0, golden.attentionMask[i].filter((m) => m === 1).length));
}

describe.each(allCases)('stats on %s', (dir) => {
  let model: Model;
  let golden: Golden;
  beforeAll(async () => {
    golden = await readGolden(dir);
    model = await loadModel(dir);
  });
  afterAll(async () => model?.dispose());

  it('equal those computed from Hugging Face activations over the non-padding tokens', async () => {
    const stats = await model.collect(documents(golden), { batchSize: 2 });
    const realTokens = golden.attentionMask.flat().filter((m) => m === 1).length;
    expect(stats.tokens).toBe(realTokens);
    let worst = 0;
    for (let l = 0; l < model.config.nLayers; l++) {
      for (const [site, key] of [['mlp', 'mlp_pre_out'], ['attn', 'attn_pre_out']] as const) {
        const ours = stats.hook(`blocks.${l}.${site}.pre_out`);
        const ref = referenceStats(golden, `${key}.${l}`);
        for (const k of ['mean', 'meanAbs', 'rms', 'std', 'meanSqrtAbs'] as const) {
          const d = maxDiff(ours[k], ref[k]);
          worst = Math.max(worst, d);
          expect(d, `${key}.${l} ${k}`).toBeLessThan(1e-4);
        }
        // A sign can only flip for a value within float error of 0: at most one token's worth.
        expect(maxDiff(ours.freq, ref.freq), `${key}.${l} freq`).toBeLessThanOrEqual(1 / realTokens + 1e-12);
      }
    }
    console.log(`${dir.split('/').pop()}: stats max |excise - from HF activations| = ${worst.toExponential(1)}`);
  });
});

describe('collection', () => {
  let model: Model;
  let scratch: string;
  // Documents of varied lengths, so batches carry padding.
  const docs = Array.from({ length: 13 }, (_, d) => Array.from({ length: 3 + ((d * 5) % 11) }, (_, t) => (d * 31 + t * 7) % 97));
  beforeAll(async () => {
    model = await loadModel(join(goldenDir, 'llama'));
    scratch = mkdtempSync(join(tmpdir(), 'excise-stats-'));
  });
  afterAll(async () => {
    await model.dispose();
    rmSync(scratch, { recursive: true, force: true });
  });

  function expectSameStats(a: ActivationStats, b: ActivationStats, tol: number) {
    expect(a.tokens).toBe(b.tokens);
    expect(a.hookNames.sort()).toEqual(b.hookNames.sort());
    for (const h of a.hookNames) {
      for (const k of ['sum', 'sumAbs', 'sumSq', 'sumSqrtAbs', 'countPositive'] as const) {
        const x = a.raw(h)[k], y = b.raw(h)[k];
        // A signed sum cancels: its rounding scales with the sum of magnitudes, not with itself.
        const scale = k === 'sum' ? a.raw(h).sumAbs : x;
        for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i]), `${h} ${k}[${i}]`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(scale[i])));
      }
    }
  }

  it('batch size changes no statistic (1 vs 8)', async () => {
    const one = await model.collect(docs, { batchSize: 1 });
    const eight = await model.collect(docs, { batchSize: 8 });
    expectSameStats(one, eight, 1e-5);
  });

  it('shards merge to the whole', async () => {
    const whole = await model.collect(docs, { batchSize: 4 });
    const a = await model.collect(docs.slice(0, 6), { batchSize: 4 });
    const b = await model.collect(docs.slice(6), { batchSize: 4 });
    expectSameStats(a.merge(b), whole, 1e-5);
  });

  it('save and load are lossless', async () => {
    const stats = await model.collect(docs, { batchSize: 4, hooks: ['blocks.1.mlp.pre_out', 'blocks.0.attn.pre_out'] });
    const file = join(scratch, 'stats.safetensors');
    await stats.save(file);
    const loaded = await ActivationStats.load(file);
    expectSameStats(loaded, stats, 0);
    expect(loaded.model).toEqual(stats.model);
    expect(loaded.hookNames.sort()).toEqual(['blocks.0.attn.pre_out', 'blocks.1.mlp.pre_out']);
  });

  it('maxTokens cuts exactly; maxLength splits longer documents into windows, or truncates them', async () => {
    expect((await model.collect(docs, { maxTokens: 50 })).tokens).toBe(50);
    const all = docs.reduce((n, d) => n + d.length, 0);
    const split = await model.collect(docs, { maxLength: 5 });
    expect(split.tokens).toBe(all);
    expect(split.usage).toMatchObject({ longDocs: 'split', tokensUsed: all, tokensDropped: 0, longDocuments: docs.filter((d) => d.length > 5).length, budgetMet: true });
    // the windows are collected as documents of their own
    const windows = docs.flatMap((d) => Array.from({ length: Math.ceil(d.length / 5) }, (_, w) => d.slice(w * 5, w * 5 + 5)));
    expectSameStats(split, await model.collect(windows), 0);
    const truncated = await model.collect(docs, { maxLength: 5, longDocs: 'truncate' });
    const kept = docs.reduce((n, d) => n + Math.min(d.length, 5), 0);
    expect(truncated.tokens).toBe(kept);
    expect(truncated.usage).toMatchObject({ longDocs: 'truncate', tokensUsed: kept, tokensDropped: all - kept });
    await expect(model.collect(docs, { longDocs: 'drop' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('longDocs') });
  });

  it('bad input: no tokens, out-of-range ids, unknown hooks, texts without a tokenizer', async () => {
    await expect(model.collect([])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.collect([[1, 2, 500]])).rejects.toMatchObject({ code: 'ERR_TOKEN_OUT_OF_RANGE', message: expect.stringContaining('500') });
    await expect(model.collect(docs, { hooks: ['blocks.7.mlp.pre_out'] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.collect(['some text'])).rejects.toMatchObject({ code: 'ERR_TOKENIZER_MISSING' });
    await expect(model.collect(docs, { batchSize: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('batchSize') });
  });
});

// The reduction itself: each batch is reduced into float32 partial sums (read from the activation
// in the model's dtype) that are added into float64 totals, on the CPU by a fused loop and on a GPU
// by ATen reductions (run here on the CPU with EXCISE_TEST_STATS_DEVICE_PATH=1). Padding rows are
// selected away, never multiplied by 0.
const REDUCTION_PATHS = [['CPU fused loop', '0'], ['device (ATen) path', '1']] as const;
const smallGpt2 = { architectures: ['GPT2LMHeadModel'], n_layer: 2, n_embd: 64, n_head: 4, n_inner: 256, n_positions: 64, vocab_size: 50 };

/** 14 documents of 3..42 tokens, ids 1..49 (0 is the padding id collect fills in). */
const reductionDocs: number[][] = Array.from({ length: 14 }, (_, d) => Array.from({ length: 3 + ((d * 17) % 40) }, (_, t) => 1 + ((d * 31 + t * 7 + t * t) % 49)));

async function withReductionPath<T>(path: string, run: () => Promise<T>): Promise<T> {
  process.env.EXCISE_TEST_STATS_DEVICE_PATH = path;
  try {
    return await run();
  } finally {
    delete process.env.EXCISE_TEST_STATS_DEVICE_PATH;
  }
}

/** Float64 sums computed here from forward()'s captured activations, one document at a time (no padding anywhere). */
async function float64Reference(model: Model, docs: number[][]): Promise<Map<string, NeuronSums>> {
  const out = new Map<string, NeuronSums>();
  for (const doc of docs) {
    const r = await model.forward([doc], { capture: model.hookNames() });
    for (const [hook, act] of Object.entries(r.activations!)) {
      const w = act.shape[2];
      let s = out.get(hook);
      if (!s) {
        s = Object.fromEntries(STAT_SUMS.map(({ key }) => [key, new Float64Array(w)])) as NeuronSums;
        out.set(hook, s);
      }
      for (let i = 0; i < act.data.length; i++) {
        const x = act.data[i];
        const n = i % w;
        s.sum[n] += x; s.sumAbs[n] += Math.abs(x); s.sumSq[n] += x * x; s.sumSqrtAbs[n] += Math.sqrt(Math.abs(x)); if (x > 0) s.countPositive[n]++;
      }
    }
  }
  return out;
}

/** Worst error of `ours` against `ref`, relative to each sum's scale (sum x: to sum |x|, the scale of its rounding). */
function worstRelative(ours: NeuronSums, ref: NeuronSums): Record<string, number> {
  const worst: Record<string, number> = {};
  for (const { key } of STAT_SUMS) {
    let m = 0;
    for (let n = 0; n < ref[key].length; n++) {
      const diff = Math.abs(ours[key][n] - ref[key][n]);
      if (key === 'countPositive') m = Math.max(m, diff);
      else m = Math.max(m, diff / Math.max(key === 'sum' ? ref.sumAbs[n] : Math.abs(ref[key][n]), 1e-30));
    }
    worst[key] = m;
  }
  return worst;
}

describe('statistics reduction: float32 partial sums into float64 totals', () => {
  let model: Model;
  let reference: Map<string, NeuronSums>;
  beforeAll(async () => {
    model = await createRandomModel(smallGpt2, { seed: 5 });
    reference = await float64Reference(model, reductionDocs);
  });
  afterAll(async () => model?.dispose());

  it.each(REDUCTION_PATHS)('%s: within 1e-5 relative of float64 sums computed here, padded batches', async (_, path) => {
    const stats = await withReductionPath(path, () => model.collect(reductionDocs, { batchSize: 5 }));
    expect(stats.tokens).toBe(reductionDocs.flat().length);
    const worst: Record<string, number> = {};
    for (const hook of model.hookNames()) {
      // The export carries exactly the keys of the one list.
      expect(Object.keys(stats.raw(hook)).sort()).toEqual(STAT_SUMS.map((s) => s.key).sort());
      for (const [k, v] of Object.entries(worstRelative(stats.raw(hook), reference.get(hook)!))) worst[k] = Math.max(worst[k] ?? 0, v);
    }
    console.log(`stats reduction (${path === '1' ? 'ATen' : 'fused'}) vs float64: ${JSON.stringify(Object.fromEntries(Object.entries(worst).map(([k, v]) => [k, Number(v.toExponential(1))])))}`);
    for (const k of ['sum', 'sumAbs', 'sumSq', 'sumSqrtAbs']) expect(worst[k], k).toBeLessThan(1e-5);
    // A sign can flip only for a value within float error of 0.
    expect(worst.countPositive).toBeLessThanOrEqual(2);
  });

  // EXCISE_TEST_POISON_PADDING makes every padding row of each hooked activation +Inf or NaN, as an
  // fp16 overflow at a padded position would (injected at the hook: see model_method_jobs.cc).
  describe.each(['float32', 'bfloat16', 'float16'] as const)('Inf / NaN in padded rows (%s)', (dtype) => {
    let typed: Model;
    beforeAll(async () => {
      typed = await createRandomModel(smallGpt2, { seed: 5, dtype });
    });
    afterAll(async () => typed?.dispose());

    it.each(REDUCTION_PATHS)('%s: the statistics stay finite and equal those of the unpadded run', async (_, path) => {
      const alone = await withReductionPath(path, () => typed.collect(reductionDocs, { batchSize: 1 }));
      for (const poison of ['inf', 'nan']) {
        process.env.EXCISE_TEST_POISON_PADDING = poison;
        let padded: ActivationStats;
        try {
          padded = await withReductionPath(path, () => typed.collect(reductionDocs, { batchSize: 5 }));
        } finally {
          delete process.env.EXCISE_TEST_POISON_PADDING;
        }
        expect(padded.tokens).toBe(alone.tokens);
        let worst = 0;
        for (const hook of typed.hookNames()) {
          const a = padded.raw(hook);
          for (const { key } of STAT_SUMS) expect(a[key].every(Number.isFinite), `${poison}: ${hook} ${key}`).toBe(true);
          const w = worstRelative(a, alone.raw(hook));
          worst = Math.max(worst, w.sum, w.sumAbs, w.sumSq, w.sumSqrtAbs);
        }
        // bf16/fp16: a batch of 5 rounds some activations differently from a batch of 1 (GEMM blocking).
        expect(worst, poison).toBeLessThan(dtype === 'float32' ? 1e-5 : 2e-3);
      }
    });
  });
});

