/**
 * Forward throughput on a GPT-2-small-sized model with random weights, built in-process from a
 * config (no download). Reports tokens/s and achieved GFLOP/s against 2 x params FLOP per token.
 *
 *   npm run bench:forward -- [--device cpu|cuda] [--dtype float32|bfloat16|float16] [--seq 128]
 *                            [--batches 1,4,8] [--iters 3] [--layers 12]
 */
import { parseArgs } from 'node:util';
import { createRandomModel, runtimeInfo, type Dtype } from '../lib/index.js';

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    dtype: { type: 'string', default: 'float32' },
    seq: { type: 'string', default: '128' },
    batches: { type: 'string', default: '1,4,8' },
    iters: { type: 'string', default: '3' },
    layers: { type: 'string', default: '12' },
  },
});
const seq = Number(values.seq);
const iters = Number(values.iters);
const batches = values.batches!.split(',').map(Number);

// GPT-2 small: 12 layers, d_model 768, 12 heads, vocab 50257, 1024 positions (124M parameters).
const config = {
  architectures: ['GPT2LMHeadModel'],
  n_layer: Number(values.layers), n_embd: 768, n_head: 12, n_positions: 1024, vocab_size: 50257,
};

const model = await createRandomModel(config, { device: values.device, dtype: values.dtype as Dtype, seed: 1 });
const info = runtimeInfo();
const flopPerToken = 2 * model.parameterCount;
console.log(`excise forward bench: GPT-2-small-sized random model, ${(model.parameterCount / 1e6).toFixed(1)}M params, ` +
  `${model.device} ${model.dtype}, seq ${seq}, LibTorch ${info.torchVersion}`);
console.log('batch  tokens   ms/forward   tokens/s   GFLOP/s');
for (const batch of batches) {
  const ids = Array.from({ length: batch }, (_, b) => Array.from({ length: seq }, (_, t) => (b * 7919 + t * 104729) % 50257));
  await model.forward(ids); // warm-up
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await model.forward(ids);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]; // median
  const tokens = batch * seq;
  const tps = tokens / (ms / 1000);
  console.log(`${String(batch).padStart(5)}  ${String(tokens).padStart(6)}  ${ms.toFixed(1).padStart(11)}  ${tps.toFixed(0).padStart(9)}  ${((tps * flopPerToken) / 1e9).toFixed(1).padStart(8)}`);
}
console.log('(ms/forward is the median; each forward returns float32 logits [batch, seq, vocab] to JS, included in the time)');
await model.dispose();
