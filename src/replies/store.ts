/**
 * The reply lanes' SQL: the open rows of `outbox` (db/schema.ts) read at start, the marks of each
 * send, and the proof that echoes arrive (kept in `meta`). Rows are read by column name through
 * the readers below. The marks run once or twice per message: plain SQL (no query building on the
 * hot path), with the status values as literals so that SQLite uses the partial index over open
 * items. Enqueueing is in outbox.ts.
 */
import type { InStatement, Row } from "@libsql/client";
import { count, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { column, columnList, rowReader } from "../db/rows.ts";
import { soleOwner, type Ownership } from "../cluster/ownership.ts";
import { meta, outbox } from "../db/schema.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { OutboxItem } from "./outbox.ts";
import type { UserKey } from "../core/user-key.ts";

const OPEN_FIELDS = ["id", "endpointId", "pageId", "userId", "kind", "body", "status", "attempts", "nextAttemptAt", "firstAttemptAt", "lastError"] as const;
const readOpen = rowReader(outbox, OPEN_FIELDS);
const SELECT_OPEN_SQL = `SELECT ${columnList(outbox, OPEN_FIELDS)} FROM outbox WHERE status IN ('pending', 'sending') ORDER BY id`;

// An echo may have marked the item sent since the lane looked at it (a late answer, a send
// interrupted by a crash): then nothing is to be sent, and the guard makes that visible.
const MAX_ID_SQL = "SELECT max(id) AS id FROM outbox";
const SELECT_OPEN_BETWEEN_SQL = `SELECT ${columnList(outbox, OPEN_FIELDS)} FROM outbox WHERE id > ? AND id <= ? AND status IN ('pending', 'sending') ORDER BY id`;
const MARK_SENDING_SQL = "UPDATE outbox SET status = 'sending', attempts = ?, first_attempt_at = ? WHERE id = ? AND status IN ('pending', 'sending')";
const UNMARK_SQL = "UPDATE outbox SET status = 'pending', attempts = 0, first_attempt_at = NULL WHERE id = ? AND status = 'sending'";
const MARK_SENT_SQL = "UPDATE outbox SET status = 'sent', message_id = ?, sent_at = ?, next_attempt_at = NULL WHERE id = ?";
// Both only touch an item that is still open: an echo that marked it sent wins over a late error.
const REOPEN_SQL = "UPDATE outbox SET status = 'pending', next_attempt_at = ?, last_error = ? WHERE id = ? AND status IN ('pending', 'sending')";
const FINISH_SQL = "UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = NULL WHERE id = ? AND status IN ('pending', 'sending')";
// Graph took it, but whether the user has it is not known: its echo, if one comes, makes it sent.
const MARK_UNCONFIRMED_SQL =
  "UPDATE outbox SET status = 'unconfirmed', sent_at = ?, last_error = ?, next_attempt_at = NULL WHERE id = ? AND status IN ('pending', 'sending')";
// An unclear answer, while the lane waits for the echo: the row stays "sending", marked.
const MARK_UNCLEAR_SQL = "UPDATE outbox SET last_error = ? WHERE id = ? AND status = 'sending'";
/** What MARK_UNCLEAR_SQL's `last_error` carries (failures.ts writes it as JSON). */
const UNCLEAR_MARK = '"unclear":true';

// Whether a message was sent (or taken, unconfirmed) to this user before: a user_ref takes one (recipient.ts).
const SENT_BEFORE_SQL =
  "SELECT 1 FROM outbox WHERE endpoint_id = ? AND page_id = ? AND user_id = ? AND kind = 'message' AND status IN ('sent', 'unconfirmed') AND id <> ? LIMIT 1";

/** `meta` keys `echoes_seen:<endpoint>:<page>`: when an echo of ours last came back (ms, as text). */
const ECHOES_SEEN_PREFIX = "echoes_seen:";
const readMeta = rowReader(meta, ["key", "value"]);
const SELECT_ECHOES_SEEN_SQL = `SELECT key, value FROM meta WHERE key LIKE '${ECHOES_SEEN_PREFIX}%'`;
const UPSERT_META_SQL =
  "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

/**
 * Our own message came back as an echo: it is sent. Only the row of this very user, and only one
 * not yet known as sent.
 */
const ECHO_SENT_SQL =
  "UPDATE outbox SET status = 'sent', message_id = coalesce(message_id, ?), sent_at = coalesce(sent_at, ?) " +
  "WHERE id = ? AND endpoint_id = ? AND page_id = ? AND user_id = ? AND status IN ('pending', 'sending', 'unconfirmed')";
const SENT_TO_USER = "endpoint_id = ? AND page_id = ? AND user_id = ? AND status = 'sent'";
const DELIVERED_BEFORE_SQL = `UPDATE outbox SET delivered_at = ? WHERE ${SENT_TO_USER} AND delivered_at IS NULL AND sent_at <= ?`;
/** Everything delivered before the watermark (both times are Meta's clock), or sent before it by ours. */
const READ_SQL = `UPDATE outbox SET read_at = ? WHERE ${SENT_TO_USER} AND read_at IS NULL AND ((delivered_at IS NOT NULL AND delivered_at <= ?) OR sent_at <= ?)`;
/** A delivery that names its messages: the statement for `count` of them. */
const deliveredMidsSql = (count: number) =>
  `UPDATE outbox SET delivered_at = ? WHERE ${SENT_TO_USER} AND delivered_at IS NULL AND message_id IN (${Array.from({ length: count }, () => "?").join(", ")})`;

/** Our message `outboxId` came back as an echo with this mid (conversations/state-events.ts). */
export function echoSentStatement(key: UserKey, outboxId: number, mid: string, now: number): InStatement {
  return { sql: ECHO_SENT_SQL, args: [mid, now, outboxId, key.endpointId, key.pageId, key.userId] };
}

/** A delivery: of these messages, or (none named) of everything sent up to the watermark. */
export function deliveredStatement(key: UserKey, mids: string[], watermark: number, now: number): InStatement {
  return mids.length > 0
    ? { sql: deliveredMidsSql(mids.length), args: [watermark || now, key.endpointId, key.pageId, key.userId, ...mids] }
    : { sql: DELIVERED_BEFORE_SQL, args: [watermark || now, key.endpointId, key.pageId, key.userId, watermark] };
}

/** A read up to the watermark. */
export function readStatement(key: UserKey, watermark: number, now: number): InStatement {
  return { sql: READ_SQL, args: [watermark || now, key.endpointId, key.pageId, key.userId, watermark, watermark] };
}

export class ReplyStore {
  constructor(
    private readonly database: Database,
    private readonly writes: WriteQueue,
    private readonly ownership: Ownership = soleOwner,
  ) {}

  /** Every open item (pending or sending), in `id` order; `unclear`: marked by `markUnclear` before the server stopped. */
  async openItems(): Promise<{ item: OutboxItem; unclear: boolean }[]> {
    const result = await this.database.client.execute(SELECT_OPEN_SQL);
    return result.rows.map(readOpenItem);
  }

  /** The id of the newest outbox row (0 when none). */
  async maxOutboxId(): Promise<number> {
    const result = await this.database.client.execute(MAX_ID_SQL);
    return Number(column(result.rows[0], "id") ?? 0);
  }

  /** Open items stored after `after` up to `upTo` (ids), by any instance (scale-out: docs/scale-out.md). */
  async openItemsBetween(after: number, upTo: number): Promise<{ item: OutboxItem; unclear: boolean }[]> {
    const result = await this.database.client.execute({ sql: SELECT_OPEN_BETWEEN_SQL, args: [after, upTo] });
    return result.rows.map(readOpenItem);
  }

  /** Items waiting in open lanes, per endpoint. (The literal statuses keep to the partial index.) */
  async queueDepth(): Promise<Map<string, number>> {
    const rows = await this.database.db
      .select({ endpointId: outbox.endpointId, n: count() })
      .from(outbox)
      .where(sql`${outbox.status} IN ('pending', 'sending')`)
      .groupBy(outbox.endpointId);
    return new Map(rows.map((r) => [r.endpointId, r.n]));
  }

  /** Whether a message to this item's user was sent (or taken) before it. */
  async sentBefore(item: OutboxItem): Promise<boolean> {
    const result = await this.database.client.execute({ sql: SENT_BEFORE_SQL, args: [item.endpointId, item.pageId, item.userId, item.id] });
    return result.rows.length > 0;
  }

  /** When an echo of ours last came back, per `<endpoint>:<page>`. */
  async echoesSeen(): Promise<Map<string, number>> {
    const result = await this.database.client.execute(SELECT_ECHOES_SEEN_SQL);
    const seen = new Map<string, number>();
    for (const row of result.rows) {
      const { key, value } = readMeta(row);
      const at = Number(value);
      if (Number.isFinite(at)) seen.set(key.slice(ECHOES_SEEN_PREFIX.length), at);
    }
    return seen;
  }

  /** Remembers when an echo of ours came back for `<endpoint>:<page>` (committed with the echo). */
  echoSeenStatement(page: string, at: number): InStatement {
    return { sql: UPSERT_META_SQL, args: [`${ECHOES_SEEN_PREFIX}${page}`, String(at), at] };
  }

  /**
   * Marks the item "sending" before the call (durably, so a crash in between is recognised at the
   * next start). False when it was closed meanwhile (its echo marked it sent): nothing to send.
   */
  async markSending(key: UserKey, id: number, attempts: number, firstAttemptAt: number): Promise<boolean> {
    const mark = { sql: MARK_SENDING_SQL, args: [attempts, firstAttemptAt, id] };
    // With several instances the fence goes first (docs/scale-out.md): only the partition's holder marks a send.
    const fence = this.ownership.fence(key, { outboxId: id });
    const results = await this.writes.run(fence ? [fence, mark] : [mark]);
    return results[results.length - 1]!.rowsAffected > 0;
  }

  /**
   * A message committed "sending" with its turn (outbox.ts `markFirst`) that will not be sent at
   * once after all (the floor left, the Page paused, the lanes stop): pending again, so that a
   * restart sends it instead of waiting for an echo that cannot come. Nothing for other items.
   */
  async release(item: OutboxItem): Promise<void> {
    if (!item.premarked) return;
    item.premarked = false;
    await this.writes.run([{ sql: UNMARK_SQL, args: [item.id] }], { durable: false });
    item.status = "pending";
    item.attempts = 0;
    item.firstAttemptAt = null;
  }

  /** The "sent" mark, to commit with something else (a handover's new state). */
  sentStatement(id: number, messageId: string | null, at: number): InStatement {
    return { sql: MARK_SENT_SQL, args: [messageId, at, id] };
  }

  // The marks below need no fsync of their own: the next "sending" mark's fsync covers them (write-queue.ts RunOptions).

  markSent(id: number, messageId: string | null, at: number): Promise<unknown> {
    return this.writes.run([this.sentStatement(id, messageId, at)], { durable: false });
  }

  markUnconfirmed(id: number, at: number, error: string): Promise<unknown> {
    return this.writes.run([{ sql: MARK_UNCONFIRMED_SQL, args: [at, error, id] }], { durable: false });
  }

  /** Kept on the row while the lane waits for the echo: after a restart it is not taken for a send the crash interrupted. */
  markUnclear(id: number, error: string): Promise<unknown> {
    return this.writes.run([{ sql: MARK_UNCLEAR_SQL, args: [error, id] }], { durable: false });
  }

  /** Back to pending, to be tried at `nextAttemptAt`. */
  reopen(id: number, nextAttemptAt: number | null, error: string): Promise<unknown> {
    return this.writes.run([{ sql: REOPEN_SQL, args: [nextAttemptAt, error, id] }], { durable: false });
  }

  /** Gives items up (failed or dropped), with `extra` in the same commit. */
  finish(items: { id: number; status: "failed" | "dropped"; error: string }[], extra: InStatement[] = []): Promise<unknown> {
    return this.writes.run([...items.map((i) => ({ sql: FINISH_SQL, args: [i.status, i.error, i.id] })), ...extra], { durable: false });
  }
}

function readOpenItem(row: Row): { item: OutboxItem; unclear: boolean } {
  const { lastError, ...item } = readOpen(row);
  return {
    item: { ...item, status: item.status as OutboxItem["status"] },
    unclear: item.status === "sending" && lastError !== null && lastError.includes(UNCLEAR_MARK),
  };
}
