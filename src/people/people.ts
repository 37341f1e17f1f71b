/**
 * People (SPEC §7): the Facebook profile of each PSID, and the contact profile the PSID belongs to.
 *
 * Before each turn the engine asks `forTurn` for the user's person:
 * - `request_profile_data`: the profile (`first_name,last_name,profile_pic`, plus
 *   `locale,timezone,gender` unless the Page's app lacks the permission) goes into
 *   `input.data.profile`. Answers are cached per PSID, negative ones too: a profile until the
 *   `ext=` expiry of its picture URL (at most a week), "no profile" (2018218) for a week, "no
 *   permission" for a day, any other failure for ten minutes. A failed fetch never fails the turn.
 * - `update_contact_profiles`: those fields are copied into the contact profile (`input.contact`).
 * - `merge_contact_profiles`: `ids_for_pages` (with `appsecret_proof`) finds the person's PSIDs on
 *   the endpoint's other Pages; they are linked to one contact, and two contacts that turn out to
 *   be one person are merged (the older survives; no profile field is lost). Asked once a week per
 *   PSID. Sessions stay per Page.
 * - `data_protection.contact_profiles = false`: nothing of this is written to the database; the
 *   profile cache is then kept in memory only.
 *
 * The statements a turn needs are returned, to be committed with the turn; the memory follows
 * the database after the commit (`committed`). Recently seen users are kept in memory (LRU), so a
 * turn of a known user reads nothing.
 */
import { randomBytes } from "node:crypto";
import type { InStatement, ResultSet } from "@libsql/client";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import { numberOrNull } from "../db/statement.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import { GraphApiError, type GraphClient, type PageCredentials } from "../messenger/graph.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import { isUserRef } from "../replies/recipient.ts";
import { setNewest } from "../core/bounded.ts";

export const BASE_FIELDS = ["first_name", "last_name", "profile_pic"] as const;
export const EXTRA_FIELDS = ["locale", "timezone", "gender"] as const;
const PROFILE_KEYS = ["id", ...BASE_FIELDS, ...EXTRA_FIELDS];

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
export const PROFILE_TTL = { ok: DAY, okMax: 7 * DAY, unavailable: 7 * DAY, denied: DAY, error: 10 * MINUTE } as const;
export const LINK_TTL = 7 * DAY;
const LINK_RETRY = 10 * MINUTE;
const MAX_ID_PAGES = 10;

export type ProfileStatus = "ok" | "unavailable" | "denied" | "error";

export interface Person {
  contactId: string | null;
  /** The contact profile's fields (`input.contact`). */
  contact: Record<string, unknown>;
  /** `input.data.profile` (request_profile_data), or undefined. */
  profile: Record<string, unknown> | undefined;
  /** To commit with the turn. */
  statements: InStatement[];
  /** Call after they are committed, with their results. */
  committed(results: ResultSet[]): void;
}

interface UserRecord {
  contactId: string | null;
  contactProfile: Record<string, unknown>;
  profile: Record<string, unknown> | null;
  profileStatus: ProfileStatus | null;
  profileExpiresAt: number;
  linkedAt: number | null;
  /** When this PSID's rows were last written (their last_seen_at); 0 when never. */
  touchedAt: number;
}

export interface PeopleDeps {
  database: Database;
  graph: GraphClient;
  /** The Page's credentials, or undefined when it is unknown or paused. */
  credentials(endpointId: string, pageId: string): PageCredentials | undefined;
  clock: Clock;
  log: Logger;
  capacity?: number;
}

export function newContactId(): string {
  return `c_${randomBytes(12).toString("base64url")}`;
}

/**
 * `last_seen_at` / `last_active_at` are kept to this precision: a turn that changes nothing else
 * writes no contact rows when they were written less than this ago (retention counts in days).
 */
export const TOUCH_INTERVAL = HOUR;

const LOAD_SQL =
  "SELECT u.contact_id, c.profile, u.profile, u.profile_status, u.profile_expires_at, u.linked_at, u.last_seen_at " +
  "FROM contact_users u LEFT JOIN contacts c ON c.id = u.contact_id WHERE u.endpoint_id = ? AND u.page_id = ? AND u.user_id = ?";

const UPSERT_USER_SQL =
  "INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, profile, profile_status, profile_expires_at, linked_at, first_seen_at, last_seen_at) " +
  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, page_id, user_id) DO UPDATE SET " +
  "profile = excluded.profile, profile_status = excluded.profile_status, profile_expires_at = excluded.profile_expires_at, " +
  "linked_at = coalesce(excluded.linked_at, contact_users.linked_at), last_seen_at = excluded.last_seen_at, " +
  // The link stays (another turn or a merge may have set it meanwhile) unless its contact is gone.
  "contact_id = CASE WHEN EXISTS (SELECT 1 FROM contacts WHERE id = contact_users.contact_id) THEN contact_users.contact_id ELSE excluded.contact_id END";

