/**
 * The inbox's pending user events, per user, in memory: what the inbound lanes work through
 * (engine.ts).
 *
 * The inbox table is the durable truth; this is its index for the lanes, so that a turn does not
 * query the table for its next event. It is filled from the table at start (everything stored
 * and not finished) and then by the inbox after each commit, and an event leaves it only once
 * its "done" mark is committed. Within a user the order is Facebook's timestamp, then arrival:
 * an event redelivered late with an older timestamp goes before the ones still waiting.
 */
import type { EventKind } from "../inbox/events.ts";
import { userKeyFromId, userKeyId, type UserKey } from "../core/user-key.ts";

export interface PendingEvent {
  /** The inbox row. */
  id: number;
  kind: EventKind;
  standby: boolean;
  timestamp: number;
  /** The raw messaging item. */
  item: Record<string, unknown>;
  /** Earlier attempts that failed on our side (not the flow's failures). */
  attempts: number;
}

export class PendingEvents {
  readonly #byUser = new Map<string, PendingEvent[]>();

  /** Adds an event in its place; an event already known (by inbox row) is ignored. */
  add(key: UserKey, event: PendingEvent): void {
    const id = userKeyId(key);
    let list = this.#byUser.get(id);
    if (!list) this.#byUser.set(id, (list = []));
    if (list.some((e) => e.id === event.id)) return;
    let at = list.length;
    while (at > 0 && before(event, list[at - 1]!)) at--;
    list.splice(at, 0, event);
  }

  /** The user's next event, and whether another one waits behind it. */
  next(key: UserKey): { event: PendingEvent | undefined; more: boolean } {
    const list = this.#byUser.get(userKeyId(key));
    return { event: list?.[0], more: (list?.length ?? 0) > 1 };
  }

  /** The event is finished (its "done" mark is committed). */
  remove(key: UserKey, eventId: number): void {
    const id = userKeyId(key);
    const list = this.#byUser.get(id);
    if (!list) return;
    const at = list.findIndex((e) => e.id === eventId);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#byUser.delete(id);
  }

  /** Forgets every event of this user (their inbox rows are gone: an erasure). */
  drop(key: UserKey): void {
    this.#byUser.delete(userKeyId(key));
  }

  /** Forgets the events of every user that `test` picks (their partition went to another instance). */
  dropWhere(test: (key: UserKey) => boolean): void {
    for (const [id, list] of this.#byUser) if (list.length > 0 && test(userKeyFromId(id))) this.#byUser.delete(id);
  }

  /** Events waiting, per endpoint. */
  countByEndpoint(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [id, list] of this.#byUser) {
      const endpointId = id.slice(0, id.indexOf("\u0000"));
      out.set(endpointId, (out.get(endpointId) ?? 0) + list.length);
    }
    return out;
  }

  /** Events waiting, over all users. */
  get size(): number {
    let n = 0;
    for (const list of this.#byUser.values()) n += list.length;
    return n;
  }
}

function before(a: PendingEvent, b: PendingEvent): boolean {
  return a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.id < b.id);
}
