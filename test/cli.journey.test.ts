// "Forget this language, keep the rest" on a user's own files, through the `excise` command as a
// user runs it (a child process), on the bundled demo model: folders of source files, jsonl with
// another text field, files of any extension, model paths that are not model folders, output
// locations that cannot be written, the saved model's dtype, pruning from saved statistics, the
// pruning history in `info`, and the resume command printed where excise is a local dependency.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as datasets from '../lib/data/datasets.js';
import { ActivationStats } from '../lib/method/stats.js';
import { scoreNeurons } from '../lib/method/scoring.js';
import { selectNeurons } from '../lib/method/selection.js';
import { invocation } from '../lib/cli/common.js';

const root = resolve(__dirname, '..');
const demo = join(root, 'assets', 'demo-model');
// The dataset layer's folder reading by extension and long-document windows (issue 10's data items).
const HAS_EXTENSIONS = 'DEFAULT_EXTENSIONS' in datasets;

let dir: string;
let pyDir: string;
let proseDir: string;
let jsDir: string;
let codeJsonl: string;
let proseContent: string;
let proseText: string;

interface Run { status: number | null; stdout: string; stderr: string }

/** Runs a command without blocking the test process (a long spawnSync starves vitest's worker RPC). */
function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolveRun({ status, stdout, stderr });
    });
  });
}

function excise(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return run(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli', 'main.ts'), ...args], { cwd: root, env: { ...process.env, ...env } });
}

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

/** The dtype of each tensor in a safetensors file's header. */
function headerDtypes(file: string): Set<string> {
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const header = Buffer.alloc(Number(len.readBigUInt64LE(0)));
    readSync(fd, header, 0, header.length, 8);
    const parsed = JSON.parse(header.toString('utf8')) as Record<string, { dtype: string }>;
    return new Set(Object.entries(parsed).filter(([k]) => k !== '__metadata__').map(([, v]) => v.dtype));
  } finally {
    closeSync(fd);
  }
}

async function firstDocuments(file: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for await (const d of datasets.loadDataset(file).documents()) {
    out.push(d);
    if (out.length === n) break;
  }
  return out;
}

/** A folder no one here can write into: a read-only one for a user, /sys for root (which ignores permissions). */
function unwritableFolder(): string | undefined {
  const candidate = process.getuid?.() === 0 ? '/sys' : join(dir, 'read-only');
  if (candidate !== '/sys') {
    mkdirSync(candidate);
    chmodSync(candidate, 0o555);
  }
  try {
    rmdirSync(mkdtempSync(join(candidate, 'probe-')));
    return undefined; // writable after all
  } catch {
    return existsSync(candidate) ? candidate : undefined;
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'excise-journey-'));
  const corpora = join(root, 'assets', 'corpora');
  const python = await firstDocuments(join(corpora, 'python', 'test.jsonl.gz'), 30);
  const prose = await firstDocuments(join(corpora, 'prose', 'test.jsonl.gz'), 30);
  const js = await firstDocuments(join(corpora, 'javascript', 'test.jsonl.gz'), 8);
  // A folder like a Python library: .py files, a .txt note and compiled leftovers.
  pyDir = join(dir, 'pylib');
  mkdirSync(join(pyDir, 'pkg'), { recursive: true });
  python.forEach((text, i) => writeFileSync(join(pyDir, i % 3 === 0 ? 'pkg' : '', `mod${i}.py`), text));
  writeFileSync(join(pyDir, 'NOTES.txt'), 'This folder holds Python modules.\n');
  writeFileSync(join(pyDir, 'pkg', 'mod0.cpython-311.pyc'), Buffer.from([0xa7, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0]));
  // English documentation as Markdown, JavaScript sources for an extra set.
  proseDir = join(dir, 'docs');
  mkdirSync(proseDir);
  prose.forEach((text, i) => writeFileSync(join(proseDir, `page${i}.md`), text));
  jsDir = join(dir, 'js');
  mkdirSync(jsDir);
  js.forEach((text, i) => writeFileSync(join(jsDir, `file${i}.js`), text));
  // The same texts as jsonl: code under "text", prose under "content" and, for comparison, "text".
  codeJsonl = join(dir, 'code.jsonl');
  writeFileSync(codeJsonl, python.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  proseContent = join(dir, 'prose-content.jsonl');
  writeFileSync(proseContent, prose.map((content, i) => JSON.stringify({ id: i, content })).join('\n') + '\n');
  proseText = join(dir, 'prose-text.jsonl');
  writeFileSync(proseText, prose.map((text) => JSON.stringify({ text })).join('\n') + '\n');
});

