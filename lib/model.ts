/**
 * Models: load a Hugging Face folder, run forward passes with hook-point capture, generate text.
 * Heavy work runs on the model's own native thread; every method returns a Promise. Calls on one
 * model take effect in the order they were made (CallOrder), so concurrent calls from JS are safe.
 */
import { existsSync, lstatSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ExciseError, invalidArgument, withCallerStack, checkSignal, checkKeys, checkOptionsObject, positiveInt, nonNegativeInt, checkBoolean } from './errors.js';
import { native, type NativeModel, type NativeModelConfig } from './native.js';
import { Tokenizer } from './tokenizer.js';
import type { DocumentSource } from './data/batches.js';
import { collectStats, type CollectOptions } from './method/collect.js';
import { evaluateModel, type EvalResult, type EvaluateOptions } from './method/evaluate.js';
import type { DocumentProvider } from './data/batches.js';
import type { ActivationStats } from './method/stats.js';
import type { Selection } from './method/selection.js';
import { saveModelFolder, type SaveOptions } from './save.js';
import { CallOrder } from './call_order.js';
import { checkModelPath } from './model_path.js';
import { Trainer, trainOptions, type TrainOptions } from './train.js';
import { DecodeScheduler, type EngineOptions, type EngineStats } from './engine.js';
import { GenerationStream, type GenerationResult } from './generation.js';
import { evaluateChoices, type ChoiceItem, type ChoicesOptions, type ChoicesResult } from './method/choices.js';
import { membershipInference, type MembershipOptions, type MembershipResult } from './method/membership.js';
import { sequenceLogprobs, type SequenceLogprobOptions, type SequenceLogprobs } from './method/logprobs.js';

/** Which neurons are pruned (1) per layer, and how many. */
export interface PruneMasks {
  ff: Uint8Array[];
  attn: Uint8Array[];
  counts: { ff: number[]; attn: number[] };
}

export interface PruneOptions {
  /**
   * Replace each pruned neuron by its mean activation over these statistics (usually the retain
   * set's) through the output projection's bias. Needs an architecture with that bias.
   */
  meanOffset?: ActivationStats;
}

export interface PruneResult {
  /** Neurons newly pruned by this call, per layer (already-pruned ones are skipped). */
  ff: number[];
  attn: number[];
}

export type Dtype = 'float32' | 'float16' | 'bfloat16';
const DTYPES: readonly Dtype[] = ['float32', 'float16', 'bfloat16'];

/** 'cpu', 'cuda' (the first GPU) or 'cuda:N'. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export interface LoadOptions {
  /**
   * 'cpu' (default), 'cuda' or 'cuda:N'; or 'auto': the layers spread over every visible GPU in
   * proportion to its free memory (one GPU: that GPU; no GPU: the CPU).
   */
  device?: Device | 'auto';
  /**
   * A model larger than one device: consecutive layers on these devices in order, balanced by
   * parameter bytes (embeddings on the first, final norm and LM head on the last; a tied head stays
   * with the embedding). Not together with `device`. See README "Models larger than one device".
   */
  devices?: readonly Device[];
  /** Default: float32 on CPU; on CUDA the checkpoint's own dtype (config.json), else float32. */
  dtype?: Dtype;
  /** Aborting rejects with ERR_ABORTED; a load already under way finishes and its model is disposed. */
  signal?: AbortSignal;
}

/** Where a model's weights are (README "Models larger than one device"). */
export interface ModelPlacement {
  /** The devices in order (one for a one-device model; a device may appear twice, e.g. ['cpu', 'cpu']). */
  devices: readonly Device[];
  /** Per layer: the index into `devices` of the device it runs on (non-decreasing, every index used). */
  layers: readonly number[];
  /** Index of the device holding the token (and position) embeddings: always 0. */
  embedding: number;
  /** Index of the device holding the final norm: the last. */
  finalNorm: number;
  /** Index of the device holding the LM head (and where logits are made): the last, or 0 when tied to the embedding. */
  head: number;
}

export interface ModelConfig {
  architecture: string;
  /** Family adapter name, e.g. llama, qwen2, gemma2 (README: "Supported architectures"). */
  family: string;
  nLayers: number;
  dModel: number;
  /** FF neurons per layer (width of blocks.{L}.mlp.pre_out). */
  dMlp: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  gatedMlp: boolean;
  tiedEmbeddings: boolean;
  /**
   * A bidirectional masked language model (RoBERTa): `evaluate` scores masked tokens, and the
   * next-token operations (generate, stream, score, evaluateChoices, membershipInference,
   * sequenceLogprobs, trainer) are ERR_NOT_CAUSAL_LM.
   */
  maskedLm: boolean;
  bosTokenId?: number;
  eosTokenIds: number[];
  /** The padding token id from config.json (RoBERTa's positions are offset by it). */
  padTokenId?: number;
}

/** Token ids [batch, seq]: rows of equal length, or a flat Int32Array with its shape. */
export type TokenBatch = readonly (readonly number[])[] | { data: Int32Array; shape: readonly [number, number] };

/** `blocks.{L}.mlp.pre_out` or `blocks.{L}.attn.pre_out`. */
export type HookName = `blocks.${number}.${'mlp' | 'attn'}.pre_out`;

export interface ForwardOptions {
  /** 1 for tokens, 0 for padding; same shape as inputIds. */
  attentionMask?: TokenBatch;
  /** Hook points whose activations to return. */
  capture?: readonly string[];
  /**
   * Only the logits of each row's last real token (the last position, or with right padding the
   * last one the mask marks as a token): shape [batch, 1, vocab]. The LM head then runs on those
   * rows alone. Default false.
   */
  lastPositionOnly?: boolean;
  /** Aborting rejects with ERR_ABORTED at once (the pass itself finishes on the model's thread and is dropped). */
  signal?: AbortSignal;
}

