/**
 * The fuzz cases: each is built from (seed, index) alone, so any one can be replayed. A case
 * writes a corrupted model folder (config.json, safetensors header or bytes, shard index,
 * tokenizer.json, special files) or picks a bad call on a loaded model, runs it, and reports how
 * it ended. Runs inside the child process of run.ts.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRandomModel, ExciseError, loadModel, Tokenizer, type Model } from '../../lib/index.js';
import { goldenDir, TOKENIZER_FILE } from './paths.js';
import { tsErrorCodes } from '../helpers/error-codes.js';

export type Outcome =
  | { status: 'ok' }
  | { status: 'coded'; code: string }
  | { status: 'uncoded'; message: string }
  /** A file that the safetensors spec rejects loaded anyway (reported, not failed: the reader's job). */
  | { status: 'accepted-corrupt'; message: string };

const CODES = new Set(tsErrorCodes());
const FAMILIES = ['gpt2', 'opt', 'gpt_neox', 'llama', 'qwen2'] as const;

// ---- A small seeded PRNG (mulberry32) ---------------------------------------------------------

export class Rng {
  private state: number;
  constructor(seed: number) { this.state = seed >>> 0; }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
  chance(p: number): boolean { return this.next() < p; }
}

/** The case's own seed: independent of every other case, so one can be run alone. */
export function caseSeed(seed: number, index: number): number {
  // The seed is mixed before the index joins, so (seed, index) pairs never collide by XOR.
  let h = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x27d4eb2d) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul((h + Math.imul(index + 1, 0x165667b1)) >>> 0, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// ---- Values ------------------------------------------------------------------------------------

/** Raw JSON literals, some of them not JSON at all (NaN, Infinity) as broken writers produce. */
const RAW_VALUES = [
  '-1', '0', '1', '3', '7', '2000000', '2147483648', '4294967296', '9007199254740993', '4611686018427387904',
  '9223372036854775807', '18446744073709551616', '1e308', '-1e308', '1e400', '1.5', '-0', 'NaN', 'Infinity',
  '"two"', '""', 'null', '[]', '{}', 'true', '[1, 2]', '[2000000]', '{"a": 1}',
];
const TEXTS = ['hello world', '', 'the quick brown fox', '\u0000\u0001', '\ud800 lone surrogate', '😀 emoji ŝ', 'a'.repeat(5000), 'def f ( x ) : return x'];

const CONFIG_KEYS = [
  'num_hidden_layers', 'n_layer', 'hidden_size', 'n_embd', 'intermediate_size', 'n_inner', 'ffn_dim', 'num_attention_heads', 'n_head',
  'num_key_value_heads', 'head_dim', 'vocab_size', 'max_position_embeddings', 'n_positions', 'rms_norm_eps', 'layer_norm_eps',
  'layer_norm_epsilon', 'rope_theta', 'rotary_pct', 'rotary_emb_base', 'hidden_act', 'activation_function', 'activation_function',
  'tie_word_embeddings', 'bos_token_id', 'eos_token_id', 'pad_token_id', 'word_embed_proj_dim', 'do_layer_norm_before',
  'rope_scaling', 'sliding_window', 'use_sliding_window', 'max_window_layers', 'layer_types', 'dtype', 'torch_dtype',
  'use_parallel_residual', 'scale_attn_by_inverse_layer_idx', 'attention_bias', 'mlp_bias', 'model_type', 'architectures',
];

/** JSON text of obj with `key` set to a raw literal (which may be invalid JSON on purpose). */
function withRaw(obj: Record<string, unknown>, key: string, raw: string): string {
  const marker = '"__fuzz_marker__"';
  return JSON.stringify({ ...obj, [key]: '__fuzz_marker__' }, null, 1).replace(marker, raw);
}

// ---- Folders -----------------------------------------------------------------------------------

export interface CaseContext {
  /** A scratch folder for this case, emptied afterwards. */
  dir: string;
  /** A loaded llama fixture with the fixture tokenizer, shared by the bad-call cases. */
  shared: () => Promise<Model>;
  /** Logits of each unmodified fixture on the probe input (to spot silently accepted corruption). */
  baseline: (family: string) => Promise<Float32Array>;
  /** Reports what the case is about to do, before it does it (so a crash can be described). */
  note: (label: string) => void;
}

const PROBE = [[1, 2, 3, 4]];

function copyFixture(family: string, to: string): string {
  cpSync(join(goldenDir, family), to, { recursive: true });
  rmSync(join(to, 'golden.safetensors'), { force: true });
  return to;
}

/** Loads dir and runs the probe; returns the model's logits, disposing the model. */
async function loadAndProbe(dir: string): Promise<Float32Array> {
  const m = await loadModel(dir);
  try {
    const r = await m.forward(PROBE);
    return r.logits;
  } finally {
    await m.dispose();
  }
}

function sameLogits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i] - b[i]) <= 1e-4 * (1 + Math.abs(b[i])))) return false;
  return true;
}