/** Creates or updates a contact row (an UPSERT: a contact purged while the turn ran comes back). */
const UPSERT_CONTACT_SQL =
  "INSERT INTO contacts (id, endpoint_id, profile, created_at, updated_at, last_active_at) VALUES (?, ?, ?, ?, ?, ?) " +
  "ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, last_active_at = excluded.last_active_at, " +
  "updated_at = CASE WHEN excluded.profile <> contacts.profile THEN excluded.updated_at ELSE contacts.updated_at END";

/**
 * The last statement of a turn that wrote contact rows: a contact this PSID does not belong to
 * after all (another turn linked the PSID to the person's contact first) is removed again.
 */
const DROP_ORPHAN_SQL = "DELETE FROM contacts WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM contact_users WHERE contact_id = ?1)";

export class People {
  /** Least recently used first. */
  readonly #cache = new Map<string, UserRecord>();
  /** Pages whose app may not read locale/timezone/gender, until when. */
  readonly #noExtras = new Map<string, number>();
  readonly #warnedNoSecret = new Set<string>();
  readonly #capacity: number;

  constructor(private readonly deps: PeopleDeps) {
    this.#capacity = deps.capacity ?? 10_000;
  }

  async forTurn(key: UserKey, endpoint: EndpointSettings, log: Logger): Promise<Person> {
    const now = this.deps.clock.now();
    const keep = endpoint.data_protection.contact_profiles;
    const settings = endpoint.profiles;
    const id = userKeyId(key);
    const cached = this.#cache.get(id);
    const rec: UserRecord = cached
      ? { ...cached }
      : ((keep ? await this.#load(key) : null) ?? { contactId: null, contactProfile: {}, profile: null, profileStatus: null, profileExpiresAt: 0, linkedAt: null, touchedAt: 0 });

    // A person known only by a checkbox-plugin user_ref has no PSID to ask the User Profile API about.
    const wantProfile = (settings.request_profile_data || (keep && settings.update_contact_profiles)) && !isUserRef(key.userId);
    let dirty = now - rec.touchedAt >= TOUCH_INTERVAL;
    if (wantProfile && rec.profileExpiresAt <= now) {
      const creds = this.deps.credentials(key.endpointId, key.pageId);
      if (creds) {
        await this.#refreshProfile(rec, key, creds, now, log, endpoint.data_protection.mask_logging);
        dirty = true;
      }
    }

    const statements: InStatement[] = [];
    let orphanCheck = -1;
    if (keep) {
      let contactProfile = rec.contactProfile;
      if (settings.update_contact_profiles && rec.profileStatus === "ok" && rec.profile) {
        contactProfile = { ...contactProfile, ...withoutId(rec.profile) };
      }
      const profileChanged = JSON.stringify(contactProfile) !== JSON.stringify(rec.contactProfile);
      if (!rec.contactId) rec.contactId = newContactId();
      if (profileChanged || !rec.touchedAt) dirty = true;
      if (dirty) {
        statements.push({ sql: UPSERT_CONTACT_SQL, args: [rec.contactId, key.endpointId, JSON.stringify(contactProfile), now, now, now] });
      }
      rec.contactProfile = contactProfile;
      if (settings.merge_contact_profiles && (rec.linkedAt ?? -Infinity) <= now - LINK_TTL) {
        statements.push(...(await this.#link(rec, key, endpoint, now, log)));
        dirty = true;
      }
      if (dirty) {
        statements.push({
          sql: UPSERT_USER_SQL,
          args: [key.endpointId, key.pageId, key.userId, rec.contactId, rec.profile ? JSON.stringify(rec.profile) : null, rec.profileStatus, rec.profileExpiresAt, rec.linkedAt, now, now],
        });
        rec.touchedAt = now;
        orphanCheck = statements.push({ sql: DROP_ORPHAN_SQL, args: [rec.contactId] }) - 1;
      }
    }

    return {
      contactId: rec.contactId,
      contact: { ...rec.contactProfile },
      profile: settings.request_profile_data ? profileForInput(key.userId, rec) : undefined,
      statements,
      committed: (results) => {
        // This turn's contact was dropped (the PSID had been linked to another): read it anew next time.
        if (orphanCheck >= 0 && (results[orphanCheck]?.rowsAffected ?? 0) > 0) this.#cache.delete(id);
        else this.#remember(id, rec);
      },
    };
  }

  /** Call after this user's contact data changed other than through a turn (erasure, purge). */
  forget(key: UserKey): void {
    this.#cache.delete(userKeyId(key));
  }

  forgetAll(): void {
    this.#cache.clear();
  }

  async #load(key: UserKey): Promise<UserRecord | null> {
    const result = await this.deps.database.client.execute({ sql: LOAD_SQL, args: [key.endpointId, key.pageId, key.userId] });
    const r = result.rows[0];
    if (!r) return null;
    return {
      // A link to a contact that is gone (purged while a turn ran): a new contact is made.
      contactId: r[1] === null || r[1] === undefined ? null : String(r[0]),
      contactProfile: parseObject(r[1]) ?? {},
      profile: parseObject(r[2]),
      profileStatus: (r[3] as ProfileStatus | null) ?? null,
      profileExpiresAt: Number(r[4] ?? 0),
      linkedAt: numberOrNull(r[5]),
      touchedAt: Number(r[6] ?? 0),
    };
  }

  async #refreshProfile(rec: UserRecord, key: UserKey, creds: PageCredentials, now: number, log: Logger, mask: boolean): Promise<void> {
    const pageKey = `${key.endpointId}\u0000${key.pageId}`;
    let extras = (this.#noExtras.get(pageKey) ?? 0) <= now;
    for (;;) {
      const fields = extras ? [...BASE_FIELDS, ...EXTRA_FIELDS] : [...BASE_FIELDS];
      try {
        const answer = await this.deps.graph.profile(creds, key.userId, fields);
        const profile: Record<string, unknown> = {};
        for (const k of PROFILE_KEYS) if (answer[k] !== undefined && answer[k] !== null) profile[k] = answer[k];
        rec.profile = profile;
        rec.profileStatus = "ok";
        rec.profileExpiresAt = profileExpiry(profile, now);
        return;
      } catch (error) {
        const status = classifyProfileError(error);
        if (status === "denied" && extras) {
          // The app lacks pages_user_locale / _timezone / _gender: ask for the base fields only.
          this.#noExtras.set(pageKey, now + PROFILE_TTL.denied);
          log.info("the Page's app may not read locale, timezone or gender (App Review permissions); profiles are fetched without them");
          extras = false;
          continue;
        }
        if (status === "error") log.warn("could not fetch the user's Facebook profile; the turn goes on without it", errorFields(error, mask));
        else if (status === "denied") log.warn("the Page's app may not read user profiles: it needs Advanced Access to Business Asset User Profile Access, or turn request_profile_data off");
        // A failure keeps what we had (a profile fetched before stays usable until it can be renewed).
        if (status !== "error" || rec.profileStatus !== "ok") rec.profileStatus = status;
        if (status !== "error") rec.profile = null;
        rec.profileExpiresAt = now + PROFILE_TTL[status];
        return;
      }
    }
  }

  /**
   * Links the person's PSIDs on the endpoint's other Pages to this contact, merging contacts that
   * turn out to be the same person. Returns the statements; updates `rec`.
   */
  async #link(rec: UserRecord, key: UserKey, endpoint: EndpointSettings, now: number, log: Logger): Promise<InStatement[]> {
    const mask = endpoint.data_protection.mask_logging;
    const creds = this.deps.credentials(key.endpointId, key.pageId);
    if (!creds) return [];
    if (!creds.appSecret) {
      if (!this.#warnedNoSecret.has(key.endpointId)) {
        this.#warnedNoSecret.add(key.endpointId);
        log.warn("merge_contact_profiles needs the endpoint's app_secret (ids_for_pages requires appsecret_proof): set app_secret");
      }
      return [];
    }
    const otherPages = new Set(endpoint.pages.map((p) => p.id).filter((id) => id !== key.pageId));
    const linked: { pageId: string; userId: string }[] = [];
    try {
      let after: string | undefined;
      for (let i = 0; i < MAX_ID_PAGES; i++) {
        const answer = await this.deps.graph.idsForPages(creds, key.userId, after);
        for (const row of answer.data ?? []) {
          const pageId = row.page?.id;
          if (pageId && otherPages.has(pageId) && typeof row.id === "string") linked.push({ pageId, userId: row.id });
        }
        after = answer.paging?.next ? answer.paging.cursors?.after : undefined;
        if (!after) break;
      }
    } catch (error) {
      log.warn("could not ask Facebook for the person's PSIDs on the other Pages (ids_for_pages); tried again later", errorFields(error, mask));
      rec.linkedAt = now - LINK_TTL + LINK_RETRY;
      return [];
    }
    rec.linkedAt = now;
    const statements: InStatement[] = [];
    let merged = false;
    for (const other of linked) {
      const found = await this.deps.database.client.execute({
        sql: "SELECT u.contact_id, c.profile, c.created_at FROM contact_users u LEFT JOIN contacts c ON c.id = u.contact_id WHERE u.endpoint_id = ? AND u.page_id = ? AND u.user_id = ?",
        args: [key.endpointId, other.pageId, other.userId],
      });
      const row = found.rows[0];
      if (!row) {
        statements.push({
          sql: "INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, first_seen_at, last_seen_at, linked_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
          args: [key.endpointId, other.pageId, other.userId, rec.contactId, now, now, now],
        });
        this.#cache.delete(userKeyId({ endpointId: key.endpointId, ...other }));
        continue;
      }
      const otherContact = String(row[0]);
      if (otherContact === rec.contactId) continue;
      // Two contacts, one person. The older one survives (its id may already be known outside).
      const ours = await this.deps.database.client.execute({ sql: "SELECT created_at FROM contacts WHERE id = ?", args: [rec.contactId] });
      const ourCreated = Number(ours.rows[0]?.[0] ?? now);
      const otherProfile = parseObject(row[1]) ?? {};
      const otherCreated = Number(row[2] ?? now);
      const [survivor, loser] = otherCreated < ourCreated ? [otherContact, rec.contactId!] : [rec.contactId!, otherContact];
      // Fields of both are kept; where both have one, this PSID's (the one just refreshed) wins.
      const profile = { ...otherProfile, ...rec.contactProfile };
      statements.push(
        { sql: "INSERT INTO contacts (id, endpoint_id, profile, created_at, updated_at, last_active_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, created_at = min(contacts.created_at, excluded.created_at), updated_at = excluded.updated_at, last_active_at = max(contacts.last_active_at, excluded.last_active_at)", args: [survivor, key.endpointId, JSON.stringify(profile), Math.min(ourCreated, otherCreated), now, now] },
        { sql: "UPDATE contact_users SET contact_id = ? WHERE contact_id = ?", args: [survivor, loser] },
        { sql: "UPDATE transcripts SET contact_id = ? WHERE contact_id = ?", args: [survivor, loser] },
        { sql: "DELETE FROM contacts WHERE id = ?", args: [loser] },
      );
      log.info("merged two contact profiles of the same person (ids_for_pages)", mask ? {} : { contact_id: survivor, merged_contact_id: loser });
      rec.contactId = survivor;
      rec.contactProfile = profile;
      merged = true;
    }
    // Other users' cached contact ids may have changed.
    if (merged) this.#cache.clear();
    return statements;
  }

  #remember(id: string, rec: UserRecord): void {
    setNewest(this.#cache, id, rec, this.#capacity);
  }
}

/**
 * An error for the log. Graph's messages and URLs name the PSID ("Object with ID '…'",
 * "GET /6301…"), so with mask_logging only its kind and codes are written.
 */
function errorFields(error: unknown, mask: boolean): Record<string, unknown> {
  if (!mask) return { error };
  if (error instanceof GraphApiError) return { error: { name: error.name, code: error.code, subcode: error.subcode, type: error.type, status: error.status } };
  return { error: { name: (error as Error)?.name ?? "Error" } };
}

/** What an error from the User Profile API means for the cache. */
export function classifyProfileError(error: unknown): ProfileStatus {
  if (!(error instanceof GraphApiError)) return "error";
  if (error.subcode === 2018218) return "unavailable"; // no profile (phone-number account)
  if (error.code === 100 && error.subcode === 33) return "unavailable"; // no such user for this Page
  if (error.subcode === 2018247 || error.code === 10 || (error.code >= 200 && error.code <= 299)) return "denied";
  return "error";
}

/** The `ext=` expiry (epoch seconds) of the picture URL, a few minutes early; a day without one; at most a week. */
export function profileExpiry(profile: Record<string, unknown>, now: number): number {
  let expires = now + PROFILE_TTL.ok;
  if (typeof profile.profile_pic === "string") {
    try {
      const ext = Number(new URL(profile.profile_pic).searchParams.get("ext"));
      if (Number.isFinite(ext) && ext > 0) expires = ext * 1000 - 5 * MINUTE;
    } catch {
      // not a URL: keep the default
    }
  }
  return Math.min(Math.max(expires, now + 5 * MINUTE), now + PROFILE_TTL.okMax);
}

function profileForInput(userId: string, rec: UserRecord): Record<string, unknown> {
  return { id: userId, ...(rec.profileStatus === "ok" && rec.profile ? rec.profile : {}) };
}

function withoutId(profile: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, ...rest } = profile;
  return rest;
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