afterAll(() => {
  if (process.getuid?.() !== 0 && existsSync(join(dir, 'read-only'))) chmodSync(join(dir, 'read-only'), 0o755);
  rmSync(dir, { recursive: true, force: true });
});

const QUICK = ['--steps', '1', '--collect-tokens', '1500', '--eval-tokens', '600', '--ff-frac', '0.02'];

describe.runIf(HAS_EXTENSIONS)('folders of source files', async () => {
  it('prunes with a folder of .py files as forget and Markdown as retain, saying what each folder read', async () => {
    const out = join(dir, 'no-python');
    const r = await excise(['prune', '--model', demo, '--forget', pyDir, '--ext', 'forget=py', '--retain', proseDir, '--eval', `js=${jsDir}`, ...QUICK, '--out', out]);
    expect(r.stderr).not.toMatch(/excise: /);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`--forget: ${pyDir}: 30 files (30 .py); not read: 1 .pyc, 1 .txt (--ext chooses)\n`);
    expect(r.stderr).toContain(`--retain: ${proseDir}: 30 files (30 .md)\n`);
    expect(r.stderr).toContain(`--eval js: ${jsDir}: 8 files (8 .js)\n`);
    const report = readJson(join(out, 'report.json'));
    expect(report.steps.map((s: { step: number }) => s.step)).toEqual([0, 1]);
    expect(readJson(join(out, 'state.json')).cli.data).toEqual({ forget: { extensions: ['py'] } });
  });

  it('eval reads only the chosen extensions, and says so', async () => {
    const all = await excise(['eval', '--model', demo, '--data', pyDir, '--tokens', '400', '--json']);
    const py = await excise(['eval', '--model', demo, '--data', pyDir, '--ext', '.PY', '--tokens', '400', '--json']);
    expect(all.status).toBe(0);
    expect(py.status).toBe(0);
    expect(all.stderr).toContain(`--data: ${pyDir}: 31 files (30 .py, 1 .txt); not read: 1 .pyc`);
    expect(py.stderr).toContain(`--data: ${pyDir}: 30 files (30 .py); not read: 1 .pyc, 1 .txt`);
    const txt = await excise(['eval', '--model', demo, '--data', pyDir, '--ext', 'txt', '--tokens', '400', '--json']);
    expect(JSON.parse(txt.stdout).tokens).toBeLessThan(JSON.parse(py.stdout).tokens);
  });

  it('long documents: read in windows by default, truncated with --long-docs truncate, and said so', async () => {
    const long = join(dir, 'long.txt');
    writeFileSync(long, readFileSync(join(pyDir, 'mod1.py'), 'utf8').repeat(6));
    const split = await excise(['eval', '--model', demo, '--data', long, '--max-length', '64', '--json']);
    const cut = await excise(['eval', '--model', demo, '--data', long, '--max-length', '64', '--long-docs', 'truncate', '--json']);
    expect(split.status).toBe(0);
    expect(cut.status).toBe(0);
    expect(split.stderr).toMatch(/^--data: \d+ tokens used; 1 document longer than 64 tokens read in windows\n/m);
    expect(cut.stderr).toMatch(/^--data: 64 tokens used; 1 document longer than 64 tokens truncated, \d+ tokens dropped \(--long-docs split reads them whole\)\n/m);
    expect(JSON.parse(cut.stdout).tokens).toBe(63);
    expect(JSON.parse(split.stdout).tokens).toBeGreaterThan(63);
  });
});

