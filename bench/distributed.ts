/**
 * Data-parallel collection over c10d (Gloo): tokens/s of model.collect with 1 process and with N
 * processes on this machine, on a random GPT-2-small-sized model and the same batches. Each process
 * gets an equal share of the CPU threads (threads per process = cores / N, set before LibTorch
 * starts), so the comparison is of the same machine used two ways.
 *
 *   npx tsx bench/distributed.ts [--nproc 2] [--seq 128] [--batch 8] [--batches 8] [--layers 12]
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRandomModel, initDistributed } from '../lib/index.js';

const { values } = parseArgs({
  options: {
    nproc: { type: 'string', default: '2' },
    seq: { type: 'string', default: '128' },
    batch: { type: 'string', default: '8' },
    batches: { type: 'string', default: '8' },
    layers: { type: 'string', default: '12' },
    worker: { type: 'boolean' },
  },
});
const seq = Number(values.seq), batch = Number(values.batch), nBatches = Number(values.batches);

async function worker(): Promise<void> {
  const grouped = Number(process.env.WORLD_SIZE ?? '1') > 1;
  const group = grouped ? await initDistributed() : undefined;
  const model = await createRandomModel(
    { architectures: ['GPT2LMHeadModel'], n_layer: Number(values.layers), n_embd: 768, n_head: 12, n_positions: 1024, vocab_size: 50257 },
    { seed: 1 },
  );
  const docs = Array.from({ length: batch * nBatches }, (_, d) => Array.from({ length: seq }, (_, t) => (d * 7919 + t * 104729) % 50257));
  await model.collect(docs.slice(0, batch), { batchSize: batch });  // warm-up
  await group?.barrier();
  const t0 = performance.now();
  const stats = await model.collect(docs, { batchSize: batch, ...(group ? { group } : {}) });
  const seconds = (performance.now() - t0) / 1000;
  if (!group || group.isMain) console.log(JSON.stringify({ processes: group?.worldSize ?? 1, tokens: stats.tokens, seconds, tokensPerSecond: stats.tokens / seconds }));
  await group?.destroy();
  await model.dispose();
}

function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const s = createServer().listen(0, () => { const p = (s.address() as { port: number }).port; s.close(() => resolvePort(p)); });
  });
}

async function launch(nproc: number): Promise<string> {
  const port = await freePort();
  const threads = String(Math.max(1, Math.floor(availableParallelism() / nproc)));
  const outs = await Promise.all(Array.from({ length: nproc }, (_, rank) => new Promise<string>((resolveOut, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--worker', ...process.argv.slice(2)], {
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(nproc), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), OMP_NUM_THREADS: threads },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('close', (code) => (code === 0 ? resolveOut(out) : reject(new Error(`rank ${rank} exited with ${code}`))));
  })));
  return outs.join('').trim();
}

if (values.worker) {
  await worker();
} else {
  const nproc = Number(values.nproc);
  const one = JSON.parse(await launch(1));
  const many = JSON.parse(await launch(nproc));
  console.log(`collect, ${seq * batch * nBatches} tokens, GPT-2-small-sized, ${availableParallelism()} cores:`);
  console.log(`  1 process (${availableParallelism()} threads): ${one.tokensPerSecond.toFixed(0)} tokens/s`);
  console.log(`  ${nproc} processes (${Math.max(1, Math.floor(availableParallelism() / nproc))} thread each): ${many.tokensPerSecond.toFixed(0)} tokens/s (${(many.tokensPerSecond / one.tokensPerSecond).toFixed(2)}x)`);
}
