/**
 * Sessions as the admin API shows them (list by PSID, reset). The sessions themselves belong to
 * the conversations (conversations/sessions.ts); these are their views for the operator.
 * Hand-written SQL: they answer admin API requests.
 */
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { columnList, rowReader } from "../db/rows.ts";
import { sessions } from "../db/schema.ts";
import { isoTime, isoTimeOrNull, storedJson } from "../db/values.ts";

export interface SessionView {
  id: string;
  endpoint_id: string;
  page_id: string;
  user_id: string;
  context: Record<string, unknown>;
  created_at: string;
  last_active_at: string;
  ended_at: string | null;
  current: boolean;
}

const SESSION_KEYS = ["id", "endpointId", "pageId", "userId", "context", "createdAt", "lastActiveAt", "endedAt"] as const;
const COLUMNS = columnList(sessions, SESSION_KEYS);
const readSession = rowReader(sessions, SESSION_KEYS);
const OF_USER_SQL = `SELECT ${COLUMNS} FROM sessions WHERE user_id = ? ORDER BY created_at DESC`;
const OF_ENDPOINT_USER_SQL = `SELECT ${COLUMNS} FROM sessions WHERE user_id = ? AND endpoint_id = ? ORDER BY created_at DESC`;
const BY_ID_SQL = `SELECT ${COLUMNS} FROM sessions WHERE id = ?`;
const END_SQL = "UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL";

export function sessionView(row: Pick<typeof sessions.$inferSelect, (typeof SESSION_KEYS)[number]>): SessionView {
  return {
    id: row.id,
    endpoint_id: row.endpointId,
    page_id: row.pageId,
    user_id: row.userId,
    context: storedJson(row.context) ?? {},
    created_at: isoTime(row.createdAt),
    last_active_at: isoTime(row.lastActiveAt),
    ended_at: isoTimeOrNull(row.endedAt),
    current: row.endedAt === null,
  };
}

export class SessionViews {
  constructor(
    private readonly database: Database,
    private readonly writes: WriteQueue,
  ) {}

  /** The PSID's sessions (on one endpoint, or on any), newest first. */
  async sessions(filter: { endpointId?: string; userId: string }): Promise<SessionView[]> {
    const result = await this.database.client.execute(
      filter.endpointId ? { sql: OF_ENDPOINT_USER_SQL, args: [filter.userId, filter.endpointId] } : { sql: OF_USER_SQL, args: [filter.userId] },
    );
    return result.rows.map((row) => sessionView(readSession(row)));
  }

  async session(id: string): Promise<SessionView | null> {
    const row = (await this.database.client.execute({ sql: BY_ID_SQL, args: [id] })).rows[0];
    return row ? sessionView(readSession(row)) : null;
  }

  /** Ends the session: the user's next input starts a new one with an empty context. */
  async resetSession(id: string, now: number): Promise<SessionView | null> {
    const session = await this.session(id);
    if (!session) return null;
    if (session.current) await this.writes.run([{ sql: END_SQL, args: [now, id] }]);
    return session;
  }
}
