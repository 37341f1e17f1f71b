/**
 * The contacts' SQL for the turn (people/contacts.ts): what is stored about a PSID (its contact,
 * its Facebook profile and their cache times) read in one query, and the statements that write it
 * back, committed with the turn. It runs for every turn of a user not in the cache, so it is
 * hand-written, as named constants beside their row readers.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { rowReader } from "../db/rows.ts";
import { contacts, contactUsers } from "../db/schema.ts";
import type { UserKey } from "../core/user-key.ts";
import { profilePatch } from "./contact-fields.ts";

export type ProfileStatus = "ok" | "unavailable" | "denied" | "error";

/** What is known about one PSID: its contact and its Facebook profile (kept in memory between turns). */
export interface StoredUser {
  contactId: string | null;
  contactProfile: Record<string, unknown>;
  profile: Record<string, unknown> | null;
  profileStatus: ProfileStatus | null;
  profileExpiresAt: number;
  linkedAt: number | null;
  /** When this PSID's rows were last written (their last_seen_at); 0 when never. */
  touchedAt: number;
}

/** A PSID's row and its contact's profile (`contact_profile`: both tables have a `profile`). */
const LOAD_SQL =
  "SELECT u.contact_id, u.profile, u.profile_status, u.profile_expires_at, u.linked_at, u.last_seen_at, c.profile AS contact_profile " +
  "FROM contact_users u LEFT JOIN contacts c ON c.id = u.contact_id WHERE u.endpoint_id = ? AND u.page_id = ? AND u.user_id = ?";
const readLoaded = rowReader(contactUsers, ["contactId", "profile", "profileStatus", "profileExpiresAt", "linkedAt", "lastSeenAt"]);

/** Another PSID of the person (ids_for_pages): its contact, with that contact's profile and age. */
const LINKED_SQL =
  "SELECT u.contact_id, c.profile, c.created_at FROM contact_users u LEFT JOIN contacts c ON c.id = u.contact_id WHERE u.endpoint_id = ? AND u.page_id = ? AND u.user_id = ?";
const readLinkedUser = rowReader(contactUsers, ["contactId"]);
const readLinkedContact = rowReader(contacts, ["profile", "createdAt"]);

const CREATED_AT_SQL = "SELECT created_at FROM contacts WHERE id = ?";
const readCreatedAt = rowReader(contacts, ["createdAt"]);

const UPSERT_USER_SQL =
  "INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, profile, profile_status, profile_expires_at, linked_at, first_seen_at, last_seen_at) " +
  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, page_id, user_id) DO UPDATE SET " +
  "profile = excluded.profile, profile_status = excluded.profile_status, profile_expires_at = excluded.profile_expires_at, " +
  "linked_at = coalesce(excluded.linked_at, contact_users.linked_at), last_seen_at = excluded.last_seen_at, " +
  // The link stays (another turn or a merge may have set it meanwhile) unless its contact is gone.
  "contact_id = CASE WHEN EXISTS (SELECT 1 FROM contacts WHERE id = contact_users.contact_id) THEN contact_users.contact_id ELSE excluded.contact_id END";

/**
 * Creates a contact row with the whole profile (?3), or updates the stored one with the fields the
 * turn changed (people/contact-fields.ts): the fields to remove (?4), then those to set (?5), so a
 * field another PSID of the contact wrote meanwhile stays. An UPSERT: a contact purged while the
 * turn ran comes back.
 */
const UPSERT_CONTACT_SQL =
  "INSERT INTO contacts (id, endpoint_id, profile, created_at, updated_at, last_active_at) VALUES (?1, ?2, ?3, ?6, ?6, ?6) " +
  "ON CONFLICT (id) DO UPDATE SET last_active_at = excluded.last_active_at, " +
  "profile = CASE WHEN ?4 = '{}' AND ?5 = '{}' THEN contacts.profile ELSE json_patch(json_patch(contacts.profile, ?4), ?5) END, " +
  "updated_at = CASE WHEN ?4 = '{}' AND ?5 = '{}' THEN contacts.updated_at ELSE excluded.updated_at END";

/**
 * The last statement of a turn that wrote contact rows: a contact this PSID does not belong to
 * after all (another turn linked the PSID to the person's contact first) is removed again.
 */
const DROP_ORPHAN_SQL = "DELETE FROM contacts WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM contact_users WHERE contact_id = ?1)";

/** Another PSID of the person, seen for the first time: linked to this contact. */
const LINK_USER_SQL =
  "INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, first_seen_at, last_seen_at, linked_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";

/** A merge's transcript lines: those under the loser (?3) of the PSIDs now of the survivor (?1, ?2). */
const MERGE_TRANSCRIPTS_SQL =
  "UPDATE transcripts SET contact_id = ? WHERE user_id IN (SELECT user_id FROM contact_users WHERE contact_id = ?) AND contact_id = ?";

