// Saving a pruned model loaded from a sharded checkpoint: only the shards that hold a pruned layer
// are written; the others (and the index) are byte-identical copies of the source's, and the saved
// folder loads to the same pruned model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandomModel, loadModel } from '../lib/index.js';

const CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 64,
  num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-5, tie_word_embeddings: false,
};

let scratch: string;
let source: string;
let weightMap: Record<string, string>;
beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'excise-shards-'));
  source = join(scratch, 'source');
  // ~40 KB per layer in float32: 8 KB shards put each layer's tensors in shards of their own.
  const m = await createRandomModel(CONFIG, { seed: 3 });
  await m.save(source, { maxShardSize: 8 * 1024 });
  await m.dispose();
  weightMap = JSON.parse(readFileSync(join(source, 'model.safetensors.index.json'), 'utf8')).weight_map;
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('saving a pruned sharded checkpoint', () => {
  it('rewrites only the shards of the pruned layer and copies the others byte for byte', async () => {
    const model = await loadModel(source);
    // Prune FF neurons of layer 2 only.
    await model.prune({ ff: [[], [], [1, 5, 9], []], attn: [[], [], [], []] });
    const ids = [[3, 7, 11, 2, 9, 40, 5]];
    const pruned = await model.forward(ids);
    const out = join(scratch, 'pruned');
    await model.save(out);
    await model.dispose();

    const files = [...new Set(Object.values(weightMap))].sort();
    expect(files.length).toBeGreaterThan(4);
    const layer2 = new Set(Object.entries(weightMap).filter(([n]) => /\.layers\.2\./.test(n)).map(([, f]) => f));
    let same = 0, rewritten = 0;
    for (const f of files) {
      const identical = readFileSync(join(source, f)).equals(readFileSync(join(out, f)));
      if (layer2.has(f)) {
        // A shard that holds the pruned down_proj must differ; others of layer 2 are rewritten but equal in content.
        rewritten++;
      } else {
        expect(identical, `${f} should be a byte-identical copy`).toBe(true);
        same++;
      }
    }
    expect(rewritten).toBeGreaterThan(0);
    expect(same).toBeGreaterThan(0);
    const downProj = weightMap['model.layers.2.mlp.down_proj.weight'];
    expect(readFileSync(join(source, downProj)).equals(readFileSync(join(out, downProj)))).toBe(false);
    expect(readFileSync(join(out, 'model.safetensors.index.json'))).toEqual(readFileSync(join(source, 'model.safetensors.index.json')));

    // The saved folder is the pruned model.
    const reloaded = await loadModel(out);
    const again = await reloaded.forward(ids);
    expect(Array.from(again.logits)).toEqual(Array.from(pruned.logits));
    await reloaded.dispose();
  });

  it('in another dtype every weight is written anew (excise\'s own sharding)', async () => {
    const model = await loadModel(source);
    await model.save(join(scratch, 'as-bf16'), { dtype: 'bfloat16' });
    await model.dispose();
    // The default shard size holds this model in one file: not the source's shards.
    expect(existsSync(join(scratch, 'as-bf16', 'model.safetensors'))).toBe(true);
    expect(existsSync(join(scratch, 'as-bf16', 'model.safetensors.index.json'))).toBe(false);
  });
});
