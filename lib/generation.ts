/**
 * One generation as the caller sees it: the engine's token events turned into text chunks
 * (incrementally decoded, never splitting a UTF-8 character), stop strings, a time limit, an
 * AbortSignal, log-probabilities, and the final result.
 */
import { ExciseError } from './errors.js';
import type { DecodeScheduler, EngineEvent, FinishReason } from './engine.js';
import type { Tokenizer } from './tokenizer.js';

/** A token's log-probability under the model (temperature 1) and, when asked, the most likely alternatives. */
export interface TokenLogprob {
  token: number;
  logprob: number;
  /** The most likely tokens at this position, best first (`logprobs: k` asks for k of them). */
  top: Array<{ token: number; logprob: number }>;
}

/** One streamed piece: one generated token and the text it completes. */
export interface StreamChunk {
  /**
   * Text new since the previous chunk: '' while a UTF-8 character or a possible stop string is
   * still incomplete (it comes with a later chunk), and always '' for a model without tokenizer.
   * The chunks' texts concatenate to the generation's `text`.
   */
  text: string;
  /** The token generated (ids are streamed even when no text is). */
  token: number;
  logprob?: TokenLogprob;
}

export interface GenerationResult {
  /** The generated text (without the prompt; cut before a stop string); '' without a tokenizer. */
  text: string;
  /** The generated token ids (including a stop token; up to the token that completed a stop string). */
  tokens: number[];
  finishReason: FinishReason;
  /** Prompt length in tokens. */
  promptTokens: number;
  logprobs?: TokenLogprob[];
}

export interface GenerationSetup {
  scheduler: DecodeScheduler;
  tokenizer: Tokenizer | undefined;
  request: Parameters<DecodeScheduler['submit']>[0];
  stop: readonly string[];
  maxTime: number | undefined;
  signal: AbortSignal | undefined;
}

/**
 * An async iterator of chunks, with the final `result`. `cancel()` ends it early with finishReason
 * 'cancelled' (its slot is freed at the engine's next step); an aborted `signal` rejects both the
 * iterator and `result` with ERR_ABORTED. Breaking out of a for-await loop cancels it too.
 */
