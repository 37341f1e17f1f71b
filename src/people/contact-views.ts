/**
 * Contacts as the admin API shows them, and which contact a PSID belongs to. Hand-written SQL:
 * these answer admin API requests, and drizzle's query builder would add the building of each
 * query to every request.
 */
import type { Database } from "../db/client.ts";
import { columnList, rowReader } from "../db/rows.ts";
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

const CONTACT_KEYS = ["id", "endpointId", "profile", "createdAt", "updatedAt", "lastActiveAt"] as const;
const CONTACT_SQL = `SELECT ${columnList(contacts, CONTACT_KEYS)} FROM contacts WHERE id = ?`;
const readContact = rowReader(contacts, CONTACT_KEYS);

const USER_KEYS = ["pageId", "userId", "firstSeenAt", "lastSeenAt"] as const;
const USERS_SQL = `SELECT ${columnList(contactUsers, USER_KEYS)} FROM contact_users WHERE contact_id = ? ORDER BY first_seen_at, page_id`;
const readUser = rowReader(contactUsers, USER_KEYS);

const readContactId = rowReader(contactUsers, ["contactId"]);
const CONTACTS_OF_USER_SQL = "SELECT DISTINCT contact_id FROM contact_users WHERE user_id = ?";
const CONTACTS_OF_ENDPOINT_USER_SQL = "SELECT DISTINCT contact_id FROM contact_users WHERE user_id = ? AND endpoint_id = ?";
const CONTACT_OF_KEY_SQL = "SELECT contact_id FROM contact_users WHERE endpoint_id = ? AND page_id = ? AND user_id = ?";
const LINKED_CONTACT_SQL = "SELECT contact_id FROM contact_users WHERE endpoint_id = ? AND user_id = ? LIMIT 1";

export class ContactViews {
  constructor(private readonly database: Database) {}

  async contact(id: string): Promise<ContactView | null> {
    const { client } = this.database;
    const row = (await client.execute({ sql: CONTACT_SQL, args: [id] })).rows[0];
    if (!row) return null;
    const contact = readContact(row);
    const users = (await client.execute({ sql: USERS_SQL, args: [id] })).rows.map(readUser);
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
    const linked = await this.database.client.execute(
      endpointId ? { sql: CONTACTS_OF_ENDPOINT_USER_SQL, args: [userId, endpointId] } : { sql: CONTACTS_OF_USER_SQL, args: [userId] },
    );
    const out: ContactView[] = [];
    for (const { contactId } of linked.rows.map(readContactId)) {
      const contact = await this.contact(contactId);
      if (contact) out.push(contact);
    }
    return out;
  }

  /** The contact of the PSID on this Page, or null. */
  async contactIdOf(key: UserKey): Promise<string | null> {
    const row = (await this.database.client.execute({ sql: CONTACT_OF_KEY_SQL, args: [key.endpointId, key.pageId, key.userId] })).rows[0];
    return row ? readContactId(row).contactId : null;
  }

  /** The contact a PSID of the endpoint is linked to (on any Page it wrote to), or null. */
  async linkedContactId(endpointId: string, userId: string): Promise<string | null> {
    const row = (await this.database.client.execute({ sql: LINKED_CONTACT_SQL, args: [endpointId, userId] })).rows[0];
    return row ? readContactId(row).contactId : null;
  }
}

/** The PSIDs of a contact, as user keys. */
export function keysOf(contact: ContactView): UserKey[] {
  return contact.users.map((u) => ({ endpointId: contact.endpoint_id, pageId: u.page_id, userId: u.user_id }));
}
