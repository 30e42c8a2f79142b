// README's TypeScript snippets, as a reader would use them: every ```ts block is type-checked
// against the built package (imported by name from another project), and the blocks marked
// ```ts runnable are run there, on the bundled model and corpora.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(__dirname, '..');

interface Block { index: number; line: number; runnable: boolean; code: string }

/** The ```ts blocks of a markdown text, with their line numbers. */
function tsBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const re = /^```ts( runnable)?[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  let m: RegExpExecArray | null;
  while ((m = re.exec(markdown)) !== null) {
    const line = markdown.slice(0, m.index).split('\n').length;
    blocks.push({ index: blocks.length, line, runnable: m[1] !== undefined, code: m[2] });
  }
  return blocks;
}

const blocks = tsBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
let project: string;

beforeAll(() => {
  // The package as published: dist/ built by tsc, imported by name through node_modules.
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'pipe' });
  project = mkdtempSync(join(tmpdir(), 'excise-readme-'));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(root, join(project, 'node_modules', 'excise'), 'dir');
  // The snippets read the bundled model and corpora as the repository's root holds them.
  symlinkSync(join(root, 'assets'), join(project, 'assets'), 'dir');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'readme-snippets', type: 'module' }));
  for (const b of blocks) writeFileSync(join(project, `block${b.index}.ts`), b.code);
});

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('README snippets', () => {
  it('has TypeScript blocks, some of them runnable', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    expect(blocks.filter((b) => b.runnable).length).toBeGreaterThanOrEqual(2);
  });

  it('type-check against the package, each as a module of its own', () => {
    const files = blocks.map((b) => join(project, `block${b.index}.ts`));
    const program = ts.createProgram(files, {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      typeRoots: [join(root, 'node_modules', '@types')],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file ? `${d.file.fileName.replace(project, '')}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
      const block = blocks.find((b) => d.file?.fileName.endsWith(`block${b.index}.ts`));
      return `README line ${block ? block.line : '?'} (${where}): ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(problems).toEqual([]);
  });

  it('marked runnable run as written on the bundled model', { timeout: 600_000 }, async () => {
    for (const b of blocks.filter((x) => x.runnable)) {
      const js = ts.transpileModule(b.code, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
      const file = join(project, `block${b.index}.mjs`);
      writeFileSync(file, js);
      // Asynchronously: a long synchronous child would starve vitest's worker.
      const r = await promisify(execFile)(process.execPath, [file], { cwd: project, encoding: 'utf8', timeout: 300_000 })
        .catch((err: { code?: number; stdout: string; stderr: string }) => ({ ...err, failed: true }));
      expect(r.stderr, `README line ${b.line}`).toBe('');
      expect('failed' in r, `README line ${b.line} exits with 0`).toBe(false);
      expect(r.stdout.trim().length, `README line ${b.line} prints its result`).toBeGreaterThan(0);
    }
    // What the snippets say they write: the pruned model (2% of the 4 x 512 FF neurons) and the state.
    const excise = JSON.parse(readFileSync(join(project, 'demo-no-python', 'excise.json'), 'utf8'));
    expect(excise.pruned.ff.reduce((a: number, v: number) => a + v, 0)).toBe(Math.round(0.02 * 4 * 512));
    expect(existsSync(join(project, 'demo-no-python', 'model.safetensors'))).toBe(true);
    const state = JSON.parse(readFileSync(join(project, 'state.json'), 'utf8'));
    expect(state.completedSteps).toBe(2);
  });
});
