// The Wanda-style baseline's weight factor, outputColumnNorms (‖W_out[:, i]‖₂ per input neuron of
// each layer's FF and attention output projections, a native job on the model's queue), on every
// family: checked against norms computed here in float64 from each fixture's model.safetensors
// under the tensor names Hugging Face wrote; and wandaScores / a Wanda-scored prune on families the
// checkpoint-file reader it replaced did not know (Qwen3, Gemma 3, GPT-J, RoBERTa).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareMethods, createRandomModel, ExciseError, loadModel, readSafetensors, selectivePrune, type Model } from '../lib/index.js';
import { outputColumnNorms, wandaScores } from '../lib/method/wanda.js';
import { fixturesDir, goldenCases } from './helpers/golden.js';

type Norms = { ff: Float64Array[]; attn: Float64Array[] };
type Projections = { mlp: string; attn: string };

const variantsDir = join(fixturesDir, 'hf-variants');
const variantCases = readdirSync(variantsDir).filter((d) => !d.includes('.')).sort();

// The output projections' names in the HF checkpoints (meta.json records them for the newer
// variant fixtures); GPT-2's Conv1D stores them [in, out].
function projectionsOf(dir: string, name: string): Projections {
  const meta = existsSync(join(dir, 'meta.json')) ? JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { output_projections?: Projections } : {};
  if (meta.output_projections) return meta.output_projections;
  if (name.startsWith('gpt2')) return { attn: 'transformer.h.{L}.attn.c_proj.weight', mlp: 'transformer.h.{L}.mlp.c_proj.weight' };
  if (name.startsWith('opt')) return { attn: 'model.decoder.layers.{L}.self_attn.out_proj.weight', mlp: 'model.decoder.layers.{L}.fc2.weight' };
  if (name.startsWith('neox') || name === 'gpt_neox') return { attn: 'gpt_neox.layers.{L}.attention.dense.weight', mlp: 'gpt_neox.layers.{L}.mlp.dense_4h_to_h.weight' };
  return { attn: 'model.layers.{L}.self_attn.o_proj.weight', mlp: 'model.layers.{L}.mlp.down_proj.weight' };
}

// float32 -> bfloat16 (round to nearest even) -> float32: the weights a bfloat16 load holds.
function roundToBf16(x: Float32Array): Float32Array {
  const out = Float32Array.from(x);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16;
  return out;
}

/** Reference: column norms in float64 from the checkpoint file, as the old file-reading code computed them. */
async function fileNorms(file: string, names: Projections, nLayers: number, inputMajor: boolean, round?: (x: Float32Array) => Float32Array): Promise<Norms> {
  const { tensors } = await readSafetensors(file);
  const norms = (pattern: string): Float64Array[] => Array.from({ length: nLayers }, (_, l) => {
    const t = tensors[pattern.replace('{L}', String(l))];
    if (t?.dtype !== 'F32') throw new Error(`${file}: ${pattern} (layer ${l}) missing or not F32`);
    const w = round ? round(t.data as Float32Array) : (t.data as Float32Array);
    const [rows, cols] = t.shape;
    const sumSq = new Float64Array(inputMajor ? rows : cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) sumSq[inputMajor ? r : c] += w[r * cols + c] ** 2;
    return sumSq.map(Math.sqrt);
  });
  return { ff: norms(names.mlp), attn: norms(names.attn) };
}

/** Largest |a - b| over every layer and neuron (also checks the shapes agree). */
function maxDiff(a: Norms, b: Norms): number {
  let d = 0;
  for (const k of ['ff', 'attn'] as const) {
    expect(a[k].map((x) => x.length)).toEqual(b[k].map((x) => x.length));
    a[k].forEach((x, l) => x.forEach((v, i) => { d = Math.max(d, Math.abs(v - b[k][l][i])); }));
  }
  return d;
}

const caseDirs: [string, string][] = [
  ...goldenCases.map((c): [string, string] => [`hf-golden/${c}`, join(fixturesDir, 'hf-golden', c)]),
  ...variantCases.map((c): [string, string] => [`hf-variants/${c}`, join(variantsDir, c)]),
];
const diffs: Record<string, number> = {};
afterAll(() => {
  if (Object.keys(diffs).length > 0) console.log(`outputColumnNorms: max |native - file| per case ${JSON.stringify(diffs)}`);
});

