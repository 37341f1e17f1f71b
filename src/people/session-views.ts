/**
 * Sessions as the admin API shows them (list by PSID, reset). The sessions themselves belong to
 * the conversations (conversations/sessions.ts); these are their views for the operator.
 */
import { and, desc, eq, isNull } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { sessions } from "../db/schema.ts";
import { statement } from "../db/statement.ts";
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

export function sessionView(row: typeof sessions.$inferSelect): SessionView {
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
    const rows = await this.database.db
      .select()
      .from(sessions)
      .where(and(eq(sessions.userId, filter.userId), filter.endpointId ? eq(sessions.endpointId, filter.endpointId) : undefined))
      .orderBy(desc(sessions.createdAt));
    return rows.map(sessionView);
  }

  async session(id: string): Promise<SessionView | null> {
    const [row] = await this.database.db.select().from(sessions).where(eq(sessions.id, id));
    return row ? sessionView(row) : null;
  }

  /** Ends the session: the user's next input starts a new one with an empty context. */
  async resetSession(id: string, now: number): Promise<SessionView | null> {
    const session = await this.session(id);
    if (!session) return null;
    if (session.current) {
      await this.writes.run([statement(this.database.db.update(sessions).set({ endedAt: now }).where(and(eq(sessions.id, id), isNull(sessions.endedAt))))]);
    }
    return session;
  }
}