// ---- Case kinds ----------------------------------------------------------------------------------

interface Case {
  kind: string;
  /** What was done, for the report line. */
  label: string;
  run: (ctx: CaseContext) => Promise<Outcome | void>;
}

function configCase(r: Rng): Case {
  const family = r.pick(FAMILIES);
  const op = r.int(6);
  let label = '';
  let text: (cfg: Record<string, unknown>) => string;
  if (op <= 1) {
    const key = r.chance(0.5) ? r.pick(CONFIG_KEYS) : '';
    const raw = r.pick(RAW_VALUES);
    label = `set ${key || '<a present key>'} = ${raw}`;
    text = (cfg) => {
      const k = key || Object.keys(cfg)[r.int(Object.keys(cfg).length)];
      label = `set ${k} = ${raw}`;
      return withRaw(cfg, k, raw);
    };
  } else if (op === 2) {
    text = (cfg) => {
      const keys = Object.keys(cfg);
      const k = keys[r.int(keys.length)];
      label = `delete ${k}`;
      const c = { ...cfg };
      delete c[k];
      return JSON.stringify(c);
    };
  } else if (op === 3) {
    const arch = r.pick(['"BertForMaskedLM"', '""', '123', '[]', '[null]', '["LlamaForCausalLM", "x"]', '"GPT2LMHeadModel"', '"OPTForCausalLM"',
      '"GPTNeoXForCausalLM"', '"Qwen2ForCausalLM"', '"MistralForCausalLM"', '"LlamaForCausalLM"', 'null']);
    label = `architectures = ${arch}`;
    text = (cfg) => withRaw(cfg, 'architectures', arch.startsWith('[') || arch === 'null' || arch === '123' ? arch : `[${arch}]`);
  } else if (op === 4) {
    // Several fields at once: sizes that agree with each other but not with the checkpoint.
    const layers = r.pick(['2000000', '4611686018427387904', '3', '1', '0', '-2']);
    const width = r.pick(['64', '128', '2147483648', '4611686018427387904', '32']);
    label = `layers ${layers}, width ${width}`;
    text = (cfg) => {
      let t = JSON.stringify(cfg);
      for (const k of ['num_hidden_layers', 'n_layer']) if (k in cfg) t = withRaw(JSON.parse(t), k, layers);
      const c2 = JSON.parse(t.replace(/\bNaN\b/g, '0'));
      for (const k of ['hidden_size', 'n_embd']) if (k in cfg) t = withRaw(c2, k, width);
      return t;
    };
  } else {
    const whole = r.pick(['', '[]', 'null', '{', '"x"', '['.repeat(100000), '{"a":'.repeat(50000), '9'.repeat(100000), '\ufeff{}', '{"hidden_size": 64,}', '\u0000']);
    label = `whole file ${JSON.stringify(whole.slice(0, 12))}${whole.length > 12 ? `… (${whole.length} chars)` : ''}`;
    text = () => whole;
  }
  return {
    kind: 'config',
    get label() { return `${family}: ${label}`; },
    async run(ctx) {
      const dir = copyFixture(family, join(ctx.dir, 'm'));
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      writeFileSync(join(dir, 'config.json'), text(cfg));
      ctx.note(this.label);
      const m = await loadModel(dir);
      try {
        await m.forward(PROBE);
      } finally {
        await m.dispose();
      }
    },
  };
}

/** The header of a safetensors file: its JSON and where the data starts. */
function readHeader(bytes: Buffer): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; dataStart: number } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), dataStart: 8 + n };
}

function withHeader(bytes: Buffer, headerText: string, dataStart: number): Buffer {
  const h = Buffer.from(headerText, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, bytes.subarray(dataStart)]);
}

