/**
 * What a lane does when a send fails, by the failure's kind (messenger/retry.ts): retry the same
 * item with backoff before anything after it (head-of-line), drop it, pause the Page (a refused
 * token), record it as taken (a 2xx whose answer could not be read), or — for an unclear answer —
 * wait for the message's echo, and decide when none comes (`noEcho`).
 */
import type { Config } from "../config/load.ts";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { StorageHealth } from "../db/health.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter } from "../metrics/registry.ts";
import type { GraphApiError } from "../messenger/graph.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import { backoffDelay, classifySendError, type SendFailure } from "../messenger/retry.ts";
import type { EchoProof } from "./echo-proof.ts";
import type { OutboxItem } from "./outbox.ts";
import type { Outcomes, Settled } from "./outcomes.ts";
import type { ReplyStore } from "./store.ts";

export interface FailuresDeps {
  config: Config;
  store: ReplyStore;
  outcomes: Outcomes;
  pages: PageDirectory;
  clock: Clock;
  echoes: EchoProof;
  health?: StorageHealth | undefined;
  /** `messenger_sends_total`, by endpoint and result. */
  sends: Counter;
  /** First retry delay; doubles per attempt up to `[graph] max_retry_delay_ms`. */
  minRetryDelayMs: number;
  /** How long the lane waits for the echo of a message whose answer was unclear. */
  echoGraceMs: number;
  /** An item was given up (failed or dropped): a handover item tells the flow (control.ts). */
  givenUp(item: OutboxItem, key: UserKey, error: unknown): Promise<void>;
}

export class SendFailures {
  constructor(private readonly deps: FailuresDeps) {}

  /** The item's call failed: "settled" when it left the lane (given up, dropped, taken), "open" when it stays at the head. */
  async failed(item: OutboxItem, key: UserKey, error: unknown, log: Logger, failure: SendFailure = classifySendError(error)): Promise<Settled> {
    const { outcomes, sends } = this.deps;
    const recorded = error instanceof Error && "toJSON" in error ? (error as GraphApiError).toJSON() : { message: String(error) };
    const now = this.deps.clock.now();
    const attempts = item.attempts; // counted when the item was marked "sending"
    switch (failure.action) {
      case "retry": {
        const graph = this.deps.config.graph;
        const firstAttemptAt = item.firstAttemptAt ?? now;
        if (now - firstAttemptAt >= graph.retry_for_minutes * 60_000) {
          sends.inc({ endpoint: key.endpointId, result: "failed" });
          log.error(`gave up a message after retrying for ${graph.retry_for_minutes} minutes: ${failure.reason}`, { outbox_id: item.id, error: recorded });
          await outcomes.finish(item, "failed", { ...recorded, reason: `gave up after ${attempts} attempts: ${failure.reason}` });
          await this.deps.givenUp(item, key, error);
          return "settled";
        }
        const delay = backoffDelay(attempts, failure.throttled, { minMs: this.deps.minRetryDelayMs, maxMs: graph.max_retry_delay_ms });
        sends.inc({ endpoint: key.endpointId, result: "retry" });
        log.warn(`send failed (${failure.reason}); retrying in ${delay} ms before anything else for this user`, {
          outbox_id: item.id,
          attempt: attempts,
          error: recorded,
        });
        await outcomes.reopen(item, now + delay, { ...recorded, reason: failure.reason });
        return "open";
      }
      case "drop": {
        sends.inc({ endpoint: key.endpointId, result: "dropped" });
        const why = {
          outside_window: "the user's 24-hour messaging window is closed (10/2018278); the message was dropped",
          user_unavailable: "the user cannot be reached (551); the message was dropped",
          rejected: "Graph rejected the message; it was dropped",
        }[failure.reason];
        log.warn(why, { outbox_id: item.id, error: recorded });
        await outcomes.finish(item, "dropped", { ...recorded, reason: failure.reason });
        await this.deps.givenUp(item, key, error);
        return "settled";
      }
      case "pause_page":
        sends.inc({ endpoint: key.endpointId, result: "paused" });
        await outcomes.reopen(item, item.nextAttemptAt, { ...recorded, reason: failure.reason });
        await this.deps.pages.pause(key.endpointId, key.pageId, failure.reason);
        return "open";
      case "accepted":
        // Graph answered 2xx and only its answer could not be read: taken, never sent again.
        log.warn(`Graph took a message but its answer could not be read (${failure.reason}); marked unconfirmed, not sent again: its echo confirms it`, {
          outbox_id: item.id,
          error: recorded,
        });
        item.accepted = { status: "unconfirmed", messageId: null, error: { ...recorded, reason: failure.reason } };
        return outcomes.recordAccepted(item, key);
      case "unclear":
        sends.inc({ endpoint: key.endpointId, result: "unclear" });
        if (item.kind === "action") {
          // A sender action (mark_seen) has no echo, and showing it twice does no harm.
          item.accepted = { status: "sent", messageId: null };
          return outcomes.recordAccepted(item, key);
        }
        if (item.kind === "control") {
          // Passed or not: the next attempt asks Graph who owns the thread before passing again.
          item.maybeDone = true;
          return this.failed(item, key, error, log, { action: "retry", throttled: false, reason: `unclear answer (${failure.reason})` });
        }
        // A message: its echo, if it comes, says Graph has it. Until then the lane waits (order).
        log.warn(
          `the Send API did not answer clearly (${failure.reason}); waiting up to ${this.deps.echoGraceMs} ms for the message's echo before deciding whether to send it again`,
          { outbox_id: item.id, error: recorded },
        );
        item.echoWaitUntil = now + this.deps.echoGraceMs;
        item.unclearSince = now;
        // Kept on the row: after a restart it is not taken for a send the crash interrupted.
        await this.deps.store.markUnclear(item.id, outcomes.errorText({ ...recorded, reason: failure.reason, unclear: true }));
        return "open";
    }
  }

