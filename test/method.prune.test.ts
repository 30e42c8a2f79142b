// Pruning in place: Hugging Face's pruned logits, composition, exact restore, masks, mean offset,
// and saving a pruned model that reloads (and that transformers can read: same names, same layout).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, readSafetensors, writeSafetensors, type Model, type Selection } from '../lib/index.js';
import { fixturesDir, goldenCases, goldenDir, maxAbsDiff, readGolden, type Golden } from './helpers/golden.js';

const variantsDir = join(fixturesDir, 'hf-variants');
const variantCases = existsSync(variantsDir) ? readdirSync(variantsDir).filter((d) => existsSync(join(variantsDir, d, 'golden.safetensors'))) : [];
const allCases = [...goldenCases.map((c) => join(goldenDir, c)), ...variantCases.map((c) => join(variantsDir, c))];

let scratch: string;
beforeAll(() => { scratch = mkdtempSync(join(tmpdir(), 'excise-prune-')); });
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function logits(model: Model, g: Golden): Promise<Float32Array> {
  return (await model.forward(g.inputIds, { attentionMask: g.attentionMask })).logits;
}

describe.each(allCases)('pruning %s', (dir) => {
  it('reproduces Hugging Face logits_pruned, and restore() is exact', async () => {
    const g = await readGolden(dir);
    const model = await loadModel(dir);
    const before = await logits(model, g);
    const result = await model.prune({ ff: g.prune.mlp, attn: g.prune.attn });
    expect(result.ff).toEqual(g.prune.mlp.map((l) => l.length));
    const pruned = await logits(model, g);
    const d = maxAbsDiff(pruned, g.tensors.logits_pruned.data);
    console.log(`${dir.split('/').pop()}: max |pruned - HF logits_pruned| = ${d.toExponential(1)}`);
    expect(d).toBeLessThan(1e-4);
    expect(model.masks.counts).toEqual({ ff: g.prune.mlp.map((l) => l.length), attn: g.prune.attn.map((l) => l.length) });
    const nativeMasks = await model.nativeMasks();
    expect(nativeMasks.ff.map((m) => Array.from(m))).toEqual(model.masks.ff.map((m) => Array.from(m)));
    await model.restore();
    expect(maxAbsDiff(await logits(model, g), before)).toBe(0);
    expect(model.masks.counts.ff.every((c) => c === 0)).toBe(true);
    await model.dispose();
  });
});

