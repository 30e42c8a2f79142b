/**
 * An OpenAI-compatible HTTP server for one model, on node:http: /v1/completions and
 * /v1/chat/completions (JSON or server-sent events), /v1/models, /health and /metrics.
 *
 * Every request is a generation on the model's decode engine, so concurrent requests are decoded
 * together (continuous batching). A client that disconnects cancels its generation, which frees
 * its slot before the engine's next step. close() stops accepting connections, lets in-flight
 * requests finish for a grace period, then cancels what is left.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomInt, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import { ExciseError } from '../errors.js';
import type { Model } from '../model.js';
import type { GenerationResult, GenerationStream, StreamChunk, TokenLogprob } from '../generation.js';
import { loadChatTemplate, type ChatMessage, type ChatTemplate } from './chat_template.js';
import { ServerMetrics } from './metrics.js';

export interface ServerOptions {
  /** The model id clients name in requests and /v1/models lists (default: the model folder's name). */
  modelName?: string;
  /** The largest max_tokens a request may ask for (default 512). */
  maxTokens?: number;
  /** The largest request body in bytes (default 1 MiB); larger bodies get 413. */
  maxBodyBytes?: number;
}

export interface ExciseServer {
  /** The underlying node:http server. */
  readonly http: Server;
  readonly metrics: ServerMetrics;
  /** Starts listening; resolves to the base URL (port 0 picks a free port). */
  listen(port?: number, host?: string): Promise<string>;
  /**
   * Stops accepting connections, waits up to graceMs (default 10 s) for in-flight requests, then
   * cancels the rest (their responses end) and closes every connection.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** An error answered as OpenAI does: `{ error: { message, type, param, code } }`. */
class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly code: string | null = null) {
    super(message);
  }
}

interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  stop: string[];
  /** -1: none; else the number of alternatives per token. */
  logprobs: number;
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's extension: keep generating past the end-of-sequence token (benchmarks). */
  ignoreEos: boolean;
}

const KIND_TYPE: Record<number, string> = { 400: 'invalid_request_error', 404: 'not_found_error', 405: 'invalid_request_error', 413: 'invalid_request_error', 503: 'server_error', 500: 'server_error' };

const MAX_STOP_STRINGS = 16;
const MAX_STOP_LENGTH = 256;
const isEmptyObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
/** OpenAI parameters this server does not implement, each with the values that mean "off" (accepted). */
const UNSUPPORTED_UNLESS: Array<[string, (v: unknown) => boolean]> = [
  ['presence_penalty', (v) => v === 0],
  ['frequency_penalty', (v) => v === 0],
  ['repetition_penalty', (v) => v === 1],
  ['logit_bias', isEmptyObject],
  ['best_of', (v) => v === 1],
  ['suffix', (v) => v === ''],
  ['tools', (v) => Array.isArray(v) && v.length === 0],
  ['functions', (v) => Array.isArray(v) && v.length === 0],
  ['response_format', (v) => typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'text'],
];