describe('data flags', async () => {
  it('--text-field reads another jsonl field, as the same texts under "text" read', async () => {
    const refused = await excise(['eval', '--model', demo, '--data', proseContent, '--tokens', '300']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/no field "text" \(fields: id, content\); choose the text field with the --text-field flag \[ERR_DATASET_INVALID\]\n$/);
    const withFlag = await excise(['eval', '--model', demo, '--data', proseContent, '--text-field', 'content', '--tokens', '300', '--json']);
    const asText = await excise(['eval', '--model', demo, '--data', proseText, '--tokens', '300', '--json']);
    expect(withFlag.status).toBe(0);
    const a = JSON.parse(withFlag.stdout);
    const b = JSON.parse(asText.stdout);
    expect({ tokens: a.tokens, loss: a.loss, top1: a.top1 }).toEqual({ tokens: b.tokens, loss: b.loss, top1: b.top1 });
  });

  it('--format reads a file of any extension', async () => {
    const odd = join(dir, 'snippet.xyz');
    writeFileSync(odd, readFileSync(join(pyDir, 'mod1.py')));
    const refused = await excise(['eval', '--model', demo, '--data', odd]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/--format txt/);
    expect(refused.stderr).not.toMatch(/format: '/);
    const read = await excise(['eval', '--model', demo, '--data', odd, '--format', 'txt', '--tokens', '200', '--json']);
    expect(read.status).toBe(0);
    expect(JSON.parse(read.stdout).tokens).toBeGreaterThan(0);
    const bad = await excise(['eval', '--model', demo, '--data', odd, '--format', 'csv']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('excise: --format: expected txt, jsonl or parquet, received "csv"\n');
    const badLong = await excise(['eval', '--model', demo, '--data', odd, '--long-docs', 'wrap']);
    expect(badLong.status).toBe(2);
    expect(badLong.stderr).toBe('excise: --long-docs: expected split or truncate, received "wrap"\n');
  });

  it('on prune, SET=VALUE gives one dataset its own flag; the settings are kept for --resume', async () => {
    const out = join(dir, 'per-set');
    const r = await excise(['prune', '--model', demo, '--forget', codeJsonl, '--retain', proseContent, '--text-field', 'retain=content', ...QUICK, '--out', out]);
    expect(r.stderr).not.toMatch(/excise: /);
    expect(r.status).toBe(0);
    expect(readJson(join(out, 'state.json')).cli.data).toEqual({ retain: { textField: 'content' } });
    // Given for every set, "content" is missing from the forget file, and the message says which flag.
    const all = await excise(['prune', '--model', demo, '--forget', codeJsonl, '--retain', proseContent, '--text-field', 'content', ...QUICK, '--out', join(dir, 'per-set-2')]);
    expect(all.status).toBe(1);
    expect(all.stderr).toMatch(/^excise: --forget: .*code\.jsonl:1: no field "content" .*--text-field/);
    expect(existsSync(join(dir, 'per-set-2'))).toBe(false);
  });
});

describe('model paths', async () => {
  it('a file, a GGUF, .bin-only weights and a Hub id each say what excise reads and what to do', async () => {
    const gguf = join(dir, 'model.Q4_K_M.gguf');
    writeFileSync(gguf, 'GGUF');
    const binOnly = join(dir, 'bin-only');
    mkdirSync(binOnly);
    writeFileSync(join(binOnly, 'config.json'), readFileSync(join(demo, 'config.json')));
    writeFileSync(join(binOnly, 'pytorch_model.bin'), 'x');
    const cases: Array<[string, RegExp]> = [
      [join(demo, 'model.safetensors'), new RegExp(`model\\.safetensors is a file; excise takes the model's folder, not one of its files: pass ${demo} \\(excise reads a Hugging Face model folder: config\\.json, model\\.safetensors .*\\) \\[ERR_MODEL_NOT_FOUND\\]$`)],
      [gguf, /model\.Q4_K_M\.gguf is a GGUF file \(llama\.cpp's format\), which excise does not read; excise reads a Hugging Face model folder: .*Use the original Hugging Face checkpoint the GGUF was made from \[ERR_MODEL_NOT_FOUND\]$/],
      [binOnly, /bin-only holds PyTorch \.bin weights but no safetensors; .*save_pretrained\(out, safe_serialization=True\).* \[ERR_WEIGHTS_MISSING\]$/],
      ['EleutherAI/pythia-410m', /"EleutherAI\/pythia-410m" looks like a Hugging Face Hub id, but excise does not download models: download it first \(e\.g\. "hf download EleutherAI\/pythia-410m --local-dir models\/pythia-410m"\) and pass that folder \(models\/pythia-410m\) \[ERR_MODEL_NOT_FOUND\]$/],
    ];
    for (const [model, message] of cases) {
      const info = await excise(['info', '--model', model]);
      expect(info.status, model).toBe(1);
      expect(info.stderr.trimEnd().split('\n'), model).toHaveLength(1);
      expect(info.stderr.trimEnd(), model).toMatch(message);
      // prune refuses it the same way before reading any data or writing anything.
      const out = join(dir, 'never');
      const prune = await excise(['prune', '--model', model, '--forget', codeJsonl, '--retain', proseText, '--out', out]);
      expect(prune.status, model).toBe(1);
      expect(prune.stderr.trimEnd(), model).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe('output locations', async () => {
  it('an output that cannot be written is refused before any work, with one line and nothing left behind', async () => {
    const ro = unwritableFolder();
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const targets: Array<[string, RegExp]> = [[join(file, 'run'), /--out .*a-file\/run: cannot be created, .*a-file is a file \[ERR_OUTPUT_EXISTS\]/]];
    if (ro) targets.push([join(ro, 'excise-run'), /--out: cannot write into .* \[ERR_IO\]/]);
    for (const [out, message] of targets) {
      const prune = await excise(['prune', '--model', demo, '--forget', codeJsonl, '--retain', proseText, ...QUICK, '--out', out]);
      expect(prune.status, out).toBe(1);
      expect(prune.stderr, out).toMatch(new RegExp(`^excise: ${message.source}\\n$`));
      expect(prune.stdout).toBe('');
      const collect = await excise(['collect', '--model', demo, '--data', codeJsonl, '--out', join(out, 'stats.safetensors')]);
      expect(collect.status).toBe(1);
      expect(collect.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(collect.stderr).toMatch(/\[ERR_(IO|OUTPUT_EXISTS)\]\n$/);
      expect(collect.stderr).not.toMatch(/unexpected error/);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('a bad line late in an --eval file fails the run and leaves no output folder', async () => {
    const bad = join(dir, 'late-bad.jsonl');
    writeFileSync(bad, readFileSync(proseText, 'utf8') + '{"text": "unterminated\n');
    const out = join(dir, 'parent-made', 'run');
    const r = await excise(['prune', '--model', demo, '--forget', codeJsonl, '--retain', proseText, '--eval', `late=${bad}`, ...QUICK, '--eval-tokens', '100k', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^excise: .*late-bad\.jsonl:31: .*\[ERR_DATASET_INVALID\]\n$/m);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(existsSync(join(dir, 'parent-made'))).toBe(false);
  });

  it('the pruned model keeps the checkpoint dtype whatever --dtype computed in, unless --save-dtype says otherwise', async () => {
    const out = join(dir, 'bf16');
    const r = await excise(['prune', '--model', demo, '--forget', codeJsonl, '--retain', proseText, ...QUICK, '--dtype', 'bfloat16', '--out', out]);
    expect(r.stderr).not.toMatch(/excise: /);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`pruned model: ${join(out, 'model')} (saved in float32, the checkpoint's dtype; computed in bfloat16; --save-dtype chooses)`);
    expect(headerDtypes(join(out, 'model', 'model.safetensors'))).toEqual(new Set(['F32']));
    expect(readJson(join(out, 'model', 'config.json')).torch_dtype).toBe('float32');

    const out2 = join(dir, 'bf16-saved');
    const r2 = await excise(['prune', '--model', demo, '--forget', codeJsonl, '--retain', proseText, ...QUICK, '--save-dtype', 'bfloat16', '--out', out2]);
    expect(r2.status).toBe(0);
    expect(headerDtypes(join(out2, 'model', 'model.safetensors'))).toEqual(new Set(['BF16']));
    expect(readJson(join(out2, 'model', 'config.json')).torch_dtype).toBe('bfloat16');
  });
});

describe('statistics', async () => {
  it('collect / merge output feeds prune --forget-stats --retain-stats; info shows the pruning history', async () => {
    const a = join(dir, 'forget-a.safetensors');
    const b = join(dir, 'forget-b.safetensors');
    const forgetStats = join(dir, 'forget.safetensors');
    const retainStats = join(dir, 'retain.safetensors');
    expect((await excise(['collect', '--model', demo, '--data', codeJsonl, '--tokens', '800', '--out', a])).status).toBe(0);
    expect((await excise(['collect', '--model', demo, '--data', join(pyDir, 'mod2.py'), '--format', 'txt', '--out', b])).status).toBe(0);
    expect((await excise(['merge', '--out', forgetStats, a, b])).status).toBe(0);
    const rc = await excise(['collect', '--model', demo, '--data', proseContent, '--text-field', 'content', '--tokens', '800', '--out', retainStats]);
    expect(rc.status).toBe(0);

    const out = join(dir, 'from-stats');
    const r = await excise(['prune', '--model', demo, '--forget-stats', forgetStats, '--retain-stats', retainStats, '--ff-frac', '0.05',
      '--eval', `python=${codeJsonl}`, '--eval-tokens', '400', '--out', out]);
    expect(r.stderr).not.toMatch(/excise: /);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^pruned from statistics: 102 FF neurons \(5\.0% of all\)/m);
    expect(r.stdout).toMatch(/^python: top-1 \d+\.\d% -> \d+\.\d% \([+-]\d+\.\d\)$/m);

    // Exactly the neurons the statistics select.
    const [fs, rs] = await Promise.all([ActivationStats.load(forgetStats), ActivationStats.load(retainStats)]);
    const expected = selectNeurons(scoreNeurons(fs, rs), { ffFrac: 0.05, attnFrac: 0 });
    const meta = readJson(join(out, 'model', 'excise.json'));
    expect(meta.prunes).toHaveLength(1);
    expect(meta.prunes[0].selection.ff).toEqual(expected.ff);
    expect(meta.fromStatistics.forgetStats).toEqual({ file: forgetStats, tokens: fs.tokens });
    expect(readJson(join(out, 'report.json')).evals.python.after.top1).toBe(meta.fromStatistics.evals.python.after.top1);

    const info = await excise(['info', '--model', join(out, 'model')]);
    expect(info.status).toBe(0);
    expect(info.stdout).toMatch(/^pruned\s+102 FF neurons \(5\.0%\), 0 attention neurons \(0\.0%\) in 1 prune call \(excise\.json\)$/m);
    expect(info.stdout).toMatch(new RegExp(`^pruned from\\s+${demo}$`, 'm'));
    expect(info.stdout).toMatch(new RegExp(`^forget\\s+${forgetStats} \\(${fs.tokens} tokens\\)$`, 'm'));
    const json = JSON.parse((await excise(['info', '--model', join(out, 'model'), '--json'])).stdout);
    expect(json.excise.pruned.ff.reduce((x: number, y: number) => x + y, 0)).toBe(102);

    // The iterative run's history: settings, data and accuracies before and after.
    const run = readJson(join(dir, 'per-set', 'model', 'excise.json'));
    const infoRun = await excise(['info', '--model', join(dir, 'per-set', 'model')]);
    expect(infoRun.stdout).toMatch(/^method\s+selective pruning, 1 steps of ff-frac 0\.02, attn-frac 0, scoring abs$/m);
    expect(infoRun.stdout).toMatch(new RegExp(`^retain\\s+${proseContent}$`, 'm'));
    const f0 = (run.report.steps[0].metrics.forget.top1 * 100).toFixed(1);
    expect(infoRun.stdout).toMatch(new RegExp(`^top-1 forget\\s+${f0}% -> \\d+\\.\\d% \\(step 0 -> 1\\)$`, 'm'));

    // Statistics from another model are refused, naming both.
    const other = await excise(['prune', '--model', join(root, 'test', 'fixtures', 'hf-golden', 'llama'), '--forget-stats', forgetStats, '--retain-stats', retainStats, '--out', join(dir, 'other')]);
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/--forget-stats: the statistics were collected on a LlamaForCausalLM with 4 layers/);
    expect(existsSync(join(dir, 'other'))).toBe(false);
    const mixed = await excise(['prune', '--model', demo, '--forget-stats', forgetStats, '--retain-stats', retainStats, '--steps', '2']);
    expect(mixed.status).toBe(2);
    expect(mixed.stderr).toMatch(/--steps does not apply when pruning from --forget-stats/);

    // --devices reaches the model pruned from statistics: split over two stages it writes the same
    // bytes; five stages for four layers are refused (the flag was once parsed and ignored here).
    const split = await excise(['prune', '--model', demo, '--forget-stats', forgetStats, '--retain-stats', retainStats, '--ff-frac', '0.05',
      '--devices', 'cpu,cpu', '--out', join(dir, 'from-stats-split')]);
    expect(split.stderr).not.toMatch(/excise: /);
    expect(readFileSync(join(dir, 'from-stats-split', 'model', 'model.safetensors')).equals(readFileSync(join(out, 'model', 'model.safetensors')))).toBe(true);
    const tooMany = await excise(['prune', '--model', demo, '--forget-stats', forgetStats, '--retain-stats', retainStats, '--devices', 'cpu,cpu,cpu,cpu,cpu', '--out', join(dir, 'five')]);
    expect(tooMany.status).toBe(1);
    expect(tooMany.stderr).toMatch(/devices: 5 devices for a model of 4 layers/);
    const both = await excise(['prune', '--model', demo, '--forget-stats', forgetStats, '--retain-stats', retainStats, '--device', 'cpu', '--devices', 'cpu,cpu', '--out', join(dir, 'both')]);
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/--device and --devices: give one of them/);
  });
});

describe('resume command', async () => {
  it('is printed as it runs where the user is: npx excise in a project with excise as a local dependency', async () => {
    // The package as installed: dist/ built, linked into a project's node_modules with its bin.
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'pipe' });
    chmodSync(join(root, 'dist', 'cli', 'main.js'), 0o755); // as npm does for a package's bin
    const project = join(dir, 'project');
    mkdirSync(join(project, 'node_modules', '.bin'), { recursive: true });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'my-project', private: true, dependencies: { excise: '*' } }));
    symlinkSync(root, join(project, 'node_modules', 'excise'), 'dir');
    symlinkSync(join('..', 'excise', 'dist', 'cli', 'main.js'), join(project, 'node_modules', '.bin', 'excise'));
    // No excise on PATH: node (and npx beside it) and the system's tools only.
    const env = { ...process.env, PATH: [dirname(process.execPath), '/usr/bin', '/bin'].join(':'), npm_config_offline: 'true' };
    const out = join(project, 'runs', 'no-python');
    const args = ['prune', '--model', demo, '--forget', codeJsonl, '--retain', proseText, '--steps', '2', '--collect-tokens', '800', '--eval-tokens', '300', '--out', out];
    const stopped = await run(join(project, 'node_modules', '.bin', 'excise'), args, { cwd: project, env: { ...env, EXCISE_TEST_SIGINT_AFTER_STEP: '1' } });
    expect(stopped.status).toBe(130);
    const hint = /^excise: to continue, run: (.*)$/m.exec(stopped.stderr)?.[1];
    expect(hint).toBe(`npx excise prune --out ${out} --resume`);
    // The printed command runs, from there, as printed.
    const resumed = await run('sh', ['-c', hint!], { cwd: project, env });
    expect(resumed.stderr).not.toMatch(/excise: /);
    expect(resumed.status).toBe(0);
    expect(readJson(join(out, 'state.json')).completedSteps).toBe(2);
    expect(existsSync(join(out, 'model', 'model.safetensors'))).toBe(true);

    // With excise on PATH (a global install), the plain name; from source, tsx.
    // Outside the project, npx would not find it: node and the script.
    const bin = join(project, 'node_modules', '.bin', 'excise');
    expect(invocation({ PATH: join(project, 'node_modules', '.bin') }, bin, root)).toBe('excise');
    expect(invocation({ PATH: '/usr/bin' }, join(root, 'lib', 'cli', 'main.ts'), root)).toBe('npx tsx lib/cli/main.ts');
    expect(invocation({ PATH: '/usr/bin' }, bin, root)).toBe(`node ${bin}`);
    expect(invocation({ PATH: '/usr/bin' }, bin, join(project, 'runs'))).toBe('npx excise');
  });
});
