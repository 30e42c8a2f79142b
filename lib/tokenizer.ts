/**
 * Text <-> token ids through Hugging Face's official `tokenizers` package, from a model's
 * tokenizer.json.
 *
 * The package only offers asynchronous encode/decode. `encode` and `decode` here are synchronous
 * (the API users expect for short strings): they run in a small worker thread that owns a second
 * copy of the tokenizer, and the calling thread waits on a shared flag (Atomics.wait) and reads the
 * reply with receiveMessageOnPort. For bulk work use `encodeBatch`, which is asynchronous and
 * parallel.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { ExciseError, invalidArgument } from './errors.js';

const require = createRequire(import.meta.url);

interface NativeTokenizer {
  encode(text: string, pair?: null, options?: { addSpecialTokens?: boolean }): Promise<{ getIds(): number[] }>;
  encodeBatch(texts: string[], options?: { addSpecialTokens?: boolean }): Promise<Array<{ getIds(): number[] }>>;
  decode(ids: number[], skipSpecialTokens: boolean): Promise<string>;
  getVocabSize(withAddedTokens?: boolean): number;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
}
interface TokenizersModule {
  Tokenizer: { fromFile(file: string): NativeTokenizer };
}

// The worker's source, run with eval so it works from both lib/ (TypeScript under vitest) and dist/.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { Tokenizer } = require(workerData.tokenizersPath);
const tokenizer = Tokenizer.fromFile(workerData.file);
const { port, flag } = workerData;
parentPort.on('message', async ({ op, arg, addSpecialTokens, skipSpecialTokens }) => {
  let reply;
  try {
    if (op === 'encode') reply = { ok: (await tokenizer.encode(arg, null, { addSpecialTokens })).getIds() };
    else if (op === 'decode') reply = { ok: await tokenizer.decode(arg, skipSpecialTokens) };
    else reply = { error: 'unknown op ' + op };
  } catch (e) {
    reply = { error: String(e && e.message || e) };
  }
  port.postMessage(reply);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
});
`;

class SyncTokenizerWorker {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));

  constructor(file: string) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file, tokenizersPath: require.resolve('tokenizers'), port: port2, flag: this.flag },
      transferList: [port2],
    });
    this.worker.unref();
    this.port.unref();
  }

  call(message: Record<string, unknown>): unknown {
    Atomics.store(this.flag, 0, 0);
    this.worker.postMessage(message);
    // 60 s is far beyond any single encode; a timeout means the worker died.
    if (Atomics.wait(this.flag, 0, 0, 60_000) === 'timed-out') {
      throw new ExciseError('ERR_INTERNAL', 'tokenizer worker did not answer within 60 s');
    }
    const reply = receiveMessageOnPort(this.port)?.message as { ok?: unknown; error?: string } | undefined;
    if (!reply) throw new ExciseError('ERR_INTERNAL', 'tokenizer worker sent no reply');
    if (reply.error !== undefined) throw new ExciseError('ERR_TOKENIZER_INVALID', `tokenizer: ${reply.error}`);
    return reply.ok;
  }

  terminate(): void {
    void this.worker.terminate();
  }
}

export class Tokenizer {
  /** The tokenizer.json this was read from. */
  readonly file: string;
  private readonly native: NativeTokenizer;
  private syncWorker: SyncTokenizerWorker | undefined;

  private constructor(file: string, native: NativeTokenizer) {
    this.file = file;
    this.native = native;
  }

  /** Reads a tokenizer.json. ERR_TOKENIZER_MISSING / ERR_TOKENIZER_INVALID name the file. */
  static fromFile(file: string): Tokenizer {
    if (!existsSync(file)) throw new ExciseError('ERR_TOKENIZER_MISSING', `${file}: tokenizer file not found`);
    try {
      JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ExciseError('ERR_TOKENIZER_INVALID', `${file}: not valid JSON (${(err as Error).message})`);
    }
    const mod = require('tokenizers') as TokenizersModule;
    let native: NativeTokenizer;
    try {
      native = mod.Tokenizer.fromFile(file);
    } catch (err) {
      throw new ExciseError('ERR_TOKENIZER_INVALID', `${file}: not a tokenizer the tokenizers package can read (${(err as Error).message})`);
    }
    return new Tokenizer(file, native);
  }

  /** Vocabulary size including added tokens. */
  get vocabSize(): number {
    return this.native.getVocabSize(true);
  }

  tokenToId(token: string): number | undefined {
    return this.native.tokenToId(token) ?? undefined;
  }

  /** Token ids of `text` (synchronous). Special tokens (e.g. BOS) are added as the tokenizer's post-processor says. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw invalidArgument('tokenizer.encode(text)', 'a string', text);
    return this.worker().call({ op: 'encode', arg: text, addSpecialTokens: options.addSpecialTokens ?? true }) as number[];
  }

  /** Text of token ids (synchronous). */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (!Array.isArray(ids) || !ids.every((i) => Number.isInteger(i) && i >= 0)) {
      throw invalidArgument('tokenizer.decode(ids)', 'an array of non-negative integer token ids', ids);
    }
    return this.worker().call({ op: 'decode', arg: [...ids], skipSpecialTokens: options.skipSpecialTokens ?? true }) as string;
  }

  /** Encodes many texts at once, asynchronously and in parallel (for datasets). */
  async encodeBatch(texts: readonly string[], options: { addSpecialTokens?: boolean } = {}): Promise<number[][]> {
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) {
      throw invalidArgument('tokenizer.encodeBatch(texts)', 'an array of strings', texts);
    }
    const encodings = await this.native.encodeBatch([...texts], { addSpecialTokens: options.addSpecialTokens ?? true });
    return encodings.map((e) => e.getIds());
  }

  /** Stops the helper thread of the synchronous methods (it is unref'd, so this is optional). */
  dispose(): void {
    this.syncWorker?.terminate();
    this.syncWorker = undefined;
  }

  private worker(): SyncTokenizerWorker {
    this.syncWorker ??= new SyncTokenizerWorker(this.file);
    return this.syncWorker;
  }
}
