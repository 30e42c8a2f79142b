// A model split over several devices (loadModel's `devices`, README "Models larger than one
// device"). On this CPU machine ['cpu', 'cpu'] runs the same split code as ['cuda:0', 'cuda:1']
// (per-stage masks, rotary tables and padding rows, the residual stream moved at each stage
// boundary, KV caches per layer's device, the tied head back on the first stage), so everything a
// model does is compared with the one-device model: logits and hook points, statistics, pruning,
// evaluation, scoring, generation, training and the saved bytes. On one physical device the split
// must change no bit: every comparison below is exact.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadOptions, UsageError } from '../lib/cli/args.js';
import { launchSettings } from '../lib/cli/launch.js';
import { resumeSettings, type PruneSettings } from '../lib/cli/prune.js';
import {
  loadDataset, loadModel, createRandomModel, runtimeInfo, scoreNeurons, selectivePrune, selectNeurons, ExciseError, type Model, type ModelPlacement,
} from '../lib/index.js';
import { fixturesDir, goldenCases, goldenDir, maxAbsDiff, readGolden } from './helpers/golden.js';

const demoDir = join(fixturesDir, '..', '..', 'assets', 'demo-model');
const prose = join(fixturesDir, '..', '..', 'assets', 'corpora', 'prose', 'test.jsonl.gz');
const python = join(fixturesDir, '..', '..', 'assets', 'corpora', 'python', 'test.jsonl.gz');

/** Every element equal (NaN never is). */
function expectSame(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  expect(a.length, what).toBe(b.length);
  expect(maxAbsDiff(a, b), what).toBe(0);
}

/**
 * The placement README documents, computed here from the config's sizes: the model laid out in
 * forward order (embedding, layers, final norm), device i owning an equal share of the bytes; a
 * layer goes where its middle byte falls, kept contiguous with at least one layer per device.
 */
function documentedPlacement(embedBytes: number, layerBytes: number[], finalBytes: number, devices: number): number[] {
  const total = embedBytes + layerBytes.reduce((a, b) => a + b, 0) + finalBytes;
  const out: number[] = [];
  let before = embedBytes;
  layerBytes.forEach((bytes, layer) => {
    const middle = before + bytes / 2;
    const want = Math.min(devices - 1, Math.floor(middle / (total / devices)));
    const previous = layer === 0 ? -1 : out[layer - 1];
    const lo = Math.max(previous, devices - layerBytes.length + layer, 0);
    out.push(Math.min(Math.max(want, lo), previous + 1));
    before += bytes;
  });
  return out;
}

