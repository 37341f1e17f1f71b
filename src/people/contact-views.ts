/** Contacts as the admin API shows them, and which contact a PSID belongs to. */
import { and, asc, eq } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { contacts, contactUsers } from "../db/schema.ts";
import { isoTime, storedJson } from "../db/values.ts";
import type { UserKey } from "../core/user-key.ts";

export interface ContactView {
  id: string;
  endpoint_id: string;
  profile: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  last_active_at: string;
  users: { page_id: string; user_id: string; first_seen_at: string; last_seen_at: string }[];
}

export class ContactViews {
  constructor(private readonly database: Database) {}

  async contact(id: string): Promise<ContactView | null> {
    const { db } = this.database;
    const [contact] = await db.select().from(contacts).where(eq(contacts.id, id));
    if (!contact) return null;
    const users = await db
      .select({ pageId: contactUsers.pageId, userId: contactUsers.userId, firstSeenAt: contactUsers.firstSeenAt, lastSeenAt: contactUsers.lastSeenAt })
      .from(contactUsers)
      .where(eq(contactUsers.contactId, id))
      .orderBy(asc(contactUsers.firstSeenAt), asc(contactUsers.pageId));
    return {
      id: contact.id,
      endpoint_id: contact.endpointId,
      profile: storedJson(contact.profile) ?? {},
      created_at: isoTime(contact.createdAt),
      updated_at: isoTime(contact.updatedAt),
      last_active_at: isoTime(contact.lastActiveAt),
      users: users.map((u) => ({ page_id: u.pageId, user_id: u.userId, first_seen_at: isoTime(u.firstSeenAt), last_seen_at: isoTime(u.lastSeenAt) })),
    };
  }

  /** Contacts with this PSID (on any endpoint, or on one). */
  async contactsByUser(userId: string, endpointId?: string): Promise<ContactView[]> {
    const linked = await this.database.db
      .selectDistinct({ contactId: contactUsers.contactId })
      .from(contactUsers)
      .where(and(eq(contactUsers.userId, userId), endpointId ? eq(contactUsers.endpointId, endpointId) : undefined));
    const out: ContactView[] = [];
    for (const { contactId } of linked) {
      const contact = await this.contact(contactId);
      if (contact) out.push(contact);
    }
    return out;
  }

  /** The contact of the PSID on this Page, or null. */
  async contactIdOf(key: UserKey): Promise<string | null> {
    const [row] = await this.database.db
      .select({ contactId: contactUsers.contactId })
      .from(contactUsers)
      .where(and(eq(contactUsers.endpointId, key.endpointId), eq(contactUsers.pageId, key.pageId), eq(contactUsers.userId, key.userId)));
    return row?.contactId ?? null;
  }

  /** The contact a PSID of the endpoint is linked to (on any Page it wrote to), or null. */
  async linkedContactId(endpointId: string, userId: string): Promise<string | null> {
    const [row] = await this.database.db
      .select({ contactId: contactUsers.contactId })
      .from(contactUsers)
      .where(and(eq(contactUsers.endpointId, endpointId), eq(contactUsers.userId, userId)))
      .limit(1);
    return row?.contactId ?? null;
  }
}

/** The PSIDs of a contact, as user keys. */
export function keysOf(contact: ContactView): UserKey[] {
  return contact.users.map((u) => ({ endpointId: contact.endpoint_id, pageId: u.page_id, userId: u.user_id }));
}
