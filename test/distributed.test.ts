// Data parallelism over c10d (Gloo on localhost): two rank processes against one process without a
// group, on a tiny LLaMA and seeded token-id documents (test/helpers/distributed-worker.ts). Statistics must agree within 1e-12 (relative),
// evaluation metrics, selections, masks and the pruning report exactly; a killed rank and an
// incomplete rendezvous must end the others with a coded error, in bounded time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActivationStats, ExciseError, initDistributed, loadModel } from '../lib/index.js';

const root = join(import.meta.dirname, '..');
const workerScript = join(root, 'test', 'helpers', 'distributed-worker.ts');

interface Run { status: number | null; signal: NodeJS.Signals | null; stderr: string; endedAt: number }

/** A port nobody listens on now (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolvePort(port));
    });
  });
}

function worker(args: object, env: Record<string, string> = {}, limitMs = 170_000): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', workerScript, JSON.stringify(args)], {
      cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolveRun({ status, signal, stderr, endedAt: performance.now() });
    });
  });
}

/** The `excise` command (from source) as a child process. */
function excise(args: string[], limitMs = 120_000): Promise<Run & { stdout: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli', 'main.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('error', reject);
    child.on('close', (status, signal) => { clearTimeout(timer); resolveRun({ status, signal, stdout, stderr, endedAt: performance.now() }); });
  });
}

function rankEnv(rank: number, worldSize: number, port: number): Record<string, string> {
  return { RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
}

/** Largest |a - b| / max(|a|, |b|) over two arrays (0 where both are 0). */
function maxRelDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const scale = Math.max(Math.abs(a[i]), Math.abs(b[i]));
    if (scale > 0) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  }
  return worst;
}

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'excise-dist-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('2 Gloo ranks equal one process', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let single: any, rank0: any, rank1: any;

  beforeAll(async () => {
    const port = await freePort();
    const out = join(dir, 'all');
    // Rank 1 holds its replica split over two devices (['cpu', 'cpu']): data parallel does not
    // depend on how a replica is placed, and the split changes no bit (test/model.devices.test.ts).
    const [ref, r0, r1] = await Promise.all([
      worker({ task: 'all', grouped: false, out: `${out}-single` }),
      worker({ task: 'all', grouped: true, out }, rankEnv(0, 2, port)),
      worker({ task: 'all', grouped: true, out, devices: ['cpu', 'cpu'] }, rankEnv(1, 2, port)),
    ]);
    for (const r of [ref, r0, r1]) expect(r.stderr).not.toContain('WORKER-ERROR');
    expect([ref.status, r0.status, r1.status]).toEqual([0, 0, 0]);
    const read = (f: string) => JSON.parse(readFileSync(f, 'utf8'));
    single = read(`${out}-single.rank0.json`);
    rank0 = read(`${out}.rank0.json`);
    rank1 = read(`${out}.rank1.json`);
  }, 180_000);

  it('collect: the same tokens and usage, sums within 1e-12 relative, on both ranks', () => {
    for (const r of [rank0, rank1]) {
      expect(r.stats.tokens).toBe(single.stats.tokens);
      expect(r.stats.usage).toEqual(single.stats.usage);
      let worst = 0;
      for (const [hook, sums] of Object.entries(single.stats.sums) as [string, Record<string, number[]>][]) {
        for (const [k, v] of Object.entries(sums)) worst = Math.max(worst, maxRelDiff(r.stats.sums[hook][k], v));
      }
      expect(worst).toBeLessThan(1e-12);
      console.log(`collect, rank ${r === rank0 ? 0 : 1}: ${r.stats.tokens} tokens, largest relative difference from one process ${worst.toExponential(2)}`);
    }
    expect(single.stats.tokens).toBe(3000);
    expect(single.stats.usage.longDocuments).toBeGreaterThan(0);  // windows of split documents take part
    // The two ranks hold the identical all-reduced result.
    expect(rank1.stats.sums).toEqual(rank0.stats.sums);
    // Fewer batches than ranks: the rank without a batch adds zeros.
    expect(rank1.tiny).toEqual(single.tiny);
    expect(rank0.tiny).toEqual(single.tiny);
  });

  it('evaluate: exactly the same metrics', () => {
    expect(rank0.evaluate).toEqual(single.evaluate);
    expect(rank1.evaluate).toEqual(single.evaluate);
    expect(single.evaluate.tokens).toBeGreaterThan(1500);
  });

  it('selectivePrune, 2 steps: the same masks, report and metrics at every step', () => {
    expect(rank0.masks).toEqual(single.masks);
    expect(rank1.masks).toEqual(single.masks);
    expect(single.report.totalPruned.ff).toBeGreaterThan(0);
    expect(single.report.totalPruned.attn).toBeGreaterThan(0);
    expect(single.report.steps.length).toBe(3);
    expect(rank0.report).toEqual(single.report);
    expect(rank1.report).toEqual(single.report);
  });
});

