/**
 * Load test of the OpenAI-compatible server (lib/serve/server.ts) at several concurrencies, with
 * autocannon (run as a child process, so its own work does not load the server's event loop).
 * Reports requests/s, generated tokens/s, p50/p99 latency and the server's event-loop delay p99,
 * plus single-stream decode tokens/s through model.generate (compare: bench/serve/hf_generate.py).
 *
 *   npx tsx bench/serve/load.ts [--models demo,gpt2] [--concurrency 1,4,16] [--rounds 4]
 *                               [--max-tokens 32] [--prompt-tokens 16]
 *
 * Each level sends concurrency x rounds requests (autocannon --amount), token-id prompts with
 * ignore_eos, so every request generates exactly --max-tokens. On a machine shared with other
 * work, LibTorch's intra-op threads oversubscribe the cores: set OMP_NUM_THREADS (and --threads on
 * the Python side) to what the machine can give.
 */
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRandomModel, createServer, loadModel, runtimeInfo, type Model } from '../../lib/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'demo,gpt2' },
    concurrency: { type: 'string', default: '1,4,16' },
    rounds: { type: 'string', default: '8' },
    'max-tokens': { type: 'string', default: '32' },
    'prompt-tokens': { type: 'string', default: '16' },
  },
});
const rounds = Number(values.rounds);
const maxTokens = Number(values['max-tokens']);
const promptTokens = Number(values['prompt-tokens']);

async function open(name: string): Promise<Model> {
  if (name === 'demo') return loadModel(join(root, 'assets', 'demo-model'));
  // GPT-2 small: 12 layers, d_model 768, 12 heads, vocab 50257 (124M parameters), random weights.
  return createRandomModel({ architectures: ['GPT2LMHeadModel'], n_layer: 12, n_embd: 768, n_head: 12, n_positions: 1024, vocab_size: 50257 }, { seed: 1 });
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  duration: number;
}

function autocannon(url: string, connections: number, body: string): Promise<AutocannonResult> {
  const bin = join(root, 'node_modules', 'autocannon', 'autocannon.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, '-j', '-c', String(connections), '-a', String(connections * rounds), '-m', 'POST',
      '-H', 'content-type=application/json', '-b', body, '-t', '120', url], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`autocannon exited ${code}`))));
  });
}

const info = runtimeInfo();
console.log(`excise serve load test: LibTorch ${info.torchVersion}, CPU, float32, OMP_NUM_THREADS=${process.env.OMP_NUM_THREADS ?? '(default)'}; ` +
  `prompts of ${promptTokens} tokens, ${maxTokens} generated per request (ignore_eos), concurrency x ${rounds} requests per level`);
const rows: string[] = ['| model | concurrency | req/s | generated tok/s | p50 latency ms | p99 latency ms | event-loop delay p99 ms |', '| --- | --- | --- | --- | --- | --- | --- |'];
for (const name of values.models!.split(',')) {
  const model = await open(name);
  const vocab = model.config.vocabSize;
  const prompt = Array.from({ length: promptTokens }, (_, t) => (t * 7919 + 13) % vocab);
  // Single stream through the library: decode tokens/s at batch 1 (prefill excluded by difference).
  await model.generate(prompt, { maxNewTokens: 4, stopAtEos: false });
  const timeFor = async (n: number) => { const t = performance.now(); await model.generate(prompt, { maxNewTokens: n, stopAtEos: false }); return performance.now() - t; };
  const short = await timeFor(1);
  const long = await timeFor(1 + 128);
  console.log(`${name}: ${(model.parameterCount / 1e6).toFixed(1)}M params; single-stream decode (model.generate, batch 1, greedy): ${(128 / ((long - short) / 1000)).toFixed(1)} tokens/s`);
  model.configureEngine({ maxBatch: 16, maxSequence: 256 });
  const server = createServer(model, { maxTokens: 256 });
  const url = `${await server.listen(0)}/v1/completions`;
  const body = JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true });
  await fetch(url, { method: 'POST', body });  // warm-up
  for (const c of values.concurrency!.split(',').map(Number)) {
    const tokensBefore = server.metrics.completionTokens;
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const r = await autocannon(url, c, body);
    const seconds = r.duration;  // autocannon's own clock: first request to last answer
    loop.disable();
    const tokens = server.metrics.completionTokens - tokensBefore;
    const row = `| ${name} | ${c} | ${(r.requests.total / seconds).toFixed(2)} | ${(tokens / seconds).toFixed(1)} | ${r.latency.p50} | ${r.latency.p99} | ${(loop.percentile(99) / 1e6).toFixed(1)} |`;
    console.log(row + (r.non2xx || r.errors ? ` (${r.non2xx} non-2xx, ${r.errors} errors)` : ''));
    rows.push(row);
  }
  await server.close({ graceMs: 1000 });
  await model.dispose();
}
console.log('\n' + rows.join('\n'));
