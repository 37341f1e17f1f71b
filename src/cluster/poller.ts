/**
 * Scale-out: every `[cluster] poll_ms`, the owner looks for work that other instances stored for
 * its users (the inbox's events, the outbox's items). Each look is two indexed queries per table:
 * the newest id, then the pending rows after the last look (conversations/store.ts,
 * replies/store.ts). Looks never overlap; a failed one is logged and the next one tries again.
 */
import type { Timers } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import { repeat, type Repeating } from "./repeat.ts";

export class Poller {
  #looks: Repeating | null = null;
  #failing = false;

  constructor(
    private readonly timers: Timers,
    private readonly everyMs: number,
    private readonly looks: readonly (() => Promise<void>)[],
    private readonly log: Logger,
  ) {}

  start(): void {
    this.#looks ??= repeat(this.timers, this.everyMs, () => this.#look());
  }

  async stop(): Promise<void> {
    await this.#looks?.stop();
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