export interface Activation {
  /** Row-major float32 values. */
  data: Float32Array;
  /** [batch, seq, width]. */
  shape: [number, number, number];
}

export interface ForwardResult {
  /** Row-major float32 logits (the native result's own memory, handed over without a copy). */
  logits: Float32Array;
  /** [batch, seq, vocab], or [batch, 1, vocab] with lastPositionOnly. */
  shape: [number, number, number];
  activations?: Record<string, Activation>;
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 (default) is greedy decoding. */
  temperature?: number;
  /** Sample among the k most likely tokens (0 = all). */
  topK?: number;
  /** Seed of the sampler (default 0): the same seed gives the same text. */
  seed?: number;
  /** Stop at the config's end-of-sequence token (default true). */
  stopAtEos?: boolean;
  /** Sample among the most likely tokens whose probabilities add up to topP (nucleus; default 1 = all). */
  topP?: number;
  /** Stop strings (need the tokenizer): the text ends before the first one generated. */
  stop?: readonly string[];
  /** Time limit in milliseconds: the generation ends with the tokens so far (finishReason 'time'). */
  maxTime?: number;
  /** Aborting rejects with ERR_ABORTED and frees the request's slot before the next decoding step. */
  signal?: AbortSignal;
}

export interface StreamOptions extends GenerateOptions {
  /** Per-token log-probabilities: 0 for the chosen token's, k for it and the k most likely tokens'. */
  logprobs?: number;
}

/** One prompt and the continuation to score. Strings need the tokenizer; the continuation is encoded without special tokens. */
export interface ScoreRequest {
  prompt: string | readonly number[];
  continuation: string | readonly number[];
}

export interface ContinuationScoreOptions {
  /** Rows per forward pass (default 8). */
  batchSize?: number;
  signal?: AbortSignal;
}

export interface ContinuationScore {
  /** The continuation's token ids. */
  tokens: number[];
  /** log p(token | everything before it), natural log, one per continuation token. */
  logprobs: number[];
  /** Their sum: the continuation's log-likelihood. */
  sum: number;
  /** Number of continuation tokens. */
  count: number;
  /** Whether every continuation token is the model's most likely token (greedy decoding would produce it). */
  greedy: boolean;
}

export function validateDevice(device: unknown): Device {
  // cuda:N: N in 0..999 written without leading zeros, as torch.device prints it.
  if (typeof device !== 'string' || !/^(cpu|cuda|cuda:(0|[1-9]\d{0,2}))$/.test(device)) {
    throw new ExciseError('ERR_INVALID_DEVICE', `device: expected 'cpu', 'cuda' or 'cuda:N', received ${JSON.stringify(device)}`);
  }
  return device as Device;
}

export function validateDtype(dtype: unknown): Dtype {
  if (typeof dtype !== 'string' || !DTYPES.includes(dtype as Dtype)) {
    throw new ExciseError('ERR_INVALID_DTYPE', `dtype: expected one of ${DTYPES.join(', ')}, received ${JSON.stringify(dtype)}`);
  }
  return dtype as Dtype;
}

/** Flattens a TokenBatch into an Int32Array [batch * seq], checking shape and integer values. */
function flattenBatch(input: unknown, name: string): { data: Int32Array; batch: number; seq: number } {
  if (input !== null && typeof input === 'object' && !Array.isArray(input) && 'data' in input && 'shape' in input) {
    const { data, shape } = input as { data: unknown; shape: unknown };
    if (!(data instanceof Int32Array)) throw invalidArgument(`${name}.data`, 'an Int32Array', data);
    if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((s) => Number.isInteger(s) && s > 0)) {
      throw invalidArgument(`${name}.shape`, '[batch, seq] of positive integers', shape);
    }
    if (data.length !== shape[0] * shape[1]) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', `${name}: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${shape[0] * shape[1]}`);
    }
    return { data, batch: shape[0], seq: shape[1] };
  }
  if (!Array.isArray(input) || input.length === 0) {
    throw invalidArgument(name, 'a non-empty number[][] or { data: Int32Array, shape: [batch, seq] }', input);
  }
  const seq = Array.isArray(input[0]) ? input[0].length : 0;
  if (seq === 0) throw invalidArgument(`${name}[0]`, 'a non-empty array of token ids', input[0]);
  const data = new Int32Array(input.length * seq);
  input.forEach((row: unknown, b: number) => {
    if (!Array.isArray(row)) throw invalidArgument(`${name}[${b}]`, 'an array of integers', row);
    if (row.length !== seq) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', `${name}: rows must have equal lengths (pad them and pass attentionMask); row 0 has ${seq}, row ${b} has ${row.length}`);
    }
    // An index loop, not forEach: forEach skips the holes of a sparse row ([ , 1, 2]).
    for (let t = 0; t < seq; t++) {
      const v: unknown = row[t];
      if (!Number.isInteger(v) || (v as number) < -2147483648 || (v as number) > 2147483647) {
        throw invalidArgument(`${name}[${b}][${t}]`, 'an integer', v);
      }
      data[b * seq + t] = v as number;
    }
  });
  return { data, batch: input.length, seq };
}

