// The `excise` command, run as a child process (node --import tsx lib/cli/main.ts) on a tiny LLaMA
// with a word-level tokenizer and small datasets written here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel } from '../lib/model.js';
import { loadDataset, splitDataset } from '../lib/data/datasets.js';
import { ActivationStats } from '../lib/method/stats.js';
import { runtimeInfo } from '../lib/runtime.js';
import { formatStepsTable } from '../lib/report/index.js';
import type { PruneReport } from '../lib/pipeline.js';
import { goldenDir } from './helpers/golden.js';
import { optionalCount, parsePositiveNumber } from '../lib/cli/args.js';

const root = resolve(__dirname, '..');
let dir: string;
let modelDir: string;
let forget: string;
let retain: string;
let extra: string;
let empty: string;

interface Run { status: number | null; stdout: string; stderr: string }

/** The command as a child process, asynchronously (a long spawnSync starves vitest's worker RPC under load). */
function excise(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli', 'main.ts'), ...args], {
      cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
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

/** Seeded documents of random words (a tiny LCG, so the files are the same on every run). */
function documents(words: string[], n: number, seed: number): string[] {
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, () => Array.from({ length: 8 + Math.floor(next() * 20) }, () => words[Math.floor(next() * words.length)]).join(' '));
}

const CODE = 'def return print for while if else import from class self x y z = ( ) : , . + - * / 0 1 2 3'.split(' ');
const PROSE = 'the quick brown fox jumps over lazy dog hello world'.split(' ');

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const pruneArgs = (out: string, steps: number) => [
  'prune', '--model', modelDir, '--forget', forget, '--retain', retain, '--steps', String(steps),
  '--collect-tokens', '200', '--eval-tokens', '200', '--ff-frac', '0.05', '--out', out,
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'excise-cli-'));
  modelDir = join(dir, 'llama');
  cpSync(join(goldenDir, 'llama'), modelDir, { recursive: true });
  cpSync(join(root, 'test', 'fixtures', 'tokenizer', 'tokenizer.json'), join(modelDir, 'tokenizer.json'));
  forget = join(dir, 'code.jsonl');
  writeFileSync(forget, documents(CODE, 60, 1).map((text) => JSON.stringify({ text })).join('\n') + '\n');
  retain = join(dir, 'prose.jsonl');
  writeFileSync(retain, documents(PROSE, 60, 2).map((text) => JSON.stringify({ text })).join('\n') + '\n');
  extra = join(dir, 'mixed');
  mkdirSync(extra);
  documents([...CODE, ...PROSE], 5, 3).forEach((text, i) => writeFileSync(join(extra, `doc${i}.txt`), text));
  empty = join(dir, 'empty.jsonl');
  writeFileSync(empty, '');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('excise prune', async () => {
  it('runs end to end and writes the report, plots, state and the pruned model', async () => {
    const out = join(dir, 'run');
    const r = await excise([...pruneArgs(out, 2), '--eval', `mixed=${extra}`]);
    expect(r.stderr).not.toMatch(/excise: /);
    expect(r.status).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['model', 'plot.png', 'plot.svg', 'report.json', 'state.json', 'steps.txt']);

    const report: PruneReport = readJson(join(out, 'report.json'));
    expect(report.steps.map((s) => s.step)).toEqual([0, 1, 2]);
    expect(Object.keys(report.steps[2].metrics)).toEqual(['forget', 'retain', 'mixed']);
    expect(report.stoppedBy).toBe('steps');
    expect(report.totalPruned.ff).toBe(2 * Math.round(0.05 * 2 * 96));
    expect(readFileSync(join(out, 'steps.txt'), 'utf8')).toBe(formatStepsTable(report));
    expect(r.stdout).toContain(formatStepsTable(report));
    expect(readFileSync(join(out, 'plot.svg'), 'utf8')).toContain('llama: selective pruning');
    expect(readFileSync(join(out, 'plot.png')).subarray(1, 4).toString()).toBe('PNG');
    const state = readJson(join(out, 'state.json'));
    expect(state.completedSteps).toBe(2);
    expect(state.selections).toHaveLength(2);
    expect(state.cli).toMatchObject({ model: modelDir, forget, retain, steps: 2, ffFrac: 0.05, evals: { mixed: extra } });
    const meta = readJson(join(out, 'model', 'excise.json'));
    expect(meta.report.steps).toEqual(report.steps);
    expect(meta.options).toEqual(state.cli);
    expect(meta.pruned.ff.reduce((a: number, b: number) => a + b, 0)).toBe(report.totalPruned.ff);

    // Not a terminal: no progress bars, one line per finished step.
    expect(r.stderr).not.toContain('\r');
    const stepLines = r.stderr.trim().split('\n').filter((l) => /^step /.test(l));
    expect(stepLines).toHaveLength(3);
    expect(stepLines[0]).toMatch(/^step 0\/2 \(before pruning\)/);

    // The saved model reloads and scores the forget set's evaluation part exactly as the last step did.
    const model = await loadModel(join(out, 'model'));
    try {
      const part = splitDataset(loadDataset(forget), { evalFraction: 0.1, seed: 0 }).evaluate;
      const ev = await model.evaluate(part, { maxTokens: 200 });
      const last = report.steps[2].metrics.forget;
      expect({ tokens: ev.tokens, loss: ev.loss, top1: ev.top1, topk: ev.topk }).toEqual({ tokens: last.tokens, loss: last.loss, top1: last.top1, topk: last.topk });
      expect(Number.isNaN(ev.top1Skip) ? null : ev.top1Skip).toEqual(last.top1Skip);
    } finally {
      await model.dispose();
    }
  });

  it('resumes an interrupted run (Ctrl-C after step 1) to the same result as an uninterrupted one', async () => {
    const out1 = join(dir, 'uninterrupted');
    const out2 = join(dir, 'interrupted');
    expect((await excise(pruneArgs(out1, 3))).status).toBe(0);

    // The test hook sends the process a real SIGINT once step 1's state is written.
    const stopped = await excise(pruneArgs(out2, 3), { EXCISE_TEST_SIGINT_AFTER_STEP: '1' });
    expect(stopped.status).toBe(130);
    expect(stopped.stderr).toContain('stopping after the current batch');
    expect(stopped.stderr).toContain('stopped after step 1 of 3');
    // Run from source here: the printed command runs the same way (npx tsx lib/cli/main.ts, from the repository).
    expect(stopped.stderr).toContain(`excise: to continue, run: npx tsx lib/cli/main.ts prune --out ${out2} --resume\n`);
    expect(existsSync(join(out2, 'model'))).toBe(false);
    expect(readJson(join(out2, 'state.json')).completedSteps).toBe(1);
    const partial: PruneReport = readJson(join(out2, 'report.json'));
    expect(partial.stoppedBy).toBe('aborted');
    expect(partial.steps).toHaveLength(2);

    // A setting that differs from the interrupted run's is refused.
    const conflicting = await excise(['prune', '--out', out2, '--resume', '--ff-frac', '0.1']);
    expect(conflicting.status).toBe(2);
    expect(conflicting.stderr).toMatch(/^excise: --resume: --ff-frac 0\.1 differs from the interrupted run's 0\.05/);

    const resumed = await excise(['prune', '--out', out2, '--resume']);
    expect(resumed.stderr).not.toMatch(/excise: /);
    expect(resumed.status).toBe(0);
    const a: PruneReport = readJson(join(out1, 'report.json'));
    const b: PruneReport = readJson(join(out2, 'report.json'));
    expect(b.stoppedBy).toBe('steps');
    expect(b.steps.map((s) => ({ step: s.step, metrics: s.metrics, pruned: s.pruned }))).toEqual(a.steps.map((s) => ({ step: s.step, metrics: s.metrics, pruned: s.pruned })));
    expect(readJson(join(out2, 'state.json')).selections).toEqual(readJson(join(out1, 'state.json')).selections);
    expect(readFileSync(join(out2, 'model', 'model.safetensors')).equals(readFileSync(join(out1, 'model', 'model.safetensors')))).toBe(true);
  });

  it('refuses bad input with one clear line, a non-zero exit and nothing written', async () => {
    const link = join(dir, 'same-as-code.jsonl');
    symlinkSync(forget, link);
    const base = ['prune', '--model', modelDir, '--steps', '1', '--collect-tokens', '50', '--eval-tokens', '50'];
    const cases: Array<{ args: string[]; status: number; message: RegExp }> = [
      { args: ['--forget', forget, '--retain', retain, '--bogus'], status: 2, message: /unknown option --bogus/ },
      { args: ['--forget', forget, '--retain', retain, '--ff-frac', '1.5'], status: 2, message: /--ff-frac: expected a fraction in \[0, 1\], received "1\.5"/ },
      { args: ['--forget', forget, '--retain', retain, '--ff-frac', '0', '--attn-frac', '0'], status: 2, message: /--ff-frac and --attn-frac are both 0/ },
      { args: ['--forget', forget, '--retain', retain, '--steps', '0'], status: 2, message: /--steps: expected a positive integer/ },
      { args: ['--forget', forget], status: 2, message: /missing required option --retain/ },
      { args: ['--forget', join(dir, 'missing.jsonl'), '--retain', retain], status: 1, message: /--forget: dataset not found: .*missing\.jsonl \[ERR_DATASET_NOT_FOUND\]/ },
      { args: ['--forget', forget, '--retain', empty], status: 1, message: /--retain: dataset .*empty\.jsonl has no documents.*\[ERR_DATASET_EMPTY\]/ },
      { args: ['--forget', forget, '--retain', link], status: 2, message: /--forget and --retain are the same data/ },
      { args: ['--forget', forget, '--retain', retain, '--eval', 'forget=x'], status: 2, message: /--eval: the name "forget" is reserved/ },
    ];
    for (const [i, { args, status, message }] of cases.entries()) {
      const out = join(dir, `bad-${i}`);
      const r = await excise([...base, ...args, '--out', out]);
      expect(r.status, args.join(' ')).toBe(status);
      expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(/^excise: /);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stdout).toBe('');
      expect(existsSync(out), args.join(' ')).toBe(false);
    }

    // An output folder with content is kept as it is.
    const used = join(dir, 'used');
    mkdirSync(used);
    writeFileSync(join(used, 'notes.txt'), 'mine');
    const r = await excise([...base, '--forget', forget, '--retain', retain, '--out', used]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^excise: --out .*used is not empty; pass --overwrite .*\[ERR_OUTPUT_EXISTS\]\n$/);
    expect(readdirSync(used)).toEqual(['notes.txt']);
    // --resume without a state to resume from.
    const noState = await excise(['prune', '--out', used, '--resume']);
    expect(noState.status).toBe(2);
    expect(noState.stderr).toMatch(/state\.json not found/);
  });
});