function safetensorsCase(r: Rng): Case {
  const family = r.pick(FAMILIES);
  const op = r.int(5);
  let label = '';
  // Whether the safetensors spec forbids the result (then loading it is "accepted-corrupt").
  let invalid = true;
  return {
    kind: 'safetensors',
    get label() { return `${family}: ${label}`; },
    async run(ctx) {
      const dir = copyFixture(family, join(ctx.dir, 'm'));
      const file = join(dir, 'model.safetensors');
      let bytes: Buffer = readFileSync(file);
      const { header, dataStart } = readHeader(bytes);
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      if (op === 0) {
        const cut = r.chance(0.3) ? r.int(dataStart + 8) : dataStart + r.int(bytes.length - dataStart);
        label = `truncate to ${cut} of ${bytes.length} bytes`;
        bytes = bytes.subarray(0, cut);
      } else if (op === 1) {
        const at = 8 + r.int(dataStart - 8);
        const value = r.int(256);
        label = `header byte ${at} = ${value}`;
        invalid = false;  // the byte may be padding, or still give valid JSON
        bytes = Buffer.from(bytes);
        bytes[at] = value;
      } else if (op === 2) {
        const n = r.pick([0n, 1n, 7n, BigInt(dataStart - 9), BigInt(dataStart - 7), BigInt(bytes.length), 2n ** 63n, 2n ** 64n - 1n]);
        label = `header length = ${n}`;
        bytes = Buffer.from(bytes);
        bytes.writeBigUInt64LE(n, 0);
      } else if (op === 3) {
        const name = r.pick(names);
        const other = r.pick(names);
        const t = header[name];
        const m = r.int(10);
        const [s, e] = t.data_offsets;
        if (m === 0) { t.shape = [...t.shape, r.pick([0, 2, 2 ** 31, 2 ** 40])]; label = `${name}: shape ${JSON.stringify(t.shape)}`; }
        else if (m === 1) { t.shape = t.shape.map(() => r.pick([-1, 0, 3, 2 ** 53])); label = `${name}: shape ${JSON.stringify(t.shape)}`; }
        else if (m === 2) { t.dtype = r.pick(['F64', 'I8', 'XX', 'BOOL', 'U8', 'F8_E4M3']); label = `${name}: dtype ${t.dtype}`; invalid = ['XX'].includes(t.dtype) || t.dtype !== 'I8' && t.dtype !== 'U8' && t.dtype !== 'BOOL'; }
        else if (m === 3) { t.data_offsets = [e, s]; label = `${name}: offsets reversed`; }
        else if (m === 4) { t.data_offsets = [s, e + 4]; label = `${name}: end + 4`; }
        else if (m === 5) { t.data_offsets = [s + 4, e + 4]; label = `${name}: shifted by 4`; }
        else if (m === 6) { t.data_offsets = [0, 2 ** 53]; label = `${name}: end 2^53`; }
        else if (m === 7) {
          if (name === other) { label = 'no-op'; invalid = false; }
          else {
            const o = header[other];
            const same = (e - s) === (o.data_offsets[1] - o.data_offsets[0]);
            t.data_offsets = [...o.data_offsets];
            label = `${name}: offsets of ${other} (${same ? 'same size' : 'other size'})`;
          }
        }
        else if (m === 8) { delete header[name]; label = `delete ${name}`; invalid = false; }
        else { (header as Record<string, unknown>)[name] = r.pick([null, 5, 'x', [], { dtype: 'F32' }]); label = `${name} = garbage`; }
        bytes = withHeader(bytes, JSON.stringify(header), dataStart);
      } else {
        const garbage = r.pick(['', '[]', 'null', '{', '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}', '['.repeat(100000)]);
        label = `header ${JSON.stringify(garbage.slice(0, 16))}`;
        bytes = withHeader(bytes, garbage, dataStart);
      }
      writeFileSync(file, bytes);
      ctx.note(this.label);
      const logits = await loadAndProbe(dir);
      if (![...logits].every(Number.isFinite)) return { status: 'accepted-corrupt', message: 'loaded; non-finite logits' };
      if (invalid && !sameLogits(logits, await ctx.baseline(family))) return { status: 'accepted-corrupt', message: 'loaded; logits differ from the intact file' };
      if (invalid && op !== 3) return { status: 'accepted-corrupt', message: 'loaded a file the spec rejects' };
    },
  };
}

