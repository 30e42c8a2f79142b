/**
 * The one file that touches the native addon. It loads the addon (a local build, else the shipped
 * prebuilt: node-gyp-build's order, checked first by scripts/native-addon.cjs), hands it the
 * ExciseError class, and declares the raw binding's shape. Everything else imports from here.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { ExciseError } from './errors.js';

/** The package root: lib/ or dist/ sits one level below it. */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface NativeRuntimeInfo {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  cudaBuild: boolean;
  cxxAbi: string;
  tf32: boolean;
}

/** Safetensors dtypes the addon reads and writes. */
export type NativeSafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** One tensor as the addon exchanges it: `data` is a copy (F16/BF16 as raw bits, BOOL as bytes). */
export interface NativeSafetensorsTensor {
  dtype: NativeSafetensorsDtype;
  shape: number[];
  data: Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
}

export interface NativeSafetensorsContents {
  metadata: Record<string, string>;
  tensors: Record<string, NativeSafetensorsTensor>;
}

/** Sizes and structure of a loaded model, as the addon reports them. */
export interface NativeModelConfig {
  architecture: string;
  family: string;
  nLayers: number;
  dModel: number;
  dMlp: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  gatedMlp: boolean;
  tiedEmbeddings: boolean;
  /** Bidirectional masked LM (RoBERTa): no next-token operations. */
  maskedLm: boolean;
  /** -1 when the config has none. */
  padTokenId: number;
  /** The first device (embeddings; the model thread's current device). */
  device: string;
  /** The placement's devices, in order (one for a one-device model). */
  devices: string[];
  /** Per layer: index into devices. */
  layerDevices: number[];
  embedDevice: number;
  finalDevice: number;
  headDevice: number;
  dtype: string;
  parameterCount: number;
  bosTokenId: number;
  eosTokenIds: number[];
}

export interface NativeActivation {
  data: Float32Array;
  shape: number[];
}

export interface NativeForwardResult {
  logits: Float32Array;
  shape: number[];
  activations?: Record<string, NativeActivation>;
}

/** The addon's model object: every method is serialized on the model's own native thread. */
export interface NativeModel {
  config(): NativeModelConfig;
  /** config.json as the native loader parsed it (a fresh object on each call). */
  sourceConfig(): Record<string, unknown>;
  /** lastPositionOnly: logits of each row's last real token only ([batch, 1, vocab]). The arrays own native memory (no copy). */
  forward(ids: Int32Array, batch: number, seq: number, mask: Int32Array | null, capture: string[], lastPositionOnly: boolean): Promise<NativeForwardResult>;
  tensorNames(): string[];
  dispose(): Promise<void>;
  /** Starts a statistics session over the named hook points (accumulated on the model's device). */
  statsBegin(hooks: string[]): NativeStatsSession;
  /** Resolves to the batch's real tokens, counted natively from the mask (all of them without one). */
  collectBatch(session: NativeStatsSession, ids: Int32Array, batch: number, seq: number, mask: Int32Array | null): Promise<number>;
  statsExport(session: NativeStatsSession): Promise<NativeStatsExport>;
  /** Newly pruned counts per layer, and the masks the prune left (from the same job). */
  prune(ff: Int32Array[], attn: Int32Array[], ffMean: Float64Array[] | null, attnMean: Float64Array[] | null): Promise<{ ff: number[]; attn: number[]; masks: NativeMasks }>;
  /** Resolves to the masks after the restore (all zero). */
  restore(): Promise<NativeMasks>;
  masks(): Promise<NativeMasks>;
  /** labels (masked LM only): [batch, seq], the original token at each masked position, -1 elsewhere; each masked position predicts its own label. */
  evaluateBatch(ids: Int32Array, batch: number, seq: number, mask: Int32Array | null, skip: Int32Array, topK: number, labels?: Int32Array): Promise<{
    tokens: number; lossSum: number; top1: number; topk: number; skipTokens: number; top1Skip: number; topkSkip: number;
  }>;
  /**
   * One entry per position t >= 1 where targets [batch, seq] is nonzero, in row-major order: log p(ids[b, t] |
   * ids[b, < t]) and whether that token was the argmax. Continuation scoring and whole-sequence scoring.
   */
  tokenLogprobs(ids: Int32Array, batch: number, seq: number, mask: Int32Array | null, targets: Int32Array): Promise<{ logprobs: Float32Array; greedy: Uint8Array }>;
  /** Zeroes every pruned slice again (after training moved them); mean-offset biases stay. */
  rezeroPruned(): Promise<void>;
  /** ‖W_out[:, i]‖₂ per input neuron of each layer's FF / attention output projection, float64, from the current weights. */
  outputColumnNorms(): Promise<{ ff: Float64Array[]; attn: Float64Array[] }>;
  trainerCreate(options: Required<import('./train.js').TrainOptions>): NativeTrainer;
  /** rowWeights [batch]: each row's loss weight (-1 = gradient ascent on that row); absent = all 1. */
  trainStep(trainer: NativeTrainer, ids: Int32Array, batch: number, seq: number, mask: Int32Array | null, rowWeights?: Float64Array): Promise<import('./train.js').TrainStepResult>;
  trainerClose(trainer: NativeTrainer): Promise<void>;
  /** plan: exactly these files with these tensors (instead of shards of maxShardBytes). */
  saveWeights(dir: string, maxShardBytes: number, dtype?: string, plan?: { file: string; names: string[] }[]): Promise<{ files: string[]; weightMap: Record<string, string>; totalSize: number }>;
}

