// Bad input: each is an ExciseError with a stable code and a message naming the file, tensor or option.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExciseError, loadModel, readSafetensors, runtimeInfo, writeSafetensors, type Model } from '../lib/index.js';
import { goldenDir } from './helpers/golden.js';

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
