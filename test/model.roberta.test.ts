// RoBERTa masked LM (test/fixtures/hf-variants/roberta_*, made by scripts/fixtures/make_roberta.py
// with Hugging Face transformers): what model.variants.test.ts does not cover there. Masked-token
// evaluation against HF's MLM loss and against metrics computed here from forward logits, the
// next-token operations refused, refused configs, the un-prefixed checkpoint layout, the tokenizer
// against the `tokenizers` package's encodings, and selectivePrune / the CLI / saving on a masked LM.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { compareMethods, createRandomModel, createServer, ExciseError, gradientAscent, relearningAttack, loadModel, readSafetensors, selectivePrune, Tokenizer, writeSafetensors, type Model } from '../lib/index.js';
import { loadDataset, splitDataset, toDataset } from '../lib/data/datasets.js';
import type { PruneReport } from '../lib/pipeline.js';
import { fixturesDir, maxAbsDiff, readGolden, type Golden } from './helpers/golden.js';

const TOL_F32 = 1e-4;
const root = resolve(__dirname, '..');
const mlmDir = join(fixturesDir, 'hf-variants', 'roberta_mlm');
const untiedDir = join(fixturesDir, 'hf-variants', 'roberta_untied');

let model: Model;
let golden: Golden;
let mlmIds: number[][];
let mlmLabels: number[][];
let tmp: string;

const rows = (data: ArrayLike<number | bigint>, [b, s]: number[]) =>
  Array.from({ length: b }, (_, i) => Array.from({ length: s }, (_, t) => Number(data[i * s + t])));
