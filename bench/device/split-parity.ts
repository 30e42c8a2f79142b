// A model split over several devices (loadModel's `devices`, device 'auto') against the same model
// on the CPU: logits of every golden/variant fixture, and on the demo model statistics, evaluation,
// pruned logits, greedy generation (KV cache, decode engine), a training step and the saved bytes.
// Prints one SPLIT line per check. On one GPU the splits are ['cuda:0', 'cuda:0'] (the split code
// path on CUDA), ['cpu', 'cuda:0'] and ['cuda:0', 'cpu'] (the residual stream crossing between the
// host and the GPU, a tied head on the CPU); with two or more GPUs also ['cuda:0', 'cuda:1'] and
// 'auto' (spread over every GPU by free memory). DEVICE=cpu (the rehearsal) runs ['cpu', 'cpu'].
// Run from the repository root: DEVICE=cuda npx tsx bench/device/split-parity.ts
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandomModel, loadDataset, loadModel, readSafetensors, runtimeInfo, scoreNeurons, selectNeurons, type Device, type LoadOptions, type Model } from '../../lib/index.js';

const device = process.env.DEVICE ?? 'cuda';
const root = process.cwd();
const gpus = runtimeInfo().cudaDeviceCount;
const splits: { label: string; options: LoadOptions }[] = device === 'cpu' || gpus === 0
  ? [{ label: "['cpu','cpu']", options: { devices: ['cpu', 'cpu'] } }]
  : [
      { label: "['cuda:0','cuda:0']", options: { devices: ['cuda:0', 'cuda:0'] } },
      { label: "['cpu','cuda:0']", options: { devices: ['cpu', 'cuda:0'] } },
      { label: "['cuda:0','cpu']", options: { devices: ['cuda:0', 'cpu'] } },
      ...(gpus >= 2
        ? [{ label: "['cuda:0','cuda:1']", options: { devices: ['cuda:0', 'cuda:1'] as Device[] } }, { label: "'auto'", options: { device: 'auto' as const } }]
        : [{ label: "'auto' (one GPU: cuda:0)", options: { device: 'auto' as const } }]),
    ];

let failures = 0;
function report(name: string, value: number, tol: number): void {
  const ok = value <= tol; // NaN fails
  if (!ok) failures++;
  console.log(`SPLIT ${ok ? 'ok  ' : 'FAIL'} ${name.padEnd(64)} ${value.toExponential(2)} (tol ${tol.toExponential(0)})`);
}
function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]); if (!(d <= m)) m = d; }
  return m;
}
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  if (a.length !== b.length) return NaN;
  let m = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor); if (!(d <= m)) m = d; }
  return m;
}
const rows = (t: { data: ArrayLike<number | bigint>; shape: number[] }) =>
  Array.from({ length: t.shape[0] }, (_, b) => Array.from({ length: t.shape[1] }, (_, s) => Number(t.data[b * t.shape[1] + s])));

console.log('runtime', JSON.stringify(runtimeInfo()), 'splits', splits.map((s) => s.label).join(' '));
const goldenDir = join(root, 'test/fixtures/hf-golden');
const variantsDir = join(root, 'test/fixtures/hf-variants');
const cases = [
  ...['gpt2', 'opt', 'gpt_neox', 'llama', 'qwen2'].map((c) => join(goldenDir, c)),
  ...(existsSync(variantsDir) ? readdirSync(variantsDir).map((c) => join(variantsDir, c)) : []),
].filter((d) => existsSync(join(d, 'golden.safetensors')));

