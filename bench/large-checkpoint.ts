/**
 * A large sharded bf16 LLaMA checkpoint with random weights, made here (no download): excise loads
 * it on the CPU in bf16 (zero-copy from the mmap'd shards), collects statistics, prunes and saves
 * (only the shards of pruned layers are written; see lib/save.ts), each step timed, with the peak
 * RSS against the checkpoint's size; then Hugging Face transformers from_pretrained /
 * save_pretrained on the same checkpoint in the same run (a Python child, for reference only).
 * The checkpoint and the saved copies are deleted at the end unless --keep.
 *
 *   npx tsx bench/large-checkpoint.ts [--size 7b|3b|1b] [--dir /work/excise-large-bench] [--python /work/hf5/bin/python] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel, scoreNeurons, selectNeurons, writeSafetensors, type SafetensorsTensor } from '../lib/index.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '7b' },
    dir: { type: 'string', default: '/work/excise-large-bench' },
    python: { type: 'string', default: '/work/hf5/bin/python' },
    keep: { type: 'boolean' },
    child: { type: 'string' },
  },
});

const SIZES: Record<string, { hidden: number; inter: number; layers: number; heads: number; kv: number; vocab: number }> = {
  '7b': { hidden: 4096, inter: 11008, layers: 32, heads: 32, kv: 32, vocab: 32000 },  // LLaMA-2-7B shapes
  '3b': { hidden: 3200, inter: 8640, layers: 26, heads: 32, kv: 32, vocab: 32000 },   // OpenLLaMA-3B shapes
  '1b': { hidden: 2048, inter: 5632, layers: 22, heads: 32, kv: 4, vocab: 32000 },    // TinyLlama-1.1B shapes
};
const shape = SIZES[values.size!];
if (!shape) throw new Error(`--size: one of ${Object.keys(SIZES).join(', ')}`);
const root = values.dir!;
const ckpt = join(root, `llama-${values.size}-bf16`);

function peakRssBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

function folderBytes(dir: string): number {
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

/** Random bf16 weights ~ U(-0.03, 0.03) (norm weights 1), written in ~2 GB shards with an index. */
async function makeCheckpoint(): Promise<void> {
  mkdirSync(ckpt, { recursive: true });
  const { hidden, inter, layers, heads, kv, vocab } = shape;
  const headDim = hidden / heads;
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: hidden, intermediate_size: inter, num_hidden_layers: layers,
    num_attention_heads: heads, num_key_value_heads: kv, vocab_size: vocab, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
    rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
  };
  writeFileSync(join(ckpt, 'config.json'), JSON.stringify(config, null, 2));
  // A pool of random bf16 bit patterns; tensors take slices of it at varying offsets.
  const pool = new Uint16Array(1 << 22);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let s = 12345;
  for (let i = 0; i < pool.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[0] = (s / 2 ** 32 - 0.5) * 0.06;
    pool[i] = u[0] >>> 16;
  }
  const fill = (n: number, seed: number) => {
    const out = new Uint16Array(n);
    for (let at = 0, k = seed; at < n; k++) {
      const off = (k * 7919) % (pool.length / 2);
      const len = Math.min(n - at, pool.length - off);
      out.set(pool.subarray(off, off + len), at);
      at += len;
    }
    return out;
  };
  const ones = (n: number) => new Uint16Array(n).fill(0x3f80);
  const tensors: Array<[string, number[], () => Uint16Array]> = [['model.embed_tokens.weight', [vocab, hidden], () => fill(vocab * hidden, 1)]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    tensors.push(
      [`${p}input_layernorm.weight`, [hidden], () => ones(hidden)],
      [`${p}self_attn.q_proj.weight`, [hidden, hidden], () => fill(hidden * hidden, l * 10 + 2)],
      [`${p}self_attn.k_proj.weight`, [kv * headDim, hidden], () => fill(kv * headDim * hidden, l * 10 + 3)],
      [`${p}self_attn.v_proj.weight`, [kv * headDim, hidden], () => fill(kv * headDim * hidden, l * 10 + 4)],
      [`${p}self_attn.o_proj.weight`, [hidden, hidden], () => fill(hidden * hidden, l * 10 + 5)],
      [`${p}post_attention_layernorm.weight`, [hidden], () => ones(hidden)],
      [`${p}mlp.gate_proj.weight`, [inter, hidden], () => fill(inter * hidden, l * 10 + 6)],
      [`${p}mlp.up_proj.weight`, [inter, hidden], () => fill(inter * hidden, l * 10 + 7)],
      [`${p}mlp.down_proj.weight`, [hidden, inter], () => fill(hidden * inter, l * 10 + 8)],
    );
  }
  tensors.push(['model.norm.weight', [hidden], () => ones(hidden)], ['lm_head.weight', [vocab, hidden], () => fill(vocab * hidden, 9)]);
  const maxShard = 2 * 1024 ** 3;
  const shards: Array<typeof tensors> = [[]];
  let bytes = 0, total = 0;
  for (const t of tensors) {
    const b = t[1].reduce((a, c) => a * c, 1) * 2;
    if (bytes > 0 && bytes + b > maxShard) { shards.push([]); bytes = 0; }
    shards[shards.length - 1].push(t);
    bytes += b;
    total += b;
  }
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards.length; i++) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const contents: Record<string, SafetensorsTensor> = {};
    for (const [name, dims, make] of shards[i]) {
      contents[name] = { dtype: 'BF16', shape: dims, data: make() };
      weightMap[name] = file;
    }
    await writeSafetensors(join(ckpt, file), contents, { format: 'pt' });
  }
  writeFileSync(join(ckpt, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
}

/** excise in a child of its own (its peak RSS is its own): load, collect, prune, save. */
async function exciseChild(): Promise<void> {
  const out = join(root, 'excise-saved');
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  const model = await loadModel(ckpt, { dtype: 'bfloat16' });
  const load = (performance.now() - t0) / 1000;
  const rssAfterLoad = peakRssBytes();
  const docs = (seed: number) => Array.from({ length: 2 }, (_, d) => Array.from({ length: 64 }, (_, t) => (seed * 131 + d * 7919 + t * 104729) % shape.vocab));
  const t1 = performance.now();
  const forget = await model.collect(docs(1), { batchSize: 2 });
  const retain = await model.collect(docs(2), { batchSize: 2 });
  const collect = (performance.now() - t1) / 1000;
  const t2 = performance.now();
  const selection = selectNeurons(scoreNeurons(forget, retain), { ffFrac: 0.001, attnFrac: 0 });
  await model.prune(selection);
  const prune = (performance.now() - t2) / 1000;
  const t3 = performance.now();
  await model.save(out);
  const save = (performance.now() - t3) / 1000;
  const layersPruned = selection.ff.filter((l) => l.length > 0).length;
  await model.dispose();
  console.log(JSON.stringify({ load, collect, collectTokens: forget.tokens + retain.tokens, prune, save, layersPruned, peakRss: peakRssBytes(), rssAfterLoad }));
}

const HF = `
import json, resource, sys, time, torch, transformers
ckpt, out = sys.argv[1], sys.argv[2]
t0 = time.time()
m = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16)
load = time.time() - t0
rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t1 = time.time()
m.save_pretrained(out, max_shard_size="2GB")
save = time.time() - t1
print(json.dumps({"load": load, "save": save, "rssAfterLoad": rss_load, "peakRss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "transformers": transformers.__version__}))
`;

const gib = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GiB`;

if (values.child === 'excise') {
  await exciseChild();
} else {
  const t0 = performance.now();
  if (!existsSync(join(ckpt, 'model.safetensors.index.json'))) await makeCheckpoint();
  const size = folderBytes(ckpt);
  console.log(`checkpoint: ${ckpt}, ${gib(size)} in ${readdirSync(ckpt).filter((f) => f.endsWith('.safetensors')).length} shards (made in ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  const ex = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', 'excise', '--size', values.size!, '--dir', root], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (ex.status !== 0) throw new Error(`excise child failed (${ex.status ?? ex.signal})`);
  const e = JSON.parse(ex.stdout.trim().split('\n').pop()!);
  const savedNew = readdirSync(join(root, 'excise-saved')).filter((f) => f.endsWith('.safetensors')).length;
  console.log(`excise: load ${e.load.toFixed(2)} s (peak RSS ${gib(e.rssAfterLoad)}), collect ${e.collectTokens} tokens ${e.collect.toFixed(1)} s, prune ${e.prune.toFixed(2)} s (${e.layersPruned} layers), save ${e.save.toFixed(1)} s (${savedNew} shards); peak RSS over the run ${gib(e.peakRss)} = ${(e.peakRss / size).toFixed(3)}x the checkpoint`);
  const hfOut = join(root, 'hf-saved');
  const hf = spawnSync(values.python!, ['-c', HF, ckpt, hfOut], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (hf.status === 0) {
    const h = JSON.parse(hf.stdout.trim().split('\n').pop()!);
    console.log(`transformers ${h.transformers}: from_pretrained ${h.load.toFixed(2)} s (peak RSS ${gib(h.rssAfterLoad)}), save_pretrained ${h.save.toFixed(1)} s; peak RSS ${gib(h.peakRss)} = ${(h.peakRss / size).toFixed(3)}x`);
  } else {
    console.log(`transformers: failed (${hf.status ?? hf.signal})`);
  }
  if (!values.keep) rmSync(root, { recursive: true, force: true });
}
