// The decoder against Hugging Face transformers on the config variants real checkpoints use
// (test/fixtures/hf-variants, made by scripts/fixtures/make_variants.py): logits, every hook point
// and the pruned logits, float32, padded batch, tolerance 1e-4. Each case's meta.json records how
// much the logits move when its variant feature is switched off, so a decoder that ignored the
// feature could not pass.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandomModel, ExciseError, loadModel, readSafetensors, writeSafetensors, type Model, type ModelConfig } from '../lib/index.js';
import { fixturesDir, forwardDiffs, maxAbsDiff, readGolden, type Golden } from './helpers/golden.js';

const TOL_F32 = 1e-4;
const variantsDir = join(fixturesDir, 'hf-variants');
const cases = existsSync(variantsDir)
  ? readdirSync(variantsDir).filter((d) => existsSync(join(variantsDir, d, 'golden.safetensors'))).sort()
  : [];

interface Meta {
  ablations_max_abs_logits_diff: Record<string, number>;
  output_projections?: { attn: string; mlp: string };
  window_max_abs_logits_diff?: number;
}

// What the decoder must read from each config.json (the variant under test).
const expectedConfig: Record<string, Partial<ModelConfig>> = {
  opt_postln_proj: { family: 'opt', nLayers: 2, dModel: 64, tiedEmbeddings: true, vocabSize: 101 },
  neox_sequential: { family: 'gpt_neox', nLayers: 2, headDim: 16, tiedEmbeddings: false, vocabSize: 103 },
  llama_mqa_tied: { family: 'llama', nHeads: 4, nKvHeads: 1, headDim: 16, tiedEmbeddings: true, vocabSize: 107 },
  llama_headdim: { family: 'llama', dModel: 48, nHeads: 4, nKvHeads: 2, headDim: 16, vocabSize: 109 },
  mistral_window: { family: 'mistral', nLayers: 2, nKvHeads: 2, headDim: 16, vocabSize: 113 },
  qwen2_window: { family: 'qwen2', nLayers: 3, nKvHeads: 2, headDim: 16, vocabSize: 127 },
  gpt2_scaled: { family: 'gpt2', nLayers: 3, dMlp: 96, tiedEmbeddings: true, vocabSize: 97 },
  // Families added by issue 15.
  qwen3_qknorm: { family: 'qwen3', nKvHeads: 2, headDim: 24, tiedEmbeddings: true, vocabSize: 101 },
  gemma_mqa: { family: 'gemma', nKvHeads: 1, headDim: 24, tiedEmbeddings: true, vocabSize: 103 },
  gemma2_window: { family: 'gemma2', nKvHeads: 2, headDim: 16, tiedEmbeddings: true, vocabSize: 107 },
  gemma3_window: { family: 'gemma3', nKvHeads: 2, headDim: 16, tiedEmbeddings: true, vocabSize: 109 },
  phi3_window: { family: 'phi3', nKvHeads: 2, headDim: 16, dMlp: 96, tiedEmbeddings: false, vocabSize: 113 },
  olmo2_postnorm: { family: 'olmo2', nKvHeads: 2, headDim: 16, tiedEmbeddings: false, vocabSize: 127 },
  gptj_partial: { family: 'gptj', nHeads: 4, headDim: 16, dMlp: 96, tiedEmbeddings: false, vocabSize: 97 },
  // Masked LMs (scripts/fixtures/make_roberta.py; the MLM-only checks are in model.roberta.test.ts).
  roberta_mlm: { family: 'roberta', maskedLm: true, nHeads: 4, headDim: 8, dMlp: 64, tiedEmbeddings: true, vocabSize: 300, maxPositions: 38 },
  roberta_untied: { family: 'roberta', maskedLm: true, nHeads: 3, headDim: 16, dMlp: 80, tiedEmbeddings: false, vocabSize: 101, maxPositions: 20, padTokenId: 3 },
};

describe('hf-variants fixtures are present', () => {
  it('has every case', () => {
    expect(cases).toEqual(Object.keys(expectedConfig).sort());
  });
});

