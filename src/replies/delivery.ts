/**
 * The delivery of one lane item:
 *
 *   typing_on (typing_indicators) → message_delay_ms → mark "sending" → Send API → mark "sent"
 *
 * The "sending" mark is committed before the call, so that a send a crash interrupted is
 * recognised at the next start (lanes.ts). Each message carries the `metadata` stamp its echo is
 * matched by (outbox.ts `stampFor`). Failures go to failures.ts, handover items to control.ts.
 */
import type { EndpointSettings } from "../config/schema.ts";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Histogram } from "../metrics/registry.ts";
import type { GraphClient } from "../messenger/graph.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import { classifySendError } from "../messenger/retry.ts";
import type { Threads } from "../handover/threads.ts";
import type { ControlItems } from "./control.ts";
import type { SendFailures } from "./failures.ts";
import { stampFor, type ControlBody, type OutboxItem } from "./outbox.ts";
import type { Outcomes, Settled } from "./outcomes.ts";
import { recipientOf, userRefRefusal } from "./recipient.ts";
import type { ReplyStore } from "./store.ts";
import type { TurnTimings } from "../metrics/turn-timings.ts";

export interface DeliveryDeps {
  endpoints: ReadonlyMap<string, EndpointSettings>;
  graph: GraphClient;
  pages: PageDirectory;
  clock: Clock;
  threads?: Threads | undefined;
  /** This database's install id, part of every message's `metadata` stamp. */
  installId: string;
  store: ReplyStore;
  outcomes: Outcomes;
  failures: SendFailures;
  control: ControlItems;
  /** `messenger_sends_total` and `messenger_send_seconds`. */
  sends: Counter;
  sendSeconds: Histogram;
  /** Resolves true after `ms`, false at once when the lanes stop. */
  sleep(ms: number): Promise<boolean>;
  /** Whether this instance may send to the user now (cluster/ownership.ts). */
  ownsNow(key: UserKey): boolean;
  /** Each step of a turn (metrics/turn-timings.ts). */
  timings?: TurnTimings | undefined;
  /** Resolves once everything committed so far is durable (db/write-queue.ts `synced`). */
  synced(): Promise<void>;
}

export class Delivery {
  constructor(private readonly deps: DeliveryDeps) {}

  /** Sends the item; "settled" when it has left the lane (sent, dropped, given up), "open" when it stays. */
  async deliver(item: OutboxItem, key: UserKey, log: Logger): Promise<Settled> {
    const { outcomes, failures } = this.deps;
    const endpoint = this.deps.endpoints.get(key.endpointId);
    const page = this.deps.pages.credentials(key.endpointId, key.pageId);
    if (!endpoint || !page) {
      await outcomes.finish(item, "failed", { reason: "the endpoint or Page is no longer in the settings" });
      return "settled";
    }
    // With several instances: nothing for the user, not even a typing indicator, once this
    // instance's lease may have lapsed (it is let go or renewed within a renewal).
    if (!this.deps.ownsNow(key)) {
      await this.deps.sleep(250);
      return "open";
    }
    const body = JSON.parse(item.body) as Record<string, unknown>;
    const recipient = recipientOf(key.userId);
    const refused = "user_ref" in recipient ? await userRefRefusal(this.deps.store, item) : null;
    if (refused) {
      this.deps.sends.inc({ endpoint: key.endpointId, result: "dropped" });
      log.warn(`${refused}: the item was dropped`, { outbox_id: item.id });
      await outcomes.finish(item, "dropped", { reason: refused });
      await this.deps.control.givenUp(item, key, new Error(refused));
      return "settled";
    }

    if (item.kind === "message") {
      if (endpoint.messenger.typing_indicators && !("user_ref" in recipient)) {
        try {
          await this.deps.graph.send(page, { recipient, sender_action: "typing_on" });
        } catch (error) {
          const failure = classifySendError(error);
          if (failure.action === "pause_page") {
            await this.deps.pages.pause(key.endpointId, key.pageId, failure.reason);
            return this.#unmarked(item);
          }
          // A failed typing indicator is cosmetic; the message itself decides what happens next.
          log.debug("typing indicator failed", { error });
        }
      }
      const delay = endpoint.messenger.message_delay_ms;
      if (delay > 0 && !(await this.deps.sleep(delay))) return "open"; // stopping: the item stays pending
    }

    // The thread may have left us during the typing delay (another app took it, a person answered).
    if (this.deps.threads?.holds(key)) return this.#unmarked(item);
    // With several instances, the user's partition may have moved on during the delay: not marked
    // then (an item left "sending" would make the next holder wait for an echo that cannot come).
    if (!this.deps.ownsNow(key)) {
      await this.deps.sleep(250);
      return this.#unmarked(item);
    }
    const interrupted = item.status === "sending" && !item.premarked;
    if (item.premarked) {
      // Committed "sending" with its turn: the sync that makes that commit durable is its mark.
      item.premarked = false;
      await this.deps.synced();
    } else {
      // Mark "sending" before the call, so a crash in between is recognised at the next start.
      const now = this.deps.clock.now();
      if (!(await this.deps.store.markSending(key, item.id, item.attempts + 1, item.firstAttemptAt ?? now))) return "settled"; // its echo arrived meanwhile: already sent
      item.status = "sending";
      item.attempts += 1;
      item.firstAttemptAt ??= now;
    }

    // With several instances: not once this instance's lease may have expired in the others' eyes
    // (the item stays "sending"; whoever holds the user next treats it as interrupted).
    if (!this.deps.ownsNow(key)) {
      await this.deps.sleep(250);
      return "open";
    }
    if (item.kind === "control") return this.deps.control.pass(item, key, body as unknown as ControlBody, log, interrupted);
    const payload: Record<string, unknown> = { recipient, ...body };
    if (item.kind === "message") payload.message = { ...(body.message as object), metadata: stampFor(this.deps.installId, item.id) };
    const timed = item.kind === "message" && item.inboxId != null ? item.inboxId : null;
    if (timed !== null) this.deps.timings?.mark(timed, "send_started");
    const started = performance.now();
    try {
      const result = await this.deps.graph.send(page, payload);
      if (timed !== null) this.deps.timings?.mark(timed, "graph_answered");
      this.deps.sendSeconds.observe({ endpoint: key.endpointId }, (performance.now() - started) / 1000);
      this.deps.sends.inc({ endpoint: key.endpointId, result: "sent" });
      item.accepted = { status: "sent", messageId: result.message_id ?? null };
      return outcomes.recordAccepted(item, key);
    } catch (error) {
      this.deps.sendSeconds.observe({ endpoint: key.endpointId }, (performance.now() - started) / 1000);
      return failures.failed(item, key, error, log);
    }
  }

  /** An item that stays in the lane unsent (store.ts `release`). */
  async #unmarked(item: OutboxItem): Promise<Settled> {
    await this.deps.store.release(item);
    return "open";
  }
}
