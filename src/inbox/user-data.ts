/**
 * What the inbox stores about a person — the events they sent, and the inputs injected for them —
 * for the GDPR export and erasure: a part of the user-data registry (people/user-data.ts),
 * registered by app.ts. The inbox sits below people/, so this is a plain object of that shape
 * (app.ts checks it). The events also tell which Page a PSID wrote to.
 */
import { and, asc, desc, ne } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { inbox } from "../db/schema.ts";
import { userRows } from "../db/user-rows.ts";
import { isoTime, storedJson } from "../db/values.ts";
import type { UserKey } from "../core/user-key.ts";

export function inboxData(database: Database) {
  const { db } = database;
  const rows = userRows(db, inbox);
  return {
    name: "events_received",
    async export(subject: { keys: readonly UserKey[] }) {
      const out = [];
      for (const k of subject.keys) {
        const found = await db
          .select({ pageId: inbox.pageId, kind: inbox.kind, timestamp: inbox.timestamp, event: inbox.event })
          .from(inbox)
          .where(rows.of(k))
          .orderBy(asc(inbox.timestamp), asc(inbox.id));
        for (const r of found) out.push({ page_id: r.pageId, kind: r.kind, timestamp: isoTime(r.timestamp), event: storedJson(r.event) });
      }
      return out;
    },
    erase: (subject: { keys: readonly UserKey[] }) => rows.erase(subject.keys),
    pagesOf: rows.pagesOf,
    /** The Page of the PSID's latest event of its own (an injected input does not show that the person wrote there). */
    async latestPage(endpointId: string, userId: string, pageId?: string) {
      const [row] = await db
        .select({ pageId: inbox.pageId })
        .from(inbox)
        .where(and(rows.ofPsid(endpointId, userId, pageId), ne(inbox.kind, "inject")))
        .orderBy(desc(inbox.id))
        .limit(1);
      return row?.pageId ?? null;
    },
  };
}
