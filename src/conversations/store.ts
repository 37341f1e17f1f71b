/**
 * The SQL of the conversation engine: the start-up scan of the inbox and the marks that finish an
 * event (done, failed, a failed attempt); what echoes, deliveries and reads change in the outbox is
 * the reply lanes' (replies/store.ts). The marks run once per message, so they are plain SQL; rows come
 * back read by column name (db/rows.ts). An error is stored scrubbed of the settings' secrets
 * (log/scrub.ts): backups of the database travel further than the log.
 */
import type { InStatement } from "@libsql/client";
import { eq } from "drizzle-orm";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { Database } from "../db/client.ts";
import { columnList, rowReader } from "../db/rows.ts";
import { inbox } from "../db/schema.ts";
import { statement } from "../db/statement.ts";
import { scrub } from "../log/scrub.ts";
import { STATE_KINDS, type EventKind } from "../inbox/events.ts";
import type { PendingEvent } from "./pending.ts";

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

const DONE_SQL = "UPDATE inbox SET status = 'done', processed_at = ?, last_error = ? WHERE id = ?";
/** A state event as the inbox reported it after its commit has no row id in hand: found by its dedup key. */
const STATE_DONE_BY_ID_SQL = "UPDATE inbox SET status = 'done', processed_at = ? WHERE id = ?";
const STATE_DONE_BY_KEY_SQL = "UPDATE inbox SET status = 'done', processed_at = ? WHERE endpoint_id = ? AND dedup_key = ?";
const FAILED_BY_ID_SQL = "UPDATE inbox SET status = 'failed', processed_at = ?, last_error = ? WHERE id = ?";
const FAILED_BY_KEY_SQL = "UPDATE inbox SET status = 'failed', processed_at = ?, last_error = ? WHERE endpoint_id = ? AND dedup_key = ?";

/** An echo, delivery or read event found by the start-up scan. */
export interface ScannedStateEvent {
  key: UserKey;
  kind: EventKind;
  standby: boolean;
  item: Record<string, unknown>;
  inboxId: number;
}

/** Which inbox row a state event is: its id, or (reported by the inbox after its commit) its dedup key. */
export interface StateEventRow {
  key: UserKey;
  inboxId?: number;
  dedupKey?: string;
}

export class ConversationStore {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly secrets: readonly string[],
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

  /** The start-up scan, second half: every other unfinished event, for its user's work list. */
  async pendingInboundEvents(): Promise<{ key: UserKey; event: PendingEvent }[]> {
    const result = await this.database.client.execute(PENDING_INBOUND_SQL);
    return result.rows.map((raw) => {
      const row = readScanned(raw);
      return {
        key: { endpointId: row.endpointId, pageId: row.pageId, userId: row.userId },
        event: { id: row.id, kind: row.kind as EventKind, standby: row.standby, timestamp: row.timestamp, item: JSON.parse(row.event), attempts: row.attempts },
      };
    });
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
    return e.inboxId !== undefined
      ? { sql: STATE_DONE_BY_ID_SQL, args: [now, e.inboxId] }
      : { sql: STATE_DONE_BY_KEY_SQL, args: [now, e.key.endpointId, e.dedupKey!] };
  }

  /** A state event that cannot be applied is set aside, with why. */
  stateFailed(e: StateEventRow, error: string, now: number): InStatement {
    const message = this.storable(error);
    return e.inboxId !== undefined
      ? { sql: FAILED_BY_ID_SQL, args: [now, message, e.inboxId] }
      : { sql: FAILED_BY_KEY_SQL, args: [now, message, e.key.endpointId, e.dedupKey!] };
  }

  /** An error as stored: without the secrets a log line would lose. */
  storable(error: string): string {
    return scrub(error, this.secrets);
  }
}
