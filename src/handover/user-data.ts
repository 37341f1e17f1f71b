/**
 * What the handover stores about a person — who has the floor in their thread, and its last
 * change — for the GDPR export and erasure: a part of the user-data registry
 * (people/user-data.ts), registered by app.ts.
 */
import { and, eq } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { threads } from "../db/schema.ts";
import { statement } from "../db/statement.ts";
import { isoTime, isoTimeOrNull } from "../db/values.ts";
import type { UserKey } from "../core/user-key.ts";

export function threadData(database: Database) {
  const { db } = database;
  const ofKey = (k: UserKey) => and(eq(threads.endpointId, k.endpointId), eq(threads.pageId, k.pageId), eq(threads.userId, k.userId));
  return {
    name: "handover",
    async export(subject: { keys: readonly UserKey[] }) {
      const out = [];
      for (const k of subject.keys) {
        for (const r of await db.select().from(threads).where(ofKey(k))) {
          out.push({
            page_id: r.pageId,
            state: r.state,
            owner_app_id: r.ownerAppId ?? null,
            metadata: r.metadata ?? null,
            since: isoTime(r.since),
            last_human_at: isoTimeOrNull(r.lastHumanAt),
            paused_until: isoTimeOrNull(r.pausedUntil),
            last_error: r.lastError ?? null,
          });
        }
      }
      return out;
    },
    erase(subject: { keys: readonly UserKey[] }) {
      return subject.keys.map((k) => statement(db.delete(threads).where(ofKey(k))));
    },
  };
}