export class Model {
  /** The folder the model was loaded from (undefined for models built in memory). */
  readonly dir: string | undefined;
  readonly config: ModelConfig;
  /** 'cpu' or 'cuda:N': the first device (of `devices`). */
  readonly device: Device;
  /** Every device the model is on, in layer order (`[device]` for a one-device model). */
  readonly devices: readonly Device[];
  /** Which device holds each layer, the embeddings and the head. */
  readonly placement: ModelPlacement;
  readonly dtype: Dtype;
  readonly parameterCount: number;
  private readonly handle: NativeModel;
  private readonly tokenizerInstance: Tokenizer | undefined;
  private readonly sourceConfig: Record<string, unknown>;
  /** The native core's masks as of the last prune/restore (the core is the one source of truth). */
  private pruneMasks: { ff: Uint8Array[]; attn: Uint8Array[] };
  private readonly pruneHistory: Array<{ selection: Selection; meanOffset: boolean; pruned: PruneResult }> = [];
  private disposed = false;
  /** Every public call takes its place here when it is made. */
  private readonly order = new CallOrder();
  /** Continuous batching of generate/stream (created at the first one). */
  private scheduler: DecodeScheduler | undefined;
  private engineOptions: Required<EngineOptions> | undefined;

  /** @internal Use loadModel(). */
  constructor(handle: NativeModel, dir: string | undefined, tokenizer: Tokenizer | undefined) {
    const c: NativeModelConfig = handle.config();
    this.handle = handle;
    // config.json as the native loader parsed it: parsed once, saved back with the model.
    this.sourceConfig = handle.sourceConfig();
    this.pruneMasks = {
      ff: Array.from({ length: c.nLayers }, () => new Uint8Array(c.dMlp)),
      attn: Array.from({ length: c.nLayers }, () => new Uint8Array(c.nHeads * c.headDim)),
    };
    this.dir = dir;
    this.tokenizerInstance = tokenizer;
    this.device = c.device as Device;
    this.devices = Object.freeze([...c.devices]) as readonly Device[];
    this.placement = Object.freeze({
      devices: this.devices,
      layers: Object.freeze([...c.layerDevices]),
      embedding: c.embedDevice,
      finalNorm: c.finalDevice,
      head: c.headDevice,
    });
    this.dtype = c.dtype as Dtype;
    this.parameterCount = c.parameterCount;
    this.config = Object.freeze({
      architecture: c.architecture,
      family: c.family,
      nLayers: c.nLayers,
      dModel: c.dModel,
      dMlp: c.dMlp,
      nHeads: c.nHeads,
      nKvHeads: c.nKvHeads,
      headDim: c.headDim,
      vocabSize: c.vocabSize,
      maxPositions: c.maxPositions,
      gatedMlp: c.gatedMlp,
      tiedEmbeddings: c.tiedEmbeddings,
      maskedLm: c.maskedLm,
      bosTokenId: c.bosTokenId >= 0 ? c.bosTokenId : undefined,
      eosTokenIds: Object.freeze([...c.eosTokenIds]) as number[],
      padTokenId: c.padTokenId >= 0 ? c.padTokenId : undefined,
    });
  }

  /** The model's tokenizer (from tokenizer.json). ERR_TOKENIZER_MISSING when the folder has none. */
  get tokenizer(): Tokenizer {
    if (!this.tokenizerInstance) {
      throw new ExciseError('ERR_TOKENIZER_MISSING', `${this.dir ?? 'this model'}: no tokenizer.json, so text cannot be encoded; pass token ids instead`);
    }
    return this.tokenizerInstance;
  }

  get hasTokenizer(): boolean {
    return this.tokenizerInstance !== undefined;
  }

  /** Every hook point of this model, layer by layer. */
  hookNames(): HookName[] {
    const names: HookName[] = [];
    for (let l = 0; l < this.config.nLayers; l++) names.push(`blocks.${l}.mlp.pre_out`, `blocks.${l}.attn.pre_out`);
    return names;
  }

  /** Checkpoint tensor names, as they will be saved. */
  tensorNames(): string[] {
    return this.live().tensorNames();
  }

  /**
   * Runs the model on a batch of token ids. Padding: give attentionMask (1 = token, 0 = padding);
   * padded keys are never attended to, as in Hugging Face.
   */
  async forward(inputIds: TokenBatch, options: ForwardOptions = {}): Promise<ForwardResult> {
    checkOptionsObject('forward(options)', options);
    checkKeys('forward', options, ['attentionMask', 'capture', 'lastPositionOnly', 'signal']);
    const lastPositionOnly = checkBoolean('forward: lastPositionOnly', options.lastPositionOnly ?? false);
    checkSignal('forward', (options as ForwardOptions).signal);
    if ((options as ForwardOptions).signal?.aborted) throw new ExciseError('ERR_ABORTED', 'forward: aborted');
    const handle = this.live();
    const ids = flattenBatch(inputIds, 'inputIds');
    this.checkTokenRange(ids.data, ids.seq, 'inputIds');
    let mask: Int32Array | null = null;
    if (options.attentionMask !== undefined) {
      const m = flattenBatch(options.attentionMask, 'attentionMask');
      if (m.batch !== ids.batch || m.seq !== ids.seq) {
        throw new ExciseError('ERR_INVALID_ARGUMENT', `attentionMask: shape [${m.batch}, ${m.seq}] does not match inputIds [${ids.batch}, ${ids.seq}]`);
      }
      if (!m.data.every((v) => v === 0 || v === 1)) throw invalidArgument('attentionMask', 'only 0 and 1', options.attentionMask);
      mask = m.data;
    }
    const capture = this.checkCapture(options.capture);
    const run = this.order.single(() => handle.forward(ids.data, ids.batch, ids.seq, mask, capture, lastPositionOnly));
    // A forward cannot stop half-way: an abort rejects at once and its result is dropped when it arrives.
    const r = await withCallerStack(() => raceAbort(run, (options as ForwardOptions).signal, 'forward'));
    return r as ForwardResult;
  }

