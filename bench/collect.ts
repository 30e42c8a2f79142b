/**
 * Statistics collection against a plain forward on the same model and batches: tokens/s and peak
 * host memory (each mode runs in its own process, so peak RSS is that mode's alone). Three modes:
 * forward (logits to JS), trunk (collect's forward with a single hook point), collect (all hooks).
 *
 *   npm run bench:collect -- [--device cpu|cuda] [--dtype float32] [--seq 128] [--batch 8] [--batches 4] [--layers 12]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRandomModel, runtimeInfo, type Dtype } from '../lib/index.js';

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    dtype: { type: 'string', default: 'float32' },
    seq: { type: 'string', default: '128' },
    batch: { type: 'string', default: '8' },
    batches: { type: 'string', default: '4' },
    layers: { type: 'string', default: '12' },
    mode: { type: 'string' },
  },
});
const seq = Number(values.seq), batch = Number(values.batch), nBatches = Number(values.batches);

function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

type Mode = 'forward' | 'trunk' | 'collect';

async function run(mode: Mode): Promise<void> {
  const model = await createRandomModel(
    { architectures: ['GPT2LMHeadModel'], n_layer: Number(values.layers), n_embd: 768, n_head: 12, n_positions: 1024, vocab_size: 50257 },
    { device: values.device, dtype: values.dtype as Dtype, seed: 1 },
  );
  const docs = Array.from({ length: batch * nBatches }, (_, d) => Array.from({ length: seq }, (_, t) => (d * 7919 + t * 104729) % 50257));
  const batches = Array.from({ length: nBatches }, (_, i) => docs.slice(i * batch, (i + 1) * batch));
  // Warm-up on one batch (allocator, kernels), then time the whole dataset.
  // trunk: the same forward as collect (no LM head) with one hook point instead of all of them,
  // so collect - trunk is the cost of the statistics themselves.
  const hooks = mode === 'trunk' ? [`blocks.${model.config.nLayers - 1}.attn.pre_out`] : undefined;
  if (mode === 'forward') await model.forward(batches[0]);
  else await model.collect(batches[0], { batchSize: batch, hooks });
  const rssBefore = peakRssMiB();
  const t0 = performance.now();
  if (mode === 'forward') {
    for (const b of batches) await model.forward(b);
  } else {
    await model.collect(docs, { batchSize: batch, hooks });
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ mode, tokensPerSecond: (docs.length * seq) / seconds, peakRssMiB: Math.max(rssBefore, peakRssMiB()) }));
  await model.dispose();
}

if (values.mode === 'forward' || values.mode === 'trunk' || values.mode === 'collect') {
  await run(values.mode);
} else {
  const self = fileURLToPath(import.meta.url);
  const args = process.argv.slice(2);
  const results = (['forward', 'trunk', 'collect'] as const).map((mode) => {
    const out = execFileSync(process.execPath, [...process.execArgv, self, ...args, '--mode', mode], { encoding: 'utf8' });
    return JSON.parse(out.trim().split('\n').pop()!) as { mode: string; tokensPerSecond: number; peakRssMiB: number };
  });
  const [fwd, trunk, col] = results;
  console.log(`excise collect bench: GPT-2-small-sized random model, ${values.device} ${values.dtype}, ${nBatches} batches of ${batch} x ${seq} tokens, LibTorch ${runtimeInfo().torchVersion}`);
  console.log('mode       tokens/s   peak RSS MiB');
  for (const r of results) console.log(`${r.mode.padEnd(8)} ${r.tokensPerSecond.toFixed(0).padStart(10)} ${r.peakRssMiB.toFixed(0).padStart(14)}`);
  console.log(`collect / forward: throughput ${(col.tokensPerSecond / fwd.tokensPerSecond).toFixed(3)}x, peak memory ${(col.peakRssMiB / fwd.peakRssMiB).toFixed(3)}x`);
  console.log(`collect / trunk:   throughput ${(col.tokensPerSecond / trunk.tokensPerSecond).toFixed(3)}x, peak memory ${(col.peakRssMiB / trunk.peakRssMiB).toFixed(3)}x`);
  console.log('(forward returns float32 logits to JS; collect and trunk stop before the LM head; trunk has one hook point,');
  console.log(' collect all of them, so collect / trunk is the cost of the statistics alone)');
}