describe('the demo model on one device and split over two and three', () => {
  let one: Model, two: Model, three: Model;
  let scratch: string;
  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'excise-devices-'));
    [one, two, three] = await Promise.all([
      loadModel(demoDir),
      loadModel(demoDir, { devices: ['cpu', 'cpu'] }),
      loadModel(demoDir, { devices: ['cpu', 'cpu', 'cpu'] }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([one?.dispose(), two?.dispose(), three?.dispose()]);
    rmSync(scratch, { recursive: true, force: true });
  });

  it('places the layers as documented: contiguous, balanced by bytes, embedding and tied head on device 0', () => {
    const { dModel: d, dMlp, vocabSize, nLayers } = one.config;
    // float32 LLaMA layer: q, k, v, o (d x d each, no GQA here), gate/up/down (d x dMlp), two norms.
    const layerBytes = Array.from({ length: nLayers }, () => 4 * (4 * d * d + 3 * d * dMlp + 2 * d));
    const embedBytes = 4 * vocabSize * d;  // the tied head is this tensor: no bytes on the last device
    const finalBytes = 4 * d;
    expect(one.placement).toEqual({ devices: ['cpu'], layers: [0, 0, 0, 0], embedding: 0, finalNorm: 0, head: 0 });
    const expected = (n: number): ModelPlacement => ({
      devices: Array(n).fill('cpu'), layers: documentedPlacement(embedBytes, layerBytes, finalBytes, n), embedding: 0, finalNorm: n - 1, head: 0,
    });
    expect(two.placement).toEqual(expected(2));
    expect(three.placement).toEqual(expected(3));
    // The 4 MiB embedding counts on device 0, so it takes fewer layers.
    expect(two.placement.layers).toEqual([0, 1, 1, 1]);
    expect(three.placement.layers).toEqual([0, 1, 2, 2]);
    expect(two.devices).toEqual(['cpu', 'cpu']);
    expect(two.device).toBe('cpu');
    expect(two.parameterCount).toBe(one.parameterCount);
  });

  it('forward: the same logits and hook points, padded batch, and lastPositionOnly', async () => {
    const rows = [one.tokenizer.encode('def add(a, b):\n    return a + b'), one.tokenizer.encode('The river ran')];
    const seq = Math.max(...rows.map((r) => r.length));
    const ids = rows.map((r) => [...r, ...Array(seq - r.length).fill(0)]);
    const mask = rows.map((r) => Array.from({ length: seq }, (_, t) => (t < r.length ? 1 : 0)));
    const run = (m: Model) => m.forward(ids, { attentionMask: mask, capture: m.hookNames() });
    const [a, b, c] = await Promise.all([run(one), run(two), run(three)]);
    for (const other of [b, c]) {
      expectSame(other.logits, a.logits, 'logits');
      for (const name of one.hookNames()) expectSame(other.activations![name].data, a.activations![name].data, name);
    }
    const last = await Promise.all([one, two].map((m) => m.forward(ids, { attentionMask: mask, lastPositionOnly: true })));
    expectSame(last[1].logits, last[0].logits, 'lastPositionOnly logits');
  });

  it('collect, evaluate, score and sequence log-probabilities agree exactly', async () => {
    const collect = (m: Model) => m.collect(loadDataset(python), { maxTokens: 600, maxLength: 64, batchSize: 4 });
    const [s1, s2, s3] = await Promise.all([collect(one), collect(two), collect(three)]);
    for (const other of [s2, s3]) {
      expect(other.tokens).toBe(s1.tokens);
      for (const name of one.hookNames()) {
        const x = s1.raw(name), y = other.raw(name);
        for (const key of Object.keys(x) as (keyof typeof x)[]) expectSame(y[key] as Float64Array, x[key] as Float64Array, `${name} ${key}`);
      }
    }
    const evaluate = (m: Model) => m.evaluate(loadDataset(prose), { maxTokens: 500, maxLength: 64, batchSize: 4 });
    const [e1, e2, e3] = await Promise.all([evaluate(one), evaluate(two), evaluate(three)]);
    expect(e2).toEqual(e1);
    expect(e3).toEqual(e1);
    const pairs = [{ prompt: 'for i in range(10):\n    ', continuation: 'print(i)' }, { prompt: 'The', continuation: ' river' }];
    const [c1, c2] = await Promise.all([one.score(pairs), two.score(pairs)]);
    expect(c2).toEqual(c1);
    const seqs = [one.tokenizer.encode('import os\nimport sys'), one.tokenizer.encode('x = 1')];
    const [l1, l2] = await Promise.all([one.sequenceLogprobs(seqs), two.sequenceLogprobs(seqs)]);
    expect(l2).toEqual(l1);
  });

  it('generation (KV cache, batched decode engine, sampling) gives the same tokens', async () => {
    const gen = (m: Model) => Promise.all([
      m.generate('def fibonacci(n):', { maxNewTokens: 12 }),
      m.generate('The river', { maxNewTokens: 12, temperature: 0.8, topP: 0.9, seed: 3 }),
      m.generateDetailed('import numpy', { maxNewTokens: 8, logprobs: 2 }),
    ]);
    const [g1, g2, g3] = await Promise.all([gen(one), gen(two), gen(three)]);
    expect(g2).toEqual(g1);
    expect(g3).toEqual(g1);
  });

  it('pruning edits each layer on its device: the same masks, pruned logits, restore, and saved bytes', async () => {
    const fStats = await one.collect(loadDataset(python), { maxTokens: 400, maxLength: 64 });
    const rStats = await one.collect(loadDataset(prose), { maxTokens: 400, maxLength: 64 });
    const selection = selectNeurons(scoreNeurons(fStats, rStats), { ffFrac: 0.05, attnFrac: 0.02 });
    const ids = [one.tokenizer.encode('def main():\n    print("hello")')];
    const before = await one.forward(ids);
    await Promise.all([one.prune(selection), two.prune(selection), three.prune(selection)]);
    const [p1, p2, p3] = await Promise.all([one, two, three].map((m) => m.forward(ids)));
    expect(maxAbsDiff(p1.logits, before.logits)).toBeGreaterThan(0);  // the prune changed something
    expectSame(p2.logits, p1.logits, 'pruned logits (2 devices)');
    expectSame(p3.logits, p1.logits, 'pruned logits (3 devices)');
    expect(two.masks.counts).toEqual(one.masks.counts);
    expect((await two.nativeMasks()).ff.map((m) => Array.from(m))).toEqual(one.masks.ff.map((m) => Array.from(m)));
    // Saved: one tied embedding tensor, the same bytes as the one-device model's.
    await Promise.all([one.save(join(scratch, 'one')), two.save(join(scratch, 'two'))]);
    const files = readdirSync(join(scratch, 'one')).filter((f) => f.endsWith('.safetensors') || f === 'config.json');
    expect(files).toContain('model.safetensors');
    for (const f of files) expect(readFileSync(join(scratch, 'two', f)).equals(readFileSync(join(scratch, 'one', f))), f).toBe(true);
    expect(two.tensorNames()).toEqual(one.tensorNames());
    await Promise.all([one.restore(), two.restore()]);
    const [r1, r2] = await Promise.all([one.forward(ids), two.forward(ids)]);
    expectSame(r1.logits, before.logits, 'restored (1 device)');
    expectSame(r2.logits, before.logits, 'restored (2 devices)');
  });
});