export class GenerationStream implements AsyncIterableIterator<StreamChunk> {
  readonly result: Promise<GenerationResult>;
  private readonly scheduler: DecodeScheduler;
  private readonly tokenizer: Tokenizer | undefined;
  private readonly stop: readonly string[];
  private readonly maxStop: number;
  private readonly id: number;
  private readonly tokens: number[] = [];
  private readonly logprobs: TokenLogprob[] | undefined;
  /** Text handed out in chunks so far: always a prefix of `decoded`. */
  private emitted = '';
  /**
   * Incremental detokenization (as TGI and transformers' streamers do): `decoded` is the text of
   * tokens[0, readOffset), which ends on a whole character. Each new token decodes only the window
   * tokens[prefixOffset, end) and keeps what it adds to the text of tokens[prefixOffset, readOffset)
   * (the prefix gives the tokenizer's decoder the context it needs: a leading space, a byte-fallback
   * sequence). So the work per token is the window's size, not the generation's.
   */
  private decoded = '';
  private prefixOffset = 0;
  private readOffset = 0;
  /**
   * Whether anyone reads the chunks: until then (and for callers that only await `result`) text is
   * decoded once at the end instead of after every token, unless stop strings need it.
   */
  private iterating = false;
  private readonly chunks: StreamChunk[] = [];
  private wake: (() => void) | undefined;
  private settled = false;
  private failure: ExciseError | undefined;
  /** Events are handled one after another (decoding is asynchronous). */
  private chain: Promise<void> = Promise.resolve();
  private resolveResult!: (r: GenerationResult) => void;
  private rejectResult!: (e: unknown) => void;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(setup: GenerationSetup, private readonly promptTokens: number) {
    this.scheduler = setup.scheduler;
    this.tokenizer = setup.tokenizer;
    this.stop = setup.stop;
    this.maxStop = Math.max(0, ...setup.stop.map((s) => s.length));
    this.logprobs = setup.request.logprobs >= 0 ? [] : undefined;
    this.result = new Promise((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    this.result.catch(() => {});  // observed through the iterator or by the caller
    this.signal = setup.signal;
    if (this.signal?.aborted) {
      this.id = -1;
      this.fail(new ExciseError('ERR_ABORTED', 'generation aborted'));
      return;
    }
    this.id = this.scheduler.submit(setup.request, (event) => {
      this.chain = this.chain.then(() => this.handle(event)).catch((err) => this.fail(err));
    });
    if (this.signal) {
      this.onAbort = () => this.fail(new ExciseError('ERR_ABORTED', 'generation aborted'));
      this.signal.addEventListener('abort', this.onAbort, { once: true });
    }
    if (setup.maxTime !== undefined) {
      this.timer = setTimeout(() => void this.finishEarly('time'), setup.maxTime);
      this.timer.unref?.();
    }
  }

  /** Ends the generation now (finishReason 'cancelled'); the text so far stays in `result`. */
  cancel(): void {
    void this.finishEarly('cancelled');
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<StreamChunk> {
    this.iterating = true;
    return this;
  }

  async next(): Promise<IteratorResult<StreamChunk>> {
    this.iterating = true;
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) return { value: chunk, done: false };
      if (this.failure) throw this.failure;
      if (this.settled) return { value: undefined, done: true };
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }

  async return(): Promise<IteratorResult<StreamChunk>> {
    this.cancel();
    return { value: undefined, done: true };
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async decode(): Promise<string> {
    return this.tokenizer ? this.tokenizer.decodeAsync(this.tokens) : '';
  }

  private async handle(event: EngineEvent): Promise<void> {
    if (this.settled) return;
    if (event.error) return this.fail(event.error);
    if (event.token >= 0) {
      this.tokens.push(event.token);
      let logprob: TokenLogprob | undefined;
      if (this.logprobs) {
        const top: TokenLogprob['top'] = [];
        for (let i = 0; i < (event.topIds?.length ?? 0); i++) top.push({ token: event.topIds![i], logprob: event.topLogprobs![i] });
        logprob = { token: event.token, logprob: event.logprob, top };
        this.logprobs.push(logprob);
      }
      if (!this.iterating && this.stop.length === 0) {
        this.push(event.token, logprob, this.emitted);  // text comes with the last chunk
      } else {
        await this.textChunk(event.token, logprob);
      }
    }
    if (event.finish) await this.finishWithText(event.finish);
  }

  /**
   * Extends `decoded` by the text the tokens since readOffset complete (nothing while they end
   * inside a UTF-8 character), decoding only the window from prefixOffset.
   */
  private async decodeIncrement(): Promise<void> {
    if (!this.tokenizer) return;
    const end = this.tokens.length;
    const [prefixText, windowText] = await Promise.all([
      this.prefixOffset < this.readOffset ? this.tokenizer.decodeAsync(this.tokens.slice(this.prefixOffset, this.readOffset)) : '',
      this.tokenizer.decodeAsync(this.tokens.slice(this.prefixOffset, end)),
    ]);
    if (windowText.endsWith('\uFFFD')) return;  // ends inside a character: wait for its next bytes
    if (windowText.startsWith(prefixText)) {
      this.decoded += windowText.slice(prefixText.length);
    } else {
      // A decoder whose output for the prefix changes with what follows (rare: clean-up rules):
      // decode everything this once, to stay exact.
      const full = await this.tokenizer.decodeAsync(this.tokens.slice(0, end));
      if (full.endsWith('\uFFFD') || !full.startsWith(this.emitted)) return;  // settled at the end
      this.decoded = full;
    }
    this.prefixOffset = this.readOffset;
    this.readOffset = end;
  }

  /** Decodes the new token's text and queues its chunk; ends the generation at a stop string. */
  private async textChunk(token: number, logprob: TokenLogprob | undefined): Promise<void> {
    await this.decodeIncrement();
    if (this.settled) return;
    const full = this.decoded;
    const stopAt = this.findStop(full);
    if (stopAt >= 0) {
      this.push(token, logprob, full, stopAt);
      this.settle('stop', full.slice(0, stopAt));
      this.scheduler.cancel(this.id);
      return;
    }
    // Hold back a tail that could begin a stop string (incomplete characters never reach `decoded`).
    this.push(token, logprob, full, full.length - this.stopPrefixLength(full));
  }

  /** Ends with the whole decoded text, releasing any held-back tail. */
  private async finishWithText(reason: FinishReason): Promise<void> {
    const text = await this.decode();
    if (this.settled) return;
    if (text.length > this.emitted.length && text.startsWith(this.emitted)) {
      // The held-back tail: attach it to the last chunk if it has not been read yet, else a chunk of its own.
      const last = this.chunks[this.chunks.length - 1];
      const rest = text.slice(this.emitted.length);
      if (last) last.text += rest;
      else if (this.tokens.length > 0) this.chunks.push({ text: rest, token: this.tokens[this.tokens.length - 1] });
      this.emitted = text;
    }
    this.settle(reason, text);
  }

  /**
   * Queues a chunk for `token` whose text reaches `text.slice(0, upTo)`; `text` extends `emitted`
   * (the decoded text so far, or `emitted` itself), so only the new part is copied.
   */
  private push(token: number, logprob: TokenLogprob | undefined, full: string, upTo = full.length): void {
    let text = '';
    if (upTo > this.emitted.length) {
      text = full.slice(this.emitted.length, upTo);
      this.emitted += text;
    }
    this.chunks.push(logprob ? { text, token, logprob } : { text, token });
    this.notify();
  }

  private findStop(text: string): number {
    let at = -1;
    for (const s of this.stop) {
      // Only text not yet emitted can complete a stop string (emitted text held none).
      const i = text.indexOf(s, Math.max(0, this.emitted.length - s.length + 1));
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    return at;
  }

  /** Length of the longest tail of `text` that is a proper prefix of a stop string. */
  private stopPrefixLength(text: string): number {
    for (let k = Math.min(this.maxStop - 1, text.length); k > 0; k--) {
      const tail = text.slice(text.length - k);
      if (this.stop.some((s) => s.startsWith(tail))) return k;
    }
    return 0;
  }

  private async finishEarly(reason: FinishReason): Promise<void> {
    if (this.settled) return;
    this.scheduler.cancel(this.id);
    // Ends in the event chain: the events already received are handled first, and the ones still
    // arriving from steps in flight after it (ignored once settled), so the result's tokens and
    // text stay the same generation.
    this.chain = this.chain.then(() => this.finishWithText(reason)).catch((err) => this.fail(err));
    await this.chain;
  }

  private settle(reason: FinishReason, text: string): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup();
    this.resolveResult({
      text,
      tokens: [...this.tokens],
      finishReason: reason,
      promptTokens: this.promptTokens,
      ...(this.logprobs ? { logprobs: this.logprobs } : {}),
    });
    this.notify();
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.chunks.length = 0;  // nothing more is read after an abort or a failure
    this.failure = err instanceof ExciseError ? err : new ExciseError('ERR_INTERNAL', String((err as Error)?.message ?? err), { cause: err });
    if (this.id >= 0) this.scheduler.cancel(this.id);
    this.cleanup();
    this.rejectResult(this.failure);
    this.notify();
  }

  private cleanup(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.signal && this.onAbort) this.signal.removeEventListener('abort', this.onAbort);
  }
}
