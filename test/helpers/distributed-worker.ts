/**
 * One process of test/distributed.test.ts: loads the demo model and runs collect, evaluate and a
 * 2-step selectivePrune, alone (`grouped: false`, the single-process reference) or as one rank of a
 * process group configured from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
 * Writes what it computed to `${out}.rank${rank}.json` (the test compares these files).
 *
 *   node --import tsx test/helpers/distributed-worker.ts '{"task":"all","grouped":true,"out":"/tmp/x"}'
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExciseError, initDistributed, loadDataset, loadModel, selectivePrune } from '../../lib/index.js';

interface Args {
  task: 'all' | 'killMidCollect' | 'rendezvous';
  grouped: boolean;
  out: string;
  timeoutMs?: number;
}

const args = JSON.parse(process.argv[2]) as Args;
const root = join(import.meta.dirname, '..', '..');
const corpus = (name: string) => loadDataset(join(root, 'assets', 'corpora', name, 'test.jsonl.gz'));

async function main() {
  const t0 = performance.now();
  const group = args.grouped ? await initDistributed({ timeoutMs: args.timeoutMs ?? 60_000 }) : undefined;
  const rank = group?.rank ?? 0;
  const outFile = `${args.out}.rank${rank}.json`;
  const model = await loadModel(join(root, 'assets', 'demo-model'));
  const python = corpus('python');
  const prose = corpus('prose');

  if (args.task === 'killMidCollect') {
    // Rank 1 dies (SIGKILL: no cleanup, no goodbye) after its first batch; rank 0 must notice.
    await model.collect(python, {
      maxTokens: 6000, batchSize: 2, group,
      onProgress: () => { if (rank === 1) process.kill(process.pid, 'SIGKILL'); },
    });
    writeFileSync(outFile, JSON.stringify({ finished: true }));
    return;
  }

  const stats = await model.collect(python, { maxTokens: 2000, batchSize: 4, group });
  const ev = await model.evaluate(prose, { maxTokens: 1000, batchSize: 4, group });
  const report = await selectivePrune(model, {
    forget: python, retain: prose, evals: { javascript: corpus('javascript') },
    steps: 2, ffFrac: 0.03, attnFrac: 0.02, collectTokens: 1000, evalTokens: 400, batchSize: 4, group,
  });
  const masks = model.masks;
  const sums = Object.fromEntries(stats.hookNames.map((h) => {
    const s = stats.raw(h);
    return [h, { sum: [...s.sum], sumAbs: [...s.sumAbs], sumSq: [...s.sumSq], sumSqrtAbs: [...s.sumSqrtAbs], countPositive: [...s.countPositive] }];
  }));
  for (const step of report.steps) step.seconds = { collect: 0, prune: 0, evaluate: 0 };  // timings differ by nature
  writeFileSync(outFile, JSON.stringify({
    stats: { tokens: stats.tokens, usage: stats.usage, sums },
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
