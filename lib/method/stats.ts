/**
 * Per-neuron activation statistics, as collected natively by model.collect(): for every hook point,
 * over every non-padding token, the float64 sums count, sum x, sum |x|, sum x^2, sum sqrt|x| and
 * count(x > 0). Everything else is derived from these sums, so statistics of shards merge exactly
 * (by adding sums) and save losslessly.
 */
import { ExciseError, invalidArgument } from '../errors.js';
import { readSafetensors, writeSafetensors, type SafetensorsTensor } from '../safetensors.js';
import type { TokenUsage } from '../data/batches.js';

/**
 * The one list of statistics keys: the per-neuron sums, named as the native export names them
 * (native/stats.h kSumNames, same order; collect() checks each export against this list) and as a
 * saved statistics file names them (`file`). Everything that reads, merges, saves or loads sums
 * iterates this list.
 */
export const STAT_SUMS = [
  { key: 'sum', file: 'sum' },               // sum x
  { key: 'sumAbs', file: 'sum_abs' },         // sum |x|
  { key: 'sumSq', file: 'sum_sq' },           // sum x^2
  { key: 'sumSqrtAbs', file: 'sum_sqrt_abs' },  // sum sqrt|x|
  { key: 'countPositive', file: 'count_positive' },  // count(x > 0)
] as const;
export type SumKey = (typeof STAT_SUMS)[number]['key'];

/** The raw float64 sums of one hook point, one array per key of STAT_SUMS. */
export type NeuronSums = Record<SumKey, Float64Array>;

/** The keys of STAT_SUMS in its order (the order sums are packed in, e.g. for an all-reduce). */
export const SUM_KEYS: readonly SumKey[] = STAT_SUMS.map((s) => s.key);
const SORTED_SUM_KEYS = [...SUM_KEYS].sort().join(',');

/** The sums of one hook point from a native export; ERR_INTERNAL unless it has exactly STAT_SUMS's keys. */
export function sumsFromExport(hook: string, exported: Record<string, Float64Array> | undefined): NeuronSums {
  const keys = Object.keys(exported ?? {}).sort().join(',');
  if (keys !== SORTED_SUM_KEYS) throw new ExciseError('ERR_INTERNAL', `collect: the native export of ${hook} has sums [${keys}], expected [${SORTED_SUM_KEYS}]`);
  return exported as NeuronSums;
}

/** Derived per-neuron statistics of one hook point (population statistics over tokens). */
export interface NeuronStats {
  /** Non-padding tokens seen. */
  tokens: number;
  /** mean x */
  mean: Float64Array;
  /** mean |x| (the `abs` importance) */
  meanAbs: Float64Array;
  /** sqrt(mean x^2) (the `rms` importance) */
  rms: Float64Array;
  /** sqrt(max(0, mean x^2 - (mean x)^2)), the population standard deviation (the `std` importance) */
  std: Float64Array;
  /** fraction of tokens with x > 0 (the `freq` importance) */
  freq: Float64Array;
  /** mean sqrt|x| (the `sqrt` importance) */
  meanSqrtAbs: Float64Array;
}

export interface StatsModelInfo {
  architecture: string;
  nLayers: number;
  dMlp: number;
  attnDim: number;
}

const FILE_KEYS = Object.fromEntries(STAT_SUMS.map((s) => [s.key, s.file])) as Record<SumKey, string>;
const KEY_OF_FILE = new Map<string, SumKey>(STAT_SUMS.map((s) => [s.file, s.key]));
// A saved sum's tensor name: {hook point}.{file key}.
const SAVED_SUM = new RegExp(`^(blocks\\.\\d+\\.(?:mlp|attn)\\.pre_out)\\.(${STAT_SUMS.map((s) => s.file).join('|')})$`);
const FORMAT = 'excise-activation-stats';

export class ActivationStats {
  /** Non-padding tokens over which every hook point was accumulated. */
  readonly tokens: number;
  readonly model: StatsModelInfo;
  private readonly sums: Map<string, NeuronSums>;
  /** How collect read the documents into tokens (undefined on merged or loaded statistics). */
  usage?: TokenUsage;
  private readonly derived = new Map<string, NeuronStats>();

  constructor(tokens: number, sums: Map<string, NeuronSums>, model: StatsModelInfo) {
    this.tokens = tokens;
    this.sums = sums;
    this.model = model;
  }

  /** Hook points these statistics cover, e.g. blocks.0.mlp.pre_out. */
  get hookNames(): string[] {
    return [...this.sums.keys()];
  }

  has(hook: string): boolean {
    return this.sums.has(hook);
  }

  /** The raw sums of a hook point. */
  raw(hook: string): NeuronSums {
    const s = this.sums.get(hook);
    if (!s) throw new ExciseError('ERR_INVALID_ARGUMENT', `stats: no statistics for hook point "${hook}" (have: ${this.hookNames.join(', ')})`);
    return s;
  }

  /** Statistics of one hook point. */
  hook(hook: string): NeuronStats {
    let d = this.derived.get(hook);
    if (!d) {
      d = derive(this.raw(hook), this.tokens);
      this.derived.set(hook, d);
    }
    return d;
  }

