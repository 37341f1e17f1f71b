/**
 * What people/ itself stores about a person, registered with the user-data registry
 * (people/user-data.ts) like every other feature's: the contact with each PSID's Facebook profile,
 * and the transcript.
 */
import { and, asc, desc, eq } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { contacts, contactUsers, transcripts } from "../db/schema.ts";
import { statement } from "../db/statement.ts";
import { userRows } from "../db/user-rows.ts";
import { isoTimeOrNull, storedJson } from "../db/values.ts";
import type { PartSubject, UserDataPart } from "./user-data.ts";
import { transcriptEntry, type TranscriptEntry } from "./transcripts.ts";

/** The PSIDs' links to the contact, with the Facebook profile cached for each; and the contact. */
export function contactData(database: Database): UserDataPart {
  const { db } = database;
  const rows = userRows(db, contactUsers);
  return {
    name: "facebook_profiles",
    async export(subject: PartSubject) {
      const out: unknown[] = [];
      for (const k of subject.keys) {
        for (const r of await db.select().from(contactUsers).where(rows.of(k))) {
          out.push({
            page_id: r.pageId,
            user_id: r.userId,
            profile: storedJson(r.profile),
            profile_status: r.profileStatus ?? null,
            profile_expires_at: isoTimeOrNull(r.profileExpiresAt),
            linked_at: isoTimeOrNull(r.linkedAt),
          });
        }
      }
      return out;
    },
    erase(subject: PartSubject) {
      const statements = rows.erase(subject.keys);
      if (subject.contact) statements.push(statement(db.delete(contacts).where(eq(contacts.id, subject.contact.id))));
      return statements;
    },
    async latestPage(endpointId: string, userId: string, pageId?: string) {
      const [row] = await db
        .select({ pageId: contactUsers.pageId })
        .from(contactUsers)
        .where(rows.ofPsid(endpointId, userId, pageId))
        .orderBy(desc(contactUsers.lastSeenAt))
        .limit(1);
      return row?.pageId ?? null;
    },
    async knows(userId: string, endpointId?: string) {
      const found = await db
        .select({ userId: contactUsers.userId })
        .from(contactUsers)
        .where(and(eq(contactUsers.userId, userId), endpointId ? eq(contactUsers.endpointId, endpointId) : undefined))
        .limit(1);
      return found.length > 0;
    },
  };
}

/**
 * The transcript: each PSID's lines, exported and erased. A contact's lines are those of its PSIDs
 * (a merge moves the other contact's PSIDs and lines together: people/store.ts), so erasing the
 * PSIDs erases them.
 */
export function transcriptData(database: Database): UserDataPart {
  const { db } = database;
  const rows = userRows(db, transcripts);
  return {
    name: "transcript",
    async export(subject: PartSubject) {
      const out: TranscriptEntry[] = [];
      for (const k of subject.keys) out.push(...(await db.select().from(transcripts).where(rows.of(k)).orderBy(asc(transcripts.id))).map(transcriptEntry));
      return out;
    },
    erase: (subject: PartSubject) => rows.erase(subject.keys),
    pagesOf: rows.pagesOf,
  };
}