  /**
   * Continues a prompt with a KV cache. A string prompt needs the tokenizer and resolves to the
   * generated text (without the prompt); token ids resolve to the generated ids. Concurrent calls
   * are decoded together (continuous batching; see `stream`), each with its own settings and seed.
   */
  generate(prompt: string, options: GenerateOptions): Promise<string>;
  generate(prompt: readonly number[], options: GenerateOptions): Promise<number[]>;
  async generate(prompt: string | readonly number[], options: GenerateOptions): Promise<string | number[]> {
    // Token ids in, token ids out: no text to decode unless stop strings need it.
    const wantText = typeof prompt === 'string' || (Array.isArray(options?.stop) && options.stop.length > 0);
    const stream = this.startGeneration('generate', prompt, options, GENERATE_KEYS, wantText);
    const r = await withCallerStack(() => stream.result);
    return typeof prompt === 'string' ? r.text : r.tokens;
  }

  /**
   * Generates as `generate` does, chunk by chunk: `for await (const chunk of model.stream(...))`
   * gives each generated token with the text it completes (never half a UTF-8 character); the
   * stream's `result` resolves to the whole generation (text, tokens, finishReason, log-probabilities).
   * Requests on one model made while it generates join the running batch between two decoding steps.
   */
  stream(prompt: string | readonly number[], options: StreamOptions): GenerationStream {
    return this.startGeneration('stream', prompt, options, [...GENERATE_KEYS, 'logprobs'], true);
  }

  /** Like `stream(...).result`, for callers that want the finish reason and log-probabilities without the chunks. */
  generateDetailed(prompt: string | readonly number[], options: StreamOptions): Promise<GenerationResult> {
    return this.startGeneration('generateDetailed', prompt, options, [...GENERATE_KEYS, 'logprobs'], true).result;
  }