describe('excise eval, collect, merge, info', async () => {
  it('eval prints the metrics of model.evaluate()', async () => {
    const r = await excise(['eval', '--model', modelDir, '--data', forget, '--tokens', '300', '--json']);
    expect(r.status).toBe(0);
    const printed = JSON.parse(r.stdout);
    const model = await loadModel(modelDir);
    try {
      const ev = await model.evaluate(loadDataset(forget), { maxTokens: 300 });
      expect(printed).toMatchObject({ model: modelDir, data: forget, device: 'cpu', dtype: 'float32', tokens: ev.tokens, loss: ev.loss, top1: ev.top1, topk: ev.topk, topK: 10 });
    } finally {
      await model.dispose();
    }
    const text = await excise(['eval', '--model', modelDir, '--data', forget, '--tokens', '300']);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^loss\\s+${printed.loss.toFixed(4)}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^top1\\s+${(printed.top1 * 100).toFixed(1)}%$`, 'm'));
    expect(text.stdout).toMatch(/^perplexity\s+\d+\.\d\d$/m);
  });

  it('collect writes statistics that merge adds up exactly', async () => {
    const a = join(dir, 'a.safetensors');
    const b = join(dir, 'b.safetensors');
    const m = join(dir, 'merged.safetensors');
    expect((await await excise(['collect', '--model', modelDir, '--data', forget, '--tokens', '150', '--out', a])).status).toBe(0);
    const rb = await excise(['collect', '--model', modelDir, '--data', retain, '--tokens', '120', '--hooks', 'mlp,attn', '--out', b]);
    expect(rb.status).toBe(0);
    expect(rb.stdout).toContain('collected 4 hook points over 120 tokens');
    const rm = await excise(['merge', '--out', m, a, b]);
    expect(rm.status).toBe(0);
    expect(rm.stdout).toContain('270 tokens');
    const [sa, sb, sm] = await Promise.all([a, b, m].map((f) => ActivationStats.load(f)));
    expect(sa.tokens).toBe(150);
    expect(sm.tokens).toBe(270);
    expect(sm.hookNames.sort()).toEqual(['blocks.0.attn.pre_out', 'blocks.0.mlp.pre_out', 'blocks.1.attn.pre_out', 'blocks.1.mlp.pre_out']);
    const expected = sa.raw('blocks.1.mlp.pre_out').sumAbs.map((v, i) => v + sb.raw('blocks.1.mlp.pre_out').sumAbs[i]);
    expect(sm.raw('blocks.1.mlp.pre_out').sumAbs).toEqual(expected);

    const onlyMlp = join(dir, 'mlp.safetensors');
    expect((await await excise(['collect', '--model', modelDir, '--data', forget, '--tokens', '50', '--hooks', 'mlp', '--out', onlyMlp])).status).toBe(0);
    expect((await ActivationStats.load(onlyMlp)).hookNames.sort()).toEqual(['blocks.0.mlp.pre_out', 'blocks.1.mlp.pre_out']);
    // Existing outputs and a lone input are refused.
    expect((await await excise(['collect', '--model', modelDir, '--data', forget, '--out', a])).stderr).toMatch(/already exists.*\[ERR_OUTPUT_EXISTS\]/);
    const lone = await excise(['merge', '--out', join(dir, 'x.safetensors'), a]);
    expect(lone.status).toBe(2);
    expect(lone.stderr).toMatch(/at least two statistics files/);
  });

  it('info describes the model and the runtime', async () => {
    const r = await excise(['info', '--model', modelDir, '--json']);
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    const model = await loadModel(modelDir);
    const parameters = model.parameterCount;
    await model.dispose();
    expect(info).toEqual({
      model: modelDir, architecture: 'LlamaForCausalLM', family: 'llama', layers: 2, dModel: 64, dMlp: 96, gatedMlp: true,
      heads: 4, kvHeads: 2, headDim: 16, vocab: 97, maxPositions: 2048, parameters, tokenizer: true, device: 'cpu', dtype: 'float32',
      torchVersion: runtimeInfo().torchVersion, cudaAvailable: runtimeInfo().cudaAvailable, cudaDeviceCount: runtimeInfo().cudaDeviceCount,
    });
    const text = await excise(['info', '--model', modelDir]);
    expect(text.stdout).toMatch(/^architecture\s+LlamaForCausalLM \(family llama\)$/m);
    expect(text.stdout).toMatch(/^heads\s+4 \(kv heads 2, head dim 16\)/m);
    expect(text.stdout).toMatch(new RegExp(`^libtorch\\s+${runtimeInfo().torchVersion.replace(/\./g, '\\.')}`, 'm'));
    const missing = await excise(['info', '--model', join(dir, 'nope')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^excise: .*nope: model folder not found \(excise reads a Hugging Face model folder: .*\) \[ERR_MODEL_NOT_FOUND\]\n$/);
  });

  it('help, version and unknown commands', async () => {
    const help = await excise(['--help']);
    expect(help.status).toBe(0);
    for (const c of ['prune', 'eval', 'collect', 'merge', 'info']) expect(help.stdout).toMatch(new RegExp(`^  ${c}\\s`, 'm'));
    const pruneHelp = await excise(['prune', '--help']);
    expect(pruneHelp.status).toBe(0);
    expect(pruneHelp.stdout).toMatch(/^Usage: excise prune/);
    expect(pruneHelp.stdout).toContain('--ff-frac');
    expect((await excise(['--version'])).stdout.trim()).toBe(`excise ${readJson(join(root, 'package.json')).version}`);
    const none = await excise([]);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('Usage: excise <command>');
    const unknown = await excise(['frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^excise: unknown command "frobnicate"/);
  });
});

describe('flag parsing helpers (args.ts)', () => {
  it('parsePositiveNumber (--lr, --grad-lr, --attack-lr) and optionalCount', () => {
    expect(parsePositiveNumber('lr', '3e-4')).toBe(0.0003);
    expect(parsePositiveNumber('grad-lr', '2')).toBe(2);
    for (const bad of ['0', '-1e-4', 'abc', 'Infinity', ' ']) {
      expect(() => parsePositiveNumber('lr', bad)).toThrow(`--lr: expected a positive number, received ${JSON.stringify(bad)}`);
    }
    expect(optionalCount({}, 'batch-size')).toBeUndefined();
    expect(optionalCount({ 'batch-size': '4' }, 'batch-size')).toBe(4);
    expect(optionalCount({ tokens: '2k' }, 'tokens', { suffixes: true })).toBe(2000);
    expect(optionalCount({ 'node-rank': '0' }, 'node-rank', { allowZero: true })).toBe(0);
    expect(() => optionalCount({ 'batch-size': '0' }, 'batch-size')).toThrow('--batch-size: expected a positive integer, received "0"');
  });
});
