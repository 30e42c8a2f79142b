// examples/fastify-service.ts: the routes of an app embedding excise answer with the model's own text.
import { describe, expect, it } from 'vitest';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../lib/index.js';
import { buildApp } from '../examples/fastify-service.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('examples/fastify-service.ts', () => {
  it('completes and streams through the app\'s routes; bad bodies are 400', async () => {
    const model = await loadModel(join(root, 'assets', 'demo-model'));
    const expected = await model.generate('def add(a, b):', { maxNewTokens: 12 });
    const app = await buildApp(model);
    try {
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const r = await post('/complete', { prompt: 'def add(a, b):', maxTokens: 12 });
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ text: expected });
      const s = await post('/stream', { prompt: 'def add(a, b):', maxTokens: 12 });
      expect(await s.text()).toBe(expected);
      expect((await post('/complete', { prompt: '' })).status).toBe(400);
      expect((await fetch(`${url}/health`)).status).toBe(200);
    } finally {
      await app.close();  // disposes the model
    }
  });
});