  /**
   * Sets the decode engine's size (applies from the next batch of generations, in call order):
   * `maxBatch` requests decoded together, `maxSequence` positions per request.
   */
  configureEngine(options: EngineOptions): void {
    checkOptionsObject('configureEngine(options)', options);
    checkKeys('configureEngine', options, ['maxBatch', 'maxSequence']);
    const { maxBatch = 16, maxSequence = this.defaultMaxSequence() } = options as EngineOptions;
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 1024) throw invalidArgument('configureEngine: maxBatch', 'an integer in [1, 1024]', maxBatch);
    if (!Number.isInteger(maxSequence) || maxSequence < 2 || maxSequence > 1 << 20) throw invalidArgument('configureEngine: maxSequence', 'an integer in [2, 2^20]', maxSequence);
    this.live();
    this.engineOptions = { maxBatch, maxSequence };
    const old = this.scheduler;
    this.scheduler = undefined;
    if (old) void this.order.single(() => old.release() ?? Promise.resolve()).catch(() => {});
  }

  /** The decode engine's state (for metrics): active and waiting requests, last batch size, steps, tokens. */
  get engineStats(): EngineStats {
    const s = this.scheduler?.stats ?? { active: 0, waiting: 0, batch: 0, steps: 0, tokens: 0 };
    return { ...s };
  }

  /**
   * Log-probabilities of continuations given prompts, batched on the device: per token, summed,
   * the token count, and whether greedy decoding would produce the continuation.
   */
  async score(requests: readonly ScoreRequest[], options: ContinuationScoreOptions = {}): Promise<ContinuationScore[]> {
    checkOptionsObject('score(options)', options);
    this.requireCausalLm('score');
    checkKeys('score', options, ['batchSize', 'signal']);
    const { batchSize = 8, signal } = options as ContinuationScoreOptions;
    positiveInt('score: batchSize', batchSize);
    checkSignal('score', signal);
    if (!Array.isArray(requests)) throw invalidArgument('score(requests)', 'an array of { prompt, continuation }', requests);
    const handle = this.live();
    const rows = requests.map((r: unknown, i) => {
      if (r === null || typeof r !== 'object') throw invalidArgument(`score: requests[${i}]`, '{ prompt, continuation }', r);
      const { prompt, continuation } = r as ScoreRequest;
      const p = this.tokenIds(prompt, `score: requests[${i}].prompt`, true);
      const c = this.tokenIds(continuation, `score: requests[${i}].continuation`, false);
      return { prompt: p, continuation: c };
    });
    if (signal?.aborted) throw new ExciseError('ERR_ABORTED', 'score: aborted');
    return withCallerStack(() => this.order.multi(async () => {
      const out: ContinuationScore[] = [];
      for (let start = 0; start < rows.length; start += batchSize) {
        if (signal?.aborted) throw new ExciseError('ERR_ABORTED', 'score: aborted');
        const batch = rows.slice(start, start + batchSize);
        const seq = Math.max(...batch.map((r) => r.prompt.length + r.continuation.length));
        const ids = new Int32Array(batch.length * seq);
        const mask = new Int32Array(batch.length * seq);
        const targets = new Int32Array(batch.length * seq);
        batch.forEach((r, b) => {
          const all = [...r.prompt, ...r.continuation];
          for (let t = 0; t < all.length; t++) {
            ids[b * seq + t] = all[t];
            mask[b * seq + t] = 1;
            if (t >= r.prompt.length) targets[b * seq + t] = 1;
          }
        });
        const padded = batch.some((r) => r.prompt.length + r.continuation.length < seq);
        const { logprobs, greedy } = await handle.tokenLogprobs(ids, batch.length, seq, padded ? mask : null, targets);
        let k = 0;
        for (const r of batch) {
          const n = r.continuation.length;
          const lps = Array.from(logprobs.subarray(k, k + n));
          const allGreedy = greedy.subarray(k, k + n).every((g) => g === 1);
          k += n;
          out.push({ tokens: [...r.continuation], logprobs: lps, sum: lps.reduce((a, b) => a + b, 0), count: n, greedy: allGreedy });
        }
      }
      return out;
    }));
  }

  private defaultMaxSequence(): number {
    return Math.max(2, Math.min(this.config.maxPositions || 2048, 2048));
  }

  /** Token ids of a prompt or continuation (strings through the tokenizer), checked. */
  private tokenIds(value: unknown, name: string, addSpecialTokens: boolean): number[] {
    const ids = typeof value === 'string' ? this.tokenizer.encode(value, { addSpecialTokens }) : value;
    if (!Array.isArray(ids) || ids.length === 0) throw invalidArgument(name, 'a non-empty string or array of token ids', value);
    const data = flattenBatch([ids], name).data;
    this.checkTokenRange(data, data.length, name);
    return Array.from(data);
  }

  /** Validates, then submits to the decode engine; `wantText` decodes text chunks (when there is a tokenizer). */
  private startGeneration(where: string, prompt: string | readonly number[], options: StreamOptions, allowed: readonly string[], wantText: boolean): GenerationStream {
    this.requireCausalLm(where);
    checkOptionsObject(`${where}(options)`, options);
    checkKeys(where, options, allowed);
    const { maxNewTokens, temperature = 0, topK = 0, topP = 1, seed = 0, stopAtEos = true, stop = [], maxTime, signal, logprobs = -1 } = options;
    positiveInt(`${where}: maxNewTokens`, maxNewTokens);
    if (typeof temperature !== 'number' || !(temperature >= 0) || !Number.isFinite(temperature)) throw invalidArgument(`${where}: temperature`, 'a number >= 0', temperature);
    if (!Number.isInteger(topK) || topK < 0) throw invalidArgument(`${where}: topK`, 'an integer >= 0', topK);
    if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw invalidArgument(`${where}: topP`, 'a number in (0, 1]', topP);
    if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw invalidArgument(`${where}: seed`, 'a non-negative integer', seed);
    if (!Array.isArray(stop) || !stop.every((x) => typeof x === 'string' && x.length > 0)) throw invalidArgument(`${where}: stop`, 'an array of non-empty strings', stop);
    if (maxTime !== undefined && (typeof maxTime !== 'number' || !(maxTime > 0) || !Number.isFinite(maxTime))) throw invalidArgument(`${where}: maxTime`, 'a positive number of milliseconds', maxTime);
    if (logprobs !== -1 && (!Number.isInteger(logprobs) || logprobs < 0 || logprobs > 100)) throw invalidArgument(`${where}: logprobs`, 'an integer in [0, 100]', logprobs);
    checkSignal(where, signal);
    const handle = this.live();
    const asText = typeof prompt === 'string';
    const ids = asText ? this.tokenizer.encode(prompt) : prompt;
    if (!Array.isArray(ids) || ids.length === 0) throw invalidArgument(`${where}: prompt`, 'a non-empty string or array of token ids', prompt);
    const data = flattenBatch([ids], 'prompt').data;
    this.checkTokenRange(data, data.length, 'prompt');
    if (stop.length > 0) void this.tokenizer;  // ERR_TOKENIZER_MISSING: stop strings are matched in text
    this.engineOptions ??= { maxBatch: 16, maxSequence: this.defaultMaxSequence() };
    const { maxBatch, maxSequence } = this.engineOptions;
    if (data.length >= maxSequence) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', `${where}: the prompt has ${data.length} tokens; the decode engine holds ${maxSequence} positions per sequence (prompt and generated tokens; model.configureEngine({ maxSequence }))`);
    }
    this.scheduler ??= new DecodeScheduler(handle, this.order, { maxBatch, maxSequence });
    const stopIds = stopAtEos ? [...this.config.eosTokenIds] : [];
    return new GenerationStream({
      scheduler: this.scheduler,
      tokenizer: wantText ? this.tokenizerInstance : undefined,
      request: { prompt: data, maxNewTokens, temperature, topK, topP, seed, stopIds, logprobs },
      stop,
      maxTime,
      signal,
    }, data.length);
  }

  /**
   * Activation statistics of every hook point (or those named) over a dataset: texts (tokenized
   * with the model's tokenizer) or token-id sequences, truncated to maxLength and batched by length.
   */
  async collect(source: DocumentSource | DocumentProvider, options: CollectOptions = {}): Promise<ActivationStats> {
    checkOptionsObject('collect(options)', options);
    const handle = this.live();
    return this.order.multi(() => collectStats({ handle, tokenizer: this.tokenizerInstance, config: this.config, hookNames: this.hookNames() }, source, options));
  }

  /**
   * Next-token metrics over a dataset (texts or token ids): loss, perplexity, top-1 and top-k
   * accuracy, and the same accuracies skipping the evaluated tokens' 50 most common ids.
   */
  async evaluate(source: DocumentSource | DocumentProvider, options: EvaluateOptions = {}): Promise<EvalResult> {
    checkOptionsObject('evaluate(options)', options);
    const handle = this.live();
    return this.order.multi(() => evaluateModel({ handle, tokenizer: this.tokenizerInstance, config: this.config }, source, options));
  }

  /**
   * Multiple-choice accuracy (acc and length-normalised acc_norm, as lm-evaluation-harness): each
   * choice scored by the log-likelihood of its tokens after the question. `source`: a jsonl(.gz)
   * file of { question, choices, answer } lines, or such items.
   */
  async evaluateChoices(source: string | readonly ChoiceItem[], options: ChoicesOptions = {}): Promise<ChoicesResult> {
    checkOptionsObject('evaluateChoices(options)', options);
    this.requireCausalLm('evaluateChoices');
    const handle = this.live();
    return this.order.multi(() => evaluateChoices({ handle, tokenizer: this.tokenizerInstance, config: this.config }, source, options));
  }

  /**
   * Membership inference AUCs (loss and min-k% prob) between documents the model saw (members)
   * and held-out documents of the same distribution (non-members).
   */
  async membershipInference(members: DocumentSource | DocumentProvider, nonMembers: DocumentSource | DocumentProvider, options: MembershipOptions = {}): Promise<MembershipResult> {
    checkOptionsObject('membershipInference(options)', options);
    this.requireCausalLm('membershipInference');
    const handle = this.live();
    return this.order.multi(() => membershipInference({ handle, tokenizer: this.tokenizerInstance, config: this.config }, members, nonMembers, options));
  }

  /**
   * Per-token log-probabilities of whole token-id sequences (2 .. maxPositions ids each): for each
   * sequence, log p(token t | tokens before it) for t >= 1, and whether it was the argmax.
   */
  async sequenceLogprobs(sequences: readonly (readonly number[])[], options: SequenceLogprobOptions = {}): Promise<SequenceLogprobs> {
    checkOptionsObject('sequenceLogprobs(options)', options);
    this.requireCausalLm('sequenceLogprobs');
    if (!Array.isArray(sequences) || sequences.length === 0 || !sequences.every((s) => Array.isArray(s))) throw invalidArgument('sequenceLogprobs(sequences)', 'a non-empty array of token-id arrays', sequences);
    const handle = this.live();
    return this.order.multi(() => sequenceLogprobs({ handle, config: this.config }, sequences, options));
  }

  /**
   * @internal Zeroes every pruned weight slice again, after training moved them (the relearning
   * attack's keepPruned). The masks do not change; mean-offset biases stay as trained.
   */
  async rezeroPruned(): Promise<void> {
    const handle = this.live();
    await withCallerStack(() => this.order.single(() => handle.rezeroPruned()));
  }

  /**
   * @internal ‖W_out[:, i]‖₂ per input neuron i of every layer's FF output projection ([dMlp] per
   * layer) and attention output projection ([nHeads * headDim]), in float64, from the current
   * weights (a pruned neuron's column is 0) on each layer's device: the Wanda-style baseline's
   * weight factor (method/wanda.ts outputColumnNorms, the public entry).
   */
  async outputColumnNorms(): Promise<{ ff: Float64Array[]; attn: Float64Array[] }> {
    const handle = this.live();
    return withCallerStack(() => this.order.single(() => handle.outputColumnNorms()));
  }

  /**
   * Prunes the selected neurons in place: zeroes each one's input column of the output projection
   * (and the rows and biases feeding only it). Already-pruned neurons are skipped; prunes compose.
   */
  async prune(selection: Selection, options: PruneOptions = {}): Promise<PruneResult> {
    checkOptionsObject('prune(options)', options);
    checkKeys('prune', options, ['meanOffset']);
    const handle = this.live();
    const { nLayers, dMlp, nHeads, headDim } = this.config;
    const toLayers = (lists: unknown, name: string, width: number): Int32Array[] => {
      if (lists === undefined) return [];
      if (!Array.isArray(lists) || lists.length !== nLayers) throw invalidArgument(`selection.${name}`, `an array of ${nLayers} index arrays (one per layer)`, lists);
      return lists.map((l: unknown, layer) => {
        if (!Array.isArray(l) && !(l instanceof Int32Array)) throw invalidArgument(`selection.${name}[${layer}]`, 'an array of neuron indices', l);
        const list = l as ArrayLike<number>;
        for (let k = 0; k < list.length; k++) {
          const i = list[k];
          if (!Number.isInteger(i) || i < 0 || i >= width) throw invalidArgument(`selection.${name}[${layer}]`, `neuron indices in [0, ${width})`, i);
        }
        return Int32Array.from(l as ArrayLike<number>);
      });
    };
    if (selection === null || typeof selection !== 'object') throw invalidArgument('prune(selection)', '{ ff: number[][], attn: number[][] }', selection);
    const ff = toLayers(selection.ff, 'ff', dMlp);
    const attn = toLayers(selection.attn, 'attn', nHeads * headDim);
    let ffMean: Float64Array[] | null = null;
    let attnMean: Float64Array[] | null = null;
    if (options.meanOffset !== undefined) {
      const stats = options.meanOffset as ActivationStats;
      if (typeof stats?.has !== 'function') throw invalidArgument('prune: meanOffset', 'ActivationStats (e.g. of the retain set)', stats);
      const means = (site: 'mlp' | 'attn', lists: Int32Array[]) =>
        lists.length === 0 ? null : lists.map((l, layer) => {
          const hook = `blocks.${layer}.${site}.pre_out`;
          if (l.length > 0 && !stats.has(hook)) throw new ExciseError('ERR_INVALID_ARGUMENT', `prune: meanOffset statistics lack ${hook}`);
          return stats.has(hook) ? stats.hook(hook).mean : new Float64Array(site === 'mlp' ? dMlp : nHeads * headDim);
        });
      ffMean = means('mlp', ff);
      attnMean = means('attn', attn);
    }
    const recorded: Selection = { ff: ff.map((l) => Array.from(l)), attn: attn.map((l) => Array.from(l)) };
    const meanOffset = options.meanOffset !== undefined;
    return withCallerStack(() => this.order.single(async () => {
      // The native job returns the masks it left, so nothing can run between the prune and them.
      const { masks, ...pruned } = await handle.prune(ff, attn, ffMean, attnMean);
      this.pruneMasks = masks;
      this.pruneHistory.push({ selection: recorded, meanOffset, pruned });
      return pruned;
    }));
  }

  /** Pruned neurons per layer (1 = pruned) and their counts. */
  get masks(): PruneMasks {
    const count = (m: Uint8Array) => m.reduce((n, v) => n + v, 0);
    return {
      ff: this.pruneMasks.ff.map((m) => m.slice()),
      attn: this.pruneMasks.attn.map((m) => m.slice()),
      counts: { ff: this.pruneMasks.ff.map(count), attn: this.pruneMasks.attn.map(count) },
    };
  }

  /** @internal The masks as the native core holds them (tests check they agree with `masks`). */
  async nativeMasks(): Promise<{ ff: Uint8Array[]; attn: Uint8Array[] }> {
    const handle = this.live();
    return this.order.single(() => handle.masks());
  }

  /** Puts back every pruned weight and bias exactly, and clears the masks. */
  async restore(): Promise<void> {
    const handle = this.live();
    await withCallerStack(() => this.order.single(async () => {
      this.pruneMasks = await handle.restore();
      this.pruneHistory.length = 0;
    }));
  }

  /**
   * Writes the model as a Hugging Face folder plus excise.json (what was pruned). Atomic; refuses
   * the model's source folder, and an existing folder unless { overwrite: true }.
   */
  /** Whether a trainer was made: its steps may change any weight (saving then rewrites every shard). */
  private trained = false;

  async save(dir: string, options: SaveOptions = {}): Promise<void> {
    checkOptionsObject('save(options)', options);
    const handle = this.live();
    // What is saved is the model as every earlier call leaves it: read the masks and history when
    // this call's turn comes, not now.
    await this.order.multi(() => this.saveNow(handle, dir, options));
  }

  private async saveNow(handle: NativeModel, dir: string, options: SaveOptions): Promise<void> {
    const counts = this.masks.counts;
    // Pruning edits only its own layers' tensors; training may have changed any weight.
    const changedLayers = this.trained ? 'all' as const
      : new Set(counts.ff.map((n, layer) => n + counts.attn[layer] > 0 ? layer : -1).filter((layer) => layer >= 0));
    await saveModelFolder({
      handle,
      sourceDir: this.dir,
      changedLayers,
      config: this.sourceConfig,
      dtype: this.dtype,
      excise: {
        excise: 1,
        source: this.dir ?? null,
        architecture: this.config.architecture,
        savedAt: new Date().toISOString(),
        pruned: { ff: counts.ff, attn: counts.attn },
        prunes: [...this.pruneHistory],
      },
    }, dir, options);
  }

  /**
   * A trainer for this model's weights (AdamW, warmup + cosine schedule, gradient clipping). The
   * weights change in place with every trainer.step(); close() ends training.
   */
  trainer(options: TrainOptions = {}): Trainer {
    checkOptionsObject('trainer(options)', options);
    this.requireCausalLm('trainer');
    const handle = this.live();
    this.trained = true;
    // Creating the native trainer only checks the options; it touches the weights on the model's
    // thread, at its first step, in call order.
    return new Trainer(handle, handle.trainerCreate(trainOptions(options)), this.config.vocabSize, this.order);
  }

  /** `await using model = await loadModel(dir)` disposes the model when the scope ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  /**
   * Frees the weights after every call made before it has finished. Later calls fail with
   * ERR_MODEL_DISPOSED.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return this.order.idle();
    this.disposed = true;
    const scheduler = this.scheduler;
    this.scheduler = undefined;
    await this.order.single(async () => {
      await scheduler?.release();  // the KV cache, before the weights
      await this.handle.dispose();
      this.tokenizerInstance?.dispose();
    });
  }

  private live(): NativeModel {
    if (this.disposed) throw new ExciseError('ERR_MODEL_DISPOSED', `${this.dir ?? 'model'}: the model has been disposed`);
    return this.handle;
  }

  /** Next-token operations refuse a masked LM: its logits at t are not a prediction of token t + 1. */
  private requireCausalLm(where: string): void {
    if (this.config.maskedLm) {
      throw new ExciseError('ERR_NOT_CAUSAL_LM', `${where}: ${this.dir ?? 'this model'} (${this.config.architecture}) is a masked language model; ${where} needs next-token predictions (evaluate() scores masked tokens instead)`);
    }
  }

  private checkTokenRange(data: Int32Array, seq: number, name: string): void {
    const vocab = this.config.vocabSize;
    for (let i = 0; i < data.length; i++) {
      const id = data[i];
      if (id < 0 || id >= vocab) {
        throw new ExciseError('ERR_TOKEN_OUT_OF_RANGE', `${name}: token id ${id} at [${Math.floor(i / seq)}, ${i % seq}] is outside the vocabulary [0, ${vocab})`);
      }
    }
  }

  private checkCapture(capture: unknown): string[] {
    if (capture === undefined) return [];
    if (!Array.isArray(capture) || !capture.every((c) => typeof c === 'string')) {
      throw invalidArgument('capture', 'an array of hook names', capture);
    }
    const valid = new Set<string>(this.hookNames());
    for (const name of capture) {
      if (!valid.has(name)) {
        throw new ExciseError('ERR_INVALID_ARGUMENT', `capture: unknown hook point "${name}" (expected blocks.{0..${this.config.nLayers - 1}}.mlp.pre_out or blocks.{L}.attn.pre_out)`);
      }
    }
    return [...new Set(capture as string[])];
  }
}

