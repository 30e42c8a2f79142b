// Bad input: each is an ExciseError with a stable code and a message naming the file, tensor or option.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRandomModel, datasetFromTexts, ExciseError, loadModel, randomSelection, readSafetensors, runtimeInfo, selectNeurons, selectivePrune, setTf32, splitDataset, writeSafetensors, type Model } from '../lib/index.js';
import { goldenDir } from './helpers/golden.js';
import { nativeErrorCodes, readmeErrorCodes, tsErrorCodes } from './helpers/error-codes.js';

let scratch: string;
beforeAll(() => { scratch = mkdtempSync(join(tmpdir(), 'excise-errors-')); });
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A writable copy of a fixture, optionally with its config.json edited. */
function copyFixture(name: string, label: string, editConfig?: (c: Record<string, unknown>) => void): string {
  const dir = join(scratch, label);
  cpSync(join(goldenDir, name), dir, { recursive: true });
  if (editConfig) {
    const file = join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(file, 'utf8'));
    editConfig(cfg);
    writeFileSync(file, JSON.stringify(cfg));
  }
  return dir;
}

async function expectError(p: Promise<unknown> | (() => unknown), code: string, ...mentions: string[]): Promise<ExciseError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(ExciseError);
  const e = err as ExciseError;
  expect(e.code, e.message).toBe(code);
  for (const m of mentions) expect(e.message).toContain(m);
  return e;
}

describe('loading', () => {
  it('a missing folder', async () => {
    await expectError(loadModel(join(scratch, 'nope')), 'ERR_MODEL_NOT_FOUND', 'nope');
  });

  it('a folder without config.json', async () => {
    const dir = copyFixture('llama', 'no-config');
    unlinkSync(join(dir, 'config.json'));
    await expectError(loadModel(dir), 'ERR_CONFIG_MISSING', 'config.json');
  });

  it('a config.json that is not JSON', async () => {
    const dir = copyFixture('llama', 'bad-json');
    writeFileSync(join(dir, 'config.json'), '{"hidden_size": 64,');
    await expectError(loadModel(dir), 'ERR_CONFIG_INVALID', 'config.json');
  });

  it('a config.json missing a required field', async () => {
    const dir = copyFixture('llama', 'no-hidden', (c) => { delete c.hidden_size; });
    await expectError(loadModel(dir), 'ERR_CONFIG_INVALID', 'config.json', 'hidden_size');
  });

  it('a field of the wrong type', async () => {
    const dir = copyFixture('gpt2', 'str-layers', (c) => { c.n_layer = 'two'; });
    await expectError(loadModel(dir), 'ERR_CONFIG_INVALID', 'n_layer');
  });

  it('an unsupported architecture lists those supported', async () => {
    const dir = copyFixture('llama', 'bert', (c) => { c.architectures = ['BertForMaskedLM']; });
    await expectError(loadModel(dir), 'ERR_UNSUPPORTED_ARCHITECTURE', 'BertForMaskedLM', 'LlamaForCausalLM', 'GPT2LMHeadModel', 'MistralForCausalLM');
  });

  it('an unsupported rope scaling', async () => {
    const dir = copyFixture('llama', 'yarn', (c) => { c.rope_scaling = { rope_type: 'yarn', factor: 4 }; });
    await expectError(loadModel(dir), 'ERR_UNSUPPORTED_CONFIG', 'yarn');
  });

  it('no weights at all, and PyTorch .bin weights only', async () => {
    const dir = copyFixture('llama', 'no-weights');
    unlinkSync(join(dir, 'model.safetensors'));
    await expectError(loadModel(dir), 'ERR_WEIGHTS_MISSING', dir);
    writeFileSync(join(dir, 'pytorch_model.bin'), 'not really');
    await expectError(loadModel(dir), 'ERR_WEIGHTS_MISSING', 'safetensors');
  });

  it('truncated weights', async () => {
    const dir = copyFixture('opt', 'truncated');
    const file = join(dir, 'model.safetensors');
    truncateSync(file, Math.floor(statSync(file).size / 2));
    await expectError(loadModel(dir), 'ERR_SAFETENSORS_INVALID', 'model.safetensors');
  });

  it('a tensor whose shape does not match the config', async () => {
    const dir = copyFixture('llama', 'shape', (c) => { c.intermediate_size = 100; });
    await expectError(loadModel(dir), 'ERR_TENSOR_SHAPE', 'model.layers.0.mlp.gate_proj.weight', '[96, 64]', '[100, 64]');
  });

  it('a tensor missing from the checkpoint', async () => {
    const dir = copyFixture('qwen2', 'missing-tensor');
    const file = join(dir, 'model.safetensors');
    const { tensors, metadata } = await readSafetensors(file);
    delete tensors['model.layers.1.self_attn.k_proj.bias'];
    await writeSafetensors(file, tensors, metadata);
    await expectError(loadModel(dir), 'ERR_TENSOR_MISSING', 'model.layers.1.self_attn.k_proj.bias', 'layer 1');
  });

  it('an unknown device, an unavailable device, an unknown dtype, an unknown option', async () => {
    const dir = join(goldenDir, 'gpt2');
    await expectError(loadModel(dir, { device: 'tpu' }), 'ERR_INVALID_DEVICE', 'tpu');
    if (!runtimeInfo().cudaAvailable) await expectError(loadModel(dir, { device: 'cuda:0' }), 'ERR_DEVICE_UNAVAILABLE', 'cuda:0');
    await expectError(loadModel(dir, { dtype: 'int8' as never }), 'ERR_INVALID_DTYPE', 'int8');
    await expectError(loadModel(dir, { devcie: 'cpu' } as never), 'ERR_INVALID_ARGUMENT', 'devcie');
  });

  it('a corrupt tokenizer.json', async () => {
    const dir = copyFixture('gpt2', 'bad-tokenizer');
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0", "model": 42}');
    await expectError(loadModel(dir), 'ERR_TOKENIZER_INVALID', 'tokenizer.json');
  });
});

