// `import { loadModel } from 'excise'` works from another project (ESM, with type declarations).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { goldenDir } from './helpers/golden.js';
import { loadModel, runtimeInfo } from '../lib/index.js';

const root = resolve(__dirname, '..');

describe('package', () => {
  it('builds with tsc and is importable by name from another project', () => {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'pipe' });
    expect(existsSync(join(root, 'dist', 'index.js'))).toBe(true);
    expect(existsSync(join(root, 'dist', 'index.d.ts'))).toBe(true);

    const project = mkdtempSync(join(tmpdir(), 'excise-consumer-'));
    try {
      mkdirSync(join(project, 'node_modules'));
      symlinkSync(root, join(project, 'node_modules', 'excise'), 'dir');
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module' }));
      writeFileSync(join(project, 'main.js'), `
        import { loadModel, ExciseError } from 'excise';
        const model = await loadModel(${JSON.stringify(join(goldenDir, 'gpt2'))});
        const out = await model.forward([[1, 2, 3]]);
        let code;
        try { await loadModel('/nonexistent'); } catch (e) { code = e instanceof ExciseError && e.code; }
        console.log(JSON.stringify({ arch: model.config.architecture, shape: out.shape, code }));
        await model.dispose();
      `);
      const out = execFileSync(process.execPath, ['main.js'], { cwd: project, encoding: 'utf8' });
      expect(JSON.parse(out.trim())).toEqual({ arch: 'GPT2LMHeadModel', shape: [1, 3, 97], code: 'ERR_MODEL_NOT_FOUND' });
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  it('runtimeInfo() says whether LibTorch is a CUDA build; the device error tells a CPU-only build apart', async () => {
    const info = runtimeInfo();
    expect(typeof info.cudaBuild).toBe('boolean');
    // The build records what it was built against (build/Release/excise.json, or the prebuilt's record).
    const record = JSON.parse(readFileSync(join(root, 'build', 'Release', 'excise.json'), 'utf8')) as { cuda: boolean; torchVersion: string };
    expect(info.cudaBuild).toBe(record.cuda);
    expect(info.torchVersion).toBe(record.torchVersion.split('+')[0]);
    if (info.cudaAvailable) return;
    const err = await loadModel(join(goldenDir, 'gpt2'), { device: 'cuda' }).then(() => null, (e: unknown) => e as Error & { code: string });
    expect(err?.code).toBe('ERR_DEVICE_UNAVAILABLE');
    expect(err?.message).toMatch(info.cudaBuild ? /CUDA build of LibTorch .* but no GPU is visible/ : /CPU-only build of LibTorch .*npx excise setup --cuda/);
  });
});

