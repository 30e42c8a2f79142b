// `npm install excise` as a user does it: the packed tarball installed into a scratch project, offline
// from npm's cache. With no LibTorch the install succeeds and says what to do, and loading says the
// same; `npx excise setup --python <a Python with the pinned torch>` then uses the shipped prebuilt
// addon (no compiler), and ESM import, CommonJS require, TypeScript (nodenext, .mts and .cts), the
// CLI and the bundled demo model work from node_modules.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { goldenDir } from './helpers/golden.js';

const root = resolve(__dirname, '..');
const pinnedPython = join(root, '.venv', 'bin', 'python');
const prebuiltRecord = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'excise.json');
let dir: string;
let project: string;
let env: NodeJS.ProcessEnv;

interface Run { status: number | null; stdout: string; stderr: string }

// Asynchronous: a blocking spawnSync of npm for a minute starves vitest's worker RPC.
function run(cmd: string, args: string[], options: { cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: options.cwd ?? project, env: { ...env, ...options.env }, timeout: options.timeout ?? 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (err) => { stderr += String(err); });
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}
const node = (file: string): Promise<Run> => run(process.execPath, [file]);
const excise = (...args: string[]): Promise<Run> => run(process.execPath, [join(project, 'node_modules', 'excise', 'dist', 'cli', 'main.js'), ...args]);

// The user's environment: no LibTorch anywhere the locator looks (python3 has no torch, an empty
// per-user cache), and none of the outer npm run's variables.
function userEnv(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('npm_') || ['LIBTORCH', 'Torch_DIR', 'CMAKE_PREFIX_PATH', 'EXCISE_PYTHON', 'EXCISE_ADDON', 'LD_LIBRARY_PATH', 'NODE_OPTIONS', 'VITEST', 'TSX'].includes(k)) continue;
    e[k] = v;
  }
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'python3'), '#!/bin/sh\nexit 1\n');
  chmodSync(join(bin, 'python3'), 0o755);
  return { ...e, PATH: `${bin}:${process.env.PATH}`, XDG_CACHE_HOME: join(dir, 'cache'), CI: 'true' };
}

