/**
 * Trains the bundled demo model: a small LLaMA-architecture model on English prose, Python and
 * JavaScript (assets/corpora), with the byte-level BPE tokenizer in assets/demo-model/tokenizer.json,
 * using excise's own native training step. Writes assets/demo-model (config.json, model.safetensors,
 * tokenizer.json, README.md model card).
 *
 *   npx tsx scripts/train-demo.ts [--steps 2400] [--batch 16] [--seq 256] [--device cpu] [--out assets/demo-model]
 *
 * Deterministic for a given LibTorch build and thread count: fixed seeds, fixed data order.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRandomModel, loadDataset, runtimeInfo, Tokenizer, type EvalResult } from '../lib/index.js';
import { seededRandom as rng } from '../lib/method/selection.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '2400' },
    batch: { type: 'string', default: '16' },
    seq: { type: 'string', default: '256' },
    lr: { type: 'string', default: '2e-3' },
    device: { type: 'string', default: 'cpu' },
    out: { type: 'string', default: join(root, 'assets', 'demo-model') },
    'eval-every': { type: 'string', default: '200' },
  },
});
const steps = Number(values.steps);
const batchSize = Number(values.batch);
const seqLen = Number(values.seq);
const lr = Number(values.lr);
const outDir = resolve(values.out!);
const corporaDir = join(root, 'assets', 'corpora');
const CORPORA = ['prose', 'python', 'javascript'] as const;

const tokenizerFile = join(outDir, 'tokenizer.json');
if (!existsSync(tokenizerFile)) throw new Error(`${tokenizerFile} is missing: run scripts/train-tokenizer.ts first`);
const tokenizer = Tokenizer.fromFile(tokenizerFile);
const eosId = tokenizer.tokenToId('<|endoftext|>');
if (eosId === undefined) throw new Error('the tokenizer has no <|endoftext|> token');
const vocabSize = tokenizer.vocabSize;

// A small LLaMA: ~3.7M parameters (14.7 MB in float32), 4 layers x 512 gated FF neurons.
const config = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: vocabSize,
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 8,
  max_position_embeddings: seqLen,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  hidden_act: 'silu',
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
  bos_token_id: eosId,
  eos_token_id: eosId,
  torch_dtype: 'float32',
};

/** A corpus split as one token stream: documents joined by <|endoftext|>, cut into seqLen windows. */
async function windows(corpus: string, split: 'train' | 'test'): Promise<number[][]> {
  const ds = loadDataset(join(corporaDir, corpus, `${split}.jsonl.gz`));
  const texts: string[] = [];
  for await (const t of ds.documents()) texts.push(t);
  const stream: number[] = [];
  for (let i = 0; i < texts.length; i += 256) {
    for (const ids of await tokenizer.encodeBatch(texts.slice(i, i + 256), { addSpecialTokens: false })) stream.push(...ids, eosId!);
  }
  const out: number[][] = [];
  for (let s = 0; s + seqLen <= stream.length; s += seqLen) out.push(stream.slice(s, s + seqLen));
  return out;
}

const t0 = performance.now();
const train: Record<string, number[][]> = {};
const test: Record<string, number[][]> = {};
for (const c of CORPORA) {
  train[c] = await windows(c, 'train');
  test[c] = await windows(c, 'test');
  console.log(`${c}: ${train[c].length} train windows, ${test[c].length} test windows of ${seqLen} tokens`);
}

const model = await createRandomModel(config, { device: values.device, seed: 1234 });
console.log(`model: ${(model.parameterCount / 1e6).toFixed(2)}M parameters, ${model.device}, LibTorch ${runtimeInfo().torchVersion}`);
const trainer = model.trainer({ lr, warmupSteps: Math.min(200, Math.floor(steps / 10)), totalSteps: steps, weightDecay: 0.1, gradClip: 1 });

// Each batch has equal shares of the three corpora (the last slots rotate), drawn in a seeded order.
const random = rng(42);
const order: Record<string, number[]> = {};
const cursor: Record<string, number> = {};
const shuffled = (n: number) => { const a = Array.from({ length: n }, (_, i) => i); for (let i = n - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; } return a; };
for (const c of CORPORA) { order[c] = shuffled(train[c].length); cursor[c] = 0; }
const next = (c: string) => {
  if (cursor[c] >= order[c].length) { order[c] = shuffled(train[c].length); cursor[c] = 0; }
  return train[c][order[c][cursor[c]++]];
};