for (const { label, options } of splits) {
  // Every fixture: float32 logits against transformers', padded rows included; greedy tokens against the CPU's.
  for (const dir of cases) {
    const name = dir.split('/').pop()!;
    const g = await readSafetensors(join(dir, 'golden.safetensors'));
    const ids = rows(g.tensors.input_ids as never), mask = rows(g.tensors.attention_mask as never);
    const m = await loadModel(dir, { ...options, dtype: 'float32' });
    const out = await m.forward(ids, { attentionMask: mask });
    report(`${label} ${name} f32 logits vs HF`, maxAbs(out.logits, g.tensors.logits.data as Float32Array), 1e-4);
    const cpu = await loadModel(dir, { device: 'cpu' });
    if (m.config.maskedLm) {
      // A masked LM cannot generate (ERR_NOT_CAUSAL_LM): its masked-token evaluation instead (the
      // RoBERTa fixtures' mask token is 4), as bench/device/gpu-parity.ts does.
      const docs = ids.map((row, b) => row.filter((_, t) => mask[b][t] === 1));
      const evalOpts = { maskFraction: 0.5, maskTokenId: 4, batchSize: 2 };
      const [a, b] = await Promise.all([cpu.evaluate(docs, evalOpts), m.evaluate(docs, evalOpts)]);
      report(`${label} ${name} masked-token eval loss vs the CPU's`, Math.abs(a.loss - b.loss), 1e-4);
    } else {
      const prompt = ids[0].slice(0, 5);
      const [a, b] = await Promise.all([cpu.generate(prompt, { maxNewTokens: 6, stopAtEos: false }), m.generate(prompt, { maxNewTokens: 6, stopAtEos: false })]);
      report(`${label} ${name} greedy tokens differ from the CPU's`, a.filter((t, i) => t !== b[i]).length, 0);
    }
    await Promise.all([m.dispose(), cpu.dispose()]);
  }

  // The demo model: the method end to end, split against the CPU.
  const demo = join(root, 'assets/demo-model');
  const [cpu, m] = await Promise.all([loadModel(demo), loadModel(demo, { ...options, dtype: 'float32' })]);
  console.log(`INFO ${label}: devices ${JSON.stringify(m.devices)} layers ${JSON.stringify(m.placement.layers)} head on ${m.placement.head}`);
  const python = () => loadDataset(join(root, 'assets/corpora/python/test.jsonl.gz'));
  const prose = () => loadDataset(join(root, 'assets/corpora/prose/test.jsonl.gz'));
  const [s1, s2] = await Promise.all([cpu.collect(python(), { maxTokens: 2000 }), m.collect(python(), { maxTokens: 2000 })]);
  let statRel = 0;
  for (const h of cpu.hookNames()) statRel = Math.max(statRel, maxRel(s2.hook(h).meanAbs, s1.hook(h).meanAbs));
  report(`${label} demo collect meanAbs (max rel over hooks)`, statRel, 1e-3);
  const [e1, e2] = await Promise.all([cpu.evaluate(prose(), { maxTokens: 2000 }), m.evaluate(prose(), { maxTokens: 2000 })]);
  report(`${label} demo evaluate loss`, Math.abs(e1.loss - e2.loss), 1e-4);
  const retain = await cpu.collect(prose(), { maxTokens: 2000 });
  const sel = selectNeurons(scoreNeurons(s1, retain), { ffFrac: 0.05, attnFrac: 0.02 });
  await Promise.all([cpu.prune(sel), m.prune(sel)]);
  const ids = [cpu.tokenizer.encode('def main():\n    print("hello")')];
  const [p1, p2] = await Promise.all([cpu.forward(ids), m.forward(ids)]);
  report(`${label} demo pruned logits`, maxAbs(p1.logits, p2.logits), 1e-4);
  const [t1, t2] = await Promise.all([cpu.generate('def fibonacci(n):', { maxNewTokens: 16 }), m.generate('def fibonacci(n):', { maxNewTokens: 16 })]);
  report(`${label} demo greedy text differs (0 = same)`, t1 === t2 ? 0 : 1, 0);
  const scratch = mkdtempSync(join(tmpdir(), 'excise-split-'));
  await Promise.all([cpu.save(join(scratch, 'cpu')), m.save(join(scratch, 'split'))]);
  const same = readFileSync(join(scratch, 'cpu', 'model.safetensors')).equals(readFileSync(join(scratch, 'split', 'model.safetensors')));
  // float32 pruning zeroes the same slices: the saved bytes agree when the weights do.
  report(`${label} demo saved model.safetensors differs (0 = same bytes)`, same ? 0 : 1, 0);
  rmSync(scratch, { recursive: true, force: true });
  const batch = [cpu.tokenizer.encode('for x in items:\n    print(x)')];
  const r: number[] = [];
  for (const model of [cpu, m]) {
    const t = model.trainer({ lr: 1e-3, warmupSteps: 0, totalSteps: 2 });
    await t.step(batch);
    r.push((await t.step(batch)).loss);
    await t.close();
  }
  report(`${label} demo second training step loss`, Math.abs(r[0] - r[1]), 1e-4);
  await Promise.all([cpu.dispose(), m.dispose()]);
}
if (device !== 'cpu' && gpus >= 2) {
  // 'auto' with more GPUs than layers: as many GPUs as layers (the ones with the most free memory),
  // never ERR_INVALID_ARGUMENT for devices the caller did not name.
  const config = JSON.parse(readFileSync(join(root, 'test/fixtures/hf-golden/llama/config.json'), 'utf8')) as Record<string, unknown>;
  const m = await createRandomModel({ ...config, num_hidden_layers: 1 }, { device: 'auto' });
  report(`'auto' on ${gpus} GPUs, 1-layer model: GPUs used beyond one`, m.devices.length - 1, 0);
  await m.dispose();
}
console.log(`SPLIT SUMMARY ${failures === 0 ? 'all passed' : `${failures} FAILED`} (${splits.length} placements)`);
process.exit(failures === 0 ? 0 : 1);
