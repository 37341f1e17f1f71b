/**
 * The translation's SQL: the cache of translations (`translation_cache`) and each user's detected
 * language (`translation_users`), with their readers, the retention purge and the statements of
 * an erasure (db/schema.ts describes both tables).
 */
import type { InStatement } from "@libsql/client";
import type { UserKey } from "../core/user-key.ts";
import type { Database } from "../db/client.ts";
import { rowReader } from "../db/rows.ts";
import { translationCache, translationUsers } from "../db/schema.ts";
import { userRows } from "../db/user-rows.ts";

const CACHED_SQL = (n: number) =>
  `SELECT key, translation, detected, expires_at FROM translation_cache WHERE key IN (${Array(n).fill("?").join(", ")}) AND expires_at > ?`;
const readCached = rowReader(translationCache, ["key", "translation", "detected", "expiresAt"]);

/** A new row, or one in place of an expired one; a live row stays (another turn stored the same translation). */
const CACHE_PUT_SQL =
  "INSERT INTO translation_cache (key, endpoint_id, page_id, user_id, kind, translation, detected, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) " +
  "ON CONFLICT (key) DO UPDATE SET endpoint_id = excluded.endpoint_id, page_id = excluded.page_id, user_id = excluded.user_id, kind = excluded.kind, " +
  "translation = excluded.translation, detected = excluded.detected, created_at = excluded.created_at, expires_at = excluded.expires_at " +
  "WHERE translation_cache.expires_at <= excluded.created_at";

const USER_SQL = "SELECT language, votes, inputs, locked_at, last_mid FROM translation_users WHERE endpoint_id = ? AND page_id = ? AND user_id = ?";
const readUser = rowReader(translationUsers, ["language", "votes", "inputs", "lockedAt", "lastMid"]);
const USER_PUT_SQL =
  "INSERT INTO translation_users (endpoint_id, page_id, user_id, language, votes, inputs, locked_at, last_mid, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) " +
  "ON CONFLICT (endpoint_id, page_id, user_id) DO UPDATE SET language = excluded.language, votes = excluded.votes, inputs = excluded.inputs, " +
  "locked_at = excluded.locked_at, last_mid = excluded.last_mid, updated_at = excluded.updated_at";

/** Whether there is anything to purge (an indexed look, no write when there is nothing). */
const ANY_EXPIRED_SQL = "SELECT 1 AS found FROM translation_cache WHERE endpoint_id = ? AND expires_at <= ? LIMIT 1";
const ANY_IDLE_SQL = "SELECT 1 AS found FROM translation_users WHERE endpoint_id = ? AND updated_at < ? LIMIT 1";
const PURGE_CACHE_SQL = "DELETE FROM translation_cache WHERE rowid IN (SELECT rowid FROM translation_cache WHERE endpoint_id = ? AND expires_at <= ? LIMIT ?)";
const PURGE_USERS_SQL = "DELETE FROM translation_users WHERE rowid IN (SELECT rowid FROM translation_users WHERE endpoint_id = ? AND updated_at < ? LIMIT ?)";

const EXPORT_USER_SQL = "SELECT language, votes, inputs, locked_at, updated_at FROM translation_users WHERE endpoint_id = ? AND page_id = ? AND user_id = ?";
const readExportedUser = rowReader(translationUsers, ["language", "votes", "inputs", "lockedAt", "updatedAt"]);
const EXPORT_CACHE_SQL =
  "SELECT kind, translation, detected, created_at, expires_at FROM translation_cache WHERE user_id = ? AND endpoint_id = ? AND page_id = ? ORDER BY created_at, rowid";
const readExportedCache = rowReader(translationCache, ["kind", "translation", "detected", "createdAt", "expiresAt"]);

export interface CachedTranslation {
  translation: string;
  detected: string | null;
  expiresAt: number;
}

export interface NewCacheEntry extends Omit<CachedTranslation, "expiresAt"> {
  key: string;
  kind: "user" | "bot";
}

