/**
 * Call order on one model: every public call takes its place at the moment it is made, so calls
 * take effect in the order they were made, whatever mix of single native jobs (forward, prune, ...)
 * and multi-step operations (collect, evaluate, save, which feed the native queue batch by batch)
 * is in flight.
 *
 * - A single-job call goes straight into the model's native queue (which runs jobs in order) when
 *   every earlier call is already there; otherwise it waits for the earlier calls to settle.
 * - A multi-step call starts once every earlier call has settled, and later calls wait for it.
 *
 * A failed call does not stop the ones after it.
 */
export class CallOrder {
  /** Settles once every call made so far has settled. */
  private tail: Promise<void> = Promise.resolve();
  /** Calls made but not yet (wholly) in the native queue: while > 0, new calls must wait. */
  private unplaced = 0;
  /** Calls placed so far: the decode engine lets a request join a session only while no other call came after it. */
  private placed = 0;

  get placedCount(): number {
    return this.placed;
  }

  /** A call that is one native job: `start` pushes it (and returns its promise). */
  single<T>(start: () => Promise<T>): Promise<T> {
    this.placed++;
    let result: Promise<T>;
    if (this.unplaced === 0) {
      result = invoke(start);
    } else {
      this.unplaced++;
      result = this.tail.then(() => {
        this.unplaced--;
        return start();
      });
    }
    this.append(result);
    return result;
  }

  /** A call made of several native jobs, issued over time by `run`. */
  multi<T>(run: () => Promise<T>): Promise<T> {
    this.placed++;
    this.unplaced++;
    const result = this.tail.then(run).finally(() => {
      this.unplaced--;
    });
    this.append(result);
    return result;
  }

  /** Resolves once every call made so far has settled (never rejects). */
  idle(): Promise<void> {
    return this.tail;
  }

  private append(call: Promise<unknown>): void {
    const before = this.tail;
    this.tail = before.then(() => call).then(noop, noop);
  }
}

function noop(): void {}

/** Runs start(); a synchronous throw becomes a rejection, like an async function's. */
function invoke<T>(start: () => Promise<T>): Promise<T> {
  try {
    return start();
  } catch (err) {
    return Promise.reject(err);
  }
}