const GENERATE_KEYS = ['maxNewTokens', 'temperature', 'topK', 'topP', 'seed', 'stopAtEos', 'stop', 'maxTime', 'signal'] as const;

/** The promise's outcome, or ERR_ABORTED as soon as the signal aborts (the work itself is not stopped). */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal | undefined, where: string): Promise<T> {
  if (!signal) return work;
  work.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new ExciseError('ERR_ABORTED', `${where}: aborted`));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function checkLoadOptions(options: unknown, where = 'loadModel'): { device: string; dtype: string; devices: string[] | undefined } {
  checkOptionsObject(`${where}(options)`, options);
  checkKeys(where, options, ['device', 'devices', 'dtype', 'signal']);
  checkSignal(where, options.signal);
  const device = options.device === undefined || options.device === 'auto' ? (options.device ?? 'cpu') : validateDevice(options.device);
  const dtype = options.dtype === undefined ? '' : validateDtype(options.dtype);
  const devices = options.devices === undefined ? undefined : validateDevices(options.devices, where);
  if (devices !== undefined && options.device !== undefined) {
    throw new ExciseError('ERR_INVALID_ARGUMENT', `${where}: give either device or devices, not both (received device ${JSON.stringify(options.device)} and devices ${JSON.stringify(options.devices)})`);
  }
  return { device: device as string, dtype, devices };
}