describe('selectivePrune on a split model', () => {
  it('two steps give the same report (metrics, pruned neurons) and the same pruned logits as on one device', async () => {
    const [one, two] = await Promise.all([loadModel(demoDir), loadModel(demoDir, { devices: ['cpu', 'cpu'] })]);
    const run = (m: Model) => selectivePrune(m, {
      forget: loadDataset(python), retain: loadDataset(prose), ffFrac: 0.02, attnFrac: 0.01, steps: 2,
      collectTokens: 400, evalTokens: 300, maxLength: 64,
    });
    const [r1, r2] = await Promise.all([run(one), run(two)]);
    const withoutTimes = (r: typeof r1) => r.steps.map(({ seconds: _seconds, ...rest }) => rest);
    expect(withoutTimes(r2)).toEqual(withoutTimes(r1));
    expect(r2.totalPruned).toEqual(r1.totalPruned);
    expect(r1.totalPruned.ff).toBeGreaterThan(0);
    const ids = [one.tokenizer.encode('import os\nprint(os.getcwd())')];
    expectSame((await two.forward(ids)).logits, (await one.forward(ids)).logits, 'logits after selectivePrune');
    await Promise.all([one.dispose(), two.dispose()]);
  });
});

describe('training a split model', () => {
  it('two AdamW steps change the weights exactly as on one device', async () => {
    const [one, two] = await Promise.all([loadModel(demoDir), loadModel(demoDir, { devices: ['cpu', 'cpu'] })]);
    const rows = [one.tokenizer.encode('def add(a, b):\n    return a + b'), one.tokenizer.encode('for x in items:\n    print(x)')];
    const seq = Math.min(...rows.map((r) => r.length));
    const batch = rows.map((r) => r.slice(0, seq));
    const results = [];
    for (const m of [one, two]) {
      const t = m.trainer({ lr: 1e-3, warmupSteps: 0, totalSteps: 2 });
      results.push([await t.step(batch), await t.step(batch)]);
      await t.close();
    }
    expect(results[1]).toEqual(results[0]);
    const [a, b] = await Promise.all([one.forward(batch), two.forward(batch)]);
    expectSame(b.logits, a.logits, 'logits after training');
    await Promise.all([one.dispose(), two.dispose()]);
  });
});

const variantsDir = join(fixturesDir, 'hf-variants');
const variantCases = existsSync(variantsDir) ? readdirSync(variantsDir).filter((d) => existsSync(join(variantsDir, d, 'golden.safetensors'))).sort() : [];
const everyCase = [...goldenCases.map((c) => join(goldenDir, c)), ...variantCases.map((c) => join(variantsDir, c))];

