/**
 * Embedding excise in an existing Fastify app: a pruned model behind two routes of your own, next
 * to whatever else the app serves. Concurrent requests are decoded together by the model's decode
 * engine; a client that goes away cancels its generation (its slot is freed at the next step).
 *
 *   npx tsx examples/fastify-service.ts [--model assets/demo-model] [--port 3000]
 *   curl -s localhost:3000/complete -d '{"prompt": "def add(a, b):"}' -H 'content-type: application/json'
 *   curl -sN localhost:3000/stream -d '{"prompt": "The river"}' -H 'content-type: application/json'
 *
 * Fastify is a devDependency of excise (used here only); in your app it is your own dependency.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { ExciseError, loadModel, type Model } from '../lib/index.js';

interface CompleteBody {
  prompt: string;
  maxTokens?: number;
}

const bodySchema = {
  type: 'object',
  required: ['prompt'],
  properties: { prompt: { type: 'string', minLength: 1, maxLength: 8000 }, maxTokens: { type: 'integer', minimum: 1, maximum: 256 } },
} as const;

/** Adds the model's routes to an app (the app owns the model's lifetime). */
export function registerModelRoutes(app: FastifyInstance, model: Model): void {
  app.post<{ Body: CompleteBody }>('/complete', { schema: { body: bodySchema } }, async (request, reply) => {
    // Aborted when the client disconnects before the answer is sent.
    const controller = new AbortController();
    reply.raw.on('close', () => { if (!reply.raw.writableFinished) controller.abort(); });
    const r = await model.generateDetailed(request.body.prompt, { maxNewTokens: request.body.maxTokens ?? 64, signal: controller.signal });
    return { text: r.text, finishReason: r.finishReason, tokens: r.tokens.length };
  });

  // Plain-text streaming: each chunk of text as soon as it is decoded.
  app.post<{ Body: CompleteBody }>('/stream', { schema: { body: bodySchema } }, async (request, reply) => {
    const stream = model.stream(request.body.prompt, { maxNewTokens: request.body.maxTokens ?? 64 });
    reply.raw.on('close', () => { if (!reply.raw.writableFinished) stream.cancel(); });
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    for await (const chunk of stream) if (chunk.text) reply.raw.write(chunk.text);
    reply.raw.end();
  });

  app.setErrorHandler((err, _request, reply) => {
    if (err instanceof ExciseError && err.code === 'ERR_ABORTED') return reply.code(499).send();
    if (err instanceof ExciseError && err.code === 'ERR_INVALID_ARGUMENT') return reply.code(400).send({ error: err.message });
    return reply.send(err);
  });
}

/** Builds the app around a loaded model (tests use this). */
export async function buildApp(model: Model): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: 64 * 1024 });
  app.get('/health', async () => ({ ok: true }));  // the app's own routes live alongside
  registerModelRoutes(app, model);
  app.addHook('onClose', async () => model.dispose());
  await app.ready();
  return app;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { model: { type: 'string', default: 'assets/demo-model' }, port: { type: 'string', default: '3000' } } });
  const app = await buildApp(await loadModel(values.model!));
  await app.listen({ port: Number(values.port), host: '127.0.0.1' });
  const stop = () => void app.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
