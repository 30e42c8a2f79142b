/**
 * Checks that Hugging Face transformers reads model folders excise wrote (the demo model, a pruned
 * model) and computes the same logits. Development tool: needs a Python with torch and transformers.
 *
 *   npx tsx scripts/check-hf-compat.ts --python /path/to/python assets/demo-model excise-demo/model
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel } from '../lib/index.js';

const { values, positionals } = parseArgs({ options: { python: { type: 'string', default: 'python3' } }, allowPositionals: true });
const ids = [5, 900, 17, 2000, 33, 7, 4000, 12];
const PY = `
import json, sys, torch, transformers
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], attn_implementation='eager').eval()
with torch.no_grad():
    logits = m(torch.tensor([json.loads(sys.argv[2])])).logits[0]
print(json.dumps({'class': type(m).__name__, 'version': transformers.__version__, 'logits': logits.flatten().tolist()}))
`;
let worst = 0;
for (const dir of positionals.map((p) => resolve(p))) {
  const out = execFileSync(values.python!, ['-c', PY, dir, JSON.stringify(ids)], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] });
  const hf = JSON.parse(out.trim().split('\n').pop()!) as { class: string; version: string; logits: number[] };
  const model = await loadModel(dir);
  const ours = (await model.forward([ids])).logits;
  await model.dispose();
  let d = 0;
  for (let i = 0; i < hf.logits.length; i++) d = Math.max(d, Math.abs(hf.logits[i] - ours[i]));
  worst = Math.max(worst, d);
  console.log(`${dir}: transformers ${hf.version} loads it as ${hf.class}; max |logits excise - transformers| = ${d.toExponential(2)}`);
}
process.exitCode = worst < 1e-4 ? 0 : 1;