function indexCase(r: Rng): Case {
  const family = r.pick(FAMILIES);
  const op = r.int(8);
  let label = '';
  return {
    kind: 'shard-index',
    get label() { return `${family}: ${label}`; },
    async run(ctx) {
      const dir = copyFixture(family, join(ctx.dir, 'm'));
      const bytes = readFileSync(join(dir, 'model.safetensors'));
      const names = Object.keys(readHeader(bytes).header).filter((k) => k !== '__metadata__');
      const shard = 'model-00001-of-00001.safetensors';
      renameSync(join(dir, 'model.safetensors'), join(dir, shard));
      const map: Record<string, unknown> = Object.fromEntries(names.map((n) => [n, shard]));
      let text: string;
      const victim = r.pick(names);
      if (op === 0) { label = 'valid index'; text = JSON.stringify({ metadata: { total_size: bytes.length }, weight_map: map }); }
      else if (op === 1) { map[victim] = r.pick(['../config.json', '/etc/passwd', 'missing.safetensors', 5, null, '', '.', 'config.json']); label = `${victim} -> ${JSON.stringify(map[victim])}`; text = JSON.stringify({ weight_map: map }); }
      else if (op === 2) { delete map[victim]; label = `omit ${victim}`; text = JSON.stringify({ weight_map: map }); }
      else if (op === 3) { const wm = r.pick(['[]', 'null', '"x"', '5', '{}']); label = `weight_map = ${wm}`; text = `{"weight_map": ${wm}}`; }
      else if (op === 4) { const w = r.pick(['', '{', '[]', '{"weight_map": {"a": "b"}', '['.repeat(100000), '{"a":'.repeat(50000)]); label = `whole file ${JSON.stringify(w.slice(0, 12))}`; text = w; }
      else if (op === 5) { map.extra_tensor = shard; label = 'extra entry'; text = JSON.stringify({ weight_map: map }); }
      else if (op === 6) { label = 'index with no shard files'; rmSync(join(dir, shard)); text = JSON.stringify({ weight_map: map }); }
      else { label = 'huge total_size'; text = `{"metadata": {"total_size": 1e400}, "weight_map": ${JSON.stringify(map)}}`; }
      writeFileSync(join(dir, 'model.safetensors.index.json'), text);
      ctx.note(this.label);
      await loadAndProbe(dir);
    },
  };
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function tokenizerMutation(r: Rng, tok: Record<string, Json>): string {
  const op = r.int(15);
  const template = (single: Json, special: Json) => ({ type: 'TemplateProcessing', single, pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: special });
  const cls = { SpecialToken: { id: '[CLS]', type_id: 0 } };
  const seqA = { Sequence: { id: 'A', type_id: 0 } };
  switch (op) {
    case 0: tok.post_processor = template([cls, seqA], {}); return 'template names an undefined special token';
    case 1: tok.post_processor = template([cls, seqA], { '[CLS]': { id: '[CLS]', ids: [1, 2], tokens: ['[CLS]'] } }); return 'special token ids/tokens of different lengths';
    case 2: tok.post_processor = template([seqA, { Sequence: { id: 'B', type_id: 0 } }], {}); return 'single template uses $B';
    case 3: tok.post_processor = { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, template([cls, seqA], {})] }; return 'sequence holding a bad template';
    case 4: tok.post_processor = template([cls, seqA], { '[CLS]': { id: '[CLS]', ids: [r.pick([1, 51, 4294967295])], tokens: ['[CLS]'] } }); return 'valid template';
    case 5: tok.truncation = { direction: 'Right', max_length: r.pick([0, 1, 2, 3]), strategy: 'LongestFirst', stride: r.pick([0, 1, 5]) }; return `truncation ${JSON.stringify(tok.truncation)}`;
    case 6: tok.padding = { strategy: r.pick(['BatchLongest', { Fixed: 3 }]), direction: 'Right', pad_to_multiple_of: r.pick([null, 0, 3]), pad_id: 0, pad_type_id: 0, pad_token: '[PAD]' }; return `padding ${JSON.stringify(tok.padding)}`;
    case 7: tok.decoder = { type: 'Strip', content: ' ', start: r.pick([0, 1, 5]), stop: r.pick([0, 1, 5]) }; return `decoder ${JSON.stringify(tok.decoder)}`;
    case 8: if (r.chance(0.4)) {
      // A random SentencePiece charsmap: a trie-size header, then random units and strings.
      const units = r.int(8);
      const bytes = Buffer.alloc(4 + units * 4 + r.int(8));
      for (let i = 4; i < bytes.length; i++) bytes[i] = r.int(256);
      bytes.writeUInt32LE(units * 4 + (r.chance(0.2) ? 4 * r.int(4) : 0), 0);
      tok.normalizer = { type: 'Precompiled', precompiled_charsmap: bytes.toString('base64') };
      return `precompiled charsmap ${bytes.toString('hex')}`;
    } // falls through
    // eslint-disable-next-line no-fallthrough
    case 13: tok.normalizer = r.pick<Json>([{ type: 'Replace', pattern: { Regex: '(' }, content: 'x' }, { type: 'Precompiled', precompiled_charsmap: 'AAAA' }, { type: 'Sequence', normalizers: [null] }, { type: 'Prepend', prepend: '▁' }]); return `normalizer ${JSON.stringify(tok.normalizer).slice(0, 60)}`;
    case 9: (tok.added_tokens as Json[]).push({ id: r.pick([-1, 4294967296, 2 ** 31, 52, 1.5]), content: r.pick(['', 'x', 'hello']), single_word: false, lstrip: false, rstrip: false, normalized: r.chance(0.5), special: r.chance(0.5) }); return 'odd added token';
    case 10: {
      const model = tok.model as Record<string, Json>;
      const vocab = model.vocab as Record<string, Json>;
      const m = r.int(4);
      if (m === 0) { vocab.zzz = r.pick([-1, 2 ** 32, 1.5, 2 ** 31]); return `vocab id ${vocab.zzz}`; }
      if (m === 1) { model.unk_token = 'not-in-vocab'; return 'unk token not in vocab'; }
      if (m === 2) { tok.model = { type: 'Unigram', unk_id: r.pick([0, 5, null]), vocab: [['a', -1], ['b', -2]], byte_fallback: r.chance(0.5) }; return `unigram ${JSON.stringify(tok.model).slice(0, 50)}`; }
      tok.model = { type: 'BPE', dropout: r.pick([null, 2, -1]), unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: true, vocab: { a: 0, b: 1 }, merges: r.pick<Json>([['a b'], ['x y'], [], [['a', 'b']]]) };
      return `bpe ${JSON.stringify(tok.model).slice(0, 50)}`;
    }
    case 11: tok.pre_tokenizer = r.pick<Json>([{ type: 'Split', pattern: { Regex: '[' }, behavior: 'Isolated', invert: false }, { type: 'Metaspace', replacement: '', prepend_scheme: 'always', split: true }, { type: 'Sequence', pretokenizers: [] }, { type: 'Digits', individual_digits: true }]); return `pre_tokenizer ${JSON.stringify(tok.pre_tokenizer).slice(0, 60)}`;
    case 12: {
      // A random field somewhere set to a random value.
      const paths: Array<[Record<string, Json> | Json[], string | number]> = [];
      const walk = (v: Json) => {
        if (v === null || typeof v !== 'object') return;
        for (const k of Object.keys(v)) {
          paths.push([v, Array.isArray(v) ? Number(k) : k]);
          if (paths.length < 2000) walk((v as Record<string, Json>)[k]);
        }
      };
      walk(tok);
      const [holder, key] = r.pick(paths);
      const value = r.pick<Json>([null, -1, 2 ** 40, 'x', [], {}, true, 1.5]);
      (holder as Record<string, Json>)[key as string] = value;
      return `${String(key)} = ${JSON.stringify(value)}`;
    }
    default: return 'unchanged';  // 14
  }
}