describe('running', () => {
  let model: Model;
  beforeAll(async () => { model = await loadModel(join(goldenDir, 'gpt2')); });
  afterAll(async () => model.dispose());

  it('a token id out of range names its position', async () => {
    await expectError(model.forward([[1, 2, 3], [4, 97, 5]]), 'ERR_TOKEN_OUT_OF_RANGE', '97', '[1, 1]');
    await expectError(model.forward([[-1]]), 'ERR_TOKEN_OUT_OF_RANGE', '-1');
  });

  it('ragged rows, a mismatched mask, non-integers, unknown hooks', async () => {
    await expectError(model.forward([[1, 2], [3]]), 'ERR_INVALID_ARGUMENT', 'equal lengths');
    await expectError(model.forward([[1, 2]], { attentionMask: [[1]] }), 'ERR_INVALID_ARGUMENT', 'attentionMask');
    await expectError(model.forward([[1.5]]), 'ERR_INVALID_ARGUMENT', 'inputIds[0][0]');
    await expectError(model.forward([[1]], { capture: ['blocks.9.mlp.pre_out'] }), 'ERR_INVALID_ARGUMENT', 'blocks.9.mlp.pre_out');
    await expectError(model.forward([]), 'ERR_INVALID_ARGUMENT', 'inputIds');
  });

  it('a sequence longer than the learned positions', async () => {
    const long = Array.from({ length: 33 }, () => 1);
    await expectError(model.forward([long]), 'ERR_INVALID_ARGUMENT', '33', '32');
  });

  it('bad generate options', async () => {
    await expectError(model.generate([1], { maxNewTokens: 0 }), 'ERR_INVALID_ARGUMENT', 'maxNewTokens');
    await expectError(model.generate([1], { maxNewTokens: 1, temperature: -1 }), 'ERR_INVALID_ARGUMENT', 'temperature');
  });

  it('native errors arrive typed, with a stack that points at the caller', async () => {
    const e = await expectError(model.forward([[1, 2, 3]], { capture: ['nope'] }), 'ERR_INVALID_ARGUMENT');
    expect(e.stack).toContain('errors.test.ts');
    const trunc = await expectError(loadModel(join(scratch, 'truncated')), 'ERR_SAFETENSORS_INVALID');
    expect(trunc.stack).toContain('errors.test.ts');
  });
});