/** Opaque handle of a model's native decode engine (native/decode_engine.h). */
export type NativeDecodeEngine = { readonly __brand: 'NativeDecodeEngine' };

/** One request as the decode engine takes it. */
export interface NativeDecodeRequest {
  id: number;
  prompt: Int32Array;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  stopIds: number[];
  /** -1: none; 0: the chosen token's; k: and the k most likely tokens'. */
  logprobs: number;
}

/** One generated token (token -1: none, on a cancellation); `finish` on a request's last event. */
export interface NativeTokenEvent {
  id: number;
  token: number;
  logprob: number;
  topIds?: Int32Array;
  topLogprobs?: Float32Array;
  finish?: 'stop' | 'length' | 'cancelled';
}

export interface NativeStepResult {
  events: NativeTokenEvent[];
  active: number;
  waiting: number;
  batch: number;
}

/** Pruned neurons per layer (1 = pruned). */
export interface NativeMasks {
  ff: Uint8Array[];
  attn: Uint8Array[];
}

/** Opaque handle of a native trainer (optimizer state). */
export type NativeTrainer = { readonly __brand: 'NativeTrainer' };

/** Opaque handle of a native statistics accumulator. */
export type NativeStatsSession = { readonly __brand: 'NativeStatsSession' };

export interface NativeStatsExport {
  tokens: number;
  /** Per hook point, one Float64Array per key of STAT_SUMS (lib/method/stats.ts). */
  hooks: Record<string, Record<string, Float64Array>>;
}

/** Opaque handle of a c10d process group (native/distributed.h). */
export type NativeProcessGroup = { readonly __brand: 'NativeProcessGroup' };

export interface NativeProcessGroupSettings {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  timeoutMs: number;
  socketInterface?: string;
}

export interface NativeBinding {
  /** Rendezvous (TCPStore on rank 0) and a Gloo process group; rejects with ERR_RENDEZVOUS. */
  distInit(settings: NativeProcessGroupSettings): Promise<NativeProcessGroup>;
  /** The element-wise float64 sum over ranks, in a new array; rejects with ERR_RANK_FAILED naming the rank. */
  distAllReduceSum(group: NativeProcessGroup, data: Float64Array): Promise<Float64Array>;
  distCall(group: NativeProcessGroup, call: 'barrier' | 'reportFailure' | 'close', message?: string): Promise<void>;
  /** What the heartbeat thread noticed about the peers since (a failed or silent rank), or null. */
  distPeerFailure(group: NativeProcessGroup): string | null;
  setErrorClass(ctor: typeof ExciseError): void;
  runtimeInfo(): NativeRuntimeInfo;
  setTf32(enabled: boolean): void;
  /** devices: a model split over these devices, in order (then device is ignored). */
  loadModel(dir: string, device: string, dtype: string, devices?: string[]): Promise<NativeModel>;
  createRandomModel(configJson: string, device: string, dtype: string, seed: number, devices?: string[]): Promise<NativeModel>;
  /** Rejects with ExciseError (ERR_IO, ERR_SAFETENSORS_INVALID, ...). */
  readSafetensors(path: string): Promise<NativeSafetensorsContents>;
  /** Atomic write (temporary file + rename); rejects with ExciseError. */
  writeSafetensors(path: string, tensors: Record<string, NativeSafetensorsTensor>, metadata?: Record<string, string>): Promise<void>;
  /** A decode engine for the model (its KV cache is allocated on first use). */
  engineCreate(model: NativeModel, maxBatch: number, maxSequence: number): NativeDecodeEngine;
  /** One decoding step on the model's thread, admitting `admit` first. */
  engineStep(model: NativeModel, engine: NativeDecodeEngine, admit: NativeDecodeRequest[]): Promise<NativeStepResult>;
  /** Any time: the request stops before the engine's next step. */
  engineCancel(engine: NativeDecodeEngine, id: number): void;
  /** Frees the engine's cache and forgets its requests (a job in call order). */
  engineReset(model: NativeModel, engine: NativeDecodeEngine): Promise<void>;
  /** Stops every model thread of the process after its running job (called just before exit). */
  stopModelThreadsForExit(): void;
  [name: string]: unknown;
}