describe('failure', () => {
  it('a rank killed mid-collect: the other exits with ERR_RANK_FAILED naming it, within seconds', async () => {
    const port = await freePort();
    const out = join(dir, 'kill');
    const started = performance.now();
    const runs = [
      worker({ task: 'killMidCollect', grouped: true, out, timeoutMs: 60_000 }, rankEnv(0, 2, port)),
      worker({ task: 'killMidCollect', grouped: true, out, timeoutMs: 60_000 }, rankEnv(1, 2, port)),
    ];
    const [r0, r1] = await Promise.all(runs);
    expect(r1.signal).toBe('SIGKILL');
    expect(r0.status).toBe(3);
    expect(r0.stderr).toMatch(/WORKER-ERROR ERR_RANK_FAILED distributed: rank 1 stopped responding/);
    // Noticed from the stopped heartbeat or the closed connection, not by waiting out the 60 s timeout.
    const afterDeath = (r0.endedAt - r1.endedAt) / 1000;
    expect(afterDeath).toBeLessThan(30);
    console.log(`rank 0 stopped ${afterDeath.toFixed(1)} s after rank 1 was killed (${((r0.endedAt - started) / 1000).toFixed(1)} s in all): ${r0.stderr.trim()}`);
  }, 120_000);

  it('a rendezvous that never completes: ERR_RENDEZVOUS naming the missing rank after the timeout', async () => {
    const port = await freePort();
    const r0 = await worker({ task: 'rendezvous', grouped: true, out: join(dir, 'rdv'), timeoutMs: 1500 }, rankEnv(0, 2, port));
    expect(r0.status).toBe(3);
    expect(r0.stderr).toMatch(/WORKER-ERROR ERR_RENDEZVOUS distributed: the rendezvous on 127\.0\.0\.1:\d+ did not complete within 1500 ms: 1 of 2 ranks joined \(missing: rank 1\)/);
  }, 60_000);
});

describe('excise collect --nproc 2', () => {
  it('writes, from rank 0 alone, the statistics one process writes (within 1e-12)', async () => {
    const common = ['collect', '--model', join(root, 'assets', 'demo-model'), '--data', join(root, 'assets', 'corpora', 'python', 'test.jsonl.gz'), '--tokens', '1000', '--batch-size', '4'];
    const [one, two] = await Promise.all([
      excise([...common, '--out', join(dir, 'one.safetensors')]),
      excise([...common, '--out', join(dir, 'two.safetensors'), '--nproc', '2']),
    ]);
    expect(one.stderr).not.toContain('excise: ');
    expect([one.status, two.status]).toEqual([0, 0]);
    expect(two.stdout.match(/^wrote /gm)).toHaveLength(1);
    const a = await ActivationStats.load(join(dir, 'one.safetensors'));
    const b = await ActivationStats.load(join(dir, 'two.safetensors'));
    expect(b.tokens).toBe(a.tokens);
    let worst = 0;
    for (const h of a.hookNames) {
      for (const k of ['sum', 'sumAbs', 'sumSq', 'sumSqrtAbs', 'countPositive'] as const) worst = Math.max(worst, maxRelDiff([...b.raw(h)[k]], [...a.raw(h)[k]]));
    }
    expect(worst).toBeLessThan(1e-12);
  }, 150_000);
});

describe('bad settings', () => {
  it('are refused with ERR_INVALID_ARGUMENT naming the setting, before any rendezvous', async () => {
    const refused = async (run: () => Promise<unknown>, message: RegExp) => {
      const err = await run().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ExciseError);
      expect((err as ExciseError).code).toBe('ERR_INVALID_ARGUMENT');
      expect((err as ExciseError).message).toMatch(message);
    };
    await refused(() => initDistributed({ rank: 2, worldSize: 2, masterPort: 1 }), /rank \(RANK\): expected an integer in 0\.\.1, received the number 2/);
    await refused(() => initDistributed({ worldSize: 0 }), /worldSize \(WORLD_SIZE\): expected an integer in 1\.\./);
    await refused(() => initDistributed({ masterPort: 70000 }), /masterPort \(MASTER_PORT\): expected an integer in 1\.\.65535/);
    await refused(() => initDistributed({ ranks: 2 } as never), /unknown option "ranks"/);
    const model = await loadModel(join(root, 'test', 'fixtures', 'hf-golden', 'llama'));
    await refused(() => model.collect([[1, 2, 3]], { group: {} as never }), /collect: group: expected a ProcessGroup from initDistributed\(\)/);
    await refused(() => model.evaluate([[1, 2, 3]], { group: 'x' as never }), /evaluate: group: expected a ProcessGroup/);
    await model.dispose();
  });
});