const realPart = (row: number[], mask: number[]) => row.slice(0, mask.filter((m) => m === 1).length);

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'excise-roberta-'));
  golden = await readGolden(mlmDir);
  const g = await readSafetensors(join(mlmDir, 'golden.safetensors'));
  mlmIds = rows(g.tensors.mlm_input_ids.data as ArrayLike<bigint>, g.tensors.mlm_input_ids.shape);
  mlmLabels = rows(g.tensors.mlm_labels.data as ArrayLike<bigint>, g.tensors.mlm_labels.shape);
  model = await loadModel(mlmDir, { dtype: 'float32' });
});
afterAll(async () => {
  await model?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('RoBERTa masked LM', () => {
  it('reads the config as a masked LM with positions offset by the padding index', () => {
    expect(model.config).toMatchObject({ family: 'roberta', architecture: 'RobertaForMaskedLM', maskedLm: true, padTokenId: 1, tiedEmbeddings: true });
    // 40 position rows less pad_token_id + 1: rows 2..39 hold positions 1..38.
    expect(model.config.maxPositions).toBe(38);
  });

  it("HF's logits on the masked batch (every real non-special token masked)", async () => {
    const out = await model.forward(mlmIds, { attentionMask: golden.attentionMask });
    const d = maxAbsDiff(out.logits, golden.tensors.mlm_logits.data);
    console.log(`roberta_mlm max |excise - HF| on the masked batch: logits ${d.toExponential(1)}`);
    expect(d).toBeLessThan(TOL_F32);
  });

  it('evaluate with maskFraction 1 gives HF\'s MLM loss, and the accuracies computed from forward logits', async () => {
    // The golden rows as token-id documents: evaluate pads them itself (with id 0, not <pad>).
    const docs = golden.inputIds.map((row, i) => realPart(row, golden.attentionMask[i]));
    const skipTokens = [docs[0][3], docs[1][2]];
    const ev = await model.evaluate(docs, { maskFraction: 1, topK: 5, skipTokens });
    // Independent metrics from the masked batch's forward logits, at the positions HF masked.
    const out = await model.forward(mlmIds, { attentionMask: golden.attentionMask });
    const V = model.config.vocabSize;
    let n = 0, lossSum = 0, top1 = 0, topk = 0, counted = 0, top1Skip = 0, topkSkip = 0;
    mlmLabels.forEach((labels, b) => labels.forEach((label, t) => {
      if (label < 0) return;
      const logits = Array.from(out.logits.subarray((b * labels.length + t) * V, (b * labels.length + t + 1) * V));
      const max = Math.max(...logits);
      const lse = max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0));
      const rank = logits.filter((x) => x > logits[label]).length;
      n++;
      lossSum += lse - logits[label];
      top1 += rank === 0 ? 1 : 0;
      topk += rank < 5 ? 1 : 0;
      if (!skipTokens.includes(label)) {
        counted++;
        top1Skip += rank === 0 ? 1 : 0;
        topkSkip += rank < 5 ? 1 : 0;
      }
    }));
    expect(ev.tokens).toBe(n);
    expect(n).toBe(golden.attentionMask.flat().filter((m) => m === 1).length - 4);  // all but two <s> and two </s>
    console.log(`roberta_mlm masked-token loss: excise ${ev.loss}, HF ${golden.tensors.mlm_loss.data[0]} over ${n} tokens`);
    expect(Math.abs(ev.loss - golden.tensors.mlm_loss.data[0])).toBeLessThan(TOL_F32);
    expect(Math.abs(ev.loss - lossSum / n)).toBeLessThan(TOL_F32);
    expect(ev.perplexity).toBeCloseTo(Math.exp(ev.loss), 10);
    expect(ev.top1).toBe(top1 / n);
    expect(ev.topk).toBe(topk / n);
    expect(ev.skipCounted).toBe(counted);
    expect(ev.top1Skip).toBe(top1Skip / counted);
    expect(ev.topkSkip).toBe(topkSkip / counted);
  });

  it('masks a seeded ~15% share by default, the same tokens for the same seed, never special tokens', async () => {
    // 40 documents of 30 ordinary ids between <s> and </s>: 1200 maskable tokens.
    let s = 7;
    const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
    const docs = Array.from({ length: 40 }, () => [0, ...Array.from({ length: 30 }, () => 5 + (next() % 295)), 2]);
    const a = await model.evaluate(docs, { maxTokens: Infinity });
    const again = await model.evaluate(docs, { maxTokens: Infinity, maskSeed: 0, maskFraction: 0.15 });
    const other = await model.evaluate(docs, { maxTokens: Infinity, maskSeed: 1 });
    expect(again).toEqual(a);
    expect(a.tokens).toBeGreaterThan(0.1 * 1200);
    expect(a.tokens).toBeLessThan(0.2 * 1200);
    expect(other.loss).not.toBe(a.loss);
    // The skip set is the 50 most common maskable tokens: <s> and </s> (in every document) are not among them.
    expect(a.skipTokens).toHaveLength(50);
    expect(a.skipTokens).not.toContain(0);
    expect(a.skipTokens).not.toContain(2);
    // Only specials and padding: nothing can be masked.
    const none = await model.evaluate([[0, 2], [0, 1, 1, 2]], { maskFraction: 1 }).then(() => null, (e: unknown) => e);
    expect((none as ExciseError).code).toBe('ERR_INVALID_ARGUMENT');
    expect((none as ExciseError).message).toContain('no token was masked');
  });

  it('evaluates text: the tokenizer adds <s> ... </s>, which are never masked', async () => {
    const texts = ['The quick brown fox jumps over the lazy dog.', 'Hello world!'];
    const ids = texts.map((t) => model.tokenizer.encode(t));
    const ev = await model.evaluate(texts, { maskFraction: 1 });
    expect(ids.every((r) => r[0] === 0 && r[r.length - 1] === 2)).toBe(true);
    expect(ev.tokens).toBe(ids.reduce((n, r) => n + r.length - 2, 0));
  });

  it('refuses bad masking options, and masking options on a causal model', async () => {
    for (const [opts, what] of [[{ maskFraction: 0 }, 'maskFraction'], [{ maskFraction: 1.5 }, 'maskFraction'], [{ maskSeed: -1 }, 'maskSeed'],
      [{ maskTokenId: 300 }, 'maskTokenId']] as const) {
      const err = await model.evaluate([[0, 5, 6, 2]], opts).then(() => null, (e: unknown) => e);
      expect((err as ExciseError).code, what).toBe('ERR_INVALID_ARGUMENT');
      expect((err as ExciseError).message).toContain(what);
    }
    const untied = await loadModel(untiedDir);  // no tokenizer.json: the mask token must be given
    try {
      const err = await untied.evaluate([[0, 5, 6, 2]]).then(() => null, (e: unknown) => e);
      expect((err as ExciseError).message).toMatch(/maskTokenId is needed/);
      expect((await untied.evaluate([[0, 5, 6, 2]], { maskTokenId: 4, maskFraction: 1 })).tokens).toBe(2);
      // selectivePrune passes maskTokenId on to every evaluation (and records it).
      const docs = Array.from({ length: 12 }, (_, d) => [0, ...Array.from({ length: 12 }, (_, i) => 5 + ((d * 13 + i * 5) % 60)), 2]);
      const rep = await selectivePrune(untied, { forget: docs, retain: docs, steps: 1, ffFrac: 0.05, collectTokens: 60, evalTokens: 60, evalFraction: 0.5, maskTokenId: 4 });
      expect(rep.options.masking).toEqual({ fraction: 0.15, seed: 0, maskTokenId: 4 });
    } finally {
      await untied.dispose();
    }
    const causal = await createRandomModel(JSON.parse(readFileSync(join(fixturesDir, 'hf-variants', 'gpt2_scaled', 'config.json'), 'utf8')));
    try {
      const err = await causal.evaluate([[1, 2, 3]], { maskFraction: 0.5 }).then(() => null, (e: unknown) => e);
      expect((err as ExciseError).code).toBe('ERR_INVALID_ARGUMENT');
      expect((err as ExciseError).message).toContain('masked language models only');
      const viaPrune = await selectivePrune(causal, { forget: [[1, 2, 3]], retain: [[1, 2, 3]], maskSeed: 1 }).then(() => null, (e: unknown) => e);
      expect(viaPrune).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'selectivePrune: maskSeed apply to masked language models only; this model predicts the next token' });
    } finally {
      await causal.dispose();
    }
  });

  it('next-token operations are ERR_NOT_CAUSAL_LM', async () => {
    const calls: [string, () => unknown][] = [
      ['generate', () => model.generate([0, 5, 6], { maxNewTokens: 2 })],
      ['stream', () => model.stream([0, 5, 6], { maxNewTokens: 2 })],
      ['score', () => model.score([{ prompt: [0, 5], continuation: [6] }])],
      ['sequenceLogprobs', () => model.sequenceLogprobs([[0, 5, 6]])],
      ['membershipInference', () => model.membershipInference([[0, 5, 6]], [[0, 6, 5]])],
      ['evaluateChoices', () => model.evaluateChoices([{ question: 'a', choices: ['b', 'c'], answer: 0 }])],
      ['trainer', () => model.trainer()],
      ['createServer', () => createServer(model)],
    ];
    for (const [name, call] of calls) {
      const err = await (async () => call())().then(() => null, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(ExciseError);
      expect((err as ExciseError).code, name).toBe('ERR_NOT_CAUSAL_LM');
      expect((err as ExciseError).message, name).toContain('masked language model');
    }
  });

  it('relearningAttack and the gradient baselines refuse a masked LM before evaluating or packing anything', async () => {
    const docs = [[0, 5, 6, 7, 2], [0, 8, 9, 2]];
    let evaluated = 0;
    const spied = Object.create(model, { evaluate: { value: (...args: Parameters<Model['evaluate']>) => { evaluated++; return model.evaluate(...args); } } }) as Model;
    for (const [name, call] of [
      ['relearningAttack', () => relearningAttack(spied, { data: docs, evals: { forget: docs }, steps: 1, seqLength: 4 })],
      ['gradientAscent', () => gradientAscent(spied, docs, { steps: 1, seqLength: 4 })],
    ] as const) {
      const err = await call().then(() => null, (e: unknown) => e);
      expect((err as ExciseError).code, name).toBe('ERR_NOT_CAUSAL_LM');
      expect((err as ExciseError).message, name).toContain(`${name}: `);
    }
    expect(evaluated).toBe(0);  // before: the attack evaluated every set first, then failed in the trainer
  });

  it('compareMethods refuses the next-token methods of a masked LM before any method has run', async () => {
    const logs: string[] = [];
    const forget = Array.from({ length: 10 }, (_, i) => `numbers ${i} and symbols #$% ${i * 7}`);
    const retain = Array.from({ length: 10 }, (_, i) => `The quick brown fox ${i} jumps over the lazy dog.`);
    const err = await compareMethods({
      model: mlmDir, forget, retain, steps: 1, collectTokens: 100, evalTokens: 100, methods: ['selective', 'gradient-ascent'],
      onProgress: (line) => logs.push(line),
    }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ExciseError);
    expect((err as ExciseError).code).toBe('ERR_NOT_CAUSAL_LM');
    expect((err as ExciseError).message).toContain('gradient-ascent');
    // Not after the selective method's whole run: nothing but the base model was loaded.
    expect(logs.filter((l) => l.startsWith('selective'))).toEqual([]);
  });

  it('a left-padded row (padding slots holding id 0, as excise pads) equals the row alone: positions skip masked slots', async () => {
    // HF computes positions from the ids: with <pad> in those slots it gives exactly this; id 0 (<s>)
    // there must not shift the real tokens' positions.
    const real = realPart(golden.inputIds[1], golden.attentionMask[1]);
    const alone = await model.forward([real]);
    const left = await model.forward([[0, 0, 0, ...real]], { attentionMask: [[0, 0, 0, ...real.map(() => 1)]] });
    const V = model.config.vocabSize;
    expect(maxAbsDiff(left.logits.subarray(3 * V), alone.logits)).toBeLessThan(TOL_F32);
    expect(maxAbsDiff(alone.logits, golden.tensors.logits.data.subarray(12 * V, (12 + real.length) * V))).toBeLessThan(TOL_F32);
  });

  it('a sequence longer than max_position_embeddings - pad_token_id - 1 is refused', async () => {
    expect((await model.forward([Array.from({ length: 38 }, (_, i) => 5 + i)])).shape).toEqual([1, 38, 300]);
    const err = await model.forward([Array.from({ length: 39 }, (_, i) => 5 + i)]).then(() => null, (e: unknown) => e);
    expect((err as ExciseError).code).toBe('ERR_INVALID_ARGUMENT');
    expect((err as ExciseError).message).toContain('38 learned positions');
  });

  it.each([
    ['position_embedding_type', (c: Record<string, unknown>) => { c.position_embedding_type = 'relative_key'; }],
    ['is_decoder', (c: Record<string, unknown>) => { c.is_decoder = true; }],
    ['add_cross_attention', (c: Record<string, unknown>) => { c.add_cross_attention = true; }],
  ])('an unsupported %s is ERR_UNSUPPORTED_CONFIG naming it', async (field, edit) => {
    const config = JSON.parse(readFileSync(join(mlmDir, 'config.json'), 'utf8'));
    edit(config);
    const err = await createRandomModel(config).then(() => null, (e: unknown) => e);
    expect((err as ExciseError).code).toBe('ERR_UNSUPPORTED_CONFIG');
    expect((err as ExciseError).message).toContain(`"${field}"`);
  });

  it('pad_token_id: absent is RobertaConfig\'s default 1; null or negative is ERR_UNSUPPORTED_CONFIG naming it (never taken as 1)', async () => {
    const config = JSON.parse(readFileSync(join(mlmDir, 'config.json'), 'utf8'));
    delete config.pad_token_id;
    const absent = await createRandomModel(config);
    expect(absent.config.padTokenId).toBe(1);
    expect(absent.config.maxPositions).toBe(config.max_position_embeddings - 2);
    await absent.dispose();
    for (const pad of [null, -1]) {
      const err = await createRandomModel({ ...config, pad_token_id: pad }).then(() => null, (e: unknown) => e);
      expect((err as ExciseError).code, String(pad)).toBe('ERR_UNSUPPORTED_CONFIG');
      expect((err as ExciseError).message).toContain('"pad_token_id"');
    }
  });

  it('loads a checkpoint stored without the "roberta." prefix to the same logits', async () => {
    const src = await readSafetensors(join(untiedDir, 'model.safetensors'));
    const renamed = Object.fromEntries(Object.entries(src.tensors).map(([k, t]) => [k.replace(/^roberta\./, ''), t]));
    const dir = join(tmp, 'unprefixed');
    cpSync(untiedDir, dir, { recursive: true });
    await writeSafetensors(join(dir, 'model.safetensors'), renamed, src.metadata);
    const g = await readGolden(untiedDir);
    const m = await loadModel(dir, { dtype: 'float32' });
    try {
      expect(m.tensorNames()).toContain('embeddings.word_embeddings.weight');
      expect(m.config.tiedEmbeddings).toBe(false);
      const out = await m.forward(g.inputIds, { attentionMask: g.attentionMask });
      expect(maxAbsDiff(out.logits, g.tensors.logits.data)).toBeLessThan(TOL_F32);
    } finally {
      await m.dispose();
    }
  });

  it("tokenizer.json (byte-level BPE + RobertaProcessing) encodes as the tokenizers package does", () => {
    const ref = JSON.parse(readFileSync(join(mlmDir, 'tokenizer_encodings.json'), 'utf8'));
    const tok = Tokenizer.fromFile(join(mlmDir, 'tokenizer.json'));
    try {
      for (const e of ref.encodings as { text: string; ids: number[]; ids_without_special: number[] }[]) {
        expect(tok.encode(e.text), e.text).toEqual(e.ids);
        expect(tok.encode(e.text, { addSpecialTokens: false }), e.text).toEqual(e.ids_without_special);
      }
      expect(tok.tokenToId('<mask>')).toBe(ref.mask_token_id);
      expect(tok.specialTokenIds()).toEqual([0, 1, 2, 3, 4]);
    } finally {
      tok.dispose();
    }
  });

  it('prunes, saves and reloads: the same tensor names and the same logits', async () => {
    const m = await loadModel(mlmDir, { dtype: 'float32' });
    try {
      await m.prune({ ff: golden.prune.mlp, attn: golden.prune.attn });
      const before = await m.forward(golden.inputIds, { attentionMask: golden.attentionMask });
      expect(maxAbsDiff(before.logits, golden.tensors.logits_pruned.data)).toBeLessThan(TOL_F32);
      await m.save(join(tmp, 'saved'));
      const reloaded = await loadModel(join(tmp, 'saved'), { dtype: 'float32' });
      const after = await reloaded.forward(golden.inputIds, { attentionMask: golden.attentionMask });
      expect(reloaded.tensorNames().sort()).toEqual(m.tensorNames().sort());
      expect(maxAbsDiff(after.logits, before.logits)).toBe(0);
      await reloaded.dispose();
    } finally {
      await m.dispose();
    }
  });

  it('selectivePrune runs unchanged: collects on unmasked text, evaluates masked tokens, prunes', async () => {
    const m = await loadModel(mlmDir, { dtype: 'float32' });
    try {
      const forget = Array.from({ length: 20 }, (_, i) => `numbers ${i} and symbols #$% ${i * 7}`);
      const retain = Array.from({ length: 20 }, (_, i) => `The quick brown fox ${i} jumps over the lazy dog.`);
      const report = await selectivePrune(m, { forget, retain, steps: 1, ffFrac: 0.05, attnFrac: 0.05, collectTokens: 300, evalTokens: 200, evalFraction: 0.3 });
      expect(report.totalPruned).toEqual({ ff: Math.round(0.05 * 2 * 64), attn: Math.round(0.05 * 2 * 32) });
      for (const step of report.steps) {
        expect(step.metrics.forget.tokens).toBeGreaterThan(0);
        expect(Number.isFinite(step.metrics.forget.loss)).toBe(true);
      }
      expect(report.steps[1].metrics.forget.loss).not.toBe(report.steps[0].metrics.forget.loss);
      expect(report.options.masking).toEqual({ fraction: 0.15, seed: 0 });
      // maskFraction / maskSeed reach every evaluation: step 0 is the unpruned model's masked evaluation of the held-out part.
      await m.restore();
      const masked = await selectivePrune(m, { forget, retain, steps: 1, ffFrac: 0.05, collectTokens: 300, evalTokens: 200, evalFraction: 0.3, maskFraction: 0.5, maskSeed: 3 });
      await m.restore();
      const held = splitDataset(toDataset(forget), { evalFraction: 0.3, seed: 0 }).evaluate;
      const ev = await m.evaluate(held, { maxTokens: 200, maskFraction: 0.5, maskSeed: 3 });
      expect(masked.steps[0].metrics.forget.tokens).toBe(ev.tokens);
      expect(masked.steps[0].metrics.forget.loss).toBe(ev.loss);
      expect(masked.steps[0].metrics.forget.tokens).toBeGreaterThan(report.steps[0].metrics.forget.tokens);
      const bad = await selectivePrune(m, { forget, retain, steps: 1, maskFraction: 0 }).then(() => null, (e: unknown) => e);
      expect(bad).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: 'maskFraction: expected a fraction in (0, 1], received the number 0' });
    } finally {
      await m.dispose();
    }
  });

  it('excise prune --model <roberta dir> writes a pruned model whose evaluation matches its report', async () => {
    const dir = join(tmp, 'cli');
    const forget = join(tmp, 'forget.jsonl');
    const retain = join(tmp, 'retain.jsonl');
    writeFileSync(forget, Array.from({ length: 30 }, (_, i) => JSON.stringify({ text: `numbers ${i} and symbols #$% ${i * 7}` })).join('\n') + '\n');
    writeFileSync(retain, Array.from({ length: 30 }, (_, i) => JSON.stringify({ text: `Hello world ${i}! The lazy dog.` })).join('\n') + '\n');
    const r = await run(['prune', '--model', mlmDir, '--forget', forget, '--retain', retain, '--steps', '1',
      '--collect-tokens', '200', '--eval-tokens', '200', '--ff-frac', '0.05', '--mask-fraction', '0.3', '--mask-seed', '5', '--out', dir]);
    expect(r.stderr).not.toMatch(/excise: /);
    expect(r.status).toBe(0);
    const report: PruneReport = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    const saved = await loadModel(join(dir, 'model'));
    try {
      expect(saved.config.maskedLm).toBe(true);
      const part = splitDataset(loadDataset(forget), { evalFraction: 0.1, seed: 0 }).evaluate;
      expect(report.options.masking).toEqual({ fraction: 0.3, seed: 5 });
      const ev = await saved.evaluate(part, { maxTokens: 200, maskFraction: 0.3, maskSeed: 5 });
      const last = report.steps[1].metrics.forget;
      // excise eval --mask-fraction / --mask-seed: the same masked-token metrics.
      const e = await run(['eval', '--model', join(dir, 'model'), '--data', forget, '--tokens', '200', '--mask-fraction', '0.3', '--mask-seed', '5', '--json']);
      expect(e.status).toBe(0);
      const printed = JSON.parse(e.stdout);
      const direct = await saved.evaluate(loadDataset(forget), { maxTokens: 200, maskFraction: 0.3, maskSeed: 5 });
      expect({ tokens: printed.tokens, loss: printed.loss, top1: printed.top1 }).toEqual({ tokens: direct.tokens, loss: direct.loss, top1: direct.top1 });
      expect({ tokens: ev.tokens, loss: ev.loss, top1: ev.top1 }).toEqual({ tokens: last.tokens, loss: last.loss, top1: last.top1 });
    } finally {
      await saved.dispose();
    }
  });
});

function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli', 'main.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolveRun({ status, stdout, stderr });
    });
  });
}