describe('outputColumnNorms', () => {
  it.each(caseDirs)('%s: equal to the norms of the checkpoint file (float64)', async (label, dir) => {
    const model = await loadModel(dir, { dtype: 'float32' });
    try {
      const { nLayers, dMlp, nHeads, headDim, family } = model.config;
      const norms = await outputColumnNorms(model);
      expect(norms.ff.map((n) => n.length)).toEqual(Array(nLayers).fill(dMlp));
      expect(norms.attn.map((n) => n.length)).toEqual(Array(nLayers).fill(nHeads * headDim));
      const name = label.split('/')[1];
      const ref = await fileNorms(join(dir, 'model.safetensors'), projectionsOf(dir, name), nLayers, family === 'gpt2');
      diffs[name] = maxDiff(norms, ref);
      expect(diffs[name]).toBeLessThan(1e-12);
      expect(norms.ff.every((n) => n.every((v) => v > 0))).toBe(true); // random weights: no zero column
    } finally {
      await model.dispose();
    }
  });

  it('reads the current weights in call order: pruned columns are 0 (prune not awaited), restored after restore()', async () => {
    const dir = join(fixturesDir, 'hf-golden', 'gpt2');
    const model = await loadModel(dir, { dtype: 'float32' });
    try {
      const ref = await fileNorms(join(dir, 'model.safetensors'), projectionsOf(dir, 'gpt2'), 2, true);
      const pruning = model.prune({ ff: [[3, 200], []], attn: [[], [5]] });
      const norms = await outputColumnNorms(model); // queued after the prune
      await pruning;
      const expected: Norms = { ff: ref.ff.map((n) => n.slice()), attn: ref.attn.map((n) => n.slice()) };
      expected.ff[0][3] = expected.ff[0][200] = expected.attn[1][5] = 0;
      expect(maxDiff(norms, expected)).toBeLessThan(1e-12);
      expect(norms.ff[0][3]).toBe(0);
      await model.restore();
      expect(maxDiff(await outputColumnNorms(model), ref)).toBeLessThan(1e-12);
    } finally {
      await model.dispose();
    }
  });

  it('the same in small float64 chunks with a remainder (row chunks of nn.Linear [out, in] and of Conv1D [in, out])', async () => {
    // 320 elements: 3 rows of LLaMA's down_proj [64, 96] (21 chunks + 1 row), 5 of GPT-2's c_proj [256, 64] (51 + 1).
    process.env.EXCISE_TEST_NORM_CHUNK_ELEMENTS = '320';
    try {
      for (const name of ['llama', 'gpt2']) {
        const dir = join(fixturesDir, 'hf-golden', name);
        const model = await loadModel(dir, { dtype: 'float32' });
        const norms = await outputColumnNorms(model);
        await model.dispose();
        const ref = await fileNorms(join(dir, 'model.safetensors'), projectionsOf(dir, name), 2, name === 'gpt2');
        diffs[`${name} (chunked)`] = maxDiff(norms, ref);
        expect(diffs[`${name} (chunked)`]).toBeLessThan(1e-12);
      }
    } finally {
      delete process.env.EXCISE_TEST_NORM_CHUNK_ELEMENTS;
    }
  });

  it('a bfloat16 load: the norms of the weights as held (rounded to bfloat16)', async () => {
    const dir = join(fixturesDir, 'hf-golden', 'llama');
    const model = await loadModel(dir, { dtype: 'bfloat16' });
    try {
      const norms = await outputColumnNorms(model);
      const held = await fileNorms(join(dir, 'model.safetensors'), projectionsOf(dir, 'llama'), 2, false, roundToBf16);
      const d = maxDiff(norms, held);
      diffs['llama (bfloat16)'] = d;
      expect(d).toBeLessThan(1e-12);
    } finally {
      await model.dispose();
    }
  });

  it('a model split over several devices (two CPU stages here): the same norms as unsplit', async () => {
    const dir = join(fixturesDir, 'hf-golden', 'gpt_neox');
    const [one, two] = await Promise.all([loadModel(dir, { dtype: 'float32' }), loadModel(dir, { dtype: 'float32', devices: ['cpu', 'cpu'] })]);
    try {
      expect(two.placement.layers).toEqual([0, 1]);
      expect(maxDiff(await outputColumnNorms(two), await outputColumnNorms(one))).toBe(0);
    } finally {
      await Promise.all([one.dispose(), two.dispose()]);
    }
  });

  it('a createRandomModel model (no checkpoint folder): equal to the norms of what it saves', async () => {
    const config = JSON.parse(readFileSync(join(variantsDir, 'gptj_partial', 'config.json'), 'utf8'));
    const model = await createRandomModel(config, { seed: 7 });
    const tmp = mkdtempSync(join(tmpdir(), 'excise-wanda-'));
    try {
      const norms = await outputColumnNorms(model);
      await model.save(join(tmp, 'saved'));
      const ref = await fileNorms(join(tmp, 'saved', 'model.safetensors'), projectionsOf(join(variantsDir, 'gptj_partial'), 'gptj_partial'), model.config.nLayers, false);
      expect(maxDiff(norms, ref)).toBeLessThan(1e-12);
    } finally {
      await model.dispose();
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('refuses a non-model and a disposed model', async () => {
    const err = await outputColumnNorms(null as unknown as Model).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ExciseError);
    expect((err as ExciseError).code).toBe('ERR_INVALID_ARGUMENT');
    expect((err as ExciseError).message).toContain('outputColumnNorms(model)');
    const model = await loadModel(join(fixturesDir, 'hf-golden', 'opt'));
    await model.dispose();
    const disposed = await outputColumnNorms(model).then(() => null, (e: unknown) => e);
    expect((disposed as ExciseError).code).toBe('ERR_MODEL_DISPOSED');
  });
});

// Token-id documents (the fixtures have no tokenizer): forget and retain differ in their ids.
const docs = (start: number, vocab: number) => Array.from({ length: 6 }, (_, d) => Array.from({ length: 16 }, (_, t) => (start + 7 * d + 3 * t) % vocab));

describe.each(['qwen3_qknorm', 'gemma3_window', 'gptj_partial', 'roberta_mlm'])('wanda on %s', (name) => {
  const dir = join(variantsDir, name);
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(dir, { dtype: 'float32' });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('wandaScores are (‖W[:, i]‖·rms_forget) / (‖W[:, i]‖·rms_retain + eps) with the file norms', async () => {
    const { vocabSize: V, nLayers } = model.config;
    const forget = await model.collect(docs(5, V));
    const retain = await model.collect(docs(40, V));
    const ref = await fileNorms(join(dir, 'model.safetensors'), projectionsOf(dir, name), nLayers, false);
    const scores = wandaScores(await outputColumnNorms(model), forget, retain);
    for (let l = 0; l < nLayers; l++) {
      for (const [site, s, w, eps] of [['mlp', scores.ff[l], ref.ff[l], 1e-3], ['attn', scores.attn[l], ref.attn[l], 1e-4]] as const) {
        const f = forget.hook(`blocks.${l}.${site}.pre_out`).rms, r = retain.hook(`blocks.${l}.${site}.pre_out`).rms;
        expect(s.length).toBe(w.length);
        s.forEach((v, i) => expect(v).toBeCloseTo((w[i] * f[i]) / (w[i] * r[i] + eps), 9));
      }
    }
  });

  it('selectivePrune with the Wanda scorer prunes the top-scored FF neurons', async () => {
    const norms = await outputColumnNorms(model);
    let scored: ReturnType<typeof wandaScores> | undefined;
    const report = await selectivePrune(model, {
      forget: docs(5, model.config.vocabSize), retain: docs(40, model.config.vocabSize),
      ffFrac: 0.1, attnFrac: 0, steps: 1, collectTokens: 96, evalTokens: 32, evalFraction: 0.5,
      scorer: (f, r) => (scored = wandaScores(norms, f, r)),
    });
    expect(report.steps.map((s) => s.step)).toEqual([0, 1]);
    const masks = model.masks;
    const pruned = masks.counts.ff.reduce((a, b) => a + b, 0);
    expect(pruned).toBe(Math.round(0.1 * model.config.dMlp * model.config.nLayers));
    // Every pruned neuron scores at least as high as every kept one (one global ranking).
    const kept = scored!.ff.flatMap((s, l) => Array.from(s).filter((_, i) => !masks.ff[l][i]));
    const cut = Math.min(...scored!.ff.flatMap((s, l) => Array.from(s).filter((_, i) => masks.ff[l][i] === 1)));
    expect(Math.max(...kept)).toBeLessThanOrEqual(cut);
    await model.restore();
  });
});

describe('compareMethods', () => {
  it("runs 'wanda' on a masked LM (RoBERTa), whose output projections the old name table lacked", async () => {
    const forget = Array.from({ length: 10 }, (_, i) => `numbers ${i} and symbols #$% ${i * 7}`);
    const retain = Array.from({ length: 10 }, (_, i) => `The quick brown fox ${i} jumps over the lazy dog.`);
    const r = await compareMethods({ model: join(variantsDir, 'roberta_mlm'), forget, retain, methods: ['wanda'], steps: 1, ffFrac: 0.1, collectTokens: 100, evalTokens: 100 });
    expect(r.methods.map((m) => m.method)).toEqual(['wanda']);
    expect(r.methods[0].curve).toHaveLength(2);
  });
});
