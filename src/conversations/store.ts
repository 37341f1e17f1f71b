/**
 * The SQL of the conversation engine: the start-up scan of the inbox and the marks that finish an
 * event (done, failed, a failed attempt); what echoes, deliveries and reads change in the outbox is
 * the reply lanes' (replies/store.ts). The marks run once per message, so they are plain SQL; rows come
 * back read by column name (db/rows.ts). An error is stored scrubbed of the settings' secrets
 * (log/scrub.ts): backups of the database travel further than the log.
 */
import type { InStatement, Row } from "@libsql/client";
import { eq } from "drizzle-orm";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { Database } from "../db/client.ts";
import { column, columnList, rowReader } from "../db/rows.ts";
import { inbox } from "../db/schema.ts";
import { statement } from "../db/statement.ts";
import { scrub } from "../log/scrub.ts";
import { STATE_KINDS, type EventKind } from "../inbox/events.ts";
import type { PendingEvent } from "./pending.ts";
import { soleOwner, type Ownership } from "../cluster/ownership.ts";

/** An inbox row as the engine reads it. */
const SCANNED = ["id", "endpointId", "pageId", "userId", "kind", "standby", "timestamp", "event", "attempts"] as const;
const readScanned = rowReader(inbox, SCANNED);
const stateKindList = [...STATE_KINDS].map((kind) => `'${kind}'`).join(", ");

/**
 * Echoes, deliveries and reads stored and not applied, in arrival order. `status = 'pending'` is
 * written out (not bound) so that SQLite uses the partial index of pending rows (db/schema.ts).
 */
const PENDING_STATE_SQL = `SELECT ${columnList(inbox, SCANNED)} FROM inbox WHERE status = 'pending' AND kind IN (${stateKindList}) ORDER BY id`;

/** Everything else stored and not finished, in each user's order (Facebook's timestamp, then arrival). */
const PENDING_INBOUND_SQL = `SELECT ${columnList(inbox, SCANNED)} FROM inbox WHERE status = 'pending' AND kind NOT IN (${stateKindList}) ORDER BY timestamp, id`;

/** Scale-out (docs/scale-out.md): the newest row, the rows stored since the last look, one user's pending rows. */
const MAX_ID_SQL = "SELECT max(id) AS id FROM inbox";
const PENDING_BETWEEN_SQL = `SELECT ${columnList(inbox, SCANNED)}, received_at FROM inbox WHERE id > ? AND id <= ? AND status = 'pending' ORDER BY id`;
const PENDING_OF_USER_SQL = `SELECT ${columnList(inbox, SCANNED)} FROM inbox WHERE endpoint_id = ? AND page_id = ? AND user_id = ? AND status = 'pending' AND kind NOT IN (${stateKindList}) ORDER BY timestamp, id`;

const DONE_SQL = "UPDATE inbox SET status = 'done', processed_at = ?, last_error = ? WHERE id = ?";
const STATE_DONE_SQL = "UPDATE inbox SET status = 'done', processed_at = ? WHERE id = ?";
const FAILED_SQL = "UPDATE inbox SET status = 'failed', processed_at = ?, last_error = ? WHERE id = ?";

/** A pending inbox row, read back. */
export interface ScannedEvent {
  key: UserKey;
  event: PendingEvent;
  receivedAt?: number;
}

function scanned(raw: Row): ScannedEvent {
  const row = readScanned(raw);
  return {
    key: { endpointId: row.endpointId, pageId: row.pageId, userId: row.userId },
    event: { id: row.id, kind: row.kind as EventKind, standby: row.standby, timestamp: row.timestamp, item: JSON.parse(row.event), attempts: row.attempts },
  };
}

/** An echo, delivery or read event found by the start-up scan. */
export interface ScannedStateEvent {
  key: UserKey;
  kind: EventKind;
  standby: boolean;
  item: Record<string, unknown>;
  inboxId: number;
}

