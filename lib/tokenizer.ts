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
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { ExciseError, invalidArgument } from './errors.js';
import { MAX_TOKENIZER_BYTES, readRegularFile } from './files.js';

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
  Tokenizer: { fromString(json: string): NativeTokenizer };
}

// The worker's source, run with eval so it works from both lib/ (TypeScript under vitest) and dist/.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { Tokenizer } = require(workerData.tokenizersPath);
const { port, flag } = workerData;
let tokenizer, loadError;
try {
  tokenizer = Tokenizer.fromString(workerData.json);
} catch (e) {
  loadError = String(e && e.message || e);
}
parentPort.on('message', async ({ op, arg, addSpecialTokens, skipSpecialTokens }) => {
  let reply;
  try {
    if (loadError !== undefined) reply = { error: loadError };
    else if (op === 'encode') reply = { ok: (await tokenizer.encode(arg, null, { addSpecialTokens })).getIds() };
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

  private failure: string | undefined;

  constructor(json: string) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { json, tokenizersPath: require.resolve('tokenizers'), port: port2, flag: this.flag },
      transferList: [port2],
    });
    // A worker that dies (out of memory, say) must not take the process with it as an
    // unhandled 'error' event; the next call reports it.
    this.worker.on('error', (err) => { this.failure = err.message; });
    this.worker.on('exit', () => { this.failure ??= 'the tokenizer worker exited'; });
    this.worker.unref();
    this.port.unref();
  }

  call(message: Record<string, unknown>): unknown {
    if (this.failure !== undefined) throw new ExciseError('ERR_INTERNAL', `tokenizer worker failed: ${this.failure}`);
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
  /** The checked tokenizer.json text both copies (this thread's and the worker's) are built from. */
  private readonly json: string;
  private syncWorker: SyncTokenizerWorker | undefined;

  private constructor(file: string, native: NativeTokenizer, json: string) {
    this.file = file;
    this.native = native;
    this.json = json;
  }

  /**
   * Reads a tokenizer.json. ERR_TOKENIZER_MISSING / ERR_TOKENIZER_INVALID name the file. Content
   * that would make the tokenizers package panic (and so abort the process) at encode time is
   * refused here; see checkTokenizerJson.
   */
  static fromFile(file: string): Tokenizer {
    if (typeof file !== 'string' || file.length === 0) throw invalidArgument('Tokenizer.fromFile(file)', 'a file path', file);
    const text = readRegularFile(file, MAX_TOKENIZER_BYTES, { missing: 'ERR_TOKENIZER_MISSING', invalid: 'ERR_TOKENIZER_INVALID' });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ExciseError('ERR_TOKENIZER_INVALID', `${file}: not valid JSON (${(err as Error).message})`);
    }
    const json = checkTokenizerJson(parsed, file);
    const mod = require('tokenizers') as TokenizersModule;
    let native: NativeTokenizer;
    try {
      native = mod.Tokenizer.fromString(json);
    } catch (err) {
      throw new ExciseError('ERR_TOKENIZER_INVALID', `${file}: not a tokenizer the tokenizers package can read (${(err as Error).message})`);
    }
    return new Tokenizer(file, native, json);
  }

  /** Vocabulary size including added tokens. */
  get vocabSize(): number {
    return this.native.getVocabSize(true);
  }

  tokenToId(token: string): number | undefined {
    return this.native.tokenToId(token) ?? undefined;
  }

  /** Ids of the added tokens marked special in tokenizer.json (<s>, </s>, <pad>, <mask>, ...), ascending. */
  specialTokenIds(): number[] {
    const added = (JSON.parse(this.json) as { added_tokens?: unknown }).added_tokens;
    if (!Array.isArray(added)) return [];
    const ids = added.filter((t) => isObject(t) && t.special === true && Number.isInteger(t.id)).map((t) => (t as { id: number }).id);
    return [...new Set(ids)].sort((a, b) => a - b);
  }

  /** Token ids of `text` (synchronous). Special tokens (e.g. BOS) are added as the tokenizer's post-processor says. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw invalidArgument('tokenizer.encode(text)', 'a string', text);
    return this.worker().call({ op: 'encode', arg: text, addSpecialTokens: options.addSpecialTokens ?? true }) as number[];
  }

  /** Text of token ids (synchronous). */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (!Array.isArray(ids) || !ids.every((i) => Number.isInteger(i) && i >= 0 && i <= 0xffffffff)) {
      throw invalidArgument('tokenizer.decode(ids)', 'an array of non-negative integer token ids (below 2^32)', ids);
    }
    return this.worker().call({ op: 'decode', arg: [...ids], skipSpecialTokens: options.skipSpecialTokens ?? true }) as string;
  }

  /** Text of token ids, asynchronously (off the JS thread: for streaming many generations at once). */
  async decodeAsync(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): Promise<string> {
    if (!Array.isArray(ids) || !ids.every((i) => Number.isInteger(i) && i >= 0 && i <= 0xffffffff)) {
      throw invalidArgument('tokenizer.decodeAsync(ids)', 'an array of non-negative integer token ids (below 2^32)', ids);
    }
    try {
      return await this.native.decode([...ids], options.skipSpecialTokens ?? true);
    } catch (err) {
      throw new ExciseError('ERR_TOKENIZER_INVALID', `${this.file}: tokenizer: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Encodes many texts at once, asynchronously and in parallel (for datasets). */
  async encodeBatch(texts: readonly string[], options: { addSpecialTokens?: boolean } = {}): Promise<number[][]> {
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) {
      throw invalidArgument('tokenizer.encodeBatch(texts)', 'an array of strings', texts);
    }
    let encodings: Array<{ getIds(): number[] }>;
    try {
      encodings = await this.native.encodeBatch([...texts], { addSpecialTokens: options.addSpecialTokens ?? true });
    } catch (err) {
      throw new ExciseError('ERR_TOKENIZER_INVALID', `${this.file}: tokenizer: ${(err as Error).message}`, { cause: err });
    }
    return encodings.map((e) => e.getIds());
  }

  /** Stops the helper thread of the synchronous methods (it is unref'd, so this is optional). */
  dispose(): void {
    this.syncWorker?.terminate();
    this.syncWorker = undefined;
  }

  private worker(): SyncTokenizerWorker {
    this.syncWorker ??= new SyncTokenizerWorker(this.json);
    return this.syncWorker;
  }
}

type JsonObject = Record<string, unknown>;
const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v);
const isTokenId = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;

/**
 * Refuses the tokenizer.json content that the tokenizers crate (0.23) accepts at load but panics
 * on later, which aborts the whole process: a TemplateProcessing template naming a special token
 * its special_tokens do not define, a special token whose ids and tokens differ in length, a
 * single-sequence template using $B, and a Strip decoder with stop > 0 (it indexes before the
 * token's start). Truncation and padding are dropped, as transformers does unless asked
 * (excise truncates itself; a stride >= max_length panics too). Returns the JSON to load.
 */
export function checkTokenizerJson(parsed: unknown, file: string): string {
  const fail = (what: string): never => {
    throw new ExciseError('ERR_TOKENIZER_INVALID', `${file}: ${what}`);
  };
  if (!isObject(parsed)) fail('expected a JSON object');
  const tok = parsed as JsonObject;
  if (!isObject(tok.model)) fail('"model" must be an object');
  const checkProcessor = (p: unknown, where: string): void => {
    if (p === null || p === undefined) return;
    if (!isObject(p)) fail(`${where} must be an object or null`);
    const proc = p as JsonObject;
    if (proc.type === 'Sequence') {
      if (!Array.isArray(proc.processors)) fail(`${where}.processors must be a list`);
      (proc.processors as unknown[]).forEach((q, i) => checkProcessor(q, `${where}.processors[${i}]`));
      return;
    }
    if (proc.type !== 'TemplateProcessing') return;
    const special = proc.special_tokens;
    if (!isObject(special)) fail(`${where}.special_tokens must be an object`);
    for (const [name, t] of Object.entries(special as JsonObject)) {
      if (!isObject(t) || !Array.isArray(t.ids) || !Array.isArray(t.tokens)) fail(`${where}: special token "${name}" needs "ids" and "tokens" lists`);
      const { ids, tokens } = t as { ids: unknown[]; tokens: unknown[] };
      if (ids.length !== tokens.length) fail(`${where}: special token "${name}" has ${ids.length} ids but ${tokens.length} tokens`);
      if (!ids.every(isTokenId) || !tokens.every((x) => typeof x === 'string')) fail(`${where}: special token "${name}" has malformed ids or tokens`);
    }
    for (const which of ['single', 'pair'] as const) {
      const template = proc[which];
      if (!Array.isArray(template)) fail(`${where}.${which} must be a list of pieces`);
      const sequences = new Set<string>();
      for (const piece of template as unknown[]) {
        if (!isObject(piece)) fail(`${where}.${which}: a piece must be an object`);
        const p2 = piece as JsonObject;
        if (isObject(p2.SpecialToken)) {
          const id = p2.SpecialToken.id;
          if (typeof id !== 'string' || !Object.hasOwn(special as JsonObject, id)) {
            fail(`${where}.${which} names the special token ${JSON.stringify(id)}, which its special_tokens do not define`);
          }
        } else if (isObject(p2.Sequence)) {
          sequences.add(String(p2.Sequence.id));
        }
      }
      if (which === 'single' && [...sequences].some((s) => s !== 'A')) fail(`${where}.single may only use sequence A`);
      if (which === 'pair' && !(sequences.has('A') && sequences.has('B'))) fail(`${where}.pair must use both sequences A and B`);
    }
  };
  checkProcessor(tok.post_processor, 'post_processor');
  const checkDecoder = (d: unknown, where: string): void => {
    if (!isObject(d)) return;
    if (d.type === 'Sequence' && Array.isArray(d.decoders)) d.decoders.forEach((x, i) => checkDecoder(x, `${where}.decoders[${i}]`));
    if (d.type === 'Strip' && d.stop !== 0 && d.stop !== undefined) fail(`${where}: a Strip decoder with stop ${JSON.stringify(d.stop)} is not supported (only 0)`);
  };
  checkDecoder(tok.decoder, 'decoder');
  const checkNormalizer = (n: unknown, where: string): void => {
    if (!isObject(n)) return;
    if (n.type === 'Sequence' && Array.isArray(n.normalizers)) n.normalizers.forEach((x, i) => checkNormalizer(x, `${where}.normalizers[${i}]`));
    if (n.type === 'Precompiled' && typeof n.precompiled_charsmap === 'string') {
      const problem = precompiledCharsmapProblem(Buffer.from(n.precompiled_charsmap, 'base64'));
      if (problem) fail(`${where}: precompiled_charsmap ${problem}`);
    }
  };
  checkNormalizer(tok.normalizer, 'normalizer');
  const model = tok.model as JsonObject;
  if (model.type === 'BPE' && isObject(model.vocab) && Array.isArray(model.merges)) {
    // The crate copies each merge's two halves into a buffer as long as the longest vocabulary
    // token before it checks that the merged token exists: a merge whose result is not in the
    // vocabulary overruns that buffer and panics. Same computation here, bytewise.
    const vocab = model.vocab as JsonObject;
    const prefix = Buffer.from(typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '', 'utf8');
    const utf8 = new TextDecoder('utf-8', { fatal: true });
    (model.merges as unknown[]).forEach((merge, i) => {
      const parts = typeof merge === 'string' ? merge.split(' ') : merge;
      if (!Array.isArray(parts) || parts.length !== 2 || typeof parts[0] !== 'string' || typeof parts[1] !== 'string') return;  // the crate refuses these itself
      const [a, b] = parts as [string, string];
      if (!Object.hasOwn(vocab, a) || !Object.hasOwn(vocab, b)) return;  // refused by the crate too
      const bBytes = Buffer.from(b, 'utf8');
      let merged: string | undefined;
      if (bBytes.length >= prefix.length) {
        try {
          merged = utf8.decode(Buffer.concat([Buffer.from(a, 'utf8'), bBytes.subarray(prefix.length)]));
        } catch {
          merged = undefined;
        }
      }
      if (merged === undefined || !Object.hasOwn(vocab, merged)) {
        fail(`model.merges[${i}] (${JSON.stringify(a)}, ${JSON.stringify(b)}) makes a token that is not in the vocabulary`);
      }
    });
  }
  return JSON.stringify({ ...tok, truncation: null, padding: null });
}

/**
 * SentencePiece's precompiled_charsmap (a double-array trie + replacement strings) as the
 * spm_precompiled crate walks it: that crate indexes the trie and the strings unchecked, so a
 * corrupt map panics on the first input byte that reaches outside. Walks every reachable node
 * with every byte and returns what would go out of bounds, or undefined when nothing can.
 */
export function precompiledCharsmapProblem(map: Buffer): string | undefined {
  if (map.length < 4) return 'is shorter than its 4-byte header';
  const trieBytes = map.readUInt32LE(0);
  const units = Math.floor(trieBytes / 4);
  if (4 + units * 4 > map.length) return 'declares a trie longer than itself';
  const trie = new Uint32Array(units);
  for (let i = 0; i < units; i++) trie[i] = map.readUInt32LE(4 + 4 * i);
  const normalized = map.subarray(4 + units * 4);
  if (units === 0) return 'has an empty trie';
  const offset = (u: number) => (u >>> 10) * ((u & 0x200) ? 256 : 1);
  const label = (u: number) => (u & 0x800000ff) >>> 0;
  const hasLeaf = (u: number) => ((u >>> 8) & 1) === 1;
  const isBoundary = (i: number) => i === normalized.length || (normalized[i] & 0xc0) !== 0x80;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const seen = new Set<number>();
  // Each entry: a node position (after its offset) and the input bytes that lead to it.
  const stack: Array<[number, number[]]> = [[0 ^ offset(trie[0]), []]];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    if (path.length > 64) return 'has a trie path longer than 64 bytes';
    for (let c = 1; c < 256; c++) {
      const pos = node ^ c;
      if (pos >= units) return `sends byte ${c} outside the trie`;
      const unit = trie[pos];
      if (label(unit) !== c) continue;
      const next = pos ^ offset(unit);
      if (hasLeaf(unit)) {
        if (next >= units) return 'has a leaf outside the trie';
        const value = trie[next] & 0x7fffffff;
        if (value > normalized.length || !isBoundary(value)) return 'points outside its replacement strings';
        try {
          decoder.decode(Uint8Array.from([...path, c]));
        } catch {
          return 'matches a partial UTF-8 character';
        }
      }
      stack.push([next, [...path, c]]);
    }
  }
  return undefined;
}
