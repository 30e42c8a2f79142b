/**
 * `--nproc N` (and `--nnodes M --node-rank R --master-addr HOST --master-port P`) on prune, collect
 * and eval: this process becomes a launcher, torchrun's way. It starts N copies of the same command
 * as workers with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set (worker i on
 * `cuda:i` when --device is cuda), shows rank 0's output, and one progress bar whose rate is the
 * sum over this machine's workers. A worker that fails makes the others fail too (they name it);
 * the launcher then stops what is left. The workers run in their own process group, so Ctrl-C
 * reaches the launcher alone, which passes each one on to every worker exactly once (a first
 * Ctrl-C stops after the current batch, a second at once, as without --nproc).
 *
 * A worker (EXCISE_LAUNCHED_WORKER=1, or any process with WORLD_SIZE > 1 in its environment, e.g.
 * started by another launcher) joins the process group with groupFromEnv().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { initDistributed, type ProcessGroup } from '../distributed.js';
import { Progress } from './progress.js';
import { optionalCount, str, UsageError, type OptionSpec, type ParsedValues } from './args.js';
import type { CliIO } from './common.js';

export const LAUNCH_OPTIONS: OptionSpec = {
  nproc: { type: 'string' },
  nnodes: { type: 'string' },
  'node-rank': { type: 'string' },
  'master-addr': { type: 'string' },
  'master-port': { type: 'string' },
};

export const LAUNCH_HELP = `
Several processes (data parallel over LibTorch's c10d, Gloo; results equal one process's):
  --nproc N            N worker processes on this machine (with --device cuda, worker i uses cuda:i)
  --nnodes M           machines taking part (default 1); run the same command on each with:
  --node-rank R        this machine's index, 0..M-1 (rank 0's machine writes the outputs)
  --master-addr HOST   address of node 0 (default 127.0.0.1)
  --master-port P      a free port on node 0 (default: any free port with one node, else 29500)
`;

export interface LaunchSettings {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number | undefined;
}

/** The launch flags, or undefined when the command runs as one process (or is a worker already). */
export function launchSettings(values: ParsedValues, env: NodeJS.ProcessEnv): LaunchSettings | undefined {
  const nproc = optionalCount(values, 'nproc') ?? 1;
  const nnodes = optionalCount(values, 'nnodes') ?? 1;
  const nodeRank = optionalCount(values, 'node-rank', { allowZero: true }) ?? 0;
  if (nodeRank >= nnodes) throw new UsageError(`--node-rank: expected 0..${nnodes - 1} (--nnodes ${nnodes}), received ${nodeRank}`);
  const masterPort = optionalCount(values, 'master-port');
  if (masterPort !== undefined && masterPort > 65535) throw new UsageError(`--master-port: expected 1..65535, received ${masterPort}`);
  const masterAddr = str(values, 'master-addr') ?? '127.0.0.1';
  if (nnodes > 1 && masterPort === undefined && str(values, 'master-addr') === undefined) {
    throw new UsageError('--nnodes > 1 needs --master-addr (node 0\'s address, the same on every machine)');
  }
  if (nproc > 1 && (str(values, 'devices') !== undefined || str(values, 'device') === 'auto')) {
    // Every worker would place its replica over the same devices: one GPU per worker is --device cuda.
    throw new UsageError(`--nproc ${nproc} with ${str(values, 'devices') !== undefined ? '--devices' : '--device auto'}: every worker would load its model onto the same devices; use --device cuda (worker i on cuda:i), or start the workers yourself (RANK, WORLD_SIZE, ...) each with its own --devices`);
  }
  if (env.EXCISE_LAUNCHED_WORKER === '1' || (nproc === 1 && nnodes === 1)) return undefined;
  return { nproc, nnodes, nodeRank, masterAddr, masterPort };
}

/** Whether this process is one rank of several (torchrun's environment). */
export function isDistributedWorker(env: NodeJS.ProcessEnv): boolean {
  return Number(env.WORLD_SIZE ?? '1') > 1;
}

/** Joins the process group described by the environment; undefined for a single process. */
export async function groupFromEnv(env: NodeJS.ProcessEnv): Promise<ProcessGroup | undefined> {
  if (!isDistributedWorker(env)) return undefined;
  return initDistributed();
}

/** The device of this worker: `--device cuda` becomes cuda:LOCAL_RANK when several ranks share a machine. */
export function workerDevice<D extends string>(device: D | undefined, env: NodeJS.ProcessEnv): D | `cuda:${number}` | undefined {
  if (device === 'cuda' && isDistributedWorker(env)) return `cuda:${Number(env.LOCAL_RANK ?? '0')}`;
  return device;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolvePort(port));
    });
  });
}