// Every architecture variant through the split path: sliding windows (per-stage masks), local
// rotary tables (Gemma 3), OPT's input/output projections, GPT-J's head bias, tied heads.
describe.each(everyCase)('%s split over two devices', (dir) => {
  it("equals the one-device model exactly and Hugging Face's logits within 1e-4; generation agrees (causal LMs)", async () => {
    const g = await readGolden(dir);
    const [one, two] = await Promise.all([loadModel(dir), loadModel(dir, { devices: ['cpu', 'cpu'] })]);
    expect(two.placement.layers[0]).toBe(0);
    expect(two.placement.layers[two.config.nLayers - 1]).toBe(1);
    expect(two.placement.head).toBe(two.config.tiedEmbeddings || !two.tensorNames().some((n) => /lm_head|embed_out/.test(n)) ? 0 : 1);
    const run = (m: Model) => m.forward(g.inputIds, { attentionMask: g.attentionMask, capture: m.hookNames() });
    const [a, b] = await Promise.all([run(one), run(two)]);
    expectSame(b.logits, a.logits, 'logits');
    for (const name of one.hookNames()) expectSame(b.activations![name].data, a.activations![name].data, name);
    expect(maxAbsDiff(b.logits, g.tensors.logits.data)).toBeLessThan(1e-4);
    if (one.config.maskedLm) {
      // A masked LM does not generate (ERR_NOT_CAUSAL_LM): its masked-token evaluation instead (ids
      // between <s> = 0 and </s> = 2; any in-vocabulary mask id serves for the comparison).
      const docs = Array.from({ length: 6 }, (_, d) => [0, ...Array.from({ length: 20 }, (_, i) => 5 + ((d * 31 + i * 7) % 90)), 2]);
      const ev = (m: Model) => m.evaluate(docs, { maxTokens: Infinity, maskFraction: 0.3, maskTokenId: 4, batchSize: 4 });
      const [e1, e2] = await Promise.all([ev(one), ev(two)]);
      expect(e1.tokens).toBeGreaterThan(0);
      expect(e2).toEqual(e1);
      await Promise.all([one.dispose(), two.dispose()]);
      return;
    }
    const prompt = g.inputIds[0].slice(0, 5);
    const gen = (m: Model) => Promise.all([m.generate(prompt, { maxNewTokens: 6, stopAtEos: false }), m.generate(prompt.slice(0, 3), { maxNewTokens: 6, stopAtEos: false })]);
    const [t1, t2] = await Promise.all([gen(one), gen(two)]);
    expect(t2).toEqual(t1);
    await Promise.all([one.dispose(), two.dispose()]);
  });
});