function tokenizerCase(r: Rng): Case {
  const whole = r.chance(0.1) ? r.pick(['', '{}', '[]', 'null', '{"model": null}', '['.repeat(100000), 'x'.repeat(1 << 20)]) : undefined;
  let label = whole !== undefined ? `whole file ${JSON.stringify(whole.slice(0, 12))}` : '';
  const text = r.pick(TEXTS);
  const action = r.int(5);
  return {
    kind: 'tokenizer',
    get label() { return `${label}; then ${['encode', 'encodeBatch', 'decode', 'generate', 'collect'][action]}`; },
    async run(ctx) {
      const dir = copyFixture('llama', join(ctx.dir, 'm'));
      const tok = JSON.parse(readFileSync(TOKENIZER_FILE, 'utf8'));
      if (whole === undefined) label = tokenizerMutation(r, tok);
      writeFileSync(join(dir, 'tokenizer.json'), whole ?? JSON.stringify(tok));
      ctx.note(this.label);
      const m = await loadModel(dir);
      try {
        if (action === 0) m.tokenizer.encode(text);
        else if (action === 1) await m.tokenizer.encodeBatch([text, 'hello world', '']);
        else if (action === 2) m.tokenizer.decode([0, 1, 2, r.pick([3, 51, 52, 1000, 2 ** 31])]);
        else if (action === 3) await m.generate(text || 'x', { maxNewTokens: 2 });
        else await m.collect([text, 'hello world'], { maxTokens: 32 });
      } finally {
        await m.dispose();
      }
    },
  };
}