/** A progress event a worker sends to its launcher. */
interface ProgressMessage { excise: 'progress'; label: string; done: number; total: number }

/** In a launched worker: progress goes to the launcher (which adds the workers up), not to a bar. */
export class ForwardedProgress extends Progress {
  private lastSent = 0;
  constructor(stream: { write(chunk: string): boolean }) {
    super(stream, false);
  }
  override update(label: string, done: number, total: number): void {
    const now = performance.now();
    const finished = total > 0 && Number.isFinite(total) && done >= total;
    if (!finished && now - this.lastSent < 100) return;
    this.lastSent = now;
    process.send?.({ excise: 'progress', label, done, total } satisfies ProgressMessage);
  }
}

/**
 * Runs `excise <command> <argv>` as this machine's workers and waits for them. Resolves to the exit
 * code: rank 0's when it failed or was interrupted, else the first failing worker's, else 0.
 */
export async function launchWorkers(command: string, argv: string[], s: LaunchSettings, io: CliIO): Promise<number> {
  const masterPort = s.masterPort ?? (s.nnodes === 1 ? await freePort() : 29500);
  const worldSize = s.nproc * s.nnodes;
  const workers: ChildProcess[] = [];
  const done = new Map<number, { label: string; done: number; total: number }>();
  const buffered: string[][] = [];
  const exits: Promise<number>[] = [];
  const script = process.argv[1];
  for (let local = 0; local < s.nproc; local++) {
    const rank = s.nodeRank * s.nproc + local;
    const child = spawn(process.execPath, [...process.execArgv, script, command, ...argv], {
      env: {
        ...io.env, EXCISE_LAUNCHED_WORKER: '1',
        RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(s.nproc),
        MASTER_ADDR: s.masterAddr, MASTER_PORT: String(masterPort),
      },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,  // its own process group: the terminal's Ctrl-C goes to the launcher only
    });
    workers.push(child);
    buffered.push([]);
    // Rank 0 speaks for the run; the others' output is shown only if they fail.
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { if (rank === 0) io.stdout.write(d); });
    let partial = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (rank === 0) io.progress.log(line);
        else buffered[local].push(`[rank ${rank}] ${line}`);
      }
    });
    child.on('message', (m: ProgressMessage) => {
      if (m?.excise !== 'progress') return;
      done.set(local, { label: m.label, done: m.done, total: m.total });
      const lead = done.get(0) ?? m;
      let sum = 0;
      for (const p of done.values()) if (p.label === lead.label) sum += p.done;
      // The bar shows this machine's tokens and their rate (every worker's share of the task).
      io.progress.update(s.nnodes > 1 ? `${lead.label} (node ${s.nodeRank})` : lead.label, sum, lead.total);
    });
    exits.push(new Promise((resolveExit) => {
      child.on('error', (err) => { io.progress.log(`excise: worker ${rank} could not start: ${err.message}`); resolveExit(1); });
      child.on('close', (code, signal) => {
        if (partial) (rank === 0 ? io.progress.log(partial) : buffered[local].push(`[rank ${rank}] ${partial}`));
        resolveExit(code ?? (signal === 'SIGINT' ? 130 : 1));
      });
    }));
  }
  // Ctrl-C (or a signal sent to the launcher) is passed on to every worker.
  const forward = (signal: NodeJS.Signals) => () => { for (const w of workers) if (w.exitCode === null) w.kill(signal); };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const codes: number[] = [];
    // Once any worker has failed, the rest get a bounded time to fail on their own (they notice the
    // closed connection and name the rank), then are stopped.
    let stopTimer: NodeJS.Timeout | undefined;
    await Promise.all(exits.map((exit, i) => exit.then((code) => {
      codes[i] = code;
      if (code !== 0 && code !== 130 && !stopTimer) {
        stopTimer = setTimeout(() => { for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL'); }, 30_000);
        stopTimer.unref();
      }
    })));
    if (stopTimer) clearTimeout(stopTimer);
    io.progress.clear();
    for (let i = 1; i < codes.length; i++) if (codes[i] !== 0 && codes[i] !== 130) for (const line of buffered[i]) io.stderr.write(line + '\n');
    if (codes[0] !== 0) return codes[0];
    return codes.find((c) => c !== 0) ?? 0;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

/** The launch flags of argv, re-quoted (for the command that resumes a run), with a leading space. */
export function launchFlags(argv: string[]): string {
  const names = new Set(Object.keys(LAUNCH_OPTIONS).map((n) => `--${n}`));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].split(/=(.*)/s);
    if (!names.has(name)) continue;
    out.push(inline !== undefined ? argv[i] : `${argv[i]} ${argv[i + 1] ?? ''}`);
    if (inline === undefined) i++;
  }
  return out.map((f) => ` ${f}`).join('');
}
