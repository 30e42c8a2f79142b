// Multiple-choice scoring and membership inference on the bundled demo model, against numbers made
// by Hugging Face transformers + tokenizers (test/fixtures/evals, scripts/fixtures/make_evals_fixture.py,
// lm-evaluation-harness's _encode_pair) and against log-softmax over forward() logits computed here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { encodePair, loadModel, minKMean, readChoicesFile, rocAuc, type ChoiceItem, type Model } from '../lib/index.js';

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  let thrown: unknown;
  try { fn(); } catch (err) { thrown = err; }
  expect(thrown).toMatchObject({ name: 'ExciseError', code });
  if (message) expect((thrown as Error).message).toMatch(message);
}

const root = resolve(__dirname, '..');
const fixture = JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'evals', 'demo-evals.json'), 'utf8')) as {
  multipleChoice: Array<ChoiceItem & { targetDelimiter: string; logLikelihoods: number[]; greedy: boolean[]; predicted: number; predictedNorm: number; continuationIds: number[][] }>;
  membership: { maxLength: number; minKFraction: number; members: string[]; nonMembers: string[]; memberLoss: number[]; nonMemberLoss: number[]; memberMinK: number[]; nonMemberMinK: number[]; lossAuc: number; minKAuc: number };
};
let model: Model;
let dir: string;

beforeAll(async () => {
  model = await loadModel(join(root, 'assets', 'demo-model'));
  dir = mkdtempSync(join(tmpdir(), 'excise-evals-'));
});
afterAll(async () => {
  await model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** log p(ids[t] | ids[<t]) for t = from .. end, by log-softmax over forward() logits, in float64. */
async function logprobsByForward(ids: number[], from: number): Promise<number[]> {
  const { logits, shape } = await model.forward([ids]);
  const vocab = shape[2];
  const out: number[] = [];
  for (let t = from; t < ids.length; t++) {
    const row = logits.subarray((t - 1) * vocab, t * vocab);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - max);
    out.push(row[ids[t]] - max - Math.log(s));
  }
  return out;
}

describe('sequenceLogprobs', () => {
  it('a padded batch: log p per token and greedy flags equal log-softmax over forward() logits; score() gives the same numbers', async () => {
    const texts = ['def add(a, b):\n    return a + b\n', 'The sea was calm.', 'x = [i * i for i in range(10)]', 'Call me Ishmael. Some years ago, never mind how long precisely'];
    const sequences = [...texts.map((t) => model.tokenizer.encode(t)), [17, 42]];
    const r = await model.sequenceLogprobs(sequences, { batchSize: 3 }); // batches of lengths that differ: padded
    const vocab = model.config.vocabSize;
    for (const [i, ids] of sequences.entries()) {
      expect(r.logprobs[i]).toHaveLength(ids.length - 1);
      const ref = await logprobsByForward(ids, 1);
      expect(Math.max(...ref.map((v, t) => Math.abs(r.logprobs[i][t] - v)))).toBeLessThan(1e-4);
      const { logits } = await model.forward([ids]);
      const argmax = (t: number) => { const row = logits.subarray((t - 1) * vocab, t * vocab); return row.indexOf(Math.max(...row)); };
      expect(Array.from(r.greedy[i])).toEqual(ids.slice(1).map((id, j) => (argmax(j + 1) === id ? 1 : 0)));
      // The same tokens as a prompt and a continuation: score() runs the same native job on them.
      const k = Math.ceil(ids.length / 2);
      const [s] = await model.score([{ prompt: ids.slice(0, k), continuation: ids.slice(k) }]);
      expect(Math.max(...s.logprobs.map((v, j) => Math.abs(v - r.logprobs[i][k - 1 + j])))).toBeLessThan(1e-5);
      expect(s.greedy).toBe(r.greedy[i].subarray(k - 1).every((g) => g === 1));
    }
    await expect(model.sequenceLogprobs([[1, 2], [3]])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /sequence 1 has 1 token\(s\); at least 2/ });
    await expect(model.sequenceLogprobs([[1, vocab]])).rejects.toMatchObject({ code: 'ERR_TOKEN_OUT_OF_RANGE', message: /token id 4096 of sequence 0/ });
  });
});

