/**
 * excise collect against Hugging Face transformers' forward, side by side in one run on one machine:
 * this script times collect (statistics at every hook point) on random models of the issue's shapes,
 * runs bench/hf-collect.py for the reference (HF base model without the LM head: plain, and with
 * vectorised float64 statistics hooks; and torch.nn.functional.linear alone at the model's matmul
 * shapes, the machine's limit), and prints both with the ratios. Same threads on both sides. Each
 * case runs the reference and then excise back to back, and each side reports its best of `reps`
 * runs after a warm-up: on a shared machine, the runs least disturbed by other load.
 *
 *   npm run bench:side-by-side -- [--python PATH] [--shapes gpt2,llama] [--dtypes float32,bfloat16]
 *                                 [--batch 8] [--seq 128] [--reps 3] [--device cpu|cuda] [--json FILE]
 *
 * --python: a Python with torch and transformers (default: $EXCISE_PYTHON, else python3).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRandomModel, runtimeInfo, type Device, type Dtype } from '../lib/index.js';

const { values } = parseArgs({
  options: {
    python: { type: 'string', default: process.env.EXCISE_PYTHON ?? 'python3' },
    shapes: { type: 'string', default: 'gpt2,llama' },
    dtypes: { type: 'string', default: 'float32,bfloat16' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '128' },
    reps: { type: 'string', default: '3' },
    device: { type: 'string', default: 'cpu' },
    json: { type: 'string' },
    layers: { type: 'string' },  // override every shape's layer count (a quick rehearsal)
  },
});

/** The model shapes of the table (one definition, handed to the Python side as JSON). */
const SHAPES = {
  gpt2: { family: 'gpt2', label: 'GPT-2 small shape (12x768)', layers: 12, hidden: 768, heads: 12, kvHeads: 12, mlp: 3072, vocab: 50257 },
  llama: { family: 'llama', label: 'LLaMA 12x768 (GQA 12/4, gated)', layers: 12, hidden: 768, heads: 12, kvHeads: 4, mlp: 2048, vocab: 32000 },
  tinyllama: { family: 'llama', label: 'LLaMA 1.1B (TinyLlama shape)', layers: 22, hidden: 2048, heads: 32, kvHeads: 4, mlp: 5632, vocab: 32000 },
} as const;
type ShapeName = keyof typeof SHAPES;

function configJson(s: { family: string; layers: number; hidden: number; heads: number; kvHeads: number; mlp: number; vocab: number }): Record<string, unknown> {
  if (s.family === 'gpt2') {
    return { architectures: ['GPT2LMHeadModel'], n_layer: s.layers, n_embd: s.hidden, n_head: s.heads, n_inner: s.mlp, n_positions: 1024, vocab_size: s.vocab };
  }
  return {
    architectures: ['LlamaForCausalLM'], num_hidden_layers: s.layers, hidden_size: s.hidden, num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads, intermediate_size: s.mlp, vocab_size: s.vocab, max_position_embeddings: 1024,
  };
}


const batch = Number(values.batch), seq = Number(values.seq), reps = Number(values.reps);
const shapes = values.shapes.split(',') as ShapeName[];
const dtypes = values.dtypes.split(',') as Dtype[];
const cases = shapes.flatMap((name) => dtypes.map((dtype) => ({
  name, dtype, batch, seq, reps, device: values.device, ...SHAPES[name], ...(values.layers ? { layers: Number(values.layers) } : {}),
})));

/** The reference for one case, in its own process (bench/hf-collect.py prints one JSON line). */
function referenceFor(c: (typeof cases)[number]): Record<string, number | string> {
  const pyArgs = [fileURLToPath(new URL('./hf-collect.py', import.meta.url)), JSON.stringify([c])];
  const out = execFileSync(values.python, pyArgs, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!) as Record<string, number | string>;
}

const rows: Record<string, unknown>[] = [];
const reference: Record<string, number | string>[] = [];
for (const c of cases) {
  const ref = referenceFor(c);
  reference.push(ref);
  const model = await createRandomModel(configJson(c), { device: values.device as Device, dtype: c.dtype, seed: 1 });
  const docs = Array.from({ length: batch }, (_, d) => Array.from({ length: seq }, (_, t) => (d * 7919 + t * 104729) % c.vocab));
  await model.collect(docs, { batchSize: batch, maxLength: seq });  // warm-up
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await model.collect(docs, { batchSize: batch, maxLength: seq });
    times.push((performance.now() - t0) / 1000);
  }
  await model.dispose();
  const collectTokS = (batch * seq) / Math.min(...times);
  rows.push({
    model: values.layers ? `${SHAPES[c.name].label}, ${c.layers} layers` : SHAPES[c.name].label, dtype: c.dtype,
    'excise collect tok/s': Math.round(collectTokS),
    'HF forward tok/s': Math.round(ref.hf_forward_tok_s as number),
    'HF + f64 hooks tok/s': Math.round(ref.hf_hooks_tok_s as number),
    'F.linear limit tok/s': Math.round(ref.linear_limit_tok_s as number),
    'vs HF forward': `${(collectTokS / (ref.hf_forward_tok_s as number)).toFixed(2)}x`,
    'vs HF + hooks': `${(collectTokS / (ref.hf_hooks_tok_s as number)).toFixed(2)}x`,
    'of limit': `${((100 * collectTokS) / (ref.linear_limit_tok_s as number)).toFixed(0)}%`,
  });
}
const info = runtimeInfo();
console.log(`batch ${batch}x${seq}, best of ${reps}; excise on LibTorch ${info.torchVersion} (${values.device}), reference torch ${reference[0]?.torch} with ${reference[0]?.threads} threads; ${cpus()[0]?.model ?? ''}, ${cpus().length} cores`);
console.table(rows);
if (values.json) writeFileSync(values.json, JSON.stringify({ batch, seq, reps, rows }, null, 2));
