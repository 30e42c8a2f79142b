// Throughput on a random LLaMA (default ~1.1B parameters, TinyLlama's shape) on DEVICE in DTYPE:
// evaluate (forward + chunked LM head on the device), collect (all hook points) against trunk (one
// hook point, same depth), collect over padded batches, forward with logits to JS, greedy generation.
// Prints BENCH lines: tokens/s, TFLOP/s and MFU against PEAK_TFLOPS (dense bf16 of the GPU).
//   DEVICE=cuda DTYPE=bfloat16 SIZE=1b|tiny SEQ=1024 BATCH=8 NBATCH=4 PEAK_TFLOPS=989 npx tsx .device/gpu/gpu-bench.ts
import { createRandomModel, runtimeInfo, type Device, type Dtype } from '../../lib/index.js';

const device = (process.env.DEVICE ?? 'cuda') as Device;
const dtype = (process.env.DTYPE ?? 'bfloat16') as Dtype;
const size = process.env.SIZE ?? '1b';
const seq = Number(process.env.SEQ ?? (size === 'tiny' ? 128 : 1024));
const batch = Number(process.env.BATCH ?? 8);
const nBatch = Number(process.env.NBATCH ?? 4);
const peak = Number(process.env.PEAK_TFLOPS ?? 989) * 1e12;

const cfg = size === 'tiny'
  ? { hidden_size: 128, intermediate_size: 352, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 1000 }
  : { hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000 };
const config = { architectures: ['LlamaForCausalLM'], max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, ...cfg };

const t0 = performance.now();
const model = await createRandomModel(config, { device, dtype, seed: 1 });
const loadS = (performance.now() - t0) / 1000;
const { hidden_size: d, num_hidden_layers: L, vocab_size: V } = cfg;
const P = model.parameterCount;
const embed = V * d, head = V * d;
// FLOP per token: 2 x matmul parameters (the embedding is a lookup) + causal attention 2 x 2 x L x d x seq / 2.
const attnFlop = 2 * L * d * seq;
const flopWithHead = 2 * (P - embed) + attnFlop;
const flopTrunk = 2 * (P - embed - head) + attnFlop;
console.log(`BENCH model LLaMA ${(P / 1e9).toFixed(3)}B params, ${device} ${dtype}, seq ${seq}, batch ${batch} x ${nBatch} batches; ` +
  `created in ${loadS.toFixed(1)} s; torch ${runtimeInfo().torchVersion}; peak ${(peak / 1e12).toFixed(0)} TFLOP/s`);

let seed = 12345;
const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const docs = Array.from({ length: batch * nBatch }, () => Array.from({ length: seq }, () => 3 + rnd(V - 3)));
const ragged = docs.map((doc) => doc.slice(0, seq / 4 + rnd((3 * seq) / 4)));  // padded batches
const raggedTokens = ragged.reduce((a, r) => a + r.length, 0);
const tokens = batch * nBatch * seq;

function line(name: string, toks: number, seconds: number, flopPerToken?: number): void {
  const tps = toks / seconds;
  const extra = flopPerToken ? `  ${((tps * flopPerToken) / 1e12).toFixed(1).padStart(6)} TFLOP/s  MFU ${((100 * tps * flopPerToken) / peak).toFixed(1).padStart(5)}%` : '';
  console.log(`BENCH ${name.padEnd(34)} ${tps.toFixed(0).padStart(9)} tokens/s  ${seconds.toFixed(3).padStart(8)} s${extra}`);
}
async function timed(fn: () => Promise<unknown>): Promise<number> {
  await fn(); // warm-up (allocator, kernels, cuBLAS heuristics)
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}
const lastAttn = [`blocks.${L - 1}.attn.pre_out`];
line('evaluate (fwd + LM head on device)', tokens, await timed(() => model.evaluate(docs, { batchSize: batch, maxTokens: Infinity, maxLength: seq })), flopWithHead);
line('trunk (collect, 1 hook point)', tokens, await timed(() => model.collect(docs, { batchSize: batch, maxLength: seq, hooks: lastAttn })), flopTrunk);
line('collect (all hook points)', tokens, await timed(() => model.collect(docs, { batchSize: batch, maxLength: seq })), flopTrunk);
line('collect mlp only', tokens, await timed(() => model.collect(docs, { batchSize: batch, maxLength: seq, hooks: Array.from({ length: L }, (_, l) => `blocks.${l}.mlp.pre_out`) })), flopTrunk);
line('trunk, padded batches (mask)', raggedTokens, await timed(() => model.collect(ragged, { batchSize: batch, maxLength: seq, hooks: lastAttn })));
line('collect, padded batches (mask)', raggedTokens, await timed(() => model.collect(ragged, { batchSize: batch, maxLength: seq })));
line('forward, logits to JS, batch 1', seq, await timed(() => model.forward([docs[0]])), flopWithHead);
line(`forward, logits to JS, batch ${Math.min(batch, 4)}`, Math.min(batch, 4) * seq, await timed(() => model.forward(docs.slice(0, Math.min(batch, 4)))), flopWithHead);
const newTokens = 128;
line(`generate greedy (${newTokens} new, prompt 128)`, newTokens, await timed(() => model.generate(docs[0].slice(0, 128), { maxNewTokens: newTokens, stopAtEos: false })));
await model.dispose();