/**
 * The `devices` option: a non-empty array of device names ('cpu', 'cuda', 'cuda:N'). Mixing the CPU
 * and GPUs is allowed (as Hugging Face's device maps allow it: layers on the CPU run there), and so
 * is a device named twice (two stages on one device: ['cpu', 'cpu'] runs the split code on a CPU).
 * Whether each GPU exists is the native loader's to say (ERR_DEVICE_UNAVAILABLE naming devices[i]),
 * and whether the model has a layer for every device (ERR_INVALID_ARGUMENT).
 */
function validateDevices(devices: unknown, where: string): string[] {
  if (!Array.isArray(devices) || devices.length === 0) {
    throw invalidArgument(`${where}: devices`, "a non-empty array of devices such as ['cuda:0', 'cuda:1']", devices);
  }
  return devices.map((d: unknown, i) => {
    try {
      return validateDevice(d);
    } catch (err) {
      if (err instanceof ExciseError) {
        throw new ExciseError('ERR_INVALID_DEVICE', `${where}: devices[${i}]: expected 'cpu', 'cuda' or 'cuda:N', received ${JSON.stringify(d)}`);
      }
      throw err;
    }
  });
}

/**
 * Loads a Hugging Face model folder: config.json, model.safetensors (or a sharded index), and
 * tokenizer.json when present.
 */
