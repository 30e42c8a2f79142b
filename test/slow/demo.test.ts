// `excise demo` runs on the bundled model and corpora and writes the report, plot and pruned model.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel } from '../../lib/index.js';

const root = resolve(__dirname, '..', '..');

describe('excise demo', () => {
  it('prunes the bundled model and writes everything it names', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'excise-demo-')), 'demo');
    try {
      const run = () => spawnSync(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli', 'main.ts'), 'demo', '--steps', '2', '--out', out], {
        cwd: root, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' },
      });
      const r = run();
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/forget/);
      for (const f of ['report.json', 'steps.txt', 'plot.svg', 'plot.png', 'state.json', 'model/model.safetensors', 'model/excise.json', 'model/tokenizer.json']) {
        expect(existsSync(join(out, f)), f).toBe(true);
      }
      const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
      expect(report.steps).toHaveLength(3);
      expect(report.totalPruned.ff).toBe(82); // 2 x round(2% of 4 x 512)
      // The pruned model is a working model folder with its tokenizer.
      const model = await loadModel(join(out, 'model'));
      expect(typeof (await model.generate('def ', { maxNewTokens: 4 }))).toBe('string');
      await model.dispose();
      // A second run replaces the first one's outputs.
      expect(run().status).toBe(0);
    } finally {
      rmSync(join(out, '..'), { recursive: true, force: true });
    }
  }, 300_000);
});
