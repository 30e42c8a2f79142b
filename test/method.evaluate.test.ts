// Evaluation against metrics computed in the test from Hugging Face's logits.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { loadModel, mostCommonTokens } from '../lib/index.js';
import { goldenCases, goldenDir, readGolden } from './helpers/golden.js';

describe.each(goldenCases)('evaluate %s', (name) => {
  it('loss, perplexity, top-1/top-10 and the skip accuracies match those from transformers\' logits', async () => {
    const dir = join(goldenDir, name);
    const g = await readGolden(dir);
    const model = await loadModel(dir);
    const vocab = model.config.vocabSize;
    const lengths = g.attentionMask.map((r) => r.filter((m) => m === 1).length);
    const docs = g.inputIds.map((r, i) => r.slice(0, lengths[i]));
    const skip = [docs[0][1], docs[0][2]]; // leave two target ids out of the *Skip accuracies
    const r = await model.evaluate(docs, { skipTokens: skip, topK: 10 });

    const logits = g.tensors.logits.data;
    const seq = g.inputIds[0].length;
    let n = 0, lossSum = 0, top1 = 0, top10 = 0, ns = 0, top1s = 0, top10s = 0;
    docs.forEach((doc, b) => {
      for (let t = 0; t + 1 < doc.length; t++) {
        const row = logits.subarray((b * seq + t) * vocab, (b * seq + t + 1) * vocab);
        const target = doc[t + 1];
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
        const rank = row.reduce((k, v) => k + (v > row[target] ? 1 : 0), 0);
        n++; lossSum += lse - row[target];
        if (rank === 0) top1++;
        if (rank < 10) top10++;
        if (!skip.includes(target)) { ns++; if (rank === 0) top1s++; if (rank < 10) top10s++; }
      }
    });
    expect(r.tokens).toBe(n);
    expect(Math.abs(r.loss - lossSum / n)).toBeLessThan(1e-5);
    expect(Math.abs(r.perplexity - Math.exp(lossSum / n))).toBeLessThan(1e-3);
    expect(r.top1).toBeCloseTo(top1 / n, 12);
    expect(r.topk).toBeCloseTo(top10 / n, 12);
    expect(r.skipCounted).toBe(ns);
    expect(r.top1Skip).toBeCloseTo(top1s / ns, 12);
    expect(r.topkSkip).toBeCloseTo(top10s / ns, 12);
    await model.dispose();
  });
});

describe('evaluate options', () => {
  it('skips the evaluated tokens\' most common ids by default', async () => {
    const model = await loadModel(join(goldenDir, 'llama'));
    const docs = [[1, 2, 2, 2, 3, 3, 4], [2, 3, 5, 6]];
    const r = await model.evaluate(docs, { skipTopN: 2 });
    expect(r.skipTokens).toEqual([2, 3]);
    expect(mostCommonTokens([{ data: Int32Array.from([7, 7, 8, 9, 9, 9]), mask: null, batch: 1, seq: 6, tokens: 6 }], 2)).toEqual([9, 7]);
    // Targets: doc 1 -> 2,2,2,3,3,4 and doc 2 -> 3,5,6; skipping 2 and 3 leaves 4, 5, 6.
    expect(r.tokens).toBe(9);
    expect(r.skipCounted).toBe(3);
    await model.dispose();
  });

  it('the batch size changes nothing', async () => {
    const model = await loadModel(join(goldenDir, 'opt'));
    const docs = Array.from({ length: 9 }, (_, d) => Array.from({ length: 2 + ((d * 3) % 7) }, (_, t) => (d * 13 + t * 5) % 97));
    const a = await model.evaluate(docs, { batchSize: 1 });
    const b = await model.evaluate(docs, { batchSize: 4 });
    expect(b.tokens).toBe(a.tokens);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-6);
    expect(b.top1).toBe(a.top1);
    expect(b.topk).toBe(a.topk);
    await model.dispose();
  });

  it('long documents are split into context windows by default, or truncated; usage says which', async () => {
    const model = await loadModel(join(goldenDir, 'opt'));
    const doc = Array.from({ length: 23 }, (_, t) => (t * 7 + 3) % 97);
    const split = await model.evaluate([doc], { maxLength: 8 });
    const windows = await model.evaluate([doc.slice(0, 8), doc.slice(8, 16), doc.slice(16)]);
    expect(split.tokens).toBe(7 + 7 + 6); // a window's first token is context only
    expect(split.loss).toBe(windows.loss);
    expect(split.top1).toBe(windows.top1);
    expect(split.usage).toEqual({ longDocs: 'split', maxLength: 8, documents: 1, tokensUsed: 23, tokensDropped: 0, longDocuments: 1, rows: 3, maxTokens: 100_000, budgetMet: false });
    const cut = await model.evaluate([doc], { maxLength: 8, longDocs: 'truncate' });
    const first = await model.evaluate([doc.slice(0, 8)]);
    expect(cut.tokens).toBe(7);
    expect(cut.loss).toBe(first.loss);
    expect(cut.usage).toMatchObject({ longDocs: 'truncate', tokensUsed: 8, tokensDropped: 15, rows: 1 });
    const budget = await model.evaluate([doc], { maxLength: 8, maxTokens: 10 });
    expect(budget.usage).toMatchObject({ tokensUsed: 10, rows: 2, maxTokens: 10, budgetMet: true });
    await expect(model.evaluate([doc], { longDocs: 'all' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('longDocs') });
    await model.dispose();
  });

  it('bad input', async () => {
    const model = await loadModel(join(goldenDir, 'gpt2'));
    await expect(model.evaluate([[5]])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('two or more') });
    await expect(model.evaluate([[1, 2]], { topK: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('topK') });
    await expect(model.evaluate(42 as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await model.dispose();
  });
});