export async function loadModel(dir: string, options: LoadOptions = {}): Promise<Model> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument('loadModel(dir)', 'a folder path', dir);
  const { device, dtype, devices } = checkLoadOptions(options);
  const abs = resolve(dir);
  checkModelPath(dir, abs); // a file, a GGUF, .bin-only weights or a Hub id: says what to do
  const tokenizerFile = join(abs, 'tokenizer.json');
  // lstat: a dangling link or a FIFO under the name still counts as present (and fails, coded).
  const hasTokenizer = (() => { try { lstatSync(tokenizerFile); return true; } catch { return false; } })();
  const tokenizer = hasTokenizer ? Tokenizer.fromFile(tokenizerFile) : undefined;
  let handle: NativeModel;
  try {
    if (options.signal?.aborted) throw new ExciseError('ERR_ABORTED', 'loadModel: aborted');
    handle = await withCallerStack(() => native().loadModel(abs, device, dtype, devices));
  } catch (err) {
    tokenizer?.dispose();
    throw err;
  }
  if (options.signal?.aborted) {
    tokenizer?.dispose();
    await handle.dispose();
    throw new ExciseError('ERR_ABORTED', 'loadModel: aborted');
  }
  return new Model(handle, abs, tokenizer);
}

/**
 * Builds a model with random weights (N(0, 0.02), norms 1, biases 0) from a config.json object,
 * with no files: for benchmarks and tests.
 */
export async function createRandomModel(config: Record<string, unknown>, options: LoadOptions & { seed?: number } = {}): Promise<Model> {
  if (config === null || typeof config !== 'object') throw invalidArgument('createRandomModel(config)', 'a config.json object', config);
  const { seed = 0, signal: _signal, ...rest } = options;
  nonNegativeInt('createRandomModel: seed', seed);
  const { device, dtype, devices } = checkLoadOptions(rest, 'createRandomModel');
  let configJson: string;
  try {
    configJson = JSON.stringify(config);
  } catch (err) {
    // A circular object or a BigInt field: not a config.json.
    throw new ExciseError('ERR_CONFIG_INVALID', `createRandomModel(config): not JSON data (${(err as Error).message})`);
  }
  const handle = await withCallerStack(() => native().createRandomModel(configJson, device, dtype, seed, devices));
  return new Model(handle, undefined, undefined);
}