describe('devices: validation', () => {
  const config = JSON.parse(readFileSync(join(goldenDir, 'llama', 'config.json'), 'utf8')) as Record<string, unknown>;
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (err) {
      expect(err).toBeInstanceOf(ExciseError);
      return `${(err as ExciseError).code}: ${(err as Error).message}`;
    }
    return 'resolved';
  };

  it('refuses bad lists with a coded error naming the option', async () => {
    expect(await code(loadModel(demoDir, { devices: [] }))).toMatch(/^ERR_INVALID_ARGUMENT: loadModel: devices: expected a non-empty array/);
    expect(await code(loadModel(demoDir, { devices: 'cpu' as never }))).toMatch(/^ERR_INVALID_ARGUMENT: loadModel: devices: expected a non-empty array/);
    expect(await code(loadModel(demoDir, { devices: ['cpu', 'gpu' as never] }))).toMatch(/^ERR_INVALID_DEVICE: loadModel: devices\[1\]: expected 'cpu', 'cuda' or 'cuda:N', received "gpu"/);
    expect(await code(loadModel(demoDir, { device: 'cpu', devices: ['cpu'] }))).toMatch(/^ERR_INVALID_ARGUMENT: loadModel: give either device or devices/);
    expect(await code(createRandomModel(config, { devices: ['cpu', 'cpu', 'cpu'] }))).toMatch(/^ERR_INVALID_ARGUMENT: devices: 3 devices for a model of 2 layers/);
    expect(await code(loadModel(demoDir, { devices: ['cpu', 'cpu', 'cpu', 'cpu', 'cpu'] }))).toMatch(/^ERR_INVALID_ARGUMENT: devices: 5 devices for a model of 4 layers/);
  });

  // On a GPU machine bench/device-check.sh covers these.
  it.skipIf(runtimeInfo().cudaDeviceCount > 0)("a GPU that is not there is ERR_DEVICE_UNAVAILABLE naming its entry; 'auto' without a GPU is the CPU", async () => {
    expect(await code(loadModel(demoDir, { devices: ['cpu', 'cuda:1'] }))).toMatch(/^ERR_DEVICE_UNAVAILABLE: devices\[1\]: device 'cuda:1'/);
    const auto = await loadModel(demoDir, { device: 'auto' });
    expect(auto.devices).toEqual(['cpu']);
    expect(auto.placement.layers).toEqual([0, 0, 0, 0]);
    await auto.dispose();
  });

  it('createRandomModel splits too', async () => {
    const [a, b] = await Promise.all([createRandomModel(config, { seed: 7 }), createRandomModel(config, { seed: 7, devices: ['cpu', 'cpu'] })]);
    expect(b.placement.layers).toEqual([0, 1]);
    expect(b.placement.head).toBe(1);  // this LLaMA's head is untied: on the last device
    const ids = [[1, 2, 3, 4, 5]];
    expectSame((await b.forward(ids)).logits, (await a.forward(ids)).logits, 'random model logits');
    await Promise.all([a.dispose(), b.dispose()]);
  });
});

describe('the command line', () => {
  it('--devices cpu,cpu splits the model (excise info shows the placement); --device auto; both at once is a usage error', async () => {
    const root = join(fixturesDir, '..', '..');
    const run = promisify(execFile);
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli', 'main.ts'), 'info', '--model', demoDir, '--devices', 'cpu,cpu', '--json'], { cwd: root });
    const info = JSON.parse(stdout);
    expect(info.devices).toEqual(['cpu', 'cpu']);
    expect(info.placement).toEqual({ devices: ['cpu', 'cpu'], layers: [0, 1, 1, 1], embedding: 0, finalNorm: 1, head: 0 });
    expect(loadOptions({ devices: 'cuda:0, cuda:1' })).toEqual({ devices: ['cuda:0', 'cuda:1'] });
    expect(loadOptions({ device: 'auto' })).toEqual({ device: 'auto' });
    expect(() => loadOptions({ device: 'cpu', devices: 'cpu,cpu' })).toThrow(UsageError);
    expect(() => loadOptions({ devices: 'cpu,gpu' })).toThrow(/--devices: expected a comma-separated list/);
    // --nproc workers would all take the same devices.
    expect(() => launchSettings({ nproc: '2', devices: 'cpu,cpu' }, {})).toThrow(/--nproc 2 with --devices: every worker would load its model onto the same devices/);
    expect(() => launchSettings({ nproc: '2', device: 'auto' }, {})).toThrow(/--nproc 2 with --device auto/);
  });

  it('prune --resume: a --device or --devices given again replaces the interrupted run\'s placement', () => {
    const base = { model: 'm', forget: 'f', retain: 'r', ffFrac: 0.05, steps: 2 } as unknown as PruneSettings;
    // Started split over two GPUs, resumed on one (or the reverse): the new flag is the placement,
    // not silently outranked by the saved one (loadTextModel takes devices over device).
    const split = resumeSettings({ ...base, devices: ['cuda:0', 'cuda:1'] }, { device: 'cuda:0' }, 'state.json');
    expect(split.device).toBe('cuda:0');
    expect(split.devices).toBeUndefined();
    const one = resumeSettings({ ...base, device: 'cuda:0' }, { devices: ['cpu', 'cpu'] }, 'state.json');
    expect(one.devices).toEqual(['cpu', 'cpu']);
    expect(one.device).toBeUndefined();
    // Neither given: the run's own placement stays.
    expect(resumeSettings({ ...base, devices: ['cpu', 'cpu'] }, {}, 'state.json').devices).toEqual(['cpu', 'cpu']);
  });
});