function specialFileCase(r: Rng): Case {
  const target = r.pick(['config.json', 'model.safetensors', 'tokenizer.json', 'model.safetensors.index.json', 'tokenizer_config.json', 'merges.txt']);
  const kind = r.pick(['fifo', 'dir', '/dev/zero', '/dev/null', 'dangling', 'loop']);
  const alsoSave = r.chance(0.3);
  return {
    kind: 'special-file',
    label: `${target} as ${kind}${alsoSave ? ', then save' : ''}`,
    async run(ctx) {
      ctx.note(this.label);
      const dir = copyFixture('llama', join(ctx.dir, 'm'));
      cpSync(TOKENIZER_FILE, join(dir, 'tokenizer.json'));
      const file = join(dir, target);
      rmSync(file, { force: true });
      if (kind === 'fifo') execFileSync('mkfifo', [file]);
      else if (kind === 'dir') mkdirSync(file);
      else if (kind === 'dangling') symlinkSync(join(dir, 'nonexistent'), file);
      else if (kind === 'loop') symlinkSync(file, file);
      else symlinkSync(kind, file);
      const m = await loadModel(dir);
      try {
        await m.forward(PROBE);
        if (alsoSave) await m.save(join(ctx.dir, 'saved'));
      } finally {
        await m.dispose();
      }
    },
  };
}

const circular: Record<string, unknown> = { a: 1 };
circular.self = circular;

