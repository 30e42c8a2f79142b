// model.save() killed midway (kill -9) leaves its temporary folder; a later save in the same
// parent folder removes it, and nothing else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandomModel, type Model } from '../lib/index.js';
import { SAVE_MARKER } from '../lib/save.js';

const INCOMPLETE = /\.excise-incomplete-save-\d+-[0-9a-f]{8}$/;

let scratch: string;
let model: Model;
beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'excise-save-'));
  model = await createRandomModel({ architectures: ['GPT2LMHeadModel'], n_layer: 1, n_embd: 16, n_head: 2, vocab_size: 50, n_positions: 16 });
});
afterAll(async () => {
  await model.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs a child that saves in a loop; kills it with SIGKILL as soon as a save is under way. */
async function killMidSave(parent: string): Promise<string> {
  // The kill may land just after a save finished its marker's job; then try again.
  for (let attempt = 0; attempt < 5; attempt++) {
    const stale = await killOnce(parent);
    if (stale) return stale;
  }
  throw new Error('could not kill a save midway');
}

async function killOnce(parent: string): Promise<string | undefined> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'helpers', 'save-forever.ts'), parent], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`save child exited early (${code})`)));
    });
    // Poll for a temporary folder that holds its marker and some weights: a save in progress.
    for (let tries = 0; tries < 20_000; tries++) {
      const inProgress = readdirSync(parent).find((n) => INCOMPLETE.test(n) && existsSync(join(parent, n, SAVE_MARKER)));
      if (inProgress) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        return existsSync(join(parent, inProgress, SAVE_MARKER)) ? inProgress : undefined;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error('never saw a save in progress');
  } finally {
    child.kill('SIGKILL');
  }
}

describe('save after a killed save', () => {
  it('removes the stale temporary folder of a dead process, and nothing else', async () => {
    const parent = join(scratch, 'killed');
    mkdirSync(parent);
    const stale = await killMidSave(parent);
    const marker = JSON.parse(readFileSync(join(parent, stale, SAVE_MARKER), 'utf8'));
    expect(marker).toMatchObject({ excise: 'incomplete-save', host: hostname() });
    expect(stale).toContain(`.excise-incomplete-save-${marker.pid}-`);

    // Look-alikes that are not provably a dead save of this host: each must survive.
    const keep = (name: string, markerData?: unknown) => {
      mkdirSync(join(parent, name));
      writeFileSync(join(parent, name, 'weights'), 'x');
      if (markerData !== undefined) writeFileSync(join(parent, name, SAVE_MARKER), JSON.stringify(markerData));
    };
    keep(`.a.excise-incomplete-save-${process.pid}-0000000a`, { excise: 'incomplete-save', pid: process.pid, host: hostname() });  // alive
    keep(`.b.excise-incomplete-save-${marker.pid}-0000000b`);  // no marker
    keep(`.c.excise-incomplete-save-${marker.pid}-0000000c`, { excise: 'incomplete-save', pid: marker.pid, host: 'another-host' });
    keep(`.d.excise-incomplete-save-${marker.pid}-0000000d`, { excise: 'incomplete-save', pid: marker.pid + 1, host: hostname() });  // pid differs from the name
    keep(`d.excise-incomplete-save-${marker.pid}-0000000e`, { excise: 'incomplete-save', pid: marker.pid, host: hostname() });  // no leading dot
    keep('user-folder', { excise: 'incomplete-save', pid: marker.pid, host: hostname() });
    writeFileSync(join(parent, `.f.excise-incomplete-save-${marker.pid}-0000000f`), 'a file, not a folder');
    const before = readdirSync(parent).filter((n) => n !== stale).sort();

    await model.save(join(parent, 'later'));
    const after = readdirSync(parent).sort();
    expect(after).not.toContain(stale);
    expect(after).toEqual([...before, 'later'].sort());
    // The completed save holds no marker.
    expect(existsSync(join(parent, 'later', SAVE_MARKER))).toBe(false);
    expect(existsSync(join(parent, 'later', 'config.json'))).toBe(true);
  }, 120_000);
});
