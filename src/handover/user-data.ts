/**
 * What the handover stores about a person — who has the floor in their thread, and its last
 * change — for the GDPR export and erasure: a part of the user-data registry
 * (people/user-data.ts), registered by app.ts.
 */
import type { Database } from "../db/client.ts";
import { threads } from "../db/schema.ts";
import { userRows } from "../db/user-rows.ts";
import { isoTime, isoTimeOrNull } from "../db/values.ts";
import type { UserKey } from "../core/user-key.ts";

export function threadData(database: Database) {
  const { db } = database;
  const rows = userRows(db, threads);
  return {
    name: "handover",
    async export(subject: { keys: readonly UserKey[] }) {
      const out = [];
      for (const k of subject.keys) {
        for (const r of await db.select().from(threads).where(rows.of(k))) {
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
    erase: (subject: { keys: readonly UserKey[] }) => rows.erase(subject.keys),
  };
}
