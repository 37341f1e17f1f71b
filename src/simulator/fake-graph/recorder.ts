/**
 * What the fake saw: every call (answered or still in flight) and every successful send, in
 * order, and the waits of tests for them (`waitForSends`, `waitForCalls`), which are checked again
 * each time something is recorded.
 */
import type { RecordedCall, RecordedSend, SendFilter } from "./types.ts";

interface Waiter {
  check: () => boolean;
}

export class Recorder {
  readonly calls: RecordedCall[] = [];
  #seq = 0;
  #sends: RecordedSend[] = [];
  readonly #inFlight = new Set<RecordedCall>();
  readonly #waiters = new Set<Waiter>();
  readonly #sendListeners: ((send: RecordedSend) => void)[] = [];

  /** A call arrived: recorded at once, in flight until `end`. */
  begin(call: Omit<RecordedCall, "seq">): RecordedCall {
    const recorded: RecordedCall = { seq: ++this.#seq, ...call };
    this.calls.push(recorded);
    this.#inFlight.add(recorded);
    return recorded;
  }

  /** The call was answered (or given up). */
  end(call: RecordedCall): void {
    this.#inFlight.delete(call);
    this.notify();
  }

  /** A successful Send API call. */
  sent(send: RecordedSend): void {
    this.#sends.push(send);
    this.notify();
    for (const listener of this.#sendListeners) listener(send);
  }

  /** Successful `POST …/messages`, in arrival order. */
  sends(filter: SendFilter = {}): RecordedSend[] {
    return this.#sends.filter(
      (s) => (filter.pageId === undefined || s.pageId === filter.pageId) && (filter.recipientId === undefined || s.recipientId === filter.recipientId),
    );
  }

  /** Called with every successful Send API call. */
  onSend(listener: (send: RecordedSend) => void): void {
    this.#sendListeners.push(listener);
  }

  /** Something changed that a wait may be for. */
  notify(): void {
    for (const waiter of [...this.#waiters]) waiter.check();
  }

  /** Resolves once at least `count` matching sends exist. */
  waitForSends(count: number, filter: SendFilter = {}, timeoutMs = 5000): Promise<RecordedSend[]> {
    return this.#wait(
      () => {
        const found = this.sends(filter);
        return found.length >= count ? found : null;
      },
      timeoutMs,
      () => `waited ${timeoutMs} ms for ${count} send(s) matching ${JSON.stringify(filter)}; saw ${this.sends(filter).length}`,
    );
  }

  /**
   * Resolves once at least `count` answered calls match; with `inFlight`, calls that arrived and
   * are not answered yet (a held answer, say) count too.
   */
  waitForCalls(predicate: (c: RecordedCall) => boolean, count = 1, timeoutMs = 5000, options: { inFlight?: boolean } = {}): Promise<RecordedCall[]> {
    const matching = () => this.calls.filter((c) => (options.inFlight || !this.#inFlight.has(c)) && predicate(c));
    return this.#wait(
      () => {
        const found = matching();
        return found.length >= count ? found : null;
      },
      timeoutMs,
      () =>
        `waited ${timeoutMs} ms for ${count} call(s); ${matching().length} matched of ${this.calls.length}: ${this.calls.map((c) => `${c.method} ${c.path} ${c.status}`).join(", ")}`,
    );
  }

  /** Recorded calls and sends are forgotten (waits in progress keep waiting). */
  reset(): void {
    this.calls.length = 0;
    this.#sends = [];
  }

  #wait<T>(check: () => T | null, timeoutMs: number, describe: () => string): Promise<T> {
    const first = check();
    if (first !== null) return Promise.resolve(first);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        check: () => {
          const found = check();
          if (found === null) return false;
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(found);
          return true;
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(describe()));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }
}