/** scripts/native-addon.cjs: which addon loads and whether it fits its LibTorch (shared with the install script). */
interface AddonCheck {
  file: string | null;
  kind: 'built' | 'prebuilt' | null;
  record: { torchRoot: string; torchVersion: string; cuda: boolean; builtWith?: string } | null;
  problem: string | null;
}
interface NativeAddonModule {
  checkAddon(): AddonCheck;
  commands: { setup: string; build: string };
}

function explainLoadFailure(err: unknown, commands: { setup: string; build: string }): string {
  const msg = err instanceof Error ? err.message : String(err);
  const hints: string[] = [];
  const missingLib = /lib(torch|c10|torch_cpu|torch_cuda|c10_cuda|cudart|cublas|nvrtc)[\w.-]*\.so[\d.]*/.exec(msg);
  if (missingLib && /cannot open shared object/.test(msg)) {
    hints.push(`the LibTorch library ${missingLib[0]} was not found at run time: the addon was built against a LibTorch ` +
      `that has moved or been removed; rebuild: \`${commands.build}\``);
  }
  if (/undefined symbol/.test(msg)) {
    hints.push('a symbol is missing: the addon was built against a different LibTorch (version, CUDA or C++ ABI) than ' +
      `the one loaded now, or two LibTorch installs are mixed; rebuild against one install: \`${commands.build}\``);
  }
  if (/NODE_MODULE_VERSION|was compiled against a different Node\.js/.test(msg)) {
    hints.push(`the addon was built for another Node.js version: rebuild: \`${commands.build}\``);
  }
  if (hints.length === 0) hints.push(`rebuild: \`${commands.build}\` (\`excise doctor\` shows what the build uses); see README, "Install"`);
  return `could not load the excise native addon: ${msg.split('\n')[0]}\n  ${hints.join('\n  ')}`;
}

let cached: NativeBinding | undefined;

/**
 * Loads the addon once; throws ExciseError(ERR_NATIVE_LOAD) with the command that fixes it when it
 * cannot. Before loading, checks that the LibTorch the addon was made for is still there and unchanged
 * (moved, upgraded, switched to CUDA): loading a mismatched LibTorch fails obscurely or crashes.
 * EXCISE_ADDON=/path/to/excise.node loads that file instead, unchecked (scripts/test-libtorch.sh).
 */
export function native(): NativeBinding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let commands = { setup: 'npx excise setup', build: 'npx excise build' };
  let binding: NativeBinding;
  try {
    if (!existsSync(join(packageRoot, 'package.json'))) throw new Error(`package root not found at ${packageRoot}`);
    const override = process.env.EXCISE_ADDON;
    if (override) {
      binding = require(override) as NativeBinding;
    } else {
      const addon = require(join(packageRoot, 'scripts', 'native-addon.cjs')) as NativeAddonModule;
      commands = addon.commands;
      const check = addon.checkAddon();
      if (check.problem || !check.file) throw new ExciseError('ERR_NATIVE_LOAD', `excise native addon: ${check.problem ?? 'not built'}`);
      binding = require(check.file) as NativeBinding;
    }
  } catch (err) {
    if (err instanceof ExciseError) throw err;
    throw new ExciseError('ERR_NATIVE_LOAD', explainLoadFailure(err, commands), { cause: err });
  }
  binding.setErrorClass(ExciseError);
  // process.exit() runs C exit() right after this event: stop the model threads first, so no job
  // is still using LibTorch while its static objects are destroyed (see native/worker.h). Only the
  // main thread: a worker's own exit tears its models down through the environment's cleanup.
  if (isMainThread) process.on('exit', () => binding.stopModelThreadsForExit());
  cached = binding;
  return binding;
}
