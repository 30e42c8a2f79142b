// What splitting a model over several devices costs when the devices are one CPU: the split code
// path (per-stage masks and rotary tables, the residual stream handed from stage to stage) against
// the one-device model, on the bundled demo model. Forward and collect tokens/s, best of --reps.
// On GPUs the same split adds one device-to-device copy of [batch, seq, dModel] per boundary.
//   npx tsx bench/devices.ts [--batch 8] [--seq 128] [--reps 5]
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { loadModel, type Device } from '../lib/index.js';

const { values } = parseArgs({ options: { batch: { type: 'string' }, seq: { type: 'string' }, reps: { type: 'string' } } });
const batch = Number(values.batch ?? 8), seq = Number(values.seq ?? 128), reps = Number(values.reps ?? 5);
const dir = join(process.cwd(), 'assets', 'demo-model');
const placements: (readonly Device[])[] = [['cpu'], ['cpu', 'cpu'], ['cpu', 'cpu', 'cpu', 'cpu']];

// The same token ids for every placement (a fixed LCG), with right padding on half the rows.
let state = 12345;
const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31);
const ids = Array.from({ length: batch }, () => Array.from({ length: seq }, () => next() % 4096));
const mask = ids.map((_, b) => Array.from({ length: seq }, (_, t) => (b % 2 === 1 && t >= seq / 2 ? 0 : 1)));
const docs = ids.map((row, b) => row.slice(0, mask[b].filter(Boolean).length));

console.log(`demo model, batch ${batch} x seq ${seq}, best of ${reps}; forward (with the LM head) and collect (every hook point)`);
console.log('| devices | layers per device | forward tok/s | collect tok/s |');
console.log('|---|---|---|---|');
for (const devices of placements) {
  const model = devices.length === 1 ? await loadModel(dir) : await loadModel(dir, { devices });
  const tokens = mask.flat().filter(Boolean).length;
  let bestForward = Infinity, bestCollect = Infinity;
  await model.forward(ids, { attentionMask: mask });  // warm-up
  for (let r = 0; r < reps; r++) {
    let t = performance.now();
    await model.forward(ids, { attentionMask: mask });
    bestForward = Math.min(bestForward, performance.now() - t);
    t = performance.now();
    await model.collect(docs, { batchSize: batch, maxLength: seq });
    bestCollect = Math.min(bestCollect, performance.now() - t);
  }
  const perDevice = devices.map((_, i) => model.placement.layers.filter((d) => d === i).length).join('/');
  console.log(`| ${JSON.stringify(devices)} | ${perDevice} | ${(tokens / bestForward * 1000).toFixed(0)} | ${(tokens / bestCollect * 1000).toFixed(0)} |`);
  await model.dispose();
}