describe('evaluateChoices', () => {
  it('continuation tokens, log-likelihoods, greedy flags and both argmaxes match transformers + the harness', async () => {
    const byDelimiter = new Map<string, typeof fixture.multipleChoice>();
    // 3 Python and 3 prose questions of the bundled sets and the 4 boundary cases (time: each is a forward pass per choice).
    const questions = [...fixture.multipleChoice.slice(0, 3), ...fixture.multipleChoice.slice(5, 8), ...fixture.multipleChoice.slice(10)];
    for (const q of questions) byDelimiter.set(q.targetDelimiter, [...(byDelimiter.get(q.targetDelimiter) ?? []), q]);
    let worst = 0;
    for (const [targetDelimiter, qs] of byDelimiter) {
      const r = await model.evaluateChoices(qs.map(({ question, choices, answer }) => ({ question, choices, answer })), { targetDelimiter, batchSize: 5 });
      qs.forEach((q, i) => {
        q.choices.forEach((c, j) => {
          expect(encodePair(model.tokenizer, q.question, targetDelimiter + c, 0)[1]).toEqual(q.continuationIds[j]);
          worst = Math.max(worst, Math.abs(r.perItem[i].logLikelihoods[j] - q.logLikelihoods[j]));
        });
        expect(r.perItem[i].greedy).toEqual(q.greedy);
        expect(r.perItem[i].predicted).toBe(q.predicted);
        expect(r.perItem[i].predictedNorm).toBe(q.predictedNorm);
      });
      expect(r.acc).toBeCloseTo(qs.filter((q) => q.predicted === q.answer).length / qs.length, 12);
      expect(r.accNorm).toBeCloseTo(qs.filter((q) => q.predictedNorm === q.answer).length / qs.length, 12);
    }
    expect(worst).toBeLessThan(2e-4);
  });

  it('k-shot prompts are the examples and their answers, joined by blank lines (checked by forward())', async () => {
    const shot: ChoiceItem = { question: 'Call me', choices: [' Ishmael.', ' Ahab.'], answer: 0 };
    const item: ChoiceItem = { question: 'The sea was', choices: [' calm', ' wide and grey'], answer: 1 };
    const r = await model.evaluateChoices([item], { fewshot: [shot], numFewshot: 1, targetDelimiter: '' });
    const context = 'Call me Ishmael.\n\nThe sea was';
    for (const [j, choice] of item.choices.entries()) {
      const [ctx, cont] = encodePair(model.tokenizer, context, choice, 0);
      const lp = await logprobsByForward([...ctx, ...cont], ctx.length);
      expect(r.perItem[0].logLikelihoods[j]).toBeCloseTo(lp.reduce((a, b) => a + b, 0), 3);
    }
    // The draw is seeded: the same seed, the same result; a pool of 20, k = 3, differs by seed.
    const pool = readChoicesFile(join(root, 'assets', 'choices', 'prose-fewshot.jsonl'));
    const a = await model.evaluateChoices([item], { fewshot: pool, numFewshot: 3, seed: 1, targetDelimiter: '' });
    const b = await model.evaluateChoices([item], { fewshot: pool, numFewshot: 3, seed: 1, targetDelimiter: '' });
    const c = await model.evaluateChoices([item], { fewshot: pool, numFewshot: 3, seed: 2, targetDelimiter: '' });
    expect(a.perItem[0].logLikelihoods).toEqual(b.perItem[0].logLikelihoods);
    expect(a.perItem[0].logLikelihoods).not.toEqual(c.perItem[0].logLikelihoods);
  });

  it('reads jsonl files and refuses malformed ones with the file and line', async () => {
    const good = join(dir, 'good.jsonl');
    writeFileSync(good, fixture.multipleChoice.slice(0, 3).map(({ question, choices, answer }) => JSON.stringify({ question, choices, answer })).join('\n') + '\n\n');
    expect(readChoicesFile(good)).toHaveLength(3);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": "q", "choices": ["a", "b"], "answer": 2}\n');
    expectCode(() => readChoicesFile(bad), 'ERR_DATASET_INVALID', /bad\.jsonl:2.*answer/);
    writeFileSync(bad, '{"question": "q", "choices": ["a"], "answer": 0}\n');
    expectCode(() => readChoicesFile(bad), 'ERR_DATASET_INVALID', /bad\.jsonl:1.*choices/);
    writeFileSync(bad, 'not json\n');
    expectCode(() => readChoicesFile(bad), 'ERR_DATASET_INVALID', /bad\.jsonl:1/);
    expectCode(() => readChoicesFile(join(dir, 'missing.jsonl')), 'ERR_DATASET_NOT_FOUND');
    await expect(model.evaluateChoices(good, { numFewshot: 2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /needs fewshot/ });
    await expect(model.evaluateChoices(good, { batchSize: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /batchSize/ });
    await expect(model.evaluateChoices(good, { fewshot: good, numFewshot: 9 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /exceeds the 3/ });
  });
});

describe('membershipInference', () => {
  it('rocAuc is the fraction of (positive, negative) pairs ordered right, ties one half', () => {
    let s = 7;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pos = Array.from({ length: 37 }, () => Math.round(rand() * 20) / 4);
    const neg = Array.from({ length: 23 }, () => Math.round(rand() * 18) / 4);
    let pairs = 0;
    for (const p of pos) for (const n of neg) pairs += p > n ? 1 : p === n ? 0.5 : 0;
    expect(rocAuc(pos, neg)).toBeCloseTo(pairs / (pos.length * neg.length), 12);
    expect(rocAuc([1, 2], [1, 2])).toBe(0.5);
    expect(minKMean([-1, -5, -3, -2, -4], 0.4)).toBe(-4.5);
  });

  it('per-document loss and min-k% scores and both AUCs match transformers', async () => {
    const m = fixture.membership;
    const r = await model.membershipInference(m.members, m.nonMembers, { maxLength: m.maxLength, minKFraction: m.minKFraction, batchSize: 5 });
    const close = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
    expect(close(r.members.loss, m.memberLoss)).toBeLessThan(1e-5);
    expect(close(r.nonMembers.loss, m.nonMemberLoss)).toBeLessThan(1e-5);
    expect(close(r.members.minK, m.memberMinK)).toBeLessThan(1e-4);
    expect(close(r.nonMembers.minK, m.nonMemberMinK)).toBeLessThan(1e-4);
    expect(r.lossAuc).toBeCloseTo(m.lossAuc, 12);
    expect(r.minKAuc).toBeCloseTo(m.minKAuc, 12);
    expect(r.lossAuc).toBeGreaterThan(0.6); // the model trained on the members: the attack sees it
  });
});

describe('excise eval --choices', () => {
  it('prints the accuracies model.evaluateChoices gives, k-shot', async () => {
    // Four short questions and one example: a forward pass per choice, twice (CLI and API).
    const file = join(dir, 'four.jsonl');
    writeFileSync(file, readChoicesFile(join(root, 'assets', 'choices', 'python-fewshot.jsonl')).slice(0, 4).map((q) => JSON.stringify(q)).join('\n') + '\n');
    const shot = join(dir, 'shot.jsonl');
    writeFileSync(shot, JSON.stringify({ question: 'def f(x):\n', choices: ['    return x', '    pass'], answer: 0 }) + '\n');
    const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli', 'main.ts'), 'eval', '--model', join(root, 'assets', 'demo-model'), '--choices', file, ...args], { cwd: root });
    const { stdout } = await run(['--target-delimiter', '', '--fewshot', shot, '--num-fewshot', '1', '--json']);
    const printed = JSON.parse(stdout) as { acc: number; accNorm: number; items: number; numFewshot: number };
    const direct = await model.evaluateChoices(file, { targetDelimiter: '', fewshot: shot, numFewshot: 1 });
    expect(printed).toMatchObject({ acc: direct.acc, accNorm: direct.accNorm, items: 4, numFewshot: 1 });
    await expect(run(['--num-fewshot', '2'])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/--num-fewshot 2 needs --fewshot/) });
  });
});
