/**
 * Echoes, deliveries and reads, applied as soon as they are stored, outside the inbound lanes: an
 * echo confirms a send even while the user's lane is busy with a slow agent. They never run the
 * flow. What they change:
 * - an echo of our own message (stamped by this install, replies/outbox.ts): the message is sent,
 *   whatever its reply lane believed (a timed-out send that did arrive, one interrupted by a
 *   crash, one whose answer was unclear), and the lane hears of it;
 * - an echo of a message a person (or another app) sent from another inbox: it goes into the
 *   transcript, and the handover state hears that a person answered;
 * - a delivery or a read: the outbox rows it covers get their time.
 */
import type { InStatement } from "@libsql/client";
import type { EndpointSettings } from "../config/schema.ts";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import { isStorageError, type StorageHealth } from "../db/health.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Threads } from "../handover/threads.ts";
import type { Logger } from "../log/logger.ts";
import { messageText, transcriptInsert } from "../people/transcripts.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import { outboxIdFromStamp } from "../replies/outbox.ts";
import { deliveredStatement, echoSentStatement, readStatement } from "../replies/store.ts";
import type { EventKind } from "../inbox/events.ts";
import type { RecentErasures } from "./erasures.ts";
import type { ConversationStore, StateEventRow } from "./store.ts";

export interface StateEvent extends StateEventRow {
  kind: EventKind;
  /** Came in standby[] (another app owns the thread). */
  standby?: boolean;
  item: unknown;
}

export interface StateEventsDeps {
  endpoints: ReadonlyMap<string, EndpointSettings>;
  store: ConversationStore;
  writes: WriteQueue;
  replies: ReplyLanes;
  threads?: Threads;
  health?: StorageHealth;
  erasures: RecentErasures;
  clock: Clock;
  log: Logger;
  /** This database's install id: echoes stamped with another one are not ours (replies/outbox.ts). */
  installId: string;
}

/** The state events waiting for the next round, and the round in progress. */
export class StateEventQueue {
  #waiting: StateEvent[] = [];
  #running: Promise<void> | null = null;

  constructor(private readonly deps: StateEventsDeps) {}

  add(events: StateEvent[]): void {
    for (const e of events) this.#waiting.push(e);
    if (this.#running === null) this.#running = this.#drain();
  }

  /** Resolves when no round runs (at a stop: a round waiting for the database ends with the health check's stop). */
  async idle(): Promise<void> {
    await this.#running;
  }

  /**
   * Applies everything that arrived meanwhile in one commit per round, in arrival order, so the
   * work keeps up with any webhook rate. Failures are logged; the events stay pending in the
   * inbox and are applied at the next start.
   *
   * The loop's last look at the list and the end of the round (`#running = null`) happen with no
   * await in between, so an event queued at any moment is either seen by this loop or starts a
   * new one. (Clearing it in a `.finally()` left a gap of a few microtasks in which events were
   * queued for a loop that had already ended.)
   */
  async #drain(): Promise<void> {
    await Promise.resolve(); // let `add` assign #running first
    const { writes, health, erasures, log } = this.deps;
    while (this.#waiting.length > 0) {
      const batch = this.#waiting.splice(0);
      const erasuresAtTake = erasures.mark();
      const confirmed: { key: UserKey; outboxId: number }[] = [];
      try {
        // Lost in a power cut, they are applied again from the inbox: no fsync of their own.
        await writes.run(
          batch.flatMap((e) => this.#statementsOrFailed(e, confirmed)),
          { durable: false },
        );
      } catch (error) {
        if (isStorageError(error) && health) {
          // Applied once the database takes writes again (an echo may be what confirms a send).
          health.failed(error);
          const healthy = await health.waitHealthy();
          // Not for people erased meanwhile: their rows are gone, and must stay gone.
          const kept = batch.filter((e) => !erasures.since(e.key, erasuresAtTake));
          this.#waiting.unshift(...kept);
          if (healthy) continue;
          break; // stopping: they stay pending in the inbox for the next start
        }
        log.error("could not apply echo/delivery/read events; they stay pending", { error });
        continue;
      }
      for (const c of confirmed) this.deps.replies.confirmed(c.key, c.outboxId);
      for (const e of batch) {
        if (!this.#humanEcho(e)) continue;
        const item = e.item as Record<string, any>;
        const at = Number(item.timestamp ?? this.deps.clock.now());
        const appId = appIdOf(item.message?.app_id);
        await this.deps.threads
          ?.humanReplied(e.key, at, appId, e.standby === true)
          .catch((error) => log.error("could not record a person's reply for the handover", { error }));
      }
    }
    this.#running = null;
  }

  /**
   * An echo of a message a person (or another app) sent, not one of ours: no stamp of ours or of
   * another install of ours (`me:`), and not from our app when `app_id` is set.
   */
  #humanEcho(e: StateEvent): boolean {
    if (e.kind !== "echo") return false;
    const message = (e.item as Record<string, any>).message ?? {};
    if (typeof message.metadata === "string" && message.metadata.startsWith("me:")) return false;
    const ownApp = this.deps.endpoints.get(e.key.endpointId)?.app_id;
    const appId = appIdOf(message.app_id);
    return !(ownApp && appId !== null && appId === ownApp);
  }

  /**
   * The statements of one state event; one that cannot be applied (a shape no check foresaw) is
   * only marked failed with its error, so that it does not hold back the others of its round.
   */
  #statementsOrFailed(e: StateEvent, confirmed: { key: UserKey; outboxId: number }[]): InStatement[] {
    try {
      return this.#statements(e, confirmed);
    } catch (error) {
      this.deps.log.error("an echo, delivery or read event could not be applied; it is set aside", { error, endpoint: e.key.endpointId });
      return [this.deps.store.stateFailed(e, error instanceof Error ? error.message : String(error), this.deps.clock.now())];
    }
  }

  /** Deliveries and reads come once per message sent, so this runs as often as sends. */
  #statements(e: StateEvent, confirmed: { key: UserKey; outboxId: number }[]): InStatement[] {
    const { store } = this.deps;
    const now = this.deps.clock.now();
    const item = e.item as Record<string, any>;
    const out: InStatement[] = [];
    if (this.#humanEcho(e)) {
      // A person answered from another app (the Page Inbox): kept in the transcript.
      const endpoint = this.deps.endpoints.get(e.key.endpointId);
      if (endpoint?.data_protection.collect_conversations) {
        out.push(transcriptInsert(e.key, null, null, [{ direction: "out", source: "human", text: messageText(item.message), data: item.message }], now));
      }
    } else if (e.kind === "echo") {
      const id = outboxIdFromStamp(this.deps.installId, item.message?.metadata);
      if (id !== null) {
        out.push(echoSentStatement(e.key, id, String(item.message?.mid ?? ""), now));
        confirmed.push({ key: e.key, outboxId: id });
        const remember = this.deps.replies.ownEcho(e.key.endpointId, e.key.pageId);
        if (remember) out.push(remember);
      }
    } else if (e.kind === "delivery") {
      const mids: string[] = Array.isArray(item.delivery?.mids) ? item.delivery.mids.map(String) : [];
      out.push(deliveredStatement(e.key, mids, Number(item.delivery?.watermark ?? 0), now));
    } else if (e.kind === "read") {
      out.push(readStatement(e.key, Number(item.read?.watermark ?? 0), now));
    }
    out.push(store.stateDone(e, now));
    return out;
  }
}

/** An app id as Meta sends it (a number or a digit string); anything else is no app id. */
function appIdOf(value: unknown): string | null {
  return typeof value === "string" || typeof value === "number" ? String(value) : null;
}
