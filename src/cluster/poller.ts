/**
 * Scale-out: every `[cluster] poll_ms`, the owner looks for work that other instances stored for
 * its users (the inbox's events, the outbox's items). Each look is two indexed queries per table:
 * the newest id, then the pending rows after the last look (conversations/store.ts,
 * replies/store.ts). Looks never overlap; a failed one is logged and the next one tries again.
 */
import type { Timers } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";

export class Poller {
  #cancel: (() => void) | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;
  #failing = false;

  constructor(
    private readonly timers: Timers,
    private readonly everyMs: number,
    private readonly looks: readonly (() => Promise<void>)[],
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.#stopped || this.#cancel) return;
    const next = () => {
      this.#cancel = this.timers.after(this.everyMs, () => {
        this.#running = this.#look().finally(() => {
          this.#running = null;
          if (!this.#stopped) next();
        });
      });
    };
    next();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancel?.();
    await this.#running;
  }

  async #look(): Promise<void> {
    try {
      for (const look of this.looks) await look();
      if (this.#failing) this.log.info("looking for work stored by other instances works again");
      this.#failing = false;
    } catch (error) {
      if (!this.#failing) this.log.warn("could not look for work stored by other instances; trying again", { error });
      this.#failing = true;
    }
  }
}