function badCallCase(r: Rng): Case {
  const calls: Array<[string, (m: Model, ctx: CaseContext) => unknown]> = [
    ['forward([])', (m) => m.forward([])],
    ['forward([[]])', (m) => m.forward([[]])],
    // eslint-disable-next-line no-sparse-arrays
    ['forward([[ , 1, 2]])', (m) => m.forward([[, 1, 2] as number[]])],
    ['forward([[1.5]])', (m) => m.forward([[1.5]])],
    ['forward([[NaN]])', (m) => m.forward([[NaN]])],
    ['forward([[-1]])', (m) => m.forward([[-1]])],
    ['forward([[1e10]])', (m) => m.forward([[1e10]])],
    ['forward([[vocab]])', (m) => m.forward([[m.config.vocabSize]])],
    ['forward([["1"]])', (m) => m.forward([['1'] as unknown as number[]])],
    ['forward(null)', (m) => m.forward(null as never)],
    ['forward("text")', (m) => m.forward('text' as never)],
    ['forward(rows of unequal length)', (m) => m.forward([[1, 2], [1]])],
    ['forward(data/shape mismatch)', (m) => m.forward({ data: new Int32Array(3), shape: [2, 2] })],
    ['forward(data not Int32Array)', (m) => m.forward({ data: [1, 2] as never, shape: [1, 2] })],
    ['forward(shape [0, 5])', (m) => m.forward({ data: new Int32Array(0), shape: [0, 5] })],
    ['forward(shape [1e6, 1e6])', (m) => m.forward({ data: new Int32Array(4), shape: [1e6, 1e6] })],
    ['forward(negative ids in Int32Array)', (m) => m.forward({ data: Int32Array.from([1, -5]), shape: [1, 2] })],
    ['forward(longer than max positions)', (m) => m.forward([Array.from({ length: m.config.maxPositions + 3 }, () => 1)])],
    ['forward(capture "x")', (m) => m.forward([[1]], { capture: 'x' as never })],
    ['forward(capture unknown hook)', (m) => m.forward([[1]], { capture: ['blocks.99.mlp.pre_out'] })],
    ['forward(attentionMask [[2]])', (m) => m.forward([[1]], { attentionMask: [[2]] })],
    ['forward(attentionMask wrong shape)', (m) => m.forward([[1, 2]], { attentionMask: [[1]] })],
    ['forward(all-padding mask)', (m) => m.forward([[1, 2]], { attentionMask: [[0, 0]] })],
    ['forward(unknown option)', (m) => m.forward([[1]], { bogus: 1 } as never)],
    ['forward(options 5)', (m) => m.forward([[1]], 5 as never)],
    ['generate([], ...)', (m) => m.generate([], { maxNewTokens: 1 })],
    ['generate(maxNewTokens NaN)', (m) => m.generate([1], { maxNewTokens: NaN })],
    ['generate(maxNewTokens -1)', (m) => m.generate([1], { maxNewTokens: -1 })],
    ['generate(maxNewTokens 2^31)', (m) => m.generate([1], { maxNewTokens: 2 ** 31 })],
    ['generate(temperature NaN)', (m) => m.generate([1], { maxNewTokens: 1, temperature: NaN })],
    ['generate(topK 1e12)', (m) => m.generate([1], { maxNewTokens: 1, temperature: 1, topK: 1e12 })],
    ['generate(seed 2^64)', (m) => m.generate([1], { maxNewTokens: 1, temperature: 1, seed: 2 ** 64 })],
    ['generate(seed NaN)', (m) => m.generate([1], { maxNewTokens: 1, seed: NaN })],
    // eslint-disable-next-line no-sparse-arrays
    ['generate(prompt with a hole)', (m) => m.generate([1, , 2] as number[], { maxNewTokens: 1 })],
    ['generate(prompt out of range)', (m) => m.generate([m.config.vocabSize + 1], { maxNewTokens: 1 })],
    ['generate(no options)', (m) => (m.generate as (p: unknown) => unknown)([1])],
    ['collect(5)', (m) => m.collect(5 as never)],
    ['collect(null)', (m) => m.collect(null as never)],
    ['collect([[1.5]])', (m) => m.collect([[1.5]] as never)],
    ['collect([[]])', (m) => m.collect([[]] as never)],
    ['collect([""])', (m) => m.collect([''])],
    ['collect(onProgress 5)', (m) => m.collect([[1, 2, 3]], { onProgress: 5 as never })],
    ['collect(batchSize 0)', (m) => m.collect([[1, 2]], { batchSize: 0 })],
    ['collect(maxLength -1)', (m) => m.collect([[1, 2]], { maxLength: -1 })],
    ['collect(maxTokens NaN)', (m) => m.collect([[1, 2]], { maxTokens: NaN })],
    ['collect(hooks ["x"])', (m) => m.collect([[1, 2]], { hooks: ['x'] })],
    ['collect(signal "x")', (m) => m.collect([[1, 2]], { signal: 'x' as never })],
    ['collect(ids out of range)', (m) => m.collect([[1, 1e6]])],
    ['evaluate(onProgress "x")', (m) => m.evaluate([[1, 2, 3]], { onProgress: 'x' as never })],
    ['evaluate(topK 0)', (m) => m.evaluate([[1, 2, 3]], { topK: 0 })],
    ['evaluate(topK 1e9)', (m) => m.evaluate([[1, 2, 3]], { topK: 1e9 })],
    ['evaluate(skipTokens -1)', (m) => m.evaluate([[1, 2, 3]], { skipTokens: -1 } as never)],
    ['evaluate([[1]])', (m) => m.evaluate([[1]])],
    ['evaluate(5)', (m) => m.evaluate(5 as never)],
    ['prune({ ff: "x" })', (m) => m.prune({ ff: 'x' } as never)],
    ['prune(NaN index)', (m) => m.prune({ ff: Array.from({ length: m.config.nLayers }, () => [NaN]), attn: [] } as never)],
    ['prune(index out of range)', (m) => m.prune({ ff: Array.from({ length: m.config.nLayers }, () => [1e9]), attn: [] } as never)],
    ['prune(wrong layer count)', (m) => m.prune({ ff: [[0]], attn: [] } as never)],
    ['prune(meanOffset {})', (m) => m.prune({ ff: Array.from({ length: m.config.nLayers }, () => [0]), attn: [] } as never, { meanOffset: {} as never })],
    ['prune(null)', (m) => m.prune(null as never)],
    ['save("/proc/x")', (m) => m.save('/proc/x')],
    ['save("")', (m) => m.save('')],
    ['save(5)', (m) => m.save(5 as never)],
    ['save(existing file)', (m, ctx) => { writeFileSync(join(ctx.dir, 'f'), 'x'); return m.save(join(ctx.dir, 'f')); }],
    ['save(under a file)', (m, ctx) => { writeFileSync(join(ctx.dir, 'f'), 'x'); return m.save(join(ctx.dir, 'f', 'sub')); }],
    ['save(maxShardSize 0)', (m, ctx) => m.save(join(ctx.dir, 's'), { maxShardSize: 0 })],
    ['save(circular metadata)', (m, ctx) => m.save(join(ctx.dir, 's'), { metadata: circular })],
    ['save(BigInt metadata)', (m, ctx) => m.save(join(ctx.dir, 's'), { metadata: { n: 1n } })],
    ['save(into source)', (m) => m.save(join(m.dir!, 'sub'))],
    ['trainer(lr "x")', (m) => m.trainer({ lr: 'x' } as never)],
    ['trainer(unknown option)', (m) => m.trainer({ bogus: 1 } as never)],
    ['trainer.step(bad batch)', async (m) => { const t = m.trainer(); try { await t.step([[1.5]] as never); } finally { await t.close(); } }],
    ['trainer.step after close', async (m) => { const t = m.trainer(); await t.close(); await t.step([[1, 2, 3]]); }],
    ['tokenizer.encode(5)', (m) => m.tokenizer.encode(5 as never)],
    ['tokenizer.decode([-1])', (m) => m.tokenizer.decode([-1])],
    ['tokenizer.decode([2^32])', (m) => m.tokenizer.decode([2 ** 32])],
    ['tokenizer.decode("x")', (m) => m.tokenizer.decode('x' as never)],
    ['tokenizer.encodeBatch([5])', (m) => m.tokenizer.encodeBatch([5] as never)],
    ['createRandomModel(circular)', () => createRandomModel(circular)],
    ['createRandomModel(BigInt)', () => createRandomModel({ architectures: ['LlamaForCausalLM'], hidden_size: 64n } as never)],
    ['createRandomModel(huge)', () => createRandomModel({ architectures: ['LlamaForCausalLM'], num_hidden_layers: 2, hidden_size: 65536, intermediate_size: 65536, num_attention_heads: 4, vocab_size: 1000000 })],
    ['createRandomModel(2^62 layers)', () => createRandomModel({ architectures: ['LlamaForCausalLM'], num_hidden_layers: 2 ** 62, hidden_size: 8, intermediate_size: 8, num_attention_heads: 2, vocab_size: 10 })],
    ['createRandomModel(2M layers)', () => createRandomModel({ architectures: ['LlamaForCausalLM'], num_hidden_layers: 2000000, hidden_size: 8, intermediate_size: 8, num_attention_heads: 2, vocab_size: 10 })],
    ['createRandomModel(null)', () => createRandomModel(null as never)],
    ['createRandomModel(seed -1)', () => createRandomModel({}, { seed: -1 })],
    ['loadModel(5)', () => loadModel(5 as never)],
    ['loadModel(device "tpu")', (m) => loadModel(m.dir!, { device: 'tpu' })],
    ['loadModel(dtype "int8")', (m) => loadModel(m.dir!, { dtype: 'int8' as never })],
    ['Tokenizer.fromFile(dir)', (m) => Tokenizer.fromFile(m.dir!)],
  ];
  const afterDispose: Array<[string, (m: Model) => unknown]> = [
    ['forward', (m) => m.forward([[1]])], ['generate', (m) => m.generate([1], { maxNewTokens: 1 })], ['collect', (m) => m.collect([[1, 2]])],
    ['evaluate', (m) => m.evaluate([[1, 2]])], ['prune', (m) => m.prune({ ff: [], attn: [] })], ['restore', (m) => m.restore()],
    ['save', (m) => m.save('/tmp/never-written-by-excise-fuzz')], ['trainer', (m) => m.trainer()], ['tensorNames', (m) => m.tensorNames()],
  ];
  if (r.chance(0.15)) {
    const [name, call] = r.pick(afterDispose);
    const concurrent = r.chance(0.5);
    return {
      kind: 'bad-call',
      label: `${name} after dispose${concurrent ? ' (dispose not awaited)' : ''}`,
      async run(ctx) {
        ctx.note(this.label);
        const m = await loadModel(join(goldenDir, 'gpt2'));
        const disposing = m.dispose();
        if (!concurrent) await disposing;
        try {
          await call(m);
        } finally {
          await disposing;
        }
      },
    };
  }
  const [name, call] = r.pick(calls);
  return {
    kind: 'bad-call',
    label: name,
    async run(ctx) {
      ctx.note(this.label);
      const m = await ctx.shared();
      const result = await call(m, ctx);
      if (result && typeof (result as Model).dispose === 'function') await (result as Model).dispose();
    },
  };
}

const KINDS: Array<[number, (r: Rng) => Case]> = [
  [0.22, configCase], [0.18, safetensorsCase], [0.12, indexCase], [0.2, tokenizerCase], [0.08, specialFileCase], [0.2, badCallCase],
];

export function makeCase(seed: number, index: number): Case {
  const r = new Rng(caseSeed(seed, index));
  let x = r.next();
  for (const [w, make] of KINDS) {
    if (x < w) return make(r);
    x -= w;
  }
  return KINDS[KINDS.length - 1][1](r);
}

/** Runs one case; never throws. */
export async function runCase(c: Case, ctx: CaseContext): Promise<Outcome> {
  try {
    const out = await c.run(ctx);
    return out ?? { status: 'ok' };
  } catch (err) {
    if (err instanceof ExciseError && CODES.has(err.code)) return { status: 'coded', code: err.code };
    const e = err as { name?: string; message?: string; code?: unknown };
    return { status: 'uncoded', message: `${e?.name ?? typeof err}${e?.code ? ` ${String(e.code)}` : ''}: ${String(e?.message ?? err).split('\n')[0].slice(0, 200)}` };
  }
}

export { copyFixture, loadAndProbe };
