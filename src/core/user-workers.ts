/**
 * One worker loop per user, woken by `notify`. Both the inbound lanes (conversations/engine.ts:
 * one turn at a time) and the reply lanes (replies/lanes.ts: one send at a time) run on this: at
 * most one loop per user at a time, so work for one user is strictly sequential, while different
 * users run concurrently.
 */
import { yieldToIo } from "./yield.ts";
import { userKeyId, type UserKey } from "./user-key.ts";

/**
 * What a step did: there may be more to do, or the lane knows of nothing more (it then ends,
 * unless it was notified while the step ran). A step may say "idle" after doing the last piece of
 * work it found, to save a query that would find nothing: work committed after the step looked
 * comes with a notify, which keeps the loop going.
 */
export type StepResult = "more" | "idle";

export class UserWorkers {
  readonly #running = new Map<string, Promise<void>>();
  /** Lanes notified since their loop last looked for work. */
  readonly #wanted = new Set<string>();
  #stopping = false;

  /** `step` does one unit of work for a user and says whether anything was there. */
  constructor(private readonly step: (key: UserKey) => Promise<StepResult>) {}

  /** New work was committed for this user: make sure its loop runs (and looks again). */
  notify(key: UserKey): void {
    if (this.#stopping) return;
    const id = userKeyId(key);
    this.#wanted.add(id);
    if (this.#running.has(id)) return;
    const run = this.#loop(id, key).finally(() => {
      this.#running.delete(id);
      if (this.#wanted.has(id) && !this.#stopping) this.notify(key);
    });
    this.#running.set(id, run);
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  get size(): number {
    return this.#running.size;
  }

  /** No new loops; resolves when the running ones have ended (their steps see `stopping`). */
  stop(): Promise<unknown> {
    this.#stopping = true;
    return Promise.allSettled([...this.#running.values()]);
  }

  async #loop(id: string, key: UserKey): Promise<void> {
    while (!this.#stopping) {
      // The local database driver is synchronous: without this, a loop of awaited queries would
      // never let the event loop answer webhooks.
      await yieldToIo();
      this.#wanted.delete(id);
      const result = await this.step(key);
      if (result === "idle" && !this.#wanted.has(id)) return;
    }
  }
}