  /**
   * The last call's answer was unclear and no echo came in `[graph] resend_after_ms`. Where echoes
   * of our sends are known to arrive for this Page (one came back within the last week), and our
   * own webhook took every write meanwhile (a full disk answers Facebook's echo with a 500, and
   * its redelivery may come much later), no echo means Graph did not take it: it is tried again
   * like any passing failure. Otherwise there is no telling, and a message is sent twice rather
   * than not at all only when Graph certainly did not take it: it is marked "unconfirmed" (its
   * echo, if one comes later, still marks it sent).
   */
  async noEcho(item: OutboxItem, key: UserKey, log: Logger): Promise<Settled> {
    const since = item.unclearSince ?? 0;
    const storageFailed = (this.deps.health?.lastFailureAt ?? 0) >= since;
    if (this.deps.echoes.arrive(key) && !storageFailed) {
      return this.failed(item, key, new Error("no echo came after an unclear answer"), log, {
        action: "retry",
        throttled: false,
        reason: "no echo after an unclear answer",
      });
    }
    if (storageFailed) return this.unconfirmed(item, key, log, "writes to the database failed while its echo was awaited");
    log.warn(
      `the Send API's answer to a message was lost and no echo came within ${this.deps.echoGraceMs} ms; it is marked unconfirmed and not sent again, ` +
        "since Facebook may have delivered it. Subscribe the App's webhook to message_echoes so that the server can tell (then a message Facebook did not take is sent again)",
      { outbox_id: item.id },
    );
    return this.unconfirmed(item, key, log, "unclear answer, no echo");
  }

  /** Graph may have the message and no echo said so: recorded as unconfirmed, never sent again. */
  unconfirmed(item: OutboxItem, key: UserKey, log: Logger, reason: string): Promise<Settled> {
    if (reason !== "unclear answer, no echo")
      log.warn(`a message whose answer was unclear is marked unconfirmed and not sent again: ${reason}`, { outbox_id: item.id });
    item.accepted = { status: "unconfirmed", messageId: null, error: { reason } };
    return this.deps.outcomes.recordAccepted(item, key);
  }
}