/** A user's language as stored (user-language.ts keeps it). */
export interface StoredLanguage {
  language: string;
  votes: Record<string, number>;
  inputs: number;
  lockedAt: number | null;
  lastMid: string | null;
}

export class TranslationStore {
  readonly #users;
  readonly #cache;

  constructor(private readonly database: Database) {
    this.#users = userRows(database.db, translationUsers);
    this.#cache = userRows(database.db, translationCache);
  }

  /** The live cached translations of these keys. */
  async cached(keys: readonly string[], now: number): Promise<Map<string, CachedTranslation>> {
    const found = new Map<string, CachedTranslation>();
    if (keys.length === 0) return found;
    const result = await this.database.client.execute({ sql: CACHED_SQL(keys.length), args: [...keys, now] });
    for (const row of result.rows.map(readCached)) found.set(row.key, { translation: row.translation, detected: row.detected, expiresAt: row.expiresAt });
    return found;
  }

  /** Stores translations for `hours`, as the person `key`'s (erased with them). */
  put(key: UserKey, entries: readonly NewCacheEntry[], now: number, hours: number): InStatement[] {
    const expires = now + Math.round(hours * 3_600_000);
    return entries.map((e) => ({
      sql: CACHE_PUT_SQL,
      args: [e.key, key.endpointId, key.pageId, key.userId, e.kind, e.translation, e.detected, now, expires],
    }));
  }

  async language(key: UserKey): Promise<StoredLanguage | null> {
    const result = await this.database.client.execute({ sql: USER_SQL, args: [key.endpointId, key.pageId, key.userId] });
    const row = result.rows[0];
    if (!row) return null;
    const read = readUser(row);
    return { language: read.language, votes: parseVotes(read.votes), inputs: read.inputs, lockedAt: read.lockedAt, lastMid: read.lastMid };
  }

  saveLanguage(key: UserKey, state: StoredLanguage, now: number): InStatement {
    return {
      sql: USER_PUT_SQL,
      args: [key.endpointId, key.pageId, key.userId, state.language, JSON.stringify(state.votes), state.inputs, state.lockedAt, state.lastMid, now],
    };
  }

  /** One batch of the endpoint's expired cache rows, or of its users' languages idle since `idleBefore`. */
  purgeCache(endpointId: string, now: number, batch: number): InStatement {
    return { sql: PURGE_CACHE_SQL, args: [endpointId, now, batch] };
  }
  purgeUsers(endpointId: string, idleBefore: number, batch: number): InStatement {
    return { sql: PURGE_USERS_SQL, args: [endpointId, idleBefore, batch] };
  }

  /** Whether the endpoint has expired cache rows, or users' languages idle since `idleBefore`. */
  async anyExpired(endpointId: string, now: number): Promise<boolean> {
    return (await this.database.client.execute({ sql: ANY_EXPIRED_SQL, args: [endpointId, now] })).rows.length > 0;
  }
  async anyIdle(endpointId: string, idleBefore: number): Promise<boolean> {
    return (await this.database.client.execute({ sql: ANY_IDLE_SQL, args: [endpointId, idleBefore] })).rows.length > 0;
  }

  /** Everything stored about these people: their languages and the cache rows their turns stored. */
  erase(keys: readonly UserKey[]): InStatement[] {
    return [...this.#users.erase(keys), ...this.#cache.erase(keys)];
  }

  pagesOf(endpointId: string, userId: string): Promise<string[]> {
    return this.#users.pagesOf(endpointId, userId);
  }

  async exportLanguage(key: UserKey) {
    const result = await this.database.client.execute({ sql: EXPORT_USER_SQL, args: [key.endpointId, key.pageId, key.userId] });
    return result.rows.map(readExportedUser);
  }

  async exportCache(key: UserKey) {
    const result = await this.database.client.execute({ sql: EXPORT_CACHE_SQL, args: [key.userId, key.endpointId, key.pageId] });
    return result.rows.map(readExportedCache);
  }
}

function parseVotes(text: string): Record<string, number> {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === "number"));
    }
  } catch {
    // a damaged row counts as no votes
  }
  return {};
}
