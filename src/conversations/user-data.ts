/**
 * What the conversations store about a person — their sessions (the flow's context) — for the
 * GDPR export and erasure: a part of the user-data registry (people/user-data.ts), registered by
 * app.ts. The sessions also tell which Page a PSID talks to (its latest session), and whether the
 * endpoint knows the PSID.
 */
import { and, asc, desc, eq } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { sessions } from "../db/schema.ts";
import { userRows } from "../db/user-rows.ts";
import type { UserKey } from "../core/user-key.ts";
import { sessionView } from "../people/session-views.ts";

export function sessionData(database: Database) {
  const { db } = database;
  const rows = userRows(db, sessions);
  return {
    name: "sessions",
    async export(subject: { keys: readonly UserKey[] }) {
      const out = [];
      for (const k of subject.keys) out.push(...(await db.select().from(sessions).where(rows.of(k)).orderBy(asc(sessions.createdAt))).map(sessionView));
      return out;
    },
    erase: (subject: { keys: readonly UserKey[] }) => rows.erase(subject.keys),
    pagesOf: rows.pagesOf,
    async latestPage(endpointId: string, userId: string, pageId?: string) {
      const [row] = await db
        .select({ pageId: sessions.pageId })
        .from(sessions)
        .where(rows.ofPsid(endpointId, userId, pageId))
        .orderBy(desc(sessions.lastActiveAt))
        .limit(1);
      return row?.pageId ?? null;
    },
    async knows(userId: string, endpointId?: string) {
      const found = await db
        .select({ id: sessions.id })
        .from(sessions)
        .where(and(eq(sessions.userId, userId), endpointId ? eq(sessions.endpointId, endpointId) : undefined))
        .limit(1);
      return found.length > 0;
    },
  };
}
