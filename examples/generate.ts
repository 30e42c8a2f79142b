/**
 * Load-and-generate: the quick start's main job until the pruning pipeline lands.
 * Loads each bundled reference checkpoint (tiny random-weight models made by Hugging Face
 * transformers), checks its logits against transformers' own, and continues a prompt with the KV
 * cache.
 *
 *   npm run example [-- --device cuda]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel, readSafetensors, runtimeInfo } from '../lib/index.js';

const { values } = parseArgs({ options: { device: { type: 'string', default: 'cpu' } } });
const fixtures = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', 'test', 'fixtures', 'hf-golden');

const info = runtimeInfo();
console.log(`excise on LibTorch ${info.torchVersion} (CUDA ${info.cudaAvailable ? `yes, ${info.cudaDeviceCount} device(s)` : 'no'})\n`);

for (const name of ['gpt2', 'opt', 'gpt_neox', 'llama', 'qwen2']) {
  const dir = join(fixtures, name);
  const model = await loadModel(dir, { device: values.device });
  const golden = (await readSafetensors(join(dir, 'golden.safetensors'))).tensors;
  const ids = Array.from(golden.input_ids.data as BigInt64Array, Number);
  const seq = golden.input_ids.shape[1];
  const { logits } = await model.forward([ids.slice(0, seq)]);
  const reference = golden.logits.data as Float32Array;
  let maxDiff = 0;
  for (let i = 0; i < logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(logits[i] - reference[i]));
  const continuation = await model.generate(ids.slice(0, 4), { maxNewTokens: 12, stopAtEos: false });
  const c = model.config;
  console.log(`${c.architecture.padEnd(20)} ${c.nLayers} layers, d_model ${c.dModel}, ${c.nHeads} heads (${c.nKvHeads} kv), d_mlp ${c.dMlp}`);
  console.log(`  max |logits - transformers| = ${maxDiff.toExponential(2)}`);
  console.log(`  prompt ${JSON.stringify(ids.slice(0, 4))} -> greedy ${JSON.stringify(continuation)}`);
  await model.dispose();
}