describe('pruning properties', () => {
  const dir = join(goldenDir, 'gpt2');
  let g: Golden;
  beforeAll(async () => { g = await readGolden(dir); });

  it('prunes compose: A then B equals A and B at once; pruning twice equals once', async () => {
    const a: Selection = { ff: [[1, 2, 3], [4]], attn: [[0, 5], []] };
    const b: Selection = { ff: [[3, 9], [40, 41]], attn: [[], [17]] };
    const union: Selection = { ff: [[1, 2, 3, 9], [4, 40, 41]], attn: [[0, 5], [17]] };
    const m1 = await loadModel(dir);
    await m1.prune(a);
    const again = await m1.prune(a);
    expect(again).toEqual({ ff: [0, 0], attn: [0, 0] });
    const second = await m1.prune(b);
    expect(second).toEqual({ ff: [1, 2], attn: [0, 1] }); // neuron 3 of layer 0 was pruned already
    const m2 = await loadModel(dir);
    await m2.prune(union);
    expect(maxAbsDiff(await logits(m1, g), await logits(m2, g))).toBe(0);
    expect(m1.masks.counts).toEqual({ ff: [4, 3], attn: [2, 1] });
    await m1.dispose();
    await m2.dispose();
  });

  it("a pruned neuron's inputs change nothing downstream", async () => {
    // Scramble everything that feeds the selected neurons (their c_fc columns and biases, and their
    // value features in c_attn) in a copy of the checkpoint: once pruned, the logits are identical.
    const sel: Selection = { ff: [[7, 100], [200]], attn: [[3, 33], [60]] };
    const noisy = join(scratch, 'noisy-gpt2');
    cpSync(dir, noisy, { recursive: true });
    const file = join(noisy, 'model.safetensors');
    const { tensors, metadata } = await readSafetensors(file);
    const d = 64, mlp = 256;
    for (let l = 0; l < 2; l++) {
      const fc = tensors[`transformer.h.${l}.mlp.c_fc.weight`].data as Float32Array; // Conv1D [d, mlp]
      const fcb = tensors[`transformer.h.${l}.mlp.c_fc.bias`].data as Float32Array;
      for (const n of sel.ff[l]) { for (let i = 0; i < d; i++) fc[i * mlp + n] += 100 * Math.sin(i + n); fcb[n] += 50; }
      const qkv = tensors[`transformer.h.${l}.attn.c_attn.weight`].data as Float32Array; // [d, 3d], v at 2d..3d
      for (const j of sel.attn[l]) for (let i = 0; i < d; i++) qkv[i * 3 * d + 2 * d + j] += 100 * Math.cos(i * j);
    }
    await writeSafetensors(file, tensors, metadata);
    const clean = await loadModel(dir);
    const dirty = await loadModel(noisy);
    expect(maxAbsDiff(await logits(clean, g), await logits(dirty, g))).toBeGreaterThan(1e-2);
    await clean.prune(sel);
    await dirty.prune(sel);
    expect(maxAbsDiff(await logits(clean, g), await logits(dirty, g))).toBeLessThan(1e-5);
    await clean.dispose();
    await dirty.dispose();
  });

  it('mean offset adds W_out[:, i] * mean_i to the output bias', async () => {
    const model = await loadModel(dir);
    const stats = await model.collect(g.inputIds.map((r) => r.slice(0, 9)));
    const sel: Selection = { ff: [[5, 6], []], attn: [[], [10]] };
    await model.prune(sel, { meanOffset: stats });
    const out = join(scratch, 'mean-offset');
    await model.save(out);
    const saved = (await readSafetensors(join(out, 'model.safetensors'))).tensors;
    const src = (await readSafetensors(join(dir, 'model.safetensors'))).tensors;
    const check = (layer: number, part: 'mlp' | 'attn', neurons: number[], inWidth: number) => {
      const w = src[`transformer.h.${layer}.${part}.c_proj.weight`].data as Float32Array; // Conv1D [in, 64]
      const b0 = src[`transformer.h.${layer}.${part}.c_proj.bias`].data as Float32Array;
      const b1 = saved[`transformer.h.${layer}.${part}.c_proj.bias`].data as Float32Array;
      const mean = (part === 'mlp' ? stats.mlp(layer) : stats.attn(layer)).mean;
      for (let o = 0; o < 64; o++) {
        let expected = b0[o];
        for (const n of neurons) expected += w[n * 64 + o] * mean[n];
        expect(Math.abs(b1[o] - expected)).toBeLessThan(1e-5);
      }
      void inWidth;
    };
    check(0, 'mlp', [5, 6], 256);
    check(1, 'attn', [10], 64);
    await model.dispose();
  });

  it('mean offset needs an output bias: LLaMA has none', async () => {
    const model = await loadModel(join(goldenDir, 'llama'));
    const stats = await model.collect([[1, 2, 3, 4]]);
    await expect(model.prune({ ff: [[1], []], attn: [[], []] }, { meanOffset: stats })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('bias'),
    });
    expect(model.masks.counts.ff).toEqual([0, 0]); // nothing was changed
    await model.dispose();
  });

  it('GQA: a value feature is zeroed only when every query head sharing it has that dim pruned', async () => {
    // llama fixture: 4 query heads, 2 kv heads of dim 16; kv head 0 serves query heads 0 and 1.
    const llama = join(goldenDir, 'llama');
    const model = await loadModel(llama);
    const vRow = async () => {
      const out = join(scratch, `gqa-${Math.random().toString(36).slice(2)}`);
      await model.save(out);
      const v = (await readSafetensors(join(out, 'model.safetensors'))).tensors['model.layers.0.self_attn.v_proj.weight'].data as Float32Array;
      return Array.from(v.subarray(3 * 64, 4 * 64)); // row of kv feature (head 0, dim 3)
    };
    await model.prune({ ff: [[], []], attn: [[3], []] }); // query head 0, dim 3
    expect((await vRow()).some((x) => x !== 0)).toBe(true);
    await model.prune({ ff: [[], []], attn: [[16 + 3], []] }); // query head 1, dim 3
    expect((await vRow()).every((x) => x === 0)).toBe(true);
    await model.dispose();
  });

  it('bad selections are refused before anything changes', async () => {
    const model = await loadModel(dir);
    await expect(model.prune({ ff: [[256], []], attn: [[], []] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('256') });
    await expect(model.prune({ ff: [[1]], attn: [[], []] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(model.masks.counts.ff).toEqual([0, 0]);
    await model.dispose();
  });
});

describe('save', () => {
  const dir = join(goldenDir, 'qwen2');
  let g: Golden;
  let model: Model;
  beforeAll(async () => {
    g = await readGolden(dir);
    model = await loadModel(dir);
    await model.prune({ ff: g.prune.mlp, attn: g.prune.attn });
  });
  afterAll(async () => model.dispose());

  it('reloads with identical logits; unpruned tensors are byte-identical to the source', async () => {
    const out = join(scratch, 'saved-qwen2');
    await model.save(out, { metadata: { note: 'test' } });
    const reloaded = await loadModel(out);
    expect(maxAbsDiff(await logits(reloaded, g), await logits(model, g))).toBe(0);
    await reloaded.dispose();
    const src = (await readSafetensors(join(dir, 'model.safetensors'))).tensors;
    const dst = (await readSafetensors(join(out, 'model.safetensors'))).tensors;
    expect(Object.keys(dst).sort()).toEqual(Object.keys(src).sort());
    const changed = Object.keys(src).filter((n) => {
      const a = Buffer.from(src[n].data.buffer, src[n].data.byteOffset, src[n].data.byteLength);
      const b = Buffer.from(dst[n].data.buffer, dst[n].data.byteOffset, dst[n].data.byteLength);
      return !a.equals(b);
    });
    // Only what pruning edits: o_proj / down_proj columns, and the rows feeding pruned FF neurons
    // (gate/up). qwen2 has 2 query heads per kv head, so no value row is pruned by 2 random dims.
    expect(changed.sort()).toEqual(['0', '1'].flatMap((l) => ['mlp.down_proj.weight', 'mlp.gate_proj.weight', 'mlp.up_proj.weight', 'self_attn.o_proj.weight'].map((t) => `model.layers.${l}.${t}`)).sort());
    const excise = JSON.parse(readFileSync(join(out, 'excise.json'), 'utf8'));
    expect(excise.pruned).toEqual({ ff: [3, 3], attn: [2, 2] });
    expect(excise.prunes[0].selection.ff).toEqual(g.prune.mlp);
    expect(excise.note).toBe('test');
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).architectures).toEqual(['Qwen2ForCausalLM']);
  });

  it('shards above maxShardSize, with an index Hugging Face reads', async () => {
    const out = join(scratch, 'sharded-qwen2');
    await model.save(out, { maxShardSize: 64 * 1024 });
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    const files = new Set(Object.values(index.weight_map));
    expect(files.size).toBeGreaterThan(1);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    const reloaded = await loadModel(out);
    expect(maxAbsDiff(await logits(reloaded, g), await logits(model, g))).toBe(0);
    await reloaded.dispose();
  });

  it('refuses the source folder and an existing folder; overwrite replaces it', async () => {
    await expect(model.save(dir)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('source') });
    await expect(model.save(join(dir, 'inside'))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const out = join(scratch, 'existing');
    await model.save(out);
    writeFileSync(join(out, 'marker'), 'x');
    await expect(model.save(out)).rejects.toMatchObject({ code: 'ERR_OUTPUT_EXISTS' });
    expect(existsSync(join(out, 'marker'))).toBe(true);
    await model.save(out, { overwrite: true });
    expect(existsSync(join(out, 'marker'))).toBe(false);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
    // No temporary folders are left behind.
    expect(readdirSync(scratch).filter((f) => f.includes('excise-tmp') || f.includes('excise-incomplete-save') || f.includes('excise-old'))).toEqual([]);
  });

  it('never modifies the source checkpoint', async () => {
    const src = readFileSync(join(dir, 'model.safetensors'));
    const fresh = await loadModel(dir);
    expect(maxAbsDiff(await logits(fresh, g), g.tensors.logits.data)).toBeLessThan(1e-4);
    await fresh.dispose();
    expect(readFileSync(join(dir, 'model.safetensors')).equals(src)).toBe(true);
  });
});
