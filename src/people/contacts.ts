/**
 * Contacts: the Facebook profile of each PSID, and the contact profile the PSID belongs to.
 *
 * Before each turn the engine asks `forTurn` for the user's contact:
 * - `request_profile_data`: the profile (`first_name,last_name,profile_pic`, plus
 *   `locale,timezone,gender` unless the Page's app lacks the permission) goes into
 *   `input.data.profile`, cached as people/profiles.ts says.
 * - `update_contact_profiles`: those fields are copied into the contact profile (`input.contact`).
 * - `merge_contact_profiles`: `ids_for_pages` (with `appsecret_proof`) finds the person's PSIDs on
 *   the endpoint's other Pages; they are linked to one contact, and two contacts that turn out to
 *   be one person are merged (the older survives; no profile field is lost). Asked once a week per
 *   PSID. Sessions stay per Page.
 * - `data_protection.contact_profiles = false`: nothing of this is written to the database; the
 *   profile cache is then kept in memory only.
 *
 * After the flow, `Person.save` adds the fields its result changed (`contact`, people/contact-fields.ts)
 * and returns the statements a turn needs, to be committed with the turn; the memory follows
 * the database after the commit (`committed`). Recently seen users are kept in memory (LRU), so a
 * turn of a known user reads nothing.
 */
import type { InStatement, ResultSet } from "@libsql/client";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import type { GraphClient, PageCredentials } from "../messenger/graph.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import { setNewest } from "../core/bounded.ts";
import { isUserRef } from "../core/user-key.ts";
import { ContactStore, dropOrphan, linkUser, mergeContacts, upsertContact, upsertUser, type StoredUser } from "./store.ts";
import { FacebookProfiles, errorFields } from "./profiles.ts";
import { applyContactChange } from "./contact-fields.ts";
import { sortableId } from "../core/sortable-id.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
export const LINK_TTL = 7 * DAY;
const LINK_RETRY = 10 * MINUTE;
const MAX_ID_PAGES = 10;

/**
 * `last_seen_at` / `last_active_at` are kept to this precision: a turn that changes nothing else
 * writes no contact rows when they were written less than this ago (retention counts in days).
 */
export const TOUCH_INTERVAL = HOUR;

/** What a turn learns about its user. */
export interface Person {
  contactId: string | null;
  /** The contact profile's fields (`input.contact`). */
  contact: Record<string, unknown>;
  /** `input.data.profile` (request_profile_data), or undefined. */
  profile: Record<string, unknown> | undefined;
  /**
   * What to commit with the turn, with the contact fields of the flow's result (`result.contact`:
   * a field's value replaces it, null deletes it; refused whole, with a warning, past the limits
   * of people/contact-fields.ts).
   */
  save(change: Record<string, unknown> | undefined, log: Logger): PersonSave;
}

export interface PersonSave {
  /** To commit with the turn. */
  statements: InStatement[];
  /** Call after they are committed, with their results. */
  committed(results: ResultSet[]): void;
}

/** What a turn writes of the contact (contact_profiles on), as `forTurn` found it before the flow ran. */
interface Written {
  /** The profile as read (the base of the patch, people/contact-fields.ts). */
  read: Record<string, unknown>;
  /** With the Facebook fields copied (update_contact_profiles). */
  copied: Record<string, unknown>;
  /** The contact before the links were looked at. */
  firstId: string;
  /** Whether that contact is written before the links (new, changed, or an hour since its last write). */
  writeCopy: boolean;
  /** The statements of the links looked at this turn (merge_contact_profiles), or null when not due. */
  linked: InStatement[] | null;
}

export interface ContactsDeps {
  database: Database;
  graph: GraphClient;
  /** The Page's credentials, or undefined when it is unknown or paused. */
  credentials(endpointId: string, pageId: string): PageCredentials | undefined;
  clock: Clock;
  log: Logger;
  capacity?: number;
}

export function newContactId(): string {
  return sortableId("c_");
}

export class Contacts {
  /** Least recently used first. */
  readonly #cache = new Map<string, StoredUser>();
  readonly #warnedNoSecret = new Set<string>();
  readonly #capacity: number;
  readonly #store: ContactStore;
  readonly #profiles: FacebookProfiles;

  constructor(private readonly deps: ContactsDeps) {
    this.#capacity = deps.capacity ?? 10_000;
    this.#store = new ContactStore(deps.database);
    this.#profiles = new FacebookProfiles(deps.graph);
  }