describe('special files and size caps', () => {
  it('config.json, model.safetensors, the shard index or tokenizer.json as a FIFO: a coded error, no hang', async () => {
    for (const [name, code] of [
      // The weights and the index: the safetensors reader's own check (ERR_IO, as readSafetensors says).
      ['config.json', 'ERR_CONFIG_INVALID'], ['model.safetensors', 'ERR_IO'],
      ['model.safetensors.index.json', 'ERR_IO'], ['tokenizer.json', 'ERR_TOKENIZER_INVALID'],
    ] as const) {
      const dir = copyFixture('llama', `fifo-${name}`);
      rmSync(join(dir, name), { force: true });
      execFileSync('mkfifo', [join(dir, name)]);
      await expectError(loadModel(dir), code, name, 'not a regular file');
    }
  });

  it('/dev/zero or a folder under a JSON file name, and an oversized config.json', async () => {
    const zero = copyFixture('llama', 'zero-tokenizer');
    symlinkSync('/dev/zero', join(zero, 'tokenizer.json'));
    await expectError(loadModel(zero), 'ERR_TOKENIZER_INVALID', 'tokenizer.json', 'not a regular file');
    const cfgDir = copyFixture('llama', 'zero-config');
    rmSync(join(cfgDir, 'config.json'));
    symlinkSync('/dev/zero', join(cfgDir, 'config.json'));
    await expectError(loadModel(cfgDir), 'ERR_CONFIG_INVALID', 'config.json', 'not a regular file');
    const dirIndex = copyFixture('llama', 'dir-index');
    mkdirSync(join(dirIndex, 'model.safetensors.index.json'));
    await expectError(loadModel(dirIndex), 'ERR_IO', 'model.safetensors.index.json');
    const big = copyFixture('llama', 'big-config');
    const cfg = readFileSync(join(big, 'config.json'), 'utf8');
    writeFileSync(join(big, 'config.json'), cfg + ' '.repeat(17 * 1024 * 1024));
    await expectError(loadModel(big), 'ERR_CONFIG_INVALID', 'config.json', 'bytes');
  });

  it('a tokenizer file the model folder has besides tokenizer.json, as a FIFO: save fails coded', async () => {
    const dir = copyFixture('llama', 'fifo-merges');
    execFileSync('mkfifo', [join(dir, 'merges.txt')]);
    const m = await loadModel(dir);
    try {
      await expectError(m.save(join(scratch, 'fifo-merges-out')), 'ERR_IO', 'merges.txt', 'not a regular file');
    } finally {
      await m.dispose();
    }
  });
});

describe('sizes the checkpoint does not back', () => {
  it('a layer count far beyond any model fails before allocating', async () => {
    const dir = copyFixture('llama', 'layers-2m', (c) => { c.num_hidden_layers = 2000000; });
    await expectError(loadModel(dir), 'ERR_CONFIG_INVALID', 'num_hidden_layers', '2000000');
  });

  it('more layers than the checkpoint holds names the first missing one', async () => {
    const dir = copyFixture('gpt2', 'layers-60k', (c) => { c.n_layer = 60000; });
    await expectError(loadModel(dir), 'ERR_TENSOR_MISSING', 'h.59999.', '60000 layers');
  });

  it('sizes of 2^62 are a config error, not an internal one', async () => {
    const layers = copyFixture('llama', 'layers-2e62');
    writeFileSync(join(layers, 'config.json'), readFileSync(join(layers, 'config.json'), 'utf8').replace('"num_hidden_layers": 2', '"num_hidden_layers": 4611686018427387904'));
    await expectError(loadModel(layers), 'ERR_CONFIG_INVALID', 'num_hidden_layers');
    const width = copyFixture('llama', 'width-2e62');
    writeFileSync(join(width, 'config.json'), readFileSync(join(width, 'config.json'), 'utf8').replace('"intermediate_size": 96', '"intermediate_size": 4611686018427387904'));
    await expectError(loadModel(width), 'ERR_CONFIG_INVALID', 'MLP size');
  });

  it('createRandomModel refuses weights this machine cannot hold', async () => {
    const config = { architectures: ['LlamaForCausalLM'], num_hidden_layers: 64, hidden_size: 65536, intermediate_size: 65536, num_attention_heads: 64, vocab_size: 1000000 };
    await expectError(createRandomModel(config), 'ERR_OUT_OF_MEMORY', 'bytes');
  });
});

