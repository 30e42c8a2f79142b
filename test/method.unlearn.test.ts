// Gradient ascent / difference (the trainer's row weights), the relearning attack and its
// keepPruned, the Wanda-style scores, and compareMethods end to end on the bundled demo model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadDataset, loadModel, readSafetensors, scoreNeurons, selectNeurons, splitDataset } from '../lib/index.js';
import { gradientAscent, gradientDifference, packRows, relearningAttack } from '../lib/method/unlearn.js';
import { outputColumnNorms, wandaScores } from '../lib/method/wanda.js';
import { compareMethods, formatCompareTable } from '../lib/compare.js';
import { goldenDir } from './helpers/golden.js';

const root = resolve(__dirname, '..');
const demo = join(root, 'assets', 'demo-model');
const corpus = (c: string, split: string) => loadDataset(join(root, 'assets', 'corpora', c, `${split}.jsonl.gz`));
let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'excise-unlearn-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every float32 weight of a model, after saving it. */
async function weightsOf(model: Awaited<ReturnType<typeof loadModel>>, name: string): Promise<Record<string, Float32Array>> {
  const out = join(dir, name);
  await model.save(out, { overwrite: true });
  const { tensors } = await readSafetensors(join(out, 'model.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.data as Float32Array]));
}

describe('trainer row weights', () => {
  const llama = join(goldenDir, 'llama');
  const rows = [[3, 14, 15, 92, 65, 35, 89, 79], [2, 71, 82, 81, 82, 84, 59, 4]];
  // One AdamW step from fresh moments moves each weight by -lr * g / (|g| + eps): an odd function
  // of the gradient, invariant to its scale. No clipping, no decay, eps ~0: the identities below are exact.
  const opts = { lr: 1e-3, warmupSteps: 0, weightDecay: 0, gradClip: 0, eps: 1e-30 };
  async function deltaAfter(batch: number[][], rowWeights?: number[]): Promise<Record<string, Float64Array>> {
    const model = await loadModel(llama);
    const before = await weightsOf(model, 'before');
    const trainer = model.trainer(opts);
    await trainer.step(batch, rowWeights ? { rowWeights } : {});
    await trainer.close();
    const after = await weightsOf(model, 'after');
    await model.dispose();
    return Object.fromEntries(Object.keys(before).map((k) => [k, Float64Array.from(after[k], (v, i) => v - before[k][i])]));
  }
  const maxDiff = (a: Record<string, Float64Array>, b: Record<string, Float64Array>, sign = 1) =>
    Math.max(...Object.keys(a).map((k) => Math.max(...a[k].map((v, i) => Math.abs(v - sign * b[k][i])))));
  const maxAbs = (a: Record<string, Float64Array>) => Math.max(...Object.values(a).map((d) => Math.max(...d.map(Math.abs))));

  it('weights +1 are plain descent, -1 its exact opposite (ascent), 0 leaves a row out', async () => {
    const plain = await deltaAfter(rows);
    const ones = await deltaAfter(rows, [1, 1]);
    const ascent = await deltaAfter(rows, [-1, -1]);
    const firstOnly = await deltaAfter(rows, [1, 0]);
    const alone = await deltaAfter([rows[0]]);
    expect(maxAbs(plain)).toBeGreaterThan(5e-4); // the step moved the weights by about lr
    expect(maxDiff(ones, plain)).toBeLessThan(1e-6);
    expect(maxDiff(ascent, plain, -1)).toBeLessThan(1e-6);
    expect(maxDiff(firstOnly, alone)).toBeLessThan(1e-6); // half the gradient, the same Adam step
  });

  it('refuses weights that are not one finite number per row', async () => {
    const model = await loadModel(llama);
    const trainer = model.trainer(opts);
    await expect(trainer.step(rows, { rowWeights: [1] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /rowWeights/ });
    await expect(trainer.step(rows, { rowWeights: [1, NaN] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /rowWeights\[1\]/ });
    await trainer.close();
    await model.dispose();
  });

  it('keepPruned zeroes a pruned attention column again after training moved it (GQA: its value row is shared)', async () => {
    const model = await loadModel(llama);
    // Head 0, dim 0 of layer 0: head 1 shares kv head 0 and keeps dim 0, so the value row stays.
    await model.prune({ ff: [[5], []], attn: [[0], []] });
    const train = async (keepPruned: boolean) => {
      const trainer = model.trainer(opts);
      await trainer.step(rows);
      await trainer.close();
      if (keepPruned) await model.rezeroPruned();
    };
    await train(false);
    let w = await weightsOf(model, 'moved');
    const col = (t: Float32Array, width: number, c: number) => Array.from({ length: t.length / width }, (_, r) => t[r * width + c]);
    expect(Math.max(...col(w['model.layers.0.self_attn.o_proj.weight'], 64, 0).map(Math.abs))).toBeGreaterThan(0);
    // The pruned FF neuron sits where its gradient is zero: training left it at zero by itself.
    expect(col(w['model.layers.0.mlp.down_proj.weight'], 96, 5).every((v) => v === 0)).toBe(true);
    await train(true);
    w = await weightsOf(model, 'kept');
    expect(col(w['model.layers.0.self_attn.o_proj.weight'], 64, 0).every((v) => v === 0)).toBe(true);
    await model.dispose();
  });
});

describe('unlearning baselines and the relearning attack (demo model)', () => {
  it('gradient ascent raises the forget loss; gradient difference raises it less on retain', async () => {
    const forget = splitDataset(corpus('python', 'test'), { evalFraction: 0.5, seed: 0 });
    const retain = splitDataset(corpus('prose', 'test'), { evalFraction: 0.5, seed: 0 });
    const model = await loadModel(demo);
    const rows = await packRows(model, forget.collect, { seqLength: 32, maxRows: 3 });
    expect(rows).toHaveLength(3);
    expect(rows.every((r) => r.length === 32)).toBe(true);
    const before = await model.evaluate(forget.evaluate, { maxTokens: 600 });
    const r = await gradientAscent(model, forget.collect, { steps: 3, batchSize: 2, seqLength: 32, lr: 1e-3 });
    expect(r.losses).toHaveLength(3);
    const after = await model.evaluate(forget.evaluate, { maxTokens: 600 });
    expect(after.loss).toBeGreaterThan(before.loss + 0.05);
    await model.dispose();

    const m2 = await loadModel(demo);
    const retainBefore = await m2.evaluate(retain.evaluate, { maxTokens: 600 });
    await gradientDifference(m2, forget.collect, retain.collect, { steps: 3, batchSize: 4, seqLength: 32, lr: 1e-3 });
    const f2 = await m2.evaluate(forget.evaluate, { maxTokens: 600 });
    const r2 = await m2.evaluate(retain.evaluate, { maxTokens: 600 });
    expect(f2.loss - before.loss).toBeGreaterThan(r2.loss - retainBefore.loss);
    await m2.dispose();
  });

  it('the attack reports the metrics measured before and after, and recovery against the reference', async () => {
    const model = await loadModel(demo);
    const forget = splitDataset(corpus('python', 'test'), { evalFraction: 0.5, seed: 0 });
    const retainEval = splitDataset(corpus('prose', 'test'), { evalFraction: 0.5, seed: 0 }).evaluate;
    const ref = { forget: await model.evaluate(forget.evaluate, { maxTokens: 800 }), retain: await model.evaluate(retainEval, { maxTokens: 800 }) };
    const scores = scoreNeurons(await model.collect(forget.collect, { maxTokens: 1500 }), await model.collect(corpus('prose', 'test'), { maxTokens: 1500 }));
    await model.prune(selectNeurons(scores, { ffFrac: 0.15, attnFrac: 0 }));
    const r = await relearningAttack(model, {
      data: corpus('python', 'train'), evals: { forget: forget.evaluate, retain: retainEval }, evalTokens: 800,
      reference: { forget: ref.forget, retain: ref.retain }, steps: 3, batchSize: 4, seqLength: 32, lr: 1e-3,
    });
    const after = await model.evaluate(forget.evaluate, { maxTokens: 800 });
    expect(r.after.forget.top1).toBe(after.top1);
    expect(r.before.forget.top1).toBeLessThan(ref.forget.top1);
    expect(r.recovery.forget).toBeCloseTo((r.after.forget.top1 - r.before.forget.top1) / (ref.forget.top1 - r.before.forget.top1), 12);
    expect(r.change.retain).toBeCloseTo(r.after.retain.top1 - r.before.retain.top1, 12);
    expect(r.after.forget.loss).toBeLessThan(r.before.forget.loss); // fine-tuning on Python helped Python
    // keepPruned (the default): the pruned FF neurons are still exactly zero.
    const masks = model.masks.ff;
    const { activations } = await model.forward([[5, 6, 7, 8, 9]], { capture: ['blocks.0.mlp.pre_out'] });
    const act = activations!['blocks.0.mlp.pre_out'];
    for (let t = 0; t < 5; t++) masks[0].forEach((m, i) => { if (m) expect(act.data[t * 512 + i]).toBe(0); });
    await model.dispose();
  });

  it('Wanda scores are |W|·rms ratios: with eps 0 exactly the rms ratio; with eps, checked from the weights', async () => {
    const model = await loadModel(demo);
    const f = await model.collect(corpus('python', 'test'), { maxTokens: 1000 });
    const r = await model.collect(corpus('prose', 'test'), { maxTokens: 1000 });
    const norms = await outputColumnNorms(model);
    const rmsRatio = scoreNeurons(f, r, { ffScoring: 'rms', attnScoring: 'rms', ffEps: 0, attnEps: 0 });
    const w0 = wandaScores(norms, f, r, { ff: 0, attn: 0 });
    for (let l = 0; l < 4; l++) w0.ff[l].forEach((v, i) => expect(v).toBeCloseTo(rmsRatio.ff[l][i], 9));
    const { tensors } = await readSafetensors(join(demo, 'model.safetensors'));
    const down = tensors['model.layers.2.mlp.down_proj.weight'];
    const d = down.data as Float32Array; // [256, 512]
    const col = (i: number) => Math.sqrt(Array.from({ length: 256 }, (_, o) => d[o * 512 + i] ** 2).reduce((a, b) => a + b, 0));
    const w = wandaScores(norms, f, r);
    for (const i of [0, 17, 511]) {
      const fr = f.mlp(2).rms[i], rr = r.mlp(2).rms[i];
      expect(w.ff[2][i]).toBeCloseTo((col(i) * fr) / (col(i) * rr + 1e-3), 6);
    }
    await model.dispose();
  });
});

describe('compareMethods', () => {
  it('runs the pruning, scorer and gradient paths on the same data, with consistent drops, curves and a table', async () => {
    const methods = ['selective', 'wanda', 'gradient-difference'] as const;
    const r = await compareMethods({
      model: demo, forget: corpus('python', 'test'), retain: corpus('prose', 'test'), methods,
      steps: 1, ffFrac: 0.05, collectTokens: 1000, evalTokens: 600, evalFraction: 0.5,
      gradient: { steps: 1, batchSize: 2, seqLength: 32 },
      choices: { forget: join(root, 'assets', 'choices', 'python.jsonl') }, choicesOptions: { targetDelimiter: '', maxItems: 3 },
      membership: { forget: { members: corpus('python', 'train'), nonMembers: corpus('python', 'test') } }, membershipOptions: { maxDocuments: 3, maxLength: 32 },
      attack: { data: corpus('python', 'train'), steps: 1, batchSize: 2, seqLength: 32 },
    });
    expect(r.methods.map((m) => m.method)).toEqual(methods);
    for (const m of r.methods) {
      expect(m.curve).toHaveLength(2);
      expect(m.curve[0].forgetTop1).toBe(r.base.forgetTop1);
      expect(m.forgetDrop).toBeCloseTo(m.curve[1].forgetTop1 - r.base.forgetTop1, 12);
      expect(m.attack!.before.forget.top1).toBe(m.curve[1].forgetTop1);
      const lost = r.base.forgetTop1 - m.curve[1].forgetTop1;
      if (lost > 0) expect(m.attack!.recovery.forget).toBeCloseTo((m.attack!.after.forget.top1 - m.curve[1].forgetTop1) / lost, 12);
      else expect(m.attack!.recovery.forget).toBeNull(); // nothing lost, nothing to recover
      expect(m.sets.forget.choices!.items).toBe(3);
      expect(m.sets.forget.membership!.lossAuc).toBeGreaterThanOrEqual(0);
    }
    const table = formatCompareTable(r);
    expect(table.split('\n')).toHaveLength(2 + 1 + methods.length);
    expect(table).toContain('| selective |');
  });
});

describe('packRows', () => {
  it('cuts documents + EOS into full rows exactly as concatenating them would, also a document of 300 000 ids', async () => {
    const model = await loadModel(demo);
    try {
      const eos = model.config.eosTokenIds[0];
      // Deterministic token-id documents of mixed lengths; one far longer than a spread argument list may be.
      const docs: number[][] = [];
      let x = 7;
      for (const length of [5, 40, 300_000, 1, 77, 3]) {
        docs.push(Array.from({ length }, () => (x = (x * 1103515245 + 12345) % 2147483648) % 4096));
      }
      // Independent packing: every id of every document followed by EOS, in one list, cut into full rows.
      const all: number[] = [];
      for (const d of docs) { for (const id of d) all.push(id); all.push(eos); }
      const seqLength = 64;
      const expected: number[][] = [];
      for (let start = 0; start + seqLength <= all.length; start += seqLength) expected.push(all.slice(start, start + seqLength));
      const rows = await packRows(model, docs, { seqLength });
      expect(rows.length).toBe(Math.floor(all.length / seqLength));
      expect(rows).toEqual(expected);
      // maxRows keeps the first rows.
      expect(await packRows(model, docs, { seqLength, maxRows: 5 })).toEqual(expected.slice(0, 5));
    } finally {
      await model.dispose();
    }
  });
});
