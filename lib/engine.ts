/**
 * The JS side of the native decode engine (native/decode_engine.h): continuous batching of a
 * model's generate/stream calls.
 *
 * A *session* is one place in the model's call order (CallOrder.multi) during which the native
 * engine decodes step after step. Requests made while a session is the model's latest call join it
 * (between two decoding steps); once any other call (forward, prune, ...) has been made, the next
 * request starts a new session after that call. So every call still takes effect in the order it
 * was made: a prune made after a generate never changes that generate's tokens, and a generate made
 * after a prune always sees the pruned weights.
 *
 * Each step is one native job; two are kept in flight, so the model's thread never waits for the
 * JS thread between steps. A cancellation (abort, disconnect, stop string, max time) reaches the
 * native engine at once and takes effect at the start of its next step, which frees the slot.
 */
import { ExciseError } from './errors.js';
import { native, type NativeDecodeEngine, type NativeDecodeRequest, type NativeModel, type NativeStepResult, type NativeTokenEvent } from './native.js';
import type { CallOrder } from './call_order.js';

export interface EngineOptions {
  /** Requests decoded together (slots of the KV cache). Default 16. */
  maxBatch?: number;
  /**
   * Positions per slot: prompt plus generated tokens. Default: the model's context, at most 2048.
   * The cache grows by doubling up to maxBatch x maxSequence tokens; a request waits when no slot is free.
   */
  maxSequence?: number;
}

/** Why a generation ended: a stop token or string, its token limit, its time limit, or cancelled. */
export type FinishReason = 'stop' | 'length' | 'time' | 'cancelled';

/** What the engine reports, for metrics. */
export interface EngineStats {
  /** Requests holding a slot after the last step. */
  active: number;
  /** Requests waiting for a slot. */
  waiting: number;
  /** Rows of the last decoding step. */
  batch: number;
  /** Decoding steps and generated tokens so far. */
  steps: number;
  tokens: number;
}

/** An engine event; `error` is set on the last event of requests whose step failed. */
export type EngineEvent = NativeTokenEvent & { error?: ExciseError };
type Listener = (event: EngineEvent) => void;

class Session {
  open = true;
  /** Requests not yet handed to the native engine. */
  readonly unsent: NativeDecodeRequest[] = [];
  /** Requests the session is responsible for, until the engine reports them finished. */
  readonly live = new Map<number, Listener>();
  done!: Promise<void>;
  constructor(readonly placedAt: number) {}
}

export class DecodeScheduler {
  readonly maxBatch: number;
  readonly maxSequence: number;
  readonly stats: EngineStats = { active: 0, waiting: 0, batch: 0, steps: 0, tokens: 0 };
  private engine: NativeDecodeEngine | undefined;
  private session: Session | undefined;
  private nextId = 1;
  /** The session of each request not yet finished. */
  private readonly sessionOf = new Map<number, Session>();

  constructor(private readonly model: NativeModel, private readonly order: CallOrder, options: { maxBatch: number; maxSequence: number }) {
    this.maxBatch = options.maxBatch;
    this.maxSequence = options.maxSequence;
  }

  /**
   * Adds a request: joins the running session when no other call was made since it was placed,
   * else places a new session. `listener` receives every event of the request, the last one with
   * `finish` set. Returns the request's id (for cancel).
   */
  submit(request: Omit<NativeDecodeRequest, 'id'>, listener: Listener): number {
    const id = this.nextId++;
    let session = this.session;
    if (!session || !session.open || session.placedAt !== this.order.placedCount) {
      session = this.startSession();
    }
    session.unsent.push({ ...request, id });
    session.live.set(id, listener);
    this.sessionOf.set(id, session);
    return id;
  }

  /** Stops a request before the engine's next decoding step; its listener gets a 'cancelled' finish. */
  cancel(id: number): void {
    const session = this.sessionOf.get(id);
    if (!session || !session.live.has(id)) return;
    const unsent = session.unsent.findIndex((r) => r.id === id);
    if (unsent >= 0) {
      // Never reached the engine: finish it here.
      session.unsent.splice(unsent, 1);
      const listener = session.live.get(id)!;
      session.live.delete(id);
      this.sessionOf.delete(id);
      listener({ id, token: -1, logprob: 0, finish: 'cancelled' });
      return;
    }
    if (this.engine) native().engineCancel(this.engine, id);
  }

  /** Frees the engine's cache (in call order); the scheduler can be used again afterwards. */
  release(): Promise<void> | undefined {
    const engine = this.engine;
    if (!engine) return undefined;
    this.engine = undefined;
    return native().engineReset(this.model, engine);
  }

  private startSession(): Session {
    let session!: Session;
    const done = this.order.multi(() => this.run(session));
    session = new Session(this.order.placedCount);
    session.done = done;
    this.session = session;
    done.catch(() => {});
    return session;
  }

  private async run(session: Session): Promise<void> {
    const inflight: Promise<NativeStepResult>[] = [];
    try {
      this.engine ??= native().engineCreate(this.model, this.maxBatch, this.maxSequence);
      const engine = this.engine;
      for (;;) {
        while (inflight.length < 2 && session.live.size > 0) {
          const admit = session.unsent.splice(0);
          const step = native().engineStep(this.model, engine, admit);
          step.catch(() => {});  // awaited below; a second in-flight step may fail unobserved
          inflight.push(step);
        }
        const next = inflight.shift();
        if (!next) break;
        const result = await next;
        this.dispatch(session, result);
      }
    } catch (err) {
      // A failed step resets the native engine: every request of the session fails with it.
      const error = err instanceof ExciseError ? err : new ExciseError('ERR_INTERNAL', `decode engine: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      const failed = [...session.live];
      session.live.clear();
      for (const [id, listener] of failed) {
        this.sessionOf.delete(id);
        listener({ id, token: -1, logprob: 0, finish: 'cancelled', error });
      }
      await Promise.allSettled(inflight);
    } finally {
      // Synchronously with the last check: a request made from now on starts a new session.
      session.open = false;
    }
  }

  private dispatch(session: Session, result: NativeStepResult): void {
    this.stats.steps++;
    this.stats.active = result.active;
    this.stats.waiting = result.waiting;
    this.stats.batch = result.batch;
    for (const event of result.events) {
      const listener = session.live.get(event.id);
      if (!listener) continue;
      if (event.token >= 0) this.stats.tokens++;
      if (event.finish) {
        session.live.delete(event.id);
        this.sessionOf.delete(event.id);
      }
      listener(event);
    }
  }
}