/** Which inbox row a state event is (the inbox hands its id over with the event). */
export interface StateEventRow {
  key: UserKey;
  inboxId: number;
}

export class ConversationStore {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly secrets: readonly string[],
    private readonly ownership: Ownership = soleOwner,
  ) {}

  /** The start-up scan, first half: echoes, deliveries and reads to apply. */
  async pendingStateEvents(): Promise<ScannedStateEvent[]> {
    const result = await this.database.client.execute(PENDING_STATE_SQL);
    return result.rows.map((raw) => {
      const row = readScanned(raw);
      return {
        key: { endpointId: row.endpointId, pageId: row.pageId, userId: row.userId },
        kind: row.kind as EventKind,
        standby: row.standby,
        item: JSON.parse(row.event),
        inboxId: row.id,
      };
    });
  }

  /** The id of the newest inbox row (0 when none). */
  async maxInboxId(): Promise<number> {
    const result = await this.database.client.execute(MAX_ID_SQL);
    return Number(column(result.rows[0], "id") ?? 0);
  }

  /** Pending rows stored after `after` up to `upTo` (ids), by any instance, in arrival order. */
  async pendingBetween(after: number, upTo: number): Promise<ScannedEvent[]> {
    const result = await this.database.client.execute({ sql: PENDING_BETWEEN_SQL, args: [after, upTo] });
    return result.rows.map((raw) => ({ ...scanned(raw), receivedAt: Number(column(raw, "received_at")) }));
  }

  /** One user's pending rows, in their order. */
  async pendingOfUser(key: UserKey): Promise<ScannedEvent[]> {
    const result = await this.database.client.execute({ sql: PENDING_OF_USER_SQL, args: [key.endpointId, key.pageId, key.userId] });
    return result.rows.map(scanned);
  }

  /** The start-up scan, second half: every other unfinished event, for its user's work list. */
  async pendingInboundEvents(): Promise<{ key: UserKey; event: PendingEvent }[]> {
    const result = await this.database.client.execute(PENDING_INBOUND_SQL);
    return result.rows.map(scanned);
  }

  /**
   * The event is finished, as one group to commit: with several instances (docs/scale-out.md), the
   * fence first, so that the mark commits only while this instance holds the user's partition and
   * the event is still pending.
   */
  finish(key: UserKey, inboxId: number, error: string | null): InStatement[] {
    const fence = this.fence(key, inboxId);
    return fence ? [fence, this.done(inboxId, error)] : [this.done(inboxId, error)];
  }

  /** The fence for a turn's commit that finishes this event (null with one instance). */
  fence(key: UserKey, inboxId: number): InStatement | null {
    return this.ownership.fence(key, { inboxId });
  }

  /** The event is finished (with the flow's error, if it failed). */
  done(inboxId: number, error: string | null): InStatement {
    return { sql: DONE_SQL, args: [this.clock.now(), error === null ? null : this.storable(error), inboxId] };
  }

  /**
   * One more of our own failures with this event (not the flow's): counted, and when `giveUp`, the
   * event is set aside as failed. Not on the hot path: drizzle's builder.
   */
  attemptFailed(inboxId: number, attempts: number, error: string, giveUp: boolean): InStatement {
    const setAside = giveUp ? { status: "failed", processedAt: this.clock.now() } : {};
    return statement(
      this.database.db
        .update(inbox)
        .set({ attempts, lastError: this.storable(error), ...setAside })
        .where(eq(inbox.id, inboxId)),
    );
  }

  /** A state event is applied. */
  stateDone(e: StateEventRow, now: number): InStatement {
    return { sql: STATE_DONE_SQL, args: [now, e.inboxId] };
  }

  /** A state event that cannot be applied is set aside, with why. */
  stateFailed(e: StateEventRow, error: string, now: number): InStatement {
    return { sql: FAILED_SQL, args: [now, this.storable(error), e.inboxId] };
  }

  /** An error as stored: without the secrets a log line would lose. */
  storable(error: string): string {
    return scrub(error, this.secrets);
  }
}