export function createServer(model: Model, options: ServerOptions = {}): ExciseServer {
  if (model.config?.maskedLm) {
    throw new ExciseError('ERR_NOT_CAUSAL_LM', `createServer: ${model.dir ?? 'the model'} (${model.config.architecture}) is a masked language model and cannot generate completions`);
  }
  const modelName = options.modelName ?? (model.dir ? basename(model.dir) : 'excise-model');
  const maxTokensCap = options.maxTokens ?? 512;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const metrics = new ServerMetrics();
  const chatTemplate: ChatTemplate | undefined = loadChatTemplate(model.dir);
  const created = Math.floor(Date.now() / 1000);
  /** Generations under way, so close() can cancel them. */
  const running = new Set<GenerationStream>();
  let draining = false;
  let idle: (() => void) | undefined;

  const http = createHttpServer((req, res) => {
    const started = performance.now();
    metrics.inFlight++;
    let endpoint = 'other';
    res.on('close', () => {
      metrics.inFlight--;
      // A client gone before the last byte is counted as 499 (nginx's "client closed request"), not as the 200 its headers said.
      metrics.countRequest(endpoint, res.writableFinished ? res.statusCode : 499);
      metrics.latency.observe(`endpoint="${endpoint}"`, (performance.now() - started) / 1000);
      if (metrics.inFlight === 0) idle?.();
    });
    const path = (req.url ?? '/').split('?')[0];
    endpoint = ['/health', '/metrics', '/v1/models', '/v1/completions', '/v1/chat/completions'].includes(path) ? path : 'other';
    route(req, res, path, started).catch((err) => sendError(res, err));
  });
  http.keepAliveTimeout = 5_000;

  async function route(req: IncomingMessage, res: ServerResponse, path: string, started: number): Promise<void> {
    const method = req.method ?? 'GET';
    const expect = (m: string) => {
      if (method !== m) throw new HttpError(405, `${path} takes ${m} requests, not ${method}`);
    };
    switch (path) {
      case '/health':
        expect('GET');
        return sendJson(res, draining ? 503 : 200, { status: draining ? 'draining' : 'ok', model: modelName });
      case '/metrics':
        expect('GET');
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(metrics.render(model.engineStats));
        return;
      case '/v1/models':
        expect('GET');
        return sendJson(res, 200, { object: 'list', data: [{ id: modelName, object: 'model', created, owned_by: 'excise' }] });
      case '/v1/completions':
        expect('POST');
        return completions(req, res, started);
      case '/v1/chat/completions':
        expect('POST');
        return chatCompletions(req, res, started);
      default:
        throw new HttpError(404, `no route ${method} ${path} (routes: /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics)`);
    }
  }

  async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    if (draining) throw new HttpError(503, 'the server is shutting down');
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      req.resume();
      throw new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${maxBodyBytes} bytes`);
    }
    const parts: Buffer[] = [];
    let size = 0;
    for await (const part of req) {
      size += (part as Buffer).length;
      if (size > maxBodyBytes) {
        req.resume();
        throw new HttpError(413, `request body exceeds the limit of ${maxBodyBytes} bytes`);
      }
      parts.push(part as Buffer);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch (err) {
      throw new HttpError(400, `malformed JSON body: ${(err as Error).message}`);
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object');
    const b = body as Record<string, unknown>;
    if (b.model !== undefined && b.model !== modelName) {
      throw new HttpError(404, `The model \`${String(b.model)}\` does not exist (this server serves \`${modelName}\`)`, 'model', 'model_not_found');
    }
    return b;
  }

  function sampling(body: Record<string, unknown>, maxTokensKey: string, chat: boolean): Sampling {
    const num = (key: string, def: number, check: (v: number) => boolean, expected: string): number => {
      const v = body[key];
      if (v === undefined || v === null) return def;
      if (typeof v !== 'number' || !check(v)) throw new HttpError(400, `${key}: expected ${expected}, received ${JSON.stringify(v)}`, key);
      return v;
    };
    const maxTokens = num(maxTokensKey, chat ? maxTokensCap : Math.min(16, maxTokensCap), (v) => Number.isInteger(v) && v >= 1, 'a positive integer');
    if (maxTokens > maxTokensCap) throw new HttpError(400, `${maxTokensKey}: ${maxTokens} is more than this server allows (${maxTokensCap}; excise serve --max-tokens)`, maxTokensKey);
    num('n', 1, (v) => v === 1, '1 (one choice per prompt)');  // validated only: one choice per prompt
    let stop: string[] = [];
    if (typeof body.stop === 'string') stop = [body.stop];
    else if (Array.isArray(body.stop) && body.stop.every((s) => typeof s === 'string')) stop = body.stop as string[];
    else if (body.stop !== undefined && body.stop !== null) throw new HttpError(400, 'stop: expected a string or an array of strings', 'stop');
    stop = stop.filter((s) => s.length > 0);
    // Every stop string is matched against the text after every token: bounded, so one request cannot stall the server.
    if (stop.length > MAX_STOP_STRINGS || stop.some((x) => x.length > MAX_STOP_LENGTH)) {
      throw new HttpError(400, `stop: at most ${MAX_STOP_STRINGS} strings of at most ${MAX_STOP_LENGTH} characters, received ${stop.length} (longest ${Math.max(...stop.map((x) => x.length))})`, 'stop');
    }
    // Parameters that would change the answer but are not implemented: a 400, never a silently different answer.
    for (const [key, harmless] of UNSUPPORTED_UNLESS) {
      const v = body[key];
      if (v !== undefined && v !== null && !harmless(v)) throw new HttpError(400, `${key}: not supported by this server (received ${JSON.stringify(v)})`, key, 'unsupported_parameter');
    }
    if (body.stream_options !== undefined && body.stream_options !== null && (typeof body.stream_options !== 'object' || Array.isArray(body.stream_options))) {
      throw new HttpError(400, `stream_options: expected an object, received ${JSON.stringify(body.stream_options)}`, 'stream_options');
    }
    let logprobs = -1;
    if (chat) {
      if (body.logprobs === true) logprobs = num('top_logprobs', 0, (v) => Number.isInteger(v) && v >= 0 && v <= 20, 'an integer in [0, 20]');
      else if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false) throw new HttpError(400, 'logprobs: expected a boolean', 'logprobs');
    } else {
      logprobs = num('logprobs', -1, (v) => Number.isInteger(v) && v >= 0 && v <= 20, 'an integer in [0, 20]');
    }
    if (body.echo === true) throw new HttpError(400, 'echo is not supported', 'echo');
    if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw new HttpError(400, 'stream: expected a boolean', 'stream');
    const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
    const topK = num('top_k', 0, (v) => Number.isInteger(v) && v >= -1, 'an integer >= -1 (-1 or 0: all tokens)');
    return {
      maxTokens,
      temperature: num('temperature', 1, (v) => v >= 0 && v <= 2, 'a number in [0, 2]'),
      topP: num('top_p', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
      topK: topK === -1 ? 0 : topK,
      seed: num('seed', randomInt(2 ** 47), (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer'),
      stop,
      logprobs,
      stream: body.stream === true,
      includeUsage: streamOptions?.include_usage === true,
      ignoreEos: body.ignore_eos === true,
    };
  }

  function start(prompt: string | number[], s: Sampling): GenerationStream {
    const stream = model.stream(prompt, {
      maxNewTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, topK: s.topK, seed: s.seed,
      stop: s.stop, stopAtEos: !s.ignoreEos, ...(s.logprobs >= 0 ? { logprobs: s.logprobs } : {}),
    });
    running.add(stream);
    stream.result.then((r) => {
      metrics.promptTokens += r.promptTokens;
      metrics.completionTokens += r.tokens.length;
      metrics.tokensPerRequest.observe('', r.tokens.length);
    }, () => {}).finally(() => running.delete(stream));
    return stream;
  }

  /** Cancels the generations when the client goes away before the response has ended. */
  function cancelOnDisconnect(res: ServerResponse, streams: GenerationStream[]): void {
    res.on('close', () => {
      if (!res.writableFinished) for (const s of streams) s.cancel();
    });
  }

  const tokenTexts = new Map<number, string>();
  function tokenText(id: number): string {
    let t = tokenTexts.get(id);
    if (t === undefined) {
      t = model.hasTokenizer ? model.tokenizer.decode([id], { skipSpecialTokens: false }) : String(id);
      if (tokenTexts.size < 100_000) tokenTexts.set(id, t);
    }
    return t;
  }

  function completionLogprobs(lps: TokenLogprob[], textOffset: number) {
    let offset = textOffset;
    const text_offset: number[] = [];
    for (const lp of lps) {
      text_offset.push(offset);
      offset += tokenText(lp.token).length;
    }
    return {
      tokens: lps.map((lp) => tokenText(lp.token)),
      token_logprobs: lps.map((lp) => lp.logprob),
      top_logprobs: lps.map((lp) => Object.fromEntries(lp.top.map((t) => [tokenText(t.token), t.logprob]))),
      text_offset,
    };
  }

  function chatLogprobs(lps: TokenLogprob[]) {
    const entry = (token: number, logprob: number) => {
      const text = tokenText(token);
      return { token: text, logprob, bytes: [...Buffer.from(text, 'utf8')] };
    };
    return { content: lps.map((lp) => ({ ...entry(lp.token, lp.logprob), top_logprobs: lp.top.map((t) => entry(t.token, t.logprob)) })) };
  }

  const finishReason = (r: GenerationResult) => (r.finishReason === 'stop' ? 'stop' : 'length');
  const usage = (results: GenerationResult[]) => {
    const prompt = results.reduce((n, r) => n + r.promptTokens, 0);
    const completion = results.reduce((n, r) => n + r.tokens.length, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  };

  /**
   * Starts a server-sent-event response; the returned send resolves once the event may be followed
   * by another: when the socket's buffer is full (res.write returned false) it waits for 'drain' (or
   * the client going away), so a slow reader holds chunks in its stream's queue, not in the socket's.
   */
  function openEvents(res: ServerResponse): (data: unknown) => Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();
    // One wait shared by every writer of the response (a request with several prompts has several).
    let drained: Promise<void> | undefined;
    const drain = () => drained ??= new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        drained = undefined;
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
    return async (data) => {
      if (res.writableEnded || res.destroyed) return;
      if (!res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`)) await drain();
    };
  }

  /** Records the time to the first generated token of a request. */
  function firstTokenClock(started: number): (chunk: StreamChunk) => void {
    let seen = false;
    return () => {
      if (seen) return;
      seen = true;
      metrics.firstToken.observe('', (performance.now() - started) / 1000);
    };
  }

  async function completions(req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    const body = await readBody(req);
    const s = sampling(body, 'max_tokens', false);
    const p = body.prompt;
    let prompts: Array<string | number[]>;
    const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x));
    if (typeof p === 'string') prompts = [p];
    else if (isIds(p)) prompts = [p];
    else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string' || isIds(x))) prompts = p as Array<string | number[]>;
    else throw new HttpError(400, 'prompt: expected a string, an array of strings, or token ids (number[] or number[][])', 'prompt');
    if (prompts.some((x) => x.length === 0)) throw new HttpError(400, 'prompt: an empty prompt', 'prompt');
    const streams: GenerationStream[] = [];
    try {
      // A prompt that fails to start (token out of range ...) must not leave the earlier ones running.
      for (const x of prompts) streams.push(start(x, s));
      cancelOnDisconnect(res, streams);
      await answerCompletions(res, started, s, streams);
    } finally {
      // On any way out (an error, one stream failing): the others free their slots now. A no-op once finished.
      for (const st of streams) st.cancel();
    }
  }

  async function answerCompletions(res: ServerResponse, started: number, s: Sampling, streams: GenerationStream[]): Promise<void> {
    const id = `cmpl-${randomUUID()}`;
    const base = { id, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: modelName };
    if (!s.stream) {
      const results = await Promise.all(streams.map((st) => st.result));
      return sendJson(res, 200, {
        ...base,
        choices: results.map((r, index) => ({ index, text: r.text, logprobs: r.logprobs ? completionLogprobs(r.logprobs, 0) : null, finish_reason: finishReason(r) })),
        usage: usage(results),
      });
    }
    const send = openEvents(res);
    const first = firstTokenClock(started);
    const results = await Promise.all(streams.map(async (st, index) => {
      let offset = 0;
      for await (const chunk of st) {
        first(chunk);
        if (chunk.text === '' && !chunk.logprob) continue;
        await send({ ...base, choices: [{ index, text: chunk.text, logprobs: chunk.logprob ? completionLogprobs([chunk.logprob], offset) : null, finish_reason: null }] });
        offset += chunk.text.length;
      }
      const r = await st.result;
      await send({ ...base, choices: [{ index, text: '', logprobs: null, finish_reason: finishReason(r) }] });
      return r;
    }));
    if (s.includeUsage) await send({ ...base, choices: [], usage: usage(results) });
    await send('[DONE]');
    res.end();
  }

  function chatMessages(body: Record<string, unknown>): ChatMessage[] {
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, 'messages: expected a non-empty array of { role, content }', 'messages');
    return messages.map((m: unknown, i) => {
      if (m === null || typeof m !== 'object') throw new HttpError(400, `messages[${i}]: expected { role, content }`, 'messages');
      const { role, content } = m as { role?: unknown; content?: unknown };
      if (typeof role !== 'string' || role.length === 0) throw new HttpError(400, `messages[${i}].role: expected a string`, 'messages');
      let text: string;
      if (typeof content === 'string') text = content;
      else if (Array.isArray(content) && content.every((c) => c && typeof c === 'object' && (c as { type?: unknown }).type === 'text' && typeof (c as { text?: unknown }).text === 'string')) {
        text = content.map((c) => (c as { text: string }).text).join('');
      } else if (content === null || content === undefined) text = '';
      else throw new HttpError(400, `messages[${i}].content: expected a string or text parts`, 'messages');
      return { role, content: text };
    });
  }

  async function chatCompletions(req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    const body = await readBody(req);
    const maxKey = body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
    const s = sampling(body, maxKey, true);
    const messages = chatMessages(body);
    if (!chatTemplate) {
      throw new HttpError(400, `${modelName} has no chat template (no chat_template in tokenizer_config.json); use /v1/completions with a plain prompt`, 'messages', 'chat_template_missing');
    }
    if (!model.hasTokenizer) throw new HttpError(400, `${modelName} has no tokenizer.json`, 'messages');
    const promptText = chatTemplate.render(messages);
    // The template writes the special tokens (BOS ...) itself, as apply_chat_template does.
    const promptIds = model.tokenizer.encode(promptText, { addSpecialTokens: false });
    if (promptIds.length === 0) throw new HttpError(400, 'the chat template rendered an empty prompt', 'messages');
    const stream = start(promptIds, s);
    try {
      cancelOnDisconnect(res, [stream]);
      await answerChat(res, started, s, stream);
    } finally {
      stream.cancel();  // an error mid-way (a failed write ...) frees the slot; a no-op once finished
    }
  }

  async function answerChat(res: ServerResponse, started: number, s: Sampling, stream: GenerationStream): Promise<void> {
    const id = `chatcmpl-${randomUUID()}`;
    const base = { id, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: modelName };
    if (!s.stream) {
      const r = await stream.result;
      return sendJson(res, 200, {
        ...base,
        choices: [{ index: 0, message: { role: 'assistant', content: r.text }, logprobs: r.logprobs ? chatLogprobs(r.logprobs) : null, finish_reason: finishReason(r) }],
        usage: usage([r]),
      });
    }
    const send = openEvents(res);
    const first = firstTokenClock(started);
    const chunkBase = { ...base, object: 'chat.completion.chunk' };
    await send({ ...chunkBase, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    for await (const chunk of stream) {
      first(chunk);
      if (chunk.text === '' && !chunk.logprob) continue;
      await send({ ...chunkBase, choices: [{ index: 0, delta: { content: chunk.text }, logprobs: chunk.logprob ? chatLogprobs([chunk.logprob]) : null, finish_reason: null }] });
    }
    const r = await stream.result;
    await send({ ...chunkBase, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(r) }] });
    if (s.includeUsage) await send({ ...chunkBase, choices: [], usage: usage([r]) });
    await send('[DONE]');
    res.end();
  }

  function sendJson(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  function sendError(res: ServerResponse, err: unknown): void {
    let e: HttpError;
    if (err instanceof HttpError) e = err;
    else if (err instanceof ExciseError && ['ERR_INVALID_ARGUMENT', 'ERR_TOKEN_OUT_OF_RANGE', 'ERR_TOKENIZER_MISSING'].includes(err.code)) e = new HttpError(400, err.message, null, err.code);
    else if (err instanceof ExciseError && err.code === 'ERR_MODEL_DISPOSED') e = new HttpError(503, 'the server is shutting down', null, err.code);
    else e = new HttpError(500, `internal error: ${(err as Error)?.message ?? String(err)}`, null, err instanceof ExciseError ? err.code : null);
    if (res.headersSent) {
      // Mid-stream: say so in the stream, then end it.
      if (!res.writableEnded && !res.destroyed) res.end(`data: ${JSON.stringify({ error: { message: e.message, type: KIND_TYPE[e.status] ?? 'server_error', code: e.code } })}\n\n`);
      return;
    }
    if (e.status === 413) res.setHeader('connection', 'close');
    sendJson(res, e.status, { error: { message: e.message, type: KIND_TYPE[e.status] ?? 'invalid_request_error', param: e.param, code: e.code } });
  }

  return {
    http,
    metrics,
    listen(port = 8080, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        http.once('error', reject);
        http.listen(port, host, () => {
          http.off('error', reject);
          const a = http.address() as AddressInfo;
          resolve(`http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
        });
      });
    },
    async close({ graceMs = 10_000 } = {}) {
      draining = true;
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      if (metrics.inFlight > 0) {
        await new Promise<void>((resolve) => {
          idle = resolve;
          setTimeout(resolve, graceMs).unref();
        });
      }
      for (const s of running) s.cancel();
      await Promise.allSettled([...running].map((s) => s.result));
      http.closeAllConnections();
      await closed;
    },
  };
}
