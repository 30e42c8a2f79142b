// GPU parity: Hugging Face golden fixtures on DEVICE (default cuda) in float32 and bfloat16, pruning,
// and CPU-vs-DEVICE statistics / evaluation / greedy generation. Prints one PARITY line per check.
// Run from the repository root: npx tsx .device/gpu/gpu-parity.ts
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, readSafetensors, runtimeInfo, type Device } from '../../lib/index.js';

const device = (process.env.DEVICE ?? 'cuda') as Device;
const root = process.cwd();
const goldenDir = join(root, 'test/fixtures/hf-golden');
const variantsDir = join(root, 'test/fixtures/hf-variants');
const cases = [
  ...['gpt2', 'opt', 'gpt_neox', 'llama', 'qwen2'].map((c) => join(goldenDir, c)),
  ...(existsSync(variantsDir) ? readdirSync(variantsDir).map((c) => join(variantsDir, c)) : []),
].filter((d) => existsSync(join(d, 'golden.safetensors')));

let failures = 0;
function report(name: string, value: number, tol: number): void {
  const ok = value <= tol; // NaN fails
  if (!ok) failures++;
  console.log(`PARITY ${ok ? 'ok  ' : 'FAIL'} ${name.padEnd(52)} ${value.toExponential(2)} (tol ${tol.toExponential(0)})`);
}
function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); if (!(d <= m)) m = d; }
  return m;
}
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-6): number {
  if (a.length !== b.length) return NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor); if (!(d <= m)) m = d; }
  return m;
}
async function golden(dir: string) {
  const g = await readSafetensors(join(dir, 'golden.safetensors'));
  const rows = (t: { data: ArrayLike<number | bigint>; shape: number[] }) =>
    Array.from({ length: t.shape[0] }, (_, b) => Array.from({ length: t.shape[1] }, (_, s) => Number(t.data[b * t.shape[1] + s])));
  const f32 = (name: string) => (g.tensors[name]?.dtype === 'F32' ? (g.tensors[name].data as Float32Array) : undefined);
  return {
    ids: rows(g.tensors.input_ids as never), mask: rows(g.tensors.attention_mask as never), f32,
    prune: JSON.parse(readFileSync(join(dir, 'prune.json'), 'utf8')) as { mlp: number[][]; attn: number[][] },
  };
}