describe('bad calls that used to be uncoded or silent', () => {
  let model: Model;
  beforeAll(async () => { model = await loadModel(join(goldenDir, 'gpt2')); });
  afterAll(async () => model.dispose());

  it('an onProgress that is not a function', async () => {
    await expectError(model.collect([[1, 2, 3]], { onProgress: 5 as never }), 'ERR_INVALID_ARGUMENT', 'onProgress');
    await expectError(model.evaluate([[1, 2, 3]], { onProgress: 'x' as never }), 'ERR_INVALID_ARGUMENT', 'onProgress');
  });

  it('a signal that is not an AbortSignal', async () => {
    await expectError(model.collect([[1, 2, 3]], { signal: { aborted: false } as never }), 'ERR_INVALID_ARGUMENT', 'signal');
    await expectError(model.evaluate([[1, 2, 3]], { signal: true as never }), 'ERR_INVALID_ARGUMENT', 'signal');
  });

  it('save into a folder that cannot be made', async () => {
    await expectError(model.save('/proc/excise-cannot-write-here/x'), 'ERR_IO', '/proc/excise-cannot-write-here');
  });

  it('save metadata that is not JSON data', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expectError(model.save(join(scratch, 'meta-circular'), { metadata: circular }), 'ERR_INVALID_ARGUMENT', 'metadata');
    await expectError(model.save(join(scratch, 'meta-bigint'), { metadata: { n: 1n } }), 'ERR_INVALID_ARGUMENT', 'metadata');
  });

  it('createRandomModel with a circular or BigInt config', async () => {
    const circular: Record<string, unknown> = { architectures: ['LlamaForCausalLM'] };
    circular.self = circular;
    await expectError(createRandomModel(circular), 'ERR_CONFIG_INVALID', 'createRandomModel');
    await expectError(createRandomModel({ architectures: ['LlamaForCausalLM'], hidden_size: 64n } as never), 'ERR_CONFIG_INVALID', 'BigInt');
  });

  it('option checks read the same at every entry point (lib/errors.ts): exact messages', async () => {
    const ds = datasetFromTexts(['one', 'two']);
    const cases: Array<[string, () => unknown]> = [
      ['score: unknown option "bachSize" (expected one of: batchSize, signal)', () => model.score([], { bachSize: 2 } as never)],
      ['score: batchSize: expected a positive integer, received the number 0', () => model.score([], { batchSize: 0 })],
      ['sequenceLogprobs(options): expected an options object, received a string ("x")', () => model.sequenceLogprobs([[1, 2]], 'x' as never)],
      ['evaluate: topK: expected a positive integer, received the number 1.5', () => model.evaluate([[1, 2, 3]], { topK: 1.5 })],
      ['collect: maxTokens: expected a positive integer, received the number 0', () => model.collect([[1, 2, 3]], { maxTokens: 0 })],
      ['collect: unknown option "hook" (expected one of: hooks, maxTokens, batchSize, maxLength, longDocs, onProgress, signal, group)', () => model.collect([[1, 2, 3]], { hook: 'x' } as never)],
      ['membershipInference: minKFraction: expected a fraction in (0, 1], received the number 0', () => model.membershipInference([[1, 2]], [[3, 4]], { minKFraction: 0 })],
      ['membershipInference: batchSize: expected a positive integer, received a string ("2")', () => model.membershipInference([[1, 2]], [[3, 4]], { batchSize: '2' as never })],
      ['evaluateChoices: seed: expected a non-negative integer, received the number -1', () => model.evaluateChoices([], { seed: -1 })],
      ['ffFrac: expected a fraction in [0, 1], received the number 2', () => selectNeurons({ ff: [], attn: [] } as never, { ffFrac: 2, attnFrac: 0 })],
      ['seed: expected a non-negative integer, received the number -1', () => randomSelection(model, { ffFrac: 0.1, attnFrac: 0, seed: -1 })],
      ['seed: expected a non-negative integer, received the number 0.5', () => selectivePrune(model, { forget: ds, retain: ds, seed: 0.5 })],
      ['forward: lastPositionOnly: expected a boolean, received the number 1', () => model.forward([[1, 2]], { lastPositionOnly: 1 as never })],
      ['setTf32(enabled): expected a boolean, received a string ("yes")', () => setTf32('yes' as never)],
      ['trainer: lr: expected a positive number, received the number -1', () => model.trainer({ lr: -1 })],
      ['trainer: unknown option "momentum" (expected one of: lr, warmupSteps, totalSteps, minLrRatio, beta1, beta2, eps, weightDecay, gradClip)', () => model.trainer({ momentum: 0.9 } as never)],
      ['splitDataset: unknown option "foo" (expected one of: evalFraction, seed)', () => splitDataset(ds, { foo: 1 } as never)],
      ['splitDataset: options: expected { evalFraction, seed }, received the number 5', () => splitDataset(ds, 5 as never)],
    ];
    for (const [message, call] of cases) {
      const e = await expectError(async () => call(), 'ERR_INVALID_ARGUMENT');
      expect(e.message).toBe(message);
    }
  });

  it('a hole in a row of token ids is not read as token 0', async () => {
    // eslint-disable-next-line no-sparse-arrays
    await expectError(model.forward([[, 1, 2] as number[]]), 'ERR_INVALID_ARGUMENT', 'inputIds[0][0]', 'undefined');
    // eslint-disable-next-line no-sparse-arrays
    await expectError(model.generate([1, , 2] as number[], { maxNewTokens: 1 }), 'ERR_INVALID_ARGUMENT', 'prompt[0][1]');
  });
});

describe('every code that can surface is documented', () => {
  it('native/errors.h codes are ErrorCode codes, and ErrorCode is the README list', () => {
    const ts = tsErrorCodes();
    const native = nativeErrorCodes();
    expect(native.length).toBeGreaterThan(10);
    expect(native.filter((c) => !ts.includes(c))).toEqual([]);
    expect(readmeErrorCodes()).toEqual(ts);
  });
});