  async forTurn(key: UserKey, endpoint: EndpointSettings, log: Logger): Promise<Person> {
    const now = this.deps.clock.now();
    const keep = endpoint.data_protection.contact_profiles;
    const settings = endpoint.profiles;
    const id = userKeyId(key);
    const cached = this.#cache.get(id);
    const rec: StoredUser = cached
      ? { ...cached }
      : ((keep ? await this.#store.load(key) : null) ?? {
          contactId: null,
          contactProfile: {},
          profile: null,
          profileStatus: null,
          profileExpiresAt: 0,
          linkedAt: null,
          touchedAt: 0,
        });

    // A person known only by a checkbox-plugin user_ref has no PSID to ask the User Profile API about.
    const wantProfile = (settings.request_profile_data || (keep && settings.update_contact_profiles)) && !isUserRef(key.userId);
    let dirty = now - rec.touchedAt >= TOUCH_INTERVAL;
    if (wantProfile && rec.profileExpiresAt <= now) {
      const creds = this.deps.credentials(key.endpointId, key.pageId);
      if (creds) {
        await this.#profiles.refresh(rec, key, creds, now, log, endpoint.data_protection.mask_logging);
        dirty = true;
      }
    }

    let written: Written | null = null;
    if (keep) {
      const read = rec.contactProfile;
      let copied = read;
      if (settings.update_contact_profiles && rec.profileStatus === "ok" && rec.profile) {
        copied = { ...read, ...withoutId(rec.profile) };
      }
      const profileChanged = JSON.stringify(copied) !== JSON.stringify(read);
      if (!rec.contactId) rec.contactId = newContactId();
      if (profileChanged || !rec.touchedAt) dirty = true;
      written = { read, copied, firstId: rec.contactId, writeCopy: dirty, linked: null };
      rec.contactProfile = copied;
      if (settings.merge_contact_profiles && (rec.linkedAt ?? -Infinity) <= now - LINK_TTL) {
        written.linked = await this.#link(rec, key, endpoint, now, log);
        dirty = true;
      }
    }

    return {
      contactId: rec.contactId,
      // A copy the flow may change: the cached profile's objects stay as they were stored.
      contact: structuredClone(rec.contactProfile),
      profile: settings.request_profile_data ? profileForInput(key.userId, rec) : undefined,
      save: (change, turnLog) => this.#save(key, rec, written, dirty, change, now, turnLog),
    };
  }

  /**
   * The statements of a turn for its person: the contact (with the fields the flow's result
   * changed), the PSID's row and the links found, in this order; the memory follows on commit.
   */
  #save(
    key: UserKey,
    rec: StoredUser,
    written: Written | null,
    dirty: boolean,
    change: Record<string, unknown> | undefined,
    now: number,
    log: Logger,
  ): PersonSave {
    const id = userKeyId(key);
    const statements: InStatement[] = [];
    let orphanCheck = -1;
    let changed = false;
    if (!written) {
      if (change && Object.keys(change).length > 0)
        log.debug("the contact fields of the flow's result are not stored: data_protection.contact_profiles is off");
    } else {
      const beforeFlow = rec.contactProfile;
      if (change) {
        const applied = applyContactChange(beforeFlow, change);
        if (!applied.ok) log.warn(`the contact fields of the flow's result were not stored (the contact is left as it was): ${applied.problem}`);
        else if (applied.changed) {
          rec.contactProfile = applied.profile;
          changed = true;
        }
      }
      const contactId = rec.contactId!;
      if (!written.linked) {
        if (dirty || changed) statements.push(upsertContact(contactId, key.endpointId, written.read, rec.contactProfile, now));
      } else {
        // The contact as it was before the links were looked at, the links (a merge writes the survivor whole), then the flow's fields.
        if (written.writeCopy) statements.push(upsertContact(written.firstId, key.endpointId, written.read, written.copied, now));
        statements.push(...written.linked);
        if (changed) statements.push(upsertContact(contactId, key.endpointId, beforeFlow, rec.contactProfile, now));
      }
      if (dirty || changed) {
        statements.push(upsertUser(key, rec, now));
        rec.touchedAt = now;
        orphanCheck = statements.push(dropOrphan(contactId)) - 1;
      }
    }
    return {
      statements,
      committed: (results) => {
        // This turn's contact was dropped (the PSID had been linked to another): read it anew next time.
        if (orphanCheck >= 0 && (results[orphanCheck]?.rowsAffected ?? 0) > 0) this.#cache.delete(id);
        else {
          this.#remember(id, rec);
          // The contact's other PSIDs (merge_contact_profiles) read the fields the flow wrote anew.
          if (changed) for (const [other, user] of this.#cache) if (other !== id && user.contactId === rec.contactId) this.#cache.delete(other);
        }
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

  /**
   * Links the person's PSIDs on the endpoint's other Pages to this contact, merging contacts that
   * turn out to be the same person. Returns the statements; updates `rec`.
   */
  async #link(rec: StoredUser, key: UserKey, endpoint: EndpointSettings, now: number, log: Logger): Promise<InStatement[]> {
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
      const otherKey = { endpointId: key.endpointId, ...other };
      const found = await this.#store.linked(key.endpointId, other.pageId, other.userId);
      if (!found) {
        statements.push(linkUser(otherKey, rec.contactId, now));
        this.#cache.delete(userKeyId(otherKey));
        continue;
      }
      if (found.contactId === rec.contactId) continue;
      // Two contacts, one person. The older one survives (its id may already be known outside).
      const ourCreated = (await this.#store.createdAt(rec.contactId)) ?? now;
      const otherCreated = found.createdAt ?? now;
      const [survivor, loser] = otherCreated < ourCreated ? [found.contactId, rec.contactId!] : [rec.contactId!, found.contactId];
      // Fields of both are kept; where both have one, this PSID's (the one just refreshed) wins.
      const profile = { ...found.profile, ...rec.contactProfile };
      statements.push(...mergeContacts(key.endpointId, survivor, loser, profile, Math.min(ourCreated, otherCreated), now));
      log.info("merged two contact profiles of the same person (ids_for_pages)", mask ? {} : { contact_id: survivor, merged_contact_id: loser });
      rec.contactId = survivor;
      rec.contactProfile = profile;
      merged = true;
    }
    // Other users' cached contact ids may have changed.
    if (merged) this.#cache.clear();
    return statements;
  }

  #remember(id: string, rec: StoredUser): void {
    setNewest(this.#cache, id, rec, this.#capacity);
  }
}

function profileForInput(userId: string, rec: StoredUser): Record<string, unknown> {
  return { id: userId, ...(rec.profileStatus === "ok" && rec.profile ? rec.profile : {}) };
}

function withoutId(profile: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, ...rest } = profile;
  return rest;
}