console.log('runtime', JSON.stringify(runtimeInfo()), 'device', device);
for (const dir of cases) {
  const name = dir.split('/').pop()!;
  const g = await golden(dir);
  // float32 on the device: logits and every hook point against transformers (padded rows included).
  const m = await loadModel(dir, { device, dtype: 'float32' });
  const out = await m.forward(g.ids, { attentionMask: g.mask, capture: m.hookNames() });
  report(`${name} f32 logits`, maxAbs(out.logits, g.f32('logits')!), 1e-4);
  let hookMax = 0;
  for (let l = 0; l < m.config.nLayers; l++) {
    hookMax = Math.max(hookMax, maxAbs(out.activations![`blocks.${l}.mlp.pre_out`].data, g.f32(`mlp_pre_out.${l}`)!),
      maxAbs(out.activations![`blocks.${l}.attn.pre_out`].data, g.f32(`attn_pre_out.${l}`)!));
  }
  report(`${name} f32 hook points (max over all)`, hookMax, 1e-4);
  // Statistics, evaluation and greedy generation: device against CPU.
  const docs = g.ids.map((r, b) => r.filter((_, s) => g.mask[b][s] === 1));
  const cpu = await loadModel(dir, { device: 'cpu', dtype: 'float32' });
  const [sd, sc] = [await m.collect(docs, { batchSize: 2 }), await cpu.collect(docs, { batchSize: 2 })];
  let statMax = 0;
  for (const h of m.hookNames()) {
    for (const k of ['meanAbs', 'rms', 'meanSqrtAbs', 'freq'] as const) statMax = Math.max(statMax, maxRel(sd.hook(h)[k], sc.hook(h)[k]));
  }
  report(`${name} f32 stats ${device} vs cpu (max rel)`, statMax, 1e-4);
  // A masked LM (RoBERTa fixtures: mask token 4) is evaluated on masked tokens and cannot generate.
  const evalOpts = m.config.maskedLm ? { batchSize: 2, skipTopN: 3, maskFraction: 0.5, maskTokenId: 4 } : { batchSize: 2, skipTopN: 3 };
  const [ed, ec] = [await m.evaluate(docs, evalOpts), await cpu.evaluate(docs, evalOpts)];
  report(`${name} f32 eval loss ${device} vs cpu`, Math.abs(ed.loss - ec.loss), 1e-4);
  report(`${name} f32 eval top1 ${device} vs cpu`, Math.abs(ed.top1 - ec.top1), 0);
  if (!m.config.maskedLm) {
    const [gd, gc] = [await m.generate(docs[0], { maxNewTokens: 8 }), await cpu.generate(docs[0], { maxNewTokens: 8 })];
    report(`${name} f32 greedy ids ${device} vs cpu (mismatches)`, gd.filter((t, i) => t !== gc[i]).length, 0);
  }
  // Pruning on the device against transformers' pruned logits.
  await m.prune({ ff: g.prune.mlp, attn: g.prune.attn });
  const pruned = await m.forward(g.ids, { attentionMask: g.mask });
  report(`${name} f32 pruned logits`, maxAbs(pruned.logits, g.f32('logits_pruned')!), 1e-4);
  await m.restore();
  const restored = await m.forward(g.ids, { attentionMask: g.mask });
  report(`${name} f32 restore() exact`, maxAbs(restored.logits, out.logits), 0);
  await Promise.all([m.dispose(), cpu.dispose()]);
  // bfloat16 on the device against transformers' own bf16 logits (the CPU tests' tolerance, 0.5).
  const ref = g.f32('logits_bf16_from_pretrained');
  if (ref) {
    const mb = await loadModel(dir, { device, dtype: 'bfloat16' });
    const ob = await mb.forward(g.ids, { attentionMask: g.mask });
    report(`${name} bf16 logits vs HF bf16`, maxAbs(ob.logits, ref), 0.5);
    const sb = await mb.collect(docs, { batchSize: 2 });
    let bMax = 0;
    for (const h of mb.hookNames()) bMax = Math.max(bMax, maxRel(sb.hook(h).meanAbs, sc.hook(h).meanAbs, 1e-3));
    console.log(`INFO ${name} bf16 stats meanAbs vs cpu f32: max rel ${bMax.toExponential(2)}`);
    await mb.dispose();
  }
}
// Device errors: an index past the visible devices must be ERR_DEVICE_UNAVAILABLE with a clear message.
// Training on the device: three AdamW steps against torch.optim.AdamW's (test/fixtures/adamw), and
// lastPositionOnly logits against the full tensor's rows.
{
  const ref = JSON.parse(readFileSync(join(root, 'test/fixtures/adamw/steps.json'), 'utf8'));
  const after = (await readSafetensors(join(root, 'test/fixtures/adamw/after.safetensors'))).tensors;
  const m = await loadModel(join(goldenDir, 'llama'), { device, dtype: 'float32' });
  const t = m.trainer({ ...ref.options, warmupSteps: 0, totalSteps: ref.steps.length, minLrRatio: 1 });
  let lossDiff = 0;
  for (const step of ref.steps) lossDiff = Math.max(lossDiff, Math.abs((await t.step(ref.batch)).loss - step.loss));
  await t.close();
  report('llama f32 AdamW 3 steps: loss vs torch', lossDiff, 1e-4);
  const { mkdtempSync, rmSync } = await import('node:fs');
  const dir = mkdtempSync('/tmp/excise-adamw-');
  await m.save(dir, { overwrite: true });
  const ours = (await readSafetensors(join(dir, 'model.safetensors'))).tensors;
  let w = 0;
  for (const [name, tensor] of Object.entries(ours)) w = Math.max(w, maxAbs(tensor.data as Float32Array, after[name].data as Float32Array));
  rmSync(dir, { recursive: true, force: true });
  report('llama f32 AdamW 3 steps: weights vs torch.optim.AdamW', w, 1e-4);
  const ids = [[5, 9, 13, 2, 40, 41], [8, 8, 1, 60, 0, 0]];
  const attentionMask = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]];
  const full = await m.forward(ids, { attentionMask });
  const last = await m.forward(ids, { attentionMask, lastPositionOnly: true });
  const V = m.config.vocabSize;
  report('llama lastPositionOnly vs full rows', Math.max(maxAbs(last.logits.subarray(0, V), full.logits.subarray(5 * V, 6 * V)),
    maxAbs(last.logits.subarray(V, 2 * V), full.logits.subarray((6 + 3) * V, (6 + 4) * V))), 1e-5);
  await m.dispose();
}
const n = runtimeInfo().cudaDeviceCount;
try {
  await loadModel(cases[0], { device: `cuda:${n}` });
  failures++; console.log(`PARITY FAIL cuda:${n} loaded although only ${n} device(s) are visible`);
} catch (e) {
  const err = e as { code?: string; message: string };
  const ok = err.code === 'ERR_DEVICE_UNAVAILABLE';
  if (!ok) failures++;
  console.log(`PARITY ${ok ? 'ok  ' : 'FAIL'} cuda:${n} -> ${err.code}: ${err.message}`);
}
console.log(`PARITY SUMMARY ${failures === 0 ? 'all passed' : failures + ' failed'} on ${device} (${cases.length} fixtures)`);
process.exit(failures === 0 ? 0 : 1);