const evalTokens = 4096;
async function evaluateAll(): Promise<Record<string, EvalResult>> {
  const r: Record<string, EvalResult> = {};
  for (const c of CORPORA) r[c] = await model.evaluate(test[c], { maxTokens: evalTokens });
  return r;
}
const fmt = (r: Record<string, EvalResult>) => CORPORA.map((c) => `${c} ${(100 * r[c].top1).toFixed(1)}%`).join(', ');

let lossAvg = 0;
const log: string[] = [];
for (let step = 1; step <= steps; step++) {
  const batch = Array.from({ length: batchSize }, (_, i) => next(CORPORA[(i + step) % CORPORA.length]));
  const r = await trainer.step(batch);
  lossAvg = step === 1 ? r.loss : 0.98 * lossAvg + 0.02 * r.loss;
  if (step % Number(values['eval-every']) === 0 || step === steps) {
    const ev = await evaluateAll();
    const line = `step ${step}/${steps}  loss ${lossAvg.toFixed(3)}  lr ${r.lr.toExponential(2)}  top-1: ${fmt(ev)}  [${((performance.now() - t0) / 60000).toFixed(1)} min]`;
    console.log(line);
    log.push(line);
  }
}
await trainer.close();
const final = await evaluateAll();
const minutes = (performance.now() - t0) / 60000;

// Save: the model files, then the tokenizer and the model card, into the output folder.
const staging = mkdtempSync(join(tmpdir(), 'excise-demo-'));
await model.save(join(staging, 'model'));
mkdirSync(outDir, { recursive: true });
for (const f of readdirSync(join(staging, 'model'))) {
  if (f === 'excise.json') continue; // nothing was pruned
  renameSync(join(staging, 'model', f), join(outDir, f));
}
rmSync(staging, { recursive: true, force: true });
if (resolve(tokenizerFile) !== resolve(join(outDir, 'tokenizer.json'))) copyFileSync(tokenizerFile, join(outDir, 'tokenizer.json'));

const card = `# excise demo model

A small LLaMA-architecture language model trained by excise itself, so that \`excise demo\` and the
test suite have a real trained model whose neurons have specialised, with no download.

- Architecture: LlamaForCausalLM, ${config.num_hidden_layers} layers, d_model ${config.hidden_size}, ${config.num_attention_heads} heads of ${config.hidden_size / config.num_attention_heads}, gated MLP of ${config.intermediate_size} (SiLU), RMSNorm, RoPE, tied embeddings; context ${seqLen} tokens.
- Parameters: ${model.parameterCount.toLocaleString('en-US')} (float32).
- Tokenizer: byte-level BPE, ${vocabSize} tokens (scripts/train-tokenizer.ts), \`<|endoftext|>\` = ${eosId}.
- Data: assets/corpora (see its README and LICENSES): English prose (Moby-Dick, State of the Union addresses), Python (the standard library), JavaScript; train splits, equal shares per batch.
- Training: ${steps} steps of ${batchSize} x ${seqLen} tokens (${((steps * batchSize * seqLen) / 1e6).toFixed(1)}M tokens), AdamW (lr ${lr}, betas 0.9/0.95, weight decay 0.1), warmup ${Math.min(200, Math.floor(steps / 10))} steps then cosine to lr/10, gradient clipping at 1. ${minutes.toFixed(0)} minutes on ${values.device} (LibTorch ${runtimeInfo().torchVersion}).
- Final training loss (moving average): ${lossAvg.toFixed(3)}.

Next-token accuracy on each corpus' test split (${evalTokens} tokens each):

| corpus | top-1 | top-10 | loss |
| --- | --- | --- | --- |
${CORPORA.map((c) => `| ${c} | ${(100 * final[c].top1).toFixed(1)}% | ${(100 * final[c].topk).toFixed(1)}% | ${final[c].loss.toFixed(3)} |`).join('\n')}

Reproduce: \`npx tsx scripts/build-corpora.ts && npx tsx scripts/train-tokenizer.ts && npx tsx scripts/train-demo.ts --steps ${steps} --batch ${batchSize} --seq ${seqLen}\`

Training log:

\`\`\`
${log.join('\n')}
\`\`\`
`;
writeFileSync(join(outDir, 'README.md'), card);
console.log(`wrote ${outDir} in ${minutes.toFixed(1)} min; final top-1: ${fmt(final)}`);
await model.dispose();