describe.each(cases)('%s matches Hugging Face', (name) => {
  const dir = join(variantsDir, name);
  let model: Model;
  let golden: Golden;
  let meta: Meta;

  beforeAll(async () => {
    golden = await readGolden(dir);
    meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
    model = await loadModel(dir, { dtype: 'float32' });
  });
  afterAll(async () => model?.dispose());

  it('the fixture exercises its variant', () => {
    // Switching the variant's feature off moves HF's logits well beyond the tolerance.
    for (const [feature, d] of Object.entries(meta.ablations_max_abs_logits_diff)) {
      expect(d, feature).toBeGreaterThan(5 * TOL_F32);
    }
    if (name.endsWith('_window')) {
      expect(meta.window_max_abs_logits_diff).toBeGreaterThan(1e-3);
      expect(golden.inputIds[0].length).toBeGreaterThan(5);
    }
  });

  it('config reads as Hugging Face reads it', () => {
    const c = model.config;
    expect(c).toMatchObject(expectedConfig[name] ?? {});
    expect(c.vocabSize).toBe(golden.tensors.logits.shape[2]);
    expect(c.nHeads * c.headDim).toBe(golden.tensors['attn_pre_out.0'].shape[2]);
    expect(c.dMlp).toBe(golden.tensors['mlp_pre_out.0'].shape[2]);
    expect(golden.tensors[`attn_pre_out.${c.nLayers - 1}`]).toBeDefined();
    expect(golden.tensors[`attn_pre_out.${c.nLayers}`]).toBeUndefined();
  });

  it('logits and every hook point, float32, padded batch', async () => {
    const diffs = await forwardDiffs(model, golden, name);
    for (const [k, v] of Object.entries(diffs)) expect(v, k).toBeLessThan(TOL_F32);
  });

  it('the padded row equals that row run alone, unpadded', async () => {
    const row = golden.inputIds[1];
    const valid = golden.attentionMask[1].filter((m) => m === 1).length;
    const alone = await model.forward([row.slice(0, valid)]);
    const vocab = model.config.vocabSize;
    const padded = golden.tensors.logits.data.subarray(row.length * vocab, row.length * vocab + valid * vocab);
    expect(maxAbsDiff(alone.logits, padded)).toBeLessThan(TOL_F32);
  });

  it('model.prune(prune.json) gives logits_pruned (fused, grouped and shared weights pruned consistently)', async () => {
    const m = await loadModel(dir, { dtype: 'float32' });
    try {
      await m.prune({ ff: golden.prune.mlp, attn: golden.prune.attn });
      const out = await m.forward(golden.inputIds, { attentionMask: golden.attentionMask });
      expect(maxAbsDiff(out.logits, golden.tensors.logits_pruned.data)).toBeLessThan(TOL_F32);
    } finally {
      await m.dispose();
    }
  });

  it('a model with the prune.json features zeroed gives logits_pruned', async () => {
    // Zero the pruned pre-out features by editing the output projections' weights in a copy of the
    // checkpoint, load that copy, and compare with HF's logits_pruned.
    const src = await readSafetensors(join(dir, 'model.safetensors'));
    const tensors = src.tensors;
    const conv1d = model.config.family === 'gpt2'; // Conv1D weights are stored [in, out]
    const outProj = meta.output_projections ?? outputProjections(name);
    for (let l = 0; l < model.config.nLayers; l++) {
      for (const kind of ['mlp', 'attn'] as const) {
        const tname = outProj[kind].replace('{L}', String(l));
        const t = tensors[tname];
        if (t?.dtype !== 'F32') throw new Error(`${name}: ${tname} missing or not F32`);
        const [rows, cols] = t.shape;
        for (const i of golden.prune[kind][l]) {
          if (conv1d) for (let c = 0; c < cols; c++) t.data[i * cols + c] = 0;
          else for (let r = 0; r < rows; r++) t.data[r * cols + i] = 0;
        }
      }
    }
    const tmp = mkdtempSync(join(tmpdir(), `excise-${name}-`));
    try {
      copyFileSync(join(dir, 'config.json'), join(tmp, 'config.json'));
      await writeSafetensors(join(tmp, 'model.safetensors'), src.tensors, src.metadata);
      const pruned = await loadModel(tmp, { dtype: 'float32' });
      const out = await pruned.forward(golden.inputIds, { attentionMask: golden.attentionMask });
      const d = maxAbsDiff(out.logits, golden.tensors.logits_pruned.data);
      console.log(`${name} max |excise pruned - HF logits_pruned| = ${d.toExponential(1)}`);
      expect(d).toBeLessThan(TOL_F32);
      await pruned.dispose();
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

// For the cases whose meta.json predates its output_projections field.
function outputProjections(name: string): { mlp: string; attn: string } {
  if (name.startsWith('gpt2')) return { attn: 'transformer.h.{L}.attn.c_proj.weight', mlp: 'transformer.h.{L}.mlp.c_proj.weight' };
  if (name.startsWith('opt')) {
    return { attn: 'model.decoder.layers.{L}.self_attn.out_proj.weight', mlp: 'model.decoder.layers.{L}.fc2.weight' };
  }
  if (name.startsWith('neox')) {
    return { attn: 'gpt_neox.layers.{L}.attention.dense.weight', mlp: 'gpt_neox.layers.{L}.mlp.dense_4h_to_h.weight' };
  }
  return { attn: 'model.layers.{L}.self_attn.o_proj.weight', mlp: 'model.layers.{L}.mlp.down_proj.weight' };
}

describe('families added by issue 15: saving and refused variants', () => {
  it('a pruned Phi-3 saves and reloads: the same logits, and the fused gate_up_proj rows of pruned neurons zeroed in the file', async () => {
    const dir = join(variantsDir, 'phi3_window');
    const golden = await readGolden(dir);
    const model = await loadModel(dir, { dtype: 'float32' });
    const tmp = mkdtempSync(join(tmpdir(), 'excise-phi3-save-'));
    try {
      await model.prune({ ff: golden.prune.mlp, attn: golden.prune.attn });
      const before = await model.forward(golden.inputIds, { attentionMask: golden.attentionMask });
      expect(maxAbsDiff(before.logits, golden.tensors.logits_pruned.data)).toBeLessThan(TOL_F32);
      const saved = join(tmp, 'saved');
      await model.save(saved);
      const reloaded = await loadModel(saved, { dtype: 'float32' });
      const after = await reloaded.forward(golden.inputIds, { attentionMask: golden.attentionMask });
      expect(maxAbsDiff(after.logits, before.logits)).toBe(0);
      expect(reloaded.config).toMatchObject(expectedConfig.phi3_window);
      await reloaded.dispose();
      // gate_up_proj is bound as two row views ([gate | up]); pruning FF neuron i zeroes rows i and
      // dMlp + i through them, so the edit must be in the saved tensor.
      const file = await readSafetensors(join(saved, 'model.safetensors'));
      const dMlp = model.config.dMlp;
      for (let l = 0; l < model.config.nLayers; l++) {
        const t = file.tensors[`model.layers.${l}.mlp.gate_up_proj.weight`];
        const [rows, cols] = t.shape;
        expect(rows).toBe(2 * dMlp);
        const rowAbsSum = (r: number) => { let s = 0; for (let c = 0; c < cols; c++) s += Math.abs(Number(t.data[r * cols + c])); return s; };
        for (const i of golden.prune.mlp[l]) {
          expect(rowAbsSum(i)).toBe(0);
          expect(rowAbsSum(dMlp + i)).toBe(0);
        }
        const kept = [...Array(dMlp).keys()].find((i) => !golden.prune.mlp[l].includes(i))!;
        expect(rowAbsSum(kept)).toBeGreaterThan(0);
      }
    } finally {
      await model.dispose();
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it.each(['qwen3_qknorm', 'gemma_mqa', 'gemma2_window', 'gemma3_window', 'phi3_window', 'olmo2_postnorm', 'gptj_partial', 'roberta_mlm', 'roberta_untied'])(
    'createRandomModel builds %s from its config.json with every weight bound', async (name) => {
      const config = JSON.parse(readFileSync(join(variantsDir, name, 'config.json'), 'utf8'));
      const fromFile = await loadModel(join(variantsDir, name), { dtype: 'float32' });
      const random = await createRandomModel(config, { seed: 1 });
      try {
        // The same tensors as the Hugging Face checkpoint, the same sizes, and a forward pass.
        expect(random.tensorNames().sort()).toEqual(fromFile.tensorNames().sort());
        expect(random.config).toEqual(fromFile.config);
        const out = await random.forward([[1, 2, 3, 4, 5, 6]]);
        expect(out.shape).toEqual([1, 6, config.vocab_size]);
        expect(out.logits.every(Number.isFinite)).toBe(true);
      } finally {
        await random.dispose();
        await fromFile.dispose();
      }
    });

  // Generation runs on a KV cache (one query against cached keys): soft-capped and windowed
  // attention, the local/global RoPE tables and interleaved rotary must give the tokens that greedy
  // decoding by full forward passes gives. 9 + 8 tokens: the windows (4 and 5) bite.
  it.each(['gemma2_window', 'gemma3_window', 'gptj_partial'])('%s: generate equals greedy decoding by full forward passes', async (name) => {
    const model = await loadModel(join(variantsDir, name), { dtype: 'float32' });
    try {
      const prompt = [73, 9, 11, 36, 50, 0, 15, 44, 88].map((t) => t % model.config.vocabSize);
      const generated = await model.generate(prompt, { maxNewTokens: 8 });
      const seq = [...prompt];
      const V = model.config.vocabSize;
      for (let i = 0; i < 8; i++) {
        const { logits } = await model.forward([seq]);
        const row = logits.subarray((seq.length - 1) * V, seq.length * V);
        let best = 0;
        for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
        seq.push(best);
      }
      expect(generated).toEqual(seq.slice(prompt.length));
    } finally {
      await model.dispose();
    }
  });

  it("a training step updates Phi-3's fused gate_up_proj (its gradient reaches the stored tensor)", async () => {
    const dir = join(variantsDir, 'phi3_window');
    const model = await loadModel(dir, { dtype: 'float32' });
    const tmp = mkdtempSync(join(tmpdir(), 'excise-phi3-train-'));
    try {
      const trainer = model.trainer({ lr: 1e-2, warmupSteps: 0, totalSteps: 1 });
      await trainer.step([[5, 17, 29, 41, 53, 65, 77, 89, 101, 3]]);
      await trainer.close();
      await model.save(join(tmp, 'trained'));
      const before = (await readSafetensors(join(dir, 'model.safetensors'))).tensors;
      const after = (await readSafetensors(join(tmp, 'trained', 'model.safetensors'))).tensors;
      for (let l = 0; l < model.config.nLayers; l++) {
        for (const name of [`model.layers.${l}.mlp.gate_up_proj.weight`, `model.layers.${l}.mlp.down_proj.weight`]) {
          const a = after[name].data as Float32Array;
          const b = before[name].data as Float32Array;
          expect(maxAbsDiff(a, b), name).toBeGreaterThan(1e-4);  // Adam moves every weight by ~lr
        }
      }
    } finally {
      await model.dispose();
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  // Each refused variant is ERR_UNSUPPORTED_CONFIG naming the config field.
  const refused: [string, string, (c: Record<string, unknown>) => void][] = [
    ['phi3_window', 'rope_scaling', (c) => { c.rope_scaling = { type: 'longrope', short_factor: [1], long_factor: [1] }; }],
    ['gptj_partial', 'rotary_dim', (c) => { c.rotary_dim = null; }],
    ['gemma3_window', 'use_bidirectional_attention', (c) => { c.use_bidirectional_attention = true; }],
    ['gemma2_window', 'layer_types', (c) => { c.layer_types = ['chunked_attention', 'full_attention']; }],
  ];
  it.each(refused)('%s with an unsupported %s', async (name, field, edit) => {
    const config = JSON.parse(readFileSync(join(variantsDir, name, 'config.json'), 'utf8'));
    edit(config);
    const err = await createRandomModel(config).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ExciseError);
    expect((err as ExciseError).code).toBe('ERR_UNSUPPORTED_CONFIG');
    expect((err as ExciseError).message).toContain(field);
  });
});