/** The surviving contact of a merge: the profile of both, the older creation time, the later activity. */
const MERGE_SURVIVOR_SQL =
  "INSERT INTO contacts (id, endpoint_id, profile, created_at, updated_at, last_active_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET " +
  "profile = excluded.profile, created_at = min(contacts.created_at, excluded.created_at), updated_at = excluded.updated_at, " +
  "last_active_at = max(contacts.last_active_at, excluded.last_active_at)";

export class ContactStore {
  constructor(private readonly database: Database) {}

  /** What is stored about the PSID, or null when nothing is. */
  async load(key: UserKey): Promise<StoredUser | null> {
    const result = await this.database.client.execute({ sql: LOAD_SQL, args: [key.endpointId, key.pageId, key.userId] });
    const row = result.rows[0];
    if (!row) return null;
    const user = readLoaded(row);
    const contactProfile = (row as unknown as { contact_profile: string | null }).contact_profile;
    return {
      // A link to a contact that is gone (purged while a turn ran): a new contact is made.
      contactId: contactProfile === null || contactProfile === undefined ? null : user.contactId,
      contactProfile: parseObject(contactProfile) ?? {},
      profile: parseObject(user.profile),
      profileStatus: (user.profileStatus as ProfileStatus | null) ?? null,
      profileExpiresAt: user.profileExpiresAt ?? 0,
      linkedAt: user.linkedAt,
      touchedAt: user.lastSeenAt ?? 0,
    };
  }

  /** The contact another PSID of the endpoint belongs to (its profile and creation time), or null when that PSID is unknown. */
  async linked(
    endpointId: string,
    pageId: string,
    userId: string,
  ): Promise<{ contactId: string; profile: Record<string, unknown>; createdAt: number | null } | null> {
    const result = await this.database.client.execute({ sql: LINKED_SQL, args: [endpointId, pageId, userId] });
    const row = result.rows[0];
    if (!row) return null;
    const contact = readLinkedContact(row);
    return { contactId: readLinkedUser(row).contactId, profile: parseObject(contact.profile) ?? {}, createdAt: contact.createdAt };
  }

  /** When the contact was created, or null when it is not stored (yet). */
  async createdAt(contactId: string | null): Promise<number | null> {
    const result = await this.database.client.execute({ sql: CREATED_AT_SQL, args: [contactId] });
    const row = result.rows[0];
    return row ? readCreatedAt(row).createdAt : null;
  }
}

/** The contact with `profile`, written as the change from `stored` (what the turn read) where the row exists. */
export function upsertContact(
  contactId: string,
  endpointId: string,
  stored: Record<string, unknown>,
  profile: Record<string, unknown>,
  now: number,
): InStatement {
  const patch = profilePatch(stored, profile);
  return { sql: UPSERT_CONTACT_SQL, args: [contactId, endpointId, JSON.stringify(profile), JSON.stringify(patch.remove), JSON.stringify(patch.set), now] };
}

export const upsertUser = (key: UserKey, user: StoredUser, now: number): InStatement => ({
  sql: UPSERT_USER_SQL,
  args: [
    key.endpointId,
    key.pageId,
    key.userId,
    user.contactId,
    user.profile ? JSON.stringify(user.profile) : null,
    user.profileStatus,
    user.profileExpiresAt,
    user.linkedAt,
    now,
    now,
  ],
});

export const dropOrphan = (contactId: string | null): InStatement => ({ sql: DROP_ORPHAN_SQL, args: [contactId] });

export const linkUser = (key: UserKey, contactId: string | null, now: number): InStatement => ({
  sql: LINK_USER_SQL,
  args: [key.endpointId, key.pageId, key.userId, contactId, now, now, now],
});

/** Two contacts of one person become the survivor: its row, then every link and transcript line of the other, which is deleted. */
export function mergeContacts(
  endpointId: string,
  survivor: string,
  loser: string,
  profile: Record<string, unknown>,
  createdAt: number,
  now: number,
): InStatement[] {
  return [
    { sql: MERGE_SURVIVOR_SQL, args: [survivor, endpointId, JSON.stringify(profile), createdAt, now, now] },
    { sql: "UPDATE contact_users SET contact_id = ? WHERE contact_id = ?", args: [survivor, loser] },
    // The loser's PSIDs are the survivor's now (the statement above): their lines, through the index by PSID.
    { sql: MERGE_TRANSCRIPTS_SQL, args: [survivor, survivor, loser] },
    { sql: "DELETE FROM contacts WHERE id = ?", args: [loser] },
  ];
}

function parseObject(value: unknown): Record<string, unknown> | null {
  if (typeof value !== "string") return null;
  try {
    const parsed = JSON.parse(value);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? parsed : null;
  } catch {
    return null;
  }
}
