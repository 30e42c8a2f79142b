// Activation statistics collected natively, checked against Hugging Face's captured activations.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActivationStats, loadModel, type Model, type NeuronStats } from '../lib/index.js';
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
