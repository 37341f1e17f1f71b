/**
 * The `threads` table (db/schema.ts): one row per user whose thread ever left the bot. No row
 * means the bot has the floor. Rows are read by column name through one reader; every write is
 * the one upsert below, committed through the write queue.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { columnList, rowReader } from "../db/rows.ts";
import { threads } from "../db/schema.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { UserKey } from "../core/user-key.ts";

export type Floor = "bot" | "handover" | "paused";

export interface ThreadState {
  state: Floor;
  ownerAppId: string | null;
  metadata: string | null;
  since: number;
  lastHumanAt: number | null;
  pausedUntil: number | null;
  lastError: string | null;
  /** A take to try again then (it failed for a passing reason). */
  retryAt: number | null;
}

const KEY_FIELDS = ["endpointId", "pageId", "userId"] as const;
const STATE_FIELDS = ["state", "ownerAppId", "metadata", "since", "lastHumanAt", "pausedUntil", "lastError", "retryAt"] as const;
const readKey = rowReader(threads, KEY_FIELDS);
const readState = rowReader(threads, STATE_FIELDS);
const readSince = rowReader(threads, ["since"]);
const STATE_COLUMNS = columnList(threads, STATE_FIELDS);
const KEY_COLUMNS = columnList(threads, KEY_FIELDS);

const SELECT_OPEN_SQL = `SELECT ${KEY_COLUMNS}, ${STATE_COLUMNS} FROM threads WHERE state <> 'bot'`;
const SELECT_RETURNED_SQL = `SELECT ${KEY_COLUMNS}, since FROM threads WHERE state = 'bot' ORDER BY updated_at DESC LIMIT ?`;
const SELECT_ONE_SQL = `SELECT ${STATE_COLUMNS} FROM threads WHERE endpoint_id = ? AND page_id = ? AND user_id = ?`;
const UPSERT_SQL =
  "INSERT INTO threads (endpoint_id, page_id, user_id, state, owner_app_id, metadata, since, last_human_at, paused_until, last_error, retry_at, updated_at) " +
  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, page_id, user_id) DO UPDATE SET state = excluded.state, " +
  "owner_app_id = excluded.owner_app_id, metadata = excluded.metadata, since = excluded.since, last_human_at = excluded.last_human_at, " +
  "paused_until = excluded.paused_until, last_error = excluded.last_error, retry_at = excluded.retry_at, updated_at = excluded.updated_at";

/** A stored state: the row's `state` is one of the three floors (only the upsert below writes it). */
function stateOf(row: ReturnType<typeof readState>): ThreadState {
  return { ...row, state: row.state as Floor };
}

export class ThreadStore {
  constructor(
    private readonly database: Database,
    private readonly writes: WriteQueue,
  ) {}

  /** Every thread the bot does not have (loaded at start). */
  async open(): Promise<{ key: UserKey; state: ThreadState }[]> {
    const result = await this.database.client.execute(SELECT_OPEN_SQL);
    return result.rows.map((row) => ({ key: readKey(row), state: stateOf(readState(row)) }));
  }

  /** The threads that came back to the bot most recently (at most `limit`), oldest first, with when. */
  async recentlyReturned(limit: number): Promise<{ key: UserKey; since: number }[]> {
    const result = await this.database.client.execute({ sql: SELECT_RETURNED_SQL, args: [limit] });
    return result.rows.map((row) => ({ key: readKey(row), since: readSince(row).since })).reverse();
  }

  /** The user's stored state, or null for a user never handed over. */
  async read(key: UserKey): Promise<ThreadState | null> {
    const result = await this.database.client.execute({ sql: SELECT_ONE_SQL, args: [key.endpointId, key.pageId, key.userId] });
    const row = result.rows[0];
    return row ? stateOf(readState(row)) : null;
  }

  /** Writes the state, in one commit with `extra`; resolves once durable (what the lanes hold depends on it). */
  async save(key: UserKey, state: ThreadState, now: number, extra: InStatement[] = []): Promise<void> {
    await this.writes.run([
      {
        sql: UPSERT_SQL,
        args: [
          key.endpointId,
          key.pageId,
          key.userId,
          state.state,
          state.ownerAppId,
          state.metadata,
          state.since,
          state.lastHumanAt,
          state.pausedUntil,
          state.lastError,
          state.retryAt,
          now,
        ],
      },
      ...extra,
    ]);
  }
}
