/**
 * `retention_days` (SPEC §8): once at start and then every hour, each endpoint's transcripts older
 * than its retention, contacts idle for longer, sessions ended or idle for longer, idle transformer
 * storage and finished inbox/outbox rows are deleted (people/records.ts `purge`). 0 keeps everything.
 */
import type { Config } from "../config/load.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import type { PeopleRecords } from "./records.ts";

export const PURGE_INTERVAL_MS = 60 * 60_000;

export class Retention {
  #timer: Timer | null = null;
  #running: Promise<void> | null = null;

  constructor(
    private readonly deps: { config: Config; records: PeopleRecords; clock: Clock; log: Logger; forgetAll(): void },
  ) {}

  start(intervalMs = PURGE_INTERVAL_MS): void {
    const tick = () => {
      this.#running ??= this.runOnce()
        .then(() => undefined)
        .catch((error) => this.deps.log.error("retention purge failed; tried again at the next run", { error }))
        .finally(() => (this.#running = null));
    };
    tick();
    this.#timer = setInterval(tick, intervalMs);
    this.#timer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** One purge over all endpoints; returns the rows deleted per endpoint and table. */
  async runOnce(): Promise<Record<string, Record<string, number>>> {
    const out: Record<string, Record<string, number>> = {};
    let any = false;
    for (const endpoint of this.deps.config.endpoints) {
      const days = endpoint.data_protection.retention_days;
      if (days <= 0) continue;
      const counts = await this.deps.records.purge(endpoint.id, this.deps.clock.now() - days * 86_400_000);
      out[endpoint.id] = counts;
      if (Object.values(counts).some((n) => n > 0)) {
        any = true;
        this.deps.log.info(`retention: deleted what is older than ${days} days`, { endpoint: endpoint.id, ...counts });
      }
    }
    if (any) this.deps.forgetAll();
    return out;
  }
}
