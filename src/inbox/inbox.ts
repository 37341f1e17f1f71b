/**
 * The durable inbox. `store()` resolves only after the events are committed to disk; the webhook
 * answers 200 after that. All events of one POST are one INSERT, so they commit together; POSTs
 * that arrive together share a commit through the write queue (db/write-queue.ts).
 */
import type { InStatement, ResultSet } from "@libsql/client";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../core/clock.ts";
import { columnList, insertedIds, rowReader, valuesSql } from "../db/rows.ts";
import { inbox } from "../db/schema.ts";
import type { InboxEvent } from "./events.ts";
import type { RequestTiming } from "../metrics/turn-timings.ts";

/** An event as written to the inbox, with its row. */
export interface StoredEvent extends InboxEvent {
  inboxId: number;
}

export interface StoreResult {
  /** Events written now. */
  stored: StoredEvent[];
  /** Events already in the inbox from an earlier delivery. */
  duplicates: number;
}

export type StoredListener = (endpointId: string, events: StoredEvent[]) => void;

// SQLite allows 32766 bound parameters per statement; a row has 9.
const ROWS_PER_STATEMENT = 2000;
const INSERTED = ["endpointId", "pageId", "userId", "kind", "standby", "dedupKey", "timestamp", "receivedAt", "event"] as const;
const RETURNED = ["dedupKey", "timestamp", "id"] as const;
const INSERT_HEAD = `INSERT INTO inbox (${columnList(inbox, INSERTED)}) VALUES `;
/**
 * Plain SQL on the hottest path, one multi-row INSERT per chunk: RETURNING names the rows
 * actually written (the unique dedup index skips redeliveries).
 */
const insertSql = valuesSql(INSERT_HEAD, INSERTED.length, ` ON CONFLICT DO NOTHING RETURNING ${columnList(inbox, RETURNED)}`);
/**
 * A POST of one event (nearly all of them) needs no RETURNING: one row written or none tells
 * whether it is new, and its id is the statement's last (db/rows.ts `insertedIds`).
 */
const INSERT_ONE_SQL = valuesSql(INSERT_HEAD, INSERTED.length, " ON CONFLICT DO NOTHING")(1);
const readReturned = rowReader(inbox, RETURNED);
/** What the unique index inbox_dedup_time holds for an event of the endpoint. */
const uniqueKey = (timestamp: number, dedupKey: string) => `${timestamp}\u0000${dedupKey}`;

export class Inbox {
  readonly #listeners: StoredListener[] = [];

  constructor(
    private readonly writes: WriteQueue,
    private readonly clock: Clock,
    /** A listener's failure must not fail the webhook: the events are stored and will be drained. */
    private readonly onListenerError: (error: unknown) => void = () => {},
  ) {}

  /** Called after each commit with the events it wrote; the conversation engine listens here. */
  onStored(listener: StoredListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Stores events durably; duplicates of stored events are counted, not written again. With
   * `early` (a webhook's POST), the listeners hear of the events as soon as they are committed,
   * while the fsync runs, and the fsync lingers for the turn's commit (db/write-queue.ts); else
   * once they are durable, right before this resolves (a caller may change state after it that the
   * turn must see: handover/calls.ts). `timing`: the POST's steps (metrics/turn-timings.ts).
   */
  async store(endpointId: string, events: InboxEvent[], options: { early?: boolean; timing?: RequestTiming | undefined } = {}): Promise<StoreResult> {
    const { early = false, timing } = options;
    if (events.length === 0) return { stored: [], duplicates: 0 };
    const receivedAt = this.clock.now();
    const statements: InStatement[] = [];
    for (let i = 0; i < events.length; i += ROWS_PER_STATEMENT) {
      const chunk = events.slice(i, i + ROWS_PER_STATEMENT);
      statements.push({
        sql: events.length === 1 ? INSERT_ONE_SQL : insertSql(chunk.length),
        // In the order of INSERTED.
        args: chunk.flatMap((e) => [endpointId, e.pageId, e.userId, e.kind, e.standby ? 1 : 0, e.dedupKey, e.timestamp, receivedAt, JSON.stringify(e.item)]),
      });
    }
    // A webhook's events go to the engine as soon as they are committed, while the fsync runs: a
    // turn shows nothing outside before its own durable write (the reply's "sending" mark,
    // replies/delivery.ts), which the WAL orders after these rows. The 200 waits for the fsync.
    let outcome: StoreResult = { stored: [], duplicates: 0 };
    await this.writes.run(statements, {
      linger: early,
      onCommit: (results) => {
        outcome = this.#fresh(events, results);
        timing?.stored(outcome.stored.map((e) => e.inboxId));
        if (early && outcome.stored.length > 0) this.#notify(endpointId, outcome.stored);
      },
    });
    timing?.fsynced();
    if (!early && outcome.stored.length > 0) this.#notify(endpointId, outcome.stored);
    return outcome;
  }

  /**
   * The events the commit wrote (the unique dedup index, on the event's time and dedup key, skips
   * redeliveries): for one event, whether its INSERT wrote a row; for several, the rows RETURNING
   * names.
   */
  #fresh(events: InboxEvent[], results: ResultSet[]): StoreResult {
    if (events.length === 1) {
      const written = results[0]!.rowsAffected === 1;
      return written ? { stored: [{ ...events[0]!, inboxId: insertedIds(results[0]!, 1) }], duplicates: 0 } : { stored: [], duplicates: 1 };
    }
    const fresh = new Map<string, number>();
    for (const result of results) {
      for (const row of result.rows) {
        const { dedupKey, timestamp, id } = readReturned(row);
        fresh.set(uniqueKey(timestamp, dedupKey), id);
      }
    }
    const stored: StoredEvent[] = [];
    let duplicates = 0;
    for (const event of events) {
      // A second copy of one event in the same POST is a duplicate too.
      const unique = uniqueKey(event.timestamp, event.dedupKey);
      const inboxId = fresh.get(unique);
      if (inboxId === undefined) {
        duplicates++;
        continue;
      }
      fresh.delete(unique);
      stored.push({ ...event, inboxId });
    }
    return { stored, duplicates };
  }

  #notify(endpointId: string, stored: StoredEvent[]): void {
    for (const listener of this.#listeners) {
      try {
        listener(endpointId, stored);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }
}
