/**
 * What the reply lanes store about a person — the messages sent (or to be sent) to them — for the
 * GDPR export and erasure: a part of the user-data registry (people/user-data.ts), registered by
 * app.ts.
 */
import { asc } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { outbox } from "../db/schema.ts";
import { userRows } from "../db/user-rows.ts";
import { isoTime, isoTimeOrNull, storedJson } from "../db/values.ts";
import type { UserKey } from "../core/user-key.ts";

export function outboxData(database: Database) {
  const { db } = database;
  const rows = userRows(db, outbox);
  return {
    name: "messages_sent",
    async export(subject: { keys: readonly UserKey[] }) {
      const out = [];
      for (const k of subject.keys) {
        const found = await db
          .select({
            pageId: outbox.pageId,
            source: outbox.source,
            body: outbox.body,
            status: outbox.status,
            createdAt: outbox.createdAt,
            sentAt: outbox.sentAt,
          })
          .from(outbox)
          .where(rows.of(k))
          .orderBy(asc(outbox.id));
        for (const r of found)
          out.push({
            page_id: r.pageId,
            source: r.source,
            body: storedJson(r.body),
            status: r.status,
            created_at: isoTime(r.createdAt),
            sent_at: isoTimeOrNull(r.sentAt),
          });
      }
      return out;
    },
    erase: (subject: { keys: readonly UserKey[] }) => rows.erase(subject.keys),
    pagesOf: rows.pagesOf,
  };
}
