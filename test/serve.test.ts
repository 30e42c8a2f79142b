// The OpenAI-compatible server, over real HTTP with the `openai` client package: completions, chat
// completions, streaming, batching across requests, disconnects, request validation, and the
// `excise serve` command (prune at load, SIGTERM).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { createServer, loadModel, type ExciseServer, type Model } from '../lib/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const demoDir = join(root, 'assets', 'demo-model');
const TEMPLATE = '{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}';

/** The demo model plus a tokenizer_config.json with a chat template (the weights are links). */
function chatModelDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'excise-serve-'));
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) symlinkSync(join(demoDir, f), join(dir, f));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: TEMPLATE, eos_token: '<|endoftext|>' }));
  return dir;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

describe('excise server (in process)', () => {
  let dir: string;
  let model: Model;
  let server: ExciseServer;
  let url: string;
  let client: OpenAI;
  const name = 'demo';

  beforeAll(async () => {
    dir = chatModelDir();
    model = await loadModel(dir);
    server = createServer(model, { modelName: name, maxTokens: 64, maxBodyBytes: 4096 });
    url = await server.listen(0, '127.0.0.1');
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.close({ graceMs: 0 });
    await model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the model, answers /health and /metrics', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([name]);
    expect(await (await fetch(`${url}/health`)).json()).toMatchObject({ status: 'ok' });
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const m of ['excise_requests_total', 'excise_generated_tokens_total', 'excise_batch_size', 'excise_queue_length', 'excise_request_duration_seconds_bucket']) expect(text).toContain(m);
  });

  it('completions: the text of model.generate, streamed or not', async () => {
    const prompt = 'The river';
    const expected = await model.generate(prompt, { maxNewTokens: 10 });
    const r = await client.completions.create({ model: name, prompt, max_tokens: 10, temperature: 0 });
    expect(r.choices[0].text).toBe(expected);
    expect(r.usage?.prompt_tokens).toBe(model.tokenizer.encode(prompt).length);
    const stream = await client.completions.create({ model: name, prompt, max_tokens: 10, temperature: 0, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(expected);
    expect(finish).toBe(r.choices[0].finish_reason);
  });

  it('chat completions: the template from tokenizer_config.json, streamed or not', async () => {
    const messages = [{ role: 'system' as const, content: 'You write Python.' }, { role: 'user' as const, content: 'Print hello.' }];
    const rendered = '<|system|>\nYou write Python.\n<|user|>\nPrint hello.\n<|assistant|>\n';
    const ids = model.tokenizer.encode(rendered, { addSpecialTokens: false });
    const expected = model.tokenizer.decode(await model.generate(ids, { maxNewTokens: 12 }));
    const r = await client.chat.completions.create({ model: name, messages, max_tokens: 12, temperature: 0 });
    expect(r.choices[0].message.content).toBe(expected);
    expect(r.usage?.prompt_tokens).toBe(ids.length);
    const stream = await client.chat.completions.create({ model: name, messages, max_tokens: 12, temperature: 0, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe(expected);
  });

  it('16 concurrent requests give the greedy outputs of the same requests made one at a time', async () => {
    const prompts = Array.from({ length: 16 }, (_, i) => `${['def', 'The', 'import', 'In the'][i % 4]} ${'abcdefghijklmnop'[i]}`);
    const ask = (prompt: string) => client.completions.create({ model: name, prompt, max_tokens: 8, temperature: 0 }).then((r) => r.choices[0].text);
    const sequential: string[] = [];
    for (const p of prompts) sequential.push(await ask(p));
    expect(await Promise.all(prompts.map(ask))).toEqual(sequential);
  });

  it('a client that disconnects mid-stream frees its slot: the next request starts at once', async () => {
    model.configureEngine({ maxBatch: 1 });
    try {
      const before = await metric(url, 'excise_engine_tokens_total');
      const controller = new AbortController();
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, signal: controller.signal,
        body: JSON.stringify({ model: name, prompt: 'Once', max_tokens: 60, temperature: 0, stream: true }),
      });
      const reader = res.body!.getReader();
      await reader.read();  // the first event
      controller.abort();
      // With one slot, this request can only run once the disconnected one has left the engine.
      const next = await client.completions.create({ model: name, prompt: 'Twice', max_tokens: 4, temperature: 0 });
      expect(next.choices[0].text.length).toBeGreaterThan(0);
      const generated = (await metric(url, 'excise_engine_tokens_total')) - before;
      expect(generated).toBeLessThan(60);
      expect(await metric(url, 'excise_active_sequences')).toBe(0);
      // /metrics counts the disconnected request as 499 (client closed request), not as a 200.
      expect(await metric(url, 'excise_requests_total{endpoint="/v1/completions",status="499"}')).toBe(1);
    } finally {
      model.configureEngine({ maxBatch: 16 });
    }
  });

  it('malformed JSON is 400, an oversized body 413, an unknown model 404, bad parameters 400, all JSON', async () => {
    const post = (body: string, path = '/v1/completions') => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const bad = await post('{"prompt": "x",');
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/malformed JSON/);
    const big = await post(JSON.stringify({ prompt: 'x'.repeat(5000) }));
    expect(big.status).toBe(413);
    expect((await big.json()).error.message).toMatch(/limit of 4096 bytes/);
    await expect(client.completions.create({ model: 'gpt-4', prompt: 'x', max_tokens: 2 })).rejects.toMatchObject({ status: 404 });
    const temp = await post(JSON.stringify({ prompt: 'x', temperature: 'hot' }));
    expect(temp.status).toBe(400);
    expect((await temp.json()).error).toMatchObject({ param: 'temperature' });
    const tooMany = await post(JSON.stringify({ prompt: 'x', max_tokens: 65 }));
    expect(tooMany.status).toBe(400);
    expect((await fetch(`${url}/v2/nothing`)).status).toBe(404);
    expect((await fetch(`${url}/v1/completions`)).status).toBe(405);
  });

  it('a prompt list whose second prompt is rejected (400) does not leave the first one generating', async () => {
    model.configureEngine({ maxBatch: 1 });
    try {
      const before = await metric(url, 'excise_engine_tokens_total');
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: name, prompt: ['Once', [model.config.vocabSize]], max_tokens: 64, ignore_eos: true, temperature: 0 }),
      });
      expect(r.status).toBe(400);
      expect((await r.json()).error.code).toBe('ERR_TOKEN_OUT_OF_RANGE');
      // One slot: this request runs only after 'Once' has left the engine (64 tokens later if it leaked).
      const next = await client.completions.create({ model: name, prompt: 'Twice', max_tokens: 4, temperature: 0 });
      expect(next.usage?.completion_tokens).toBe(4);
      expect((await metric(url, 'excise_engine_tokens_total')) - before).toBeLessThan(64);
      expect(await metric(url, 'excise_active_sequences')).toBe(0);
    } finally {
      model.configureEngine({ maxBatch: 16 });
    }
  });

  it('parameters that would change the answer but are not implemented, and unbounded stop lists, are 400 naming the parameter', async () => {
    const post = (body: object) => fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 2, ...body }) });
    for (const [param, value] of [['presence_penalty', 0.5], ['frequency_penalty', -1], ['logit_bias', { 5: 100 }], ['best_of', 3], ['suffix', 'end'], ['stream_options', 'yes']] as const) {
      const r = await post({ [param]: value });
      expect(r.status, param).toBe(400);
      expect((await r.json()).error.param).toBe(param);
    }
    const stops = await post({ stop: Array.from({ length: 17 }, (_, i) => `s${i}`) });
    expect(stops.status).toBe(400);
    expect((await stops.json()).error).toMatchObject({ param: 'stop', message: expect.stringContaining('at most 16 strings') });
    // Their "off" values are accepted (clients send them by default).
    const ok = await post({ presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, best_of: 1, suffix: '', temperature: 0 });
    expect(ok.status).toBe(200);
    expect((await ok.json()).choices[0].text).toBe(await model.generate('x', { maxNewTokens: 2 }));
  });

  it('a model without a chat template: chat completions say so (400)', async () => {
    const plain = await loadModel(demoDir);
    const other = createServer(plain, { modelName: 'plain' });
    const otherUrl = await other.listen(0);
    try {
      const r = await fetch(`${otherUrl}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
      expect(r.status).toBe(400);
      expect((await r.json()).error).toMatchObject({ code: 'chat_template_missing', message: expect.stringContaining('no chat template') });
    } finally {
      await other.close({ graceMs: 0 });
      await plain.dispose();
    }
  });
});

describe('excise serve (the command)', () => {
  it('serves a base model pruned at load (--prune excise.json) and exits 0 on SIGTERM after finishing the request in flight', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'excise-serve-cli-'));
    try {
      const model = await loadModel(demoDir);
      const selection = { ff: Array.from({ length: model.config.nLayers }, () => Array.from({ length: 200 }, (_, i) => i)), attn: Array.from({ length: model.config.nLayers }, () => [] as number[]) };
      await model.prune(selection);
      const expected = await model.generate('The river', { maxNewTokens: 40 });
      await model.dispose();
      const pruneFile = join(dir, 'excise.json');
      writeFileSync(pruneFile, JSON.stringify({ excise: 1, architecture: 'LlamaForCausalLM', prunes: [{ selection, meanOffset: false }] }));

      const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli', 'main.ts'), 'serve', '--model', demoDir, '--port', '0', '--prune', pruneFile, '--model-name', 'pruned'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no URL in: ${out}`)), 60_000);
        child.stdout.on('data', () => {
          const m = /on (http:\/\/\S+)/.exec(out);
          if (m) { clearTimeout(timer); resolve(m[1]); }
        });
      });
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST', body: JSON.stringify({ model: 'pruned', prompt: 'The river', max_tokens: 40, temperature: 0, stream: true }),
      });
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let body = decoder.decode((await reader.read()).value);
      child.kill('SIGTERM');  // mid-stream: the request finishes, then the process exits
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        body += decoder.decode(value, { stream: true });
      }
      const text = body.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]?.text ?? '').join('');
      expect(body).toContain('data: [DONE]');
      expect(text).toBe(expected);
      expect(await exited, out).toBe(0);
      expect(out).toContain('pruned 800 neurons');
      expect(out).toContain('SIGTERM');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
