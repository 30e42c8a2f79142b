/**
 * Data parallelism over LibTorch's c10d: a process group per rank (TCPStore rendezvous on rank 0,
 * Gloo collectives), configured torchrun-style. collect / evaluate / selectivePrune take it as
 * `group`: every rank reads the same document stream and forms the same batches as one process
 * would, runs the forward passes of batches i with i % worldSize === rank, and the float64 sums
 * (statistics) or per-batch counts (evaluation) are all-reduced, so every rank ends with the result
 * of one process on all the data.
 */
import { ExciseError, invalidArgument, checkKeys } from './errors.js';
import { native, type NativeProcessGroup } from './native.js';

export interface DistributedOptions {
  /** This process's rank, 0..worldSize-1 (default: env RANK, else 0). */
  rank?: number;
  /** Processes in the group (default: env WORLD_SIZE, else 1). */
  worldSize?: number;
  /** Rank within this machine, e.g. for `cuda:${localRank}` (default: env LOCAL_RANK, else rank). */
  localRank?: number;
  /** Host of rank 0, which serves the rendezvous store (default: env MASTER_ADDR, else 127.0.0.1). */
  masterAddr?: string;
  /** Port of the rendezvous store on rank 0 (default: env MASTER_PORT, else 29500). */
  masterPort?: number;
  /**
   * Milliseconds the rendezvous may take and a collective may wait for a silent peer (default: env
   * EXCISE_DIST_TIMEOUT_MS, else 600 000). A peer that exits is noticed at once, whatever this is.
   */
  timeoutMs?: number;
  /** Network interface for the collectives' sockets (default: env GLOO_SOCKET_IFNAME). */
  socketInterface?: string;
}

function envInt(name: string, env: NodeJS.ProcessEnv): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ExciseError('ERR_INVALID_ARGUMENT', `environment ${name}: expected an integer, received ${JSON.stringify(v)}`);
  return n;
}

function intIn(name: string, v: unknown, min: number, max: number): number {
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw invalidArgument(name, `an integer in ${min}..${max}`, v);
  return v as number;
}

/** A c10d process group: one per process; pass it as `group` to collect, evaluate and selectivePrune. */
export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly masterAddr: string;
  readonly masterPort: number;
  private handle: NativeProcessGroup | undefined;
  // Collectives must be issued in the same order on every rank: one at a time, in call order.
  private queue: Promise<unknown> = Promise.resolve();

  /** @internal use initDistributed() */
  constructor(handle: NativeProcessGroup, s: { rank: number; worldSize: number; localRank: number; masterAddr: string; masterPort: number }) {
    this.handle = handle;
    this.rank = s.rank;
    this.worldSize = s.worldSize;
    this.localRank = s.localRank;
    this.masterAddr = s.masterAddr;
    this.masterPort = s.masterPort;
  }

  /** Rank 0: the one that writes reports, state and models. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  /** Whether this rank runs batch `index` (batches are dealt round-robin). */
  ownsBatch(index: number): boolean {
    return index % this.worldSize === this.rank;
  }

  private live(what: string): NativeProcessGroup {
    if (!this.handle) throw new ExciseError('ERR_INVALID_ARGUMENT', `distributed ${what}: the process group was destroyed`);
    return this.handle;
  }

  private enqueue<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => {});
    return next;
  }

  /** The element-wise float64 sum over ranks (a new array). ERR_RANK_FAILED names a failed peer. */
  allReduceSum(data: Float64Array): Promise<Float64Array> {
    if (!(data instanceof Float64Array)) return Promise.reject(invalidArgument('allReduceSum(data)', 'a Float64Array', data));
    const handle = this.live('allReduceSum');
    return this.enqueue(() => native().distAllReduceSum(handle, data));
  }

  /**
   * Throws ERR_RANK_FAILED when a peer is known to have failed (its heartbeat stopped for 10 s, or
   * it reported an error): collect and evaluate call it between batches, so a rank stops early
   * instead of finishing its share and failing at the all-reduce.
   */
  checkPeers(): void {
    if (!this.handle) return;
    const failure = native().distPeerFailure(this.handle);
    if (failure !== null) throw new ExciseError('ERR_RANK_FAILED', `distributed: ${failure}; rank ${this.rank} stops`);
  }

  /** Waits until every rank has reached it. */
  barrier(): Promise<void> {
    const handle = this.live('barrier');
    return this.enqueue(() => native().distCall(handle, 'barrier'));
  }

  /**
   * Ends the group after a failure on this rank: leaves the error's message for the peers (their
   * ERR_RANK_FAILED quotes it) and closes the connections, so the peers stop at once instead of
   * waiting out the timeout. The group cannot be used afterwards.
   */
  async fail(error: unknown): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    this.handle = undefined;
    const message = error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error);
    await native().distCall(handle, 'reportFailure', message).catch(() => {});
    // Rank 0 serves the store: keep it up a moment so the peers' heartbeat threads (which look
    // every second) read this message instead of only finding the store gone.
    if (this.rank === 0 && this.worldSize > 1) await new Promise((r) => setTimeout(r, 1500));
    await native().distCall(handle, 'close').catch(() => {});
  }

  /** Waits for every rank (so that rank 0's store outlives the others' last use), then closes. */
  async destroy(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    try {
      await this.barrier();
    } finally {
      this.handle = undefined;
      await native().distCall(handle, 'close');
    }
  }
}