describe.skipIf(!existsSync(pinnedPython) || !existsSync(prebuiltRecord))('npm install of the packed tarball', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'excise-install-'));
    project = join(dir, 'project');
    mkdirSync(project);
    env = userEnv();
    // dist/ as `npm pack` (prepack) makes it: tsc, then the CommonJS bundle.
    const tsc = await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { cwd: root });
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    const cjs = await run(process.execPath, [join(root, 'scripts', 'build-cjs.mjs')], { cwd: root });
    expect(cjs.status, cjs.stderr).toBe(0);
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root });
    expect(pack.status, pack.stderr).toBe(0);
    const packed = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0].files.map((f) => f.path);
    expect(files).toContain('LICENSE');
    expect(files).toContain('dist/index.cjs');
    expect(files).toContain('dist/index.d.cts');
    expect(files).toContain(`prebuilds/${process.platform}-${process.arch}/node.napi.node`);
    expect(files).toContain('assets/demo-model/model.safetensors');
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('build/'))).toEqual([]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    const install = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', join(dir, packed[0].filename)], { timeout: 240_000 });
    expect(install.status, install.stdout + install.stderr).toBe(0);
    // The install script's message (npm shows it with --foreground-scripts; otherwise on the terminal).
    expect(install.stdout + install.stderr).toMatch(/finish the install with:\s+npx excise setup/);
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('installs with no LibTorch; loading names the command that finishes the job', async () => {
    writeFileSync(join(project, 'unbuilt.mjs'), `
      import { loadModel, runtimeInfo, ExciseError } from 'excise';
      try { runtimeInfo(); console.log('loaded'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, isExcise: e instanceof ExciseError })); }
    `);
    const r = await node('unbuilt.mjs');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { code: string; message: string; isExcise: boolean };
    expect(out.code).toBe('ERR_NATIVE_LOAD');
    expect(out.isExcise).toBe(true);
    expect(out.message).toContain('npx excise setup');
    const doctor = await excise('doctor');
    expect(doctor.status).toBe(1);
    expect(doctor.stdout).toContain('addon:       not built');
    expect(doctor.stdout).toContain('located now: none');
  });

  it('excise setup with a matching PyTorch uses the prebuilt addon; import, require, TypeScript and the CLI work', async () => {
    const setup = await excise('setup', '--python', pinnedPython);
    expect(setup.status, setup.stdout + setup.stderr).toBe(0);
    expect(setup.stderr).toContain('using the prebuilt addon');
    expect(setup.stderr).not.toContain('compiling');
    const pkg = join(project, 'node_modules', 'excise');
    expect(existsSync(join(pkg, 'build', 'Release'))).toBe(false);
    expect(readdirSync(join(pkg, 'build'))).toEqual(['torch-lib']);

    const gpt2 = JSON.stringify(join(goldenDir, 'gpt2'));
    writeFileSync(join(project, 'esm.mjs'), `
      import { loadModel, runtimeInfo } from 'excise';
      const info = runtimeInfo();
      const model = await loadModel(${gpt2});
      const out = await model.forward([[1, 2, 3]]);
      console.log(JSON.stringify({ shape: out.shape, torch: info.torchVersion, cudaBuild: info.cudaBuild }));
      await model[Symbol.asyncDispose]();
    `);
    const esm = await node('esm.mjs');
    expect(esm.status, esm.stderr).toBe(0);
    const pinned = (JSON.parse(readFileSync(prebuiltRecord, 'utf8')) as { torchVersion: string }).torchVersion.split('+')[0];
    expect(JSON.parse(esm.stdout.trim())).toEqual({ shape: [1, 3, 97], torch: pinned, cudaBuild: false });

    writeFileSync(join(project, 'cjs.cjs'), `
      const { loadModel, ExciseError } = require('excise');
      loadModel(${gpt2}).then(async (model) => {
        const out = await model.forward([[1, 2, 3]]);
        let code;
        try { await loadModel('/nonexistent'); } catch (e) { code = e instanceof ExciseError && e.code; }
        console.log(JSON.stringify({ shape: out.shape, code }));
        await model.dispose();
      });
    `);
    const cjs = await node('cjs.cjs');
    expect(cjs.status, cjs.stderr).toBe(0);
    expect(JSON.parse(cjs.stdout.trim())).toEqual({ shape: [1, 3, 97], code: 'ERR_MODEL_NOT_FOUND' });

    // TypeScript under module nodenext: a .cts (require) and a .mts (import) type-check and run.
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022', 'esnext.disposable'],
        strict: true, outDir: 'out', typeRoots: [join(root, 'node_modules', '@types')], types: ['node'],
      },
      files: ['use.cts', 'use.mts'],
    }));
    const body = `
      const device: Device = 'cuda:1';
      // @ts-expect-error not a device
      const wrong: Device = 'gpu';
      async function main(): Promise<void> {
        // TypeScript lowers \`await using\` for Node 20; the model is disposed at the end of the scope.
        await using model = await loadModel(${gpt2}, { device: 'cpu' });
        const out = await model.forward([[1, 2, 3]]);
        console.log(JSON.stringify({ shape: out.shape, device, wrong, cudaBuild: runtimeInfo().cudaBuild }));
      }
      void main();
    `;
    writeFileSync(join(project, 'use.cts'), `import { loadModel, runtimeInfo, type Device } from 'excise';\n${body}`);
    writeFileSync(join(project, 'use.mts'), `import { loadModel, runtimeInfo, type Device } from 'excise';\n${body}`);
    const tsc = await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    for (const file of ['out/use.cjs', 'out/use.mjs']) {
      const r = await node(file);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout.trim())).toEqual({ shape: [1, 3, 97], device: 'cuda:1', wrong: 'gpu', cudaBuild: false });
    }

    const doctor = await excise('doctor');
    expect(doctor.status, doctor.stdout + doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/addon: +prebuilt/);
    expect(doctor.stdout).toContain('match:       yes');
    const help = await excise('--help');
    expect(help.stdout).toMatch(/setup .*\n.*build .*\n.*doctor/);
    // The bundled demo model, from node_modules.
    const info = await excise('info', '--model', join(pkg, 'assets', 'demo-model'), '--json');
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ architecture: 'LlamaForCausalLM', tokenizer: true });

    // The LibTorch moves: loading says so and names the fix (the link is pointed elsewhere and back;
    // the LibTorch itself is shared and left alone).
    const link = join(pkg, 'build', 'torch-lib');
    const target = readlinkSync(link);
    rmSync(link);
    symlinkSync(join(dir, 'moved-away', 'lib'), link);
    const moved = await node('unbuilt.mjs');
    expect(JSON.parse(moved.stdout.trim())).toMatchObject({ code: 'ERR_NATIVE_LOAD' });
    expect(moved.stdout).toMatch(/has moved or been removed; run `npx excise build`/);
    rmSync(link);
    symlinkSync(target, link);

    // `LIBTORCH=... npm rebuild excise` makes the addon for that LibTorch (here the same one, by another path).
    const torchRoot = resolve(target, '..');
    const rebuild = await run('npm', ['rebuild', 'excise', '--foreground-scripts'], { env: { LIBTORCH: torchRoot } });
    expect(rebuild.status, rebuild.stdout + rebuild.stderr).toBe(0);
    expect(rebuild.stdout + rebuild.stderr).toContain(`at ${torchRoot}, found via LIBTORCH`);
    expect(readlinkSync(link)).toBe(join(torchRoot, 'lib'));
    expect((await node('esm.mjs')).status).toBe(0);
  });
});
