/**
 * One process of test/distributed.test.ts: loads a tiny model and runs collect, evaluate and a
 * 2-step selectivePrune, alone (`grouped: false`, the single-process reference) or as one rank of a
 * process group configured from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
 * Writes what it computed to `${out}.rank${rank}.json` (the test compares these files).
 *
 *   node --import tsx test/helpers/distributed-worker.ts '{"task":"all","grouped":true,"out":"/tmp/x"}'
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExciseError, initDistributed, loadModel, selectivePrune } from '../../lib/index.js';

interface Args {
  task: 'all' | 'killMidCollect' | 'rendezvous';
  grouped: boolean;
  out: string;
  timeoutMs?: number;
  /** Load the model split over these devices (a split replica: README "Models larger than one device"). */
  devices?: ('cpu')[];
}

const args = JSON.parse(process.argv[2]) as Args;
const root = join(import.meta.dirname, '..', '..');
// The tiny LLaMA fixture (2 layers, vocabulary 97) on seeded token-id documents of 5 to 80 tokens:
// padding, length sorting and (with maxLength 32) long documents split into windows all take part.
const modelDir = join(root, 'test', 'fixtures', 'hf-golden', 'llama');
function documents(seed: number, n: number): number[][] {
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, () => Array.from({ length: 5 + Math.floor(next() * 76) }, () => Math.floor(next() * 97)));
}
const shared = { batchSize: 4, maxLength: 32 };

async function main() {
  const t0 = performance.now();
  const group = args.grouped ? await initDistributed({ timeoutMs: args.timeoutMs ?? 60_000 }) : undefined;
  const rank = group?.rank ?? 0;
  const outFile = `${args.out}.rank${rank}.json`;
  const model = await loadModel(modelDir, args.devices ? { devices: args.devices } : {});
  const forget = documents(1, 150);
  const retain = documents(2, 150);

  if (args.task === 'killMidCollect') {
    // Rank 1 dies (SIGKILL: no cleanup, no goodbye) after its first batch; rank 0 must notice.
    await model.collect(documents(4, 1000), {
      batchSize: 2, group,
      onProgress: () => { if (rank === 1) process.kill(process.pid, 'SIGKILL'); },
    });
    writeFileSync(outFile, JSON.stringify({ finished: true }));
    return;
  }

  const stats = await model.collect(forget, { maxTokens: 3000, ...shared, group });
  const ev = await model.evaluate(retain, { maxTokens: 2000, ...shared, group });
  const report = await selectivePrune(model, {
    forget, retain, evals: { extra: documents(3, 60) },
    steps: 2, ffFrac: 0.05, attnFrac: 0.03, collectTokens: 2000, evalTokens: 1000, ...shared, group,
  });
  // One batch for two ranks: rank 1 runs none and contributes zeros.
  const tiny = await model.collect(documents(5, 3), { ...shared, group });
  const masks = model.masks;
  const sums = Object.fromEntries(stats.hookNames.map((h) => {
    const s = stats.raw(h);
    return [h, { sum: [...s.sum], sumAbs: [...s.sumAbs], sumSq: [...s.sumSq], sumSqrtAbs: [...s.sumSqrtAbs], countPositive: [...s.countPositive] }];
  }));
  for (const step of report.steps) step.seconds = { collect: 0, prune: 0, evaluate: 0 };  // timings differ by nature
  writeFileSync(outFile, JSON.stringify({
    stats: { tokens: stats.tokens, usage: stats.usage, sums },
    tiny: { tokens: tiny.tokens, sum: [...tiny.mlp(0).mean] },
    evaluate: ev,
    report,
    masks: { ff: masks.ff.map((m) => [...m]), attn: masks.attn.map((m) => [...m]) },
    seconds: (performance.now() - t0) / 1000,
  }));
  await group?.destroy();
  await model.dispose();
}

main().catch((err) => {
  // The test reads the code and message from stderr.
  const code = err instanceof ExciseError ? err.code : 'UNCODED';
  process.stderr.write(`WORKER-ERROR ${code} ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(3);
});