/**
 * Joins a process group (blocks until every rank has joined). Settings come from the options, else
 * from torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
 * ERR_RENDEZVOUS when the rendezvous does not complete within timeoutMs (the message says which
 * ranks are missing) or rank 0's store cannot be reached.
 */
export async function initDistributed(options: DistributedOptions = {}): Promise<ProcessGroup> {
  if (options === null || typeof options !== 'object') throw invalidArgument('initDistributed(options)', 'an options object', options);
  const allowed = ['rank', 'worldSize', 'localRank', 'masterAddr', 'masterPort', 'timeoutMs', 'socketInterface'];
  checkKeys('initDistributed', options, allowed);
  const env = process.env;
  const worldSize = intIn('initDistributed: worldSize (WORLD_SIZE)', options.worldSize ?? envInt('WORLD_SIZE', env) ?? 1, 1, 1 << 20);
  const rank = intIn('initDistributed: rank (RANK)', options.rank ?? envInt('RANK', env) ?? 0, 0, worldSize - 1);
  const localRank = intIn('initDistributed: localRank (LOCAL_RANK)', options.localRank ?? envInt('LOCAL_RANK', env) ?? rank, 0, 1 << 20);
  const masterAddr = options.masterAddr ?? env.MASTER_ADDR ?? '127.0.0.1';
  if (typeof masterAddr !== 'string' || masterAddr === '') throw invalidArgument('initDistributed: masterAddr (MASTER_ADDR)', 'a host name or address', masterAddr);
  const masterPort = intIn('initDistributed: masterPort (MASTER_PORT)', options.masterPort ?? envInt('MASTER_PORT', env) ?? 29500, 1, 65535);
  const timeoutMs = intIn('initDistributed: timeoutMs', options.timeoutMs ?? envInt('EXCISE_DIST_TIMEOUT_MS', env) ?? 600_000, 100, 2 ** 31 - 1);
  const socketInterface = options.socketInterface ?? env.GLOO_SOCKET_IFNAME;
  if (socketInterface !== undefined && typeof socketInterface !== 'string') throw invalidArgument('initDistributed: socketInterface', 'a network interface name', socketInterface);
  const handle = await native().distInit({ rank, worldSize, masterAddr, masterPort, timeoutMs, ...(socketInterface ? { socketInterface } : {}) });
  return new ProcessGroup(handle, { rank, worldSize, localRank, masterAddr, masterPort });
}

/** Checks a `group` option: undefined or a ProcessGroup. */
export function checkGroup(where: string, group: unknown): ProcessGroup | undefined {
  if (group === undefined) return undefined;
  if (!(group instanceof ProcessGroup)) throw invalidArgument(`${where}: group`, 'a ProcessGroup from initDistributed()', group);
  return group;
}

/**
 * Runs one rank's share of a group operation: a local failure ends the group (the peers are told
 * which rank failed and why) before it propagates; a peer's failure (ERR_RANK_FAILED) propagates.
 */
export async function asGroupMember<T>(group: ProcessGroup | undefined, run: () => Promise<T>): Promise<T> {
  if (!group) return run();
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof ExciseError && err.code === 'ERR_RANK_FAILED')) await group.fail(err);
    throw err;
  }
}
