/**
 * A clock whose time moves only when the test says so, with timers that fire in time order as it
 * moves (src/core/clock.ts `Clock` and `Timers`). Between two timers, pending promise callbacks run,
 * so that work a timer starts can go on (and arm further timers) before the next fires.
 */
import type { Clock, Timers } from "../../src/core/clock.ts";

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

export class ManualClock implements Clock, Timers {
  #now: number;
  #seq = 0;
  #pending: Pending[] = [];

  constructor(start = 1_767_225_700_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  after(ms: number, fn: () => void): () => void {
    const entry = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn };
    this.#pending.push(entry);
    return () => {
      this.#pending = this.#pending.filter((p) => p !== entry);
    };
  }

  /** Timers armed and not yet fired, by when they are due. */
  get timers(): number[] {
    return this.#pending.map((p) => p.at).sort((a, b) => a - b);
  }

  /** Lets pending promise callbacks (and what they start) run, without moving time. */
  async settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < 20; i++) await Promise.resolve();
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const until = this.#now + ms;
    await this.settle();
    for (;;) {
      const next = this.#pending.filter((p) => p.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.#pending = this.#pending.filter((p) => p !== next);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await this.settle();
    }
    this.#now = until;
    await this.settle();
  }
}
