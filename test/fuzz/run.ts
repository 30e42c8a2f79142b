/**
 * The fuzz driver: runs cases 0..count-1 of a seed in child processes (child.ts), a few hundred per
 * child. The child prints "start i" and "done i {...}"; when it dies (a signal, an abort, an
 * abnormal exit) the case in progress is a crash, when a case runs past the time limit the child is
 * killed and the case is a hang; either way a fresh child resumes at the next case.
 *
 *   npx tsx test/fuzz/run.ts [--seed N] [--count N] [--case I] [--jobs N] [--verbose]
 *
 * --case I replays one case (its outcome and label are printed).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

export interface CaseResult {
  index: number;
  status: 'ok' | 'coded' | 'uncoded' | 'accepted-corrupt' | 'crash' | 'hang';
  kind?: string;
  label?: string;
  detail?: string;
}

export interface FuzzSummary {
  seed: number;
  count: number;
  results: CaseResult[];
  counts: Record<CaseResult['status'], number>;
  byKind: Record<string, number>;
}

export interface FuzzOptions {
  seed: number;
  count: number;
  /** First case (default 0). */
  from?: number;
  /** Parallel children (default 1). */
  jobs?: number;
  /** A case running longer than this is a hang (default 30 s). */
  caseTimeoutMs?: number;
  onResult?: (r: CaseResult) => void;
}

/** Runs cases [from, to) in as many children as it takes. */
async function runRange(seed: number, from: number, to: number, timeoutMs: number, scratch: string, onResult: (r: CaseResult) => void): Promise<void> {
  let next = from;
  while (next < to) {
    next = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'child.ts'), String(seed), String(next), String(to), scratch], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let current = -1;
      let currentKind: string | undefined;
      let currentLabel: string | undefined;
      let resumeAt = next;
      let timer: NodeJS.Timeout | undefined;
      let killedForHang = false;
      const pendingNotes = new Map<number, string[]>();
      const arm = (ms: number) => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          killedForHang = true;
          child.kill('SIGKILL');
        }, ms);
      };
      arm(120_000);  // loading tsx, the addon and LibTorch
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        const [word, idx, ...rest] = line.split(' ');
        const i = Number(idx);
        if (word === 'ready') arm(120_000);
        else if (word === 'start') {
          current = i;
          currentKind = rest[0];
          currentLabel = undefined;
          arm(timeoutMs);
        } else if (word === 'note') {
          currentLabel = JSON.parse(rest.join(' '));
        } else if (word === 'done') {
          const out = JSON.parse(rest.join(' '));
          const notes = pendingNotes.get(i);
          const result: CaseResult = notes
            ? { index: i, status: 'uncoded', kind: out.kind, label: out.label, detail: notes.join('; ') }
            : { index: i, status: out.status, kind: out.kind, label: out.label, detail: out.code ?? out.message };
          onResult(result);
          current = -1;
          resumeAt = i + 1;
          arm(timeoutMs);
        } else if (word === 'unhandled' || word === 'uncaught') {
          // Attributed to the case in progress, or to the one just done (a late rejection).
          const at = i >= 0 ? i : resumeAt - 1;
          if (i < 0 || i === current) pendingNotes.set(at, [...(pendingNotes.get(at) ?? []), `${word}: ${rest.join(' ')}`]);
          else onResult({ index: at, status: 'uncoded', detail: `${word} after the case: ${rest.join(' ')}` });
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (current >= 0) {
          const status = killedForHang ? 'hang' : 'crash';
          onResult({ index: current, status, kind: currentKind, label: currentLabel, detail: killedForHang ? `no answer within ${timeoutMs} ms` : `exit ${code ?? signal}: ${stderr.split('\n').filter(Boolean).slice(-3).join(' | ')}` });
          resolve(current + 1);
        } else if (resumeAt < to) {
          // Died between cases (or before the first): charge the next case so the run moves on.
          onResult({ index: resumeAt, status: killedForHang ? 'hang' : 'crash', detail: `child exit ${code ?? signal} between cases: ${stderr.slice(-300)}` });
          resolve(resumeAt + 1);
        } else {
          resolve(to);
        }
      });
    });
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const { seed, count, from = 0, jobs = 1, caseTimeoutMs = 30_000 } = options;
  const scratch = mkdtempSync(join(tmpdir(), 'excise-fuzz-'));
  const results: CaseResult[] = [];
  const onResult = (r: CaseResult) => {
    results.push(r);
    options.onResult?.(r);
  };
  try {
    const per = Math.ceil(count / jobs);
    await Promise.all(Array.from({ length: jobs }, (_, j) => {
      const a = from + j * per;
      const b = Math.min(from + count, a + per);
      return a < b ? runRange(seed, a, b, caseTimeoutMs, scratch, onResult) : Promise.resolve();
    }));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  results.sort((a, b) => a.index - b.index);
  const counts = { ok: 0, coded: 0, uncoded: 0, 'accepted-corrupt': 0, crash: 0, hang: 0 };
  const byKind: Record<string, number> = {};
  for (const r of results) {
    counts[r.status]++;
    if (r.kind) byKind[r.kind] = (byKind[r.kind] ?? 0) + 1;
  }
  return { seed, count, results, counts, byKind };
}

export function replayCommand(seed: number, index: number): string {
  return `npx tsx test/fuzz/run.ts --seed ${seed} --case ${index}`;
}

export function formatFailures(s: FuzzSummary, statuses: readonly CaseResult['status'][] = ['crash', 'hang', 'uncoded', 'accepted-corrupt']): string {
  return s.results
    .filter((r) => statuses.includes(r.status))
    .map((r) => `  #${r.index} ${r.status} [${r.kind ?? '?'}] ${r.label ?? ''} -> ${r.detail ?? ''}\n    replay: ${replayCommand(s.seed, r.index)}`)
    .join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const get = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const seed = get('--seed', Number(process.env.EXCISE_FUZZ_SEED ?? 1));
  const one = get('--case', -1);
  const verbose = args.includes('--verbose') || one >= 0;
  const count = one >= 0 ? 1 : get('--count', 1000);
  console.log(`excise fuzz: seed ${seed}, ${count} case(s)${one >= 0 ? ` (case ${one})` : ''}`);
  const s = await runFuzz({
    seed, count, from: one >= 0 ? one : 0, jobs: get('--jobs', 1), caseTimeoutMs: get('--timeout', 30_000),
    onResult: verbose ? (r) => console.log(`#${r.index} ${r.status} [${r.kind ?? '?'}] ${r.label ?? ''} -> ${r.detail ?? ''}`) : undefined,
  });
  console.log(`counts: ${JSON.stringify(s.counts)}  kinds: ${JSON.stringify(s.byKind)}`);
  const failures = formatFailures(s);
  if (failures && one < 0) console.log(failures);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