  /** FF neurons of a layer: blocks.{layer}.mlp.pre_out. */
  mlp(layer: number): NeuronStats {
    return this.hook(`blocks.${layer}.mlp.pre_out`);
  }

  /** Attention neurons of a layer: blocks.{layer}.attn.pre_out (index head * headDim + dim). */
  attn(layer: number): NeuronStats {
    return this.hook(`blocks.${layer}.attn.pre_out`);
  }

  /**
   * The statistics of both datasets together: sums add, so the shards of one dataset collected on
   * different processes or machines merge to the statistics of the whole.
   */
  merge(other: ActivationStats): ActivationStats {
    if (!(other instanceof ActivationStats)) throw invalidArgument('stats.merge(other)', 'an ActivationStats', other);
    const a = this.hookNames.slice().sort().join(',');
    const b = other.hookNames.slice().sort().join(',');
    if (a !== b) throw new ExciseError('ERR_INVALID_ARGUMENT', `stats.merge: the two cover different hook points (${a} vs ${b})`);
    if (this.model.architecture !== other.model.architecture || this.model.dMlp !== other.model.dMlp || this.model.attnDim !== other.model.attnDim) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', `stats.merge: statistics of different models (${this.model.architecture} vs ${other.model.architecture})`);
    }
    const merged = new Map<string, NeuronSums>();
    for (const [name, s] of this.sums) {
      const o = other.raw(name);
      const out = {} as NeuronSums;
      for (const k of SUM_KEYS) {
        if (s[k].length !== o[k].length) throw new ExciseError('ERR_INVALID_ARGUMENT', `stats.merge: ${name} has different widths`);
        out[k] = s[k].map((v, i) => v + o[k][i]);
      }
      merged.set(name, out);
    }
    return new ActivationStats(this.tokens + other.tokens, merged, this.model);
  }

  /** Writes a .safetensors file (float64 sums; atomic). */
  async save(file: string): Promise<void> {
    const tensors: Record<string, SafetensorsTensor> = {
      tokens: { dtype: 'F64', shape: [1], data: Float64Array.of(this.tokens) },
    };
    for (const [name, s] of this.sums) {
      for (const k of SUM_KEYS) tensors[`${name}.${FILE_KEYS[k]}`] = { dtype: 'F64', shape: [s[k].length], data: s[k] };
    }
    await writeSafetensors(file, tensors, {
      format: FORMAT,
      version: '1',
      architecture: this.model.architecture,
      n_layers: String(this.model.nLayers),
      d_mlp: String(this.model.dMlp),
      attn_dim: String(this.model.attnDim),
    });
  }

  /** Reads statistics written by save(). */
  static async load(file: string): Promise<ActivationStats> {
    const { metadata, tensors } = await readSafetensors(file);
    if (metadata.format !== FORMAT) {
      throw new ExciseError('ERR_INVALID_ARGUMENT', `${file}: not an excise statistics file (metadata format is ${JSON.stringify(metadata.format)})`);
    }
    const model: StatsModelInfo = {
      architecture: metadata.architecture ?? '',
      nLayers: Number(metadata.n_layers),
      dMlp: Number(metadata.d_mlp),
      attnDim: Number(metadata.attn_dim),
    };
    const tokensT = tensors.tokens;
    if (!tokensT || tokensT.dtype !== 'F64') throw new ExciseError('ERR_INVALID_ARGUMENT', `${file}: missing "tokens"`);
    const sums = new Map<string, NeuronSums>();
    for (const [name, t] of Object.entries(tensors)) {
      const m = SAVED_SUM.exec(name);
      if (!m) continue;
      if (t.dtype !== 'F64') throw new ExciseError('ERR_INVALID_ARGUMENT', `${file}: tensor ${name} must be F64`);
      const key = KEY_OF_FILE.get(m[2])!;
      const entry = sums.get(m[1]) ?? ({} as NeuronSums);
      entry[key] = t.data;
      sums.set(m[1], entry);
    }
    for (const [name, s] of sums) {
      for (const k of SUM_KEYS) if (!s[k]) throw new ExciseError('ERR_INVALID_ARGUMENT', `${file}: tensor ${name}.${FILE_KEYS[k]} is missing`);
    }
    return new ActivationStats((tokensT.data as Float64Array)[0], sums, model);
  }
}

function derive(s: NeuronSums, tokens: number): NeuronStats {
  const n = s.sum.length;
  const inv = tokens > 0 ? 1 / tokens : NaN;
  const mean = new Float64Array(n);
  const meanAbs = new Float64Array(n);
  const rms = new Float64Array(n);
  const std = new Float64Array(n);
  const freq = new Float64Array(n);
  const meanSqrtAbs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    mean[i] = s.sum[i] * inv;
    meanAbs[i] = s.sumAbs[i] * inv;
    const meanSq = s.sumSq[i] * inv;
    rms[i] = Math.sqrt(meanSq);
    std[i] = Math.sqrt(Math.max(0, meanSq - mean[i] * mean[i]));
    freq[i] = s.countPositive[i] * inv;
    meanSqrtAbs[i] = s.sumSqrtAbs[i] * inv;
  }
  return { tokens, mean, meanAbs, rms, std, freq, meanSqrtAbs };
}
