/**
 * What became of a lane item, stored on its row: taken by Graph (sent, or unconfirmed), back to
 * pending for another try, or given up (failed, dropped). Errors are stored as JSON without any
 * secret of the settings.
 */
import type { InStatement } from "@libsql/client";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import { scrub } from "../log/scrub.ts";
import type { Counter } from "../metrics/registry.ts";
import type { OutboxItem } from "./outbox.ts";
import type { ReplyStore } from "./store.ts";

/** After a step on the head item: it left the lane ("settled"), or it stays at the head ("open"). */
export type Settled = "settled" | "open";

export interface OutcomesDeps {
  config: Config;
  endpoints: ReadonlyMap<string, EndpointSettings>;
  store: ReplyStore;
  clock: Clock;
  /** `messenger_sends_total`, by endpoint and result. */
  sends: Counter;
  /** The statement that counts a message given up in the day's analytics, committed with its outcome. */
  failedSendCount?: (endpointId: string, at: number) => InStatement;
}

export class Outcomes {
  constructor(private readonly deps: OutcomesDeps) {}

  /**
   * Stores the outcome of a call Graph took (`item.accepted`). If this write fails (a full disk),
   * the lane waits and tries the write again — never the call: `item.accepted` stays set until it
   * commits.
   */
  async recordAccepted(item: OutboxItem, key: UserKey): Promise<Settled> {
    const accepted = item.accepted!;
    const now = this.deps.clock.now();
    if (accepted.status === "sent") await this.deps.store.markSent(item.id, accepted.messageId, now);
    else {
      await this.deps.store.markUnconfirmed(item.id, now, this.errorText(accepted.error ?? {}));
      this.deps.sends.inc({ endpoint: key.endpointId, result: "unconfirmed" });
    }
    return "settled";
  }

  /**
   * Gives an item up. Only an item that is still open: its echo may have marked it sent while the
   * failed call was under way (the answer lost or late, the message delivered), and that stands.
   */
  async finish(item: OutboxItem, status: "failed" | "dropped", error: Record<string, unknown>): Promise<void> {
    const count = this.deps.failedSendCount && item.kind === "message" && this.deps.endpoints.get(item.endpointId)?.data_protection.collect_analytics;
    await this.deps.store.finish(
      [{ id: item.id, status, error: this.errorText(error) }],
      count ? [this.deps.failedSendCount!(item.endpointId, this.deps.clock.now())] : [],
    );
  }

  /** Puts an item back to be tried again (at `nextAttemptAt`), unless its echo has meanwhile marked it sent. */
  async reopen(item: OutboxItem, nextAttemptAt: number | null, error: Record<string, unknown>): Promise<void> {
    await this.deps.store.reopen(item.id, nextAttemptAt, this.errorText(error));
    item.status = "pending";
    item.nextAttemptAt = nextAttemptAt;
  }

  /** An error as stored on its row (`last_error`): JSON, with no secret of the settings in it (a network error's text may quote anything). */
  errorText(error: Record<string, unknown>): string {
    return scrub(JSON.stringify(error), this.deps.config.secrets);
  }
}
