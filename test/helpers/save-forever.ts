// Child of test/save.test.ts: saves a model again and again into <parent>/out-N until killed.
import { join } from 'node:path';
import { createRandomModel } from '../../lib/index.js';

const parent = process.argv[2];
const model = await createRandomModel({
  architectures: ['LlamaForCausalLM'], num_hidden_layers: 4, hidden_size: 256, intermediate_size: 1024,
  num_attention_heads: 4, vocab_size: 8000,
});
process.stdout.write('ready\n');
for (let i = 0; ; i++) await model.save(join(parent, `out-${i}`));
