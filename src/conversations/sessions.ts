/**
 * Sessions: one current session per user (UserKey). After `expiration_minutes` without input
 * (0 = never), or after a turn whose flow ended it (`end_session`), the next input starts a new
 * session with an empty context; the old one is ended, not deleted. The session is written in the
 * same commit that finishes the turn.
 *
 * The current sessions of recently active users are also kept in memory, so a turn does not read
 * the database for them. That is safe because this process is the only writer of a user's
 * session: turns of one user run one at a time (the inbound lane), every other change (a reset
 * through the admin API, an erasure, the retention purge) goes through `forget`, and several
 * instances on one libSQL server each own their own users (docs/operations.md). The context is
 * kept as JSON text and parsed for every turn, so a flow that changes the object it was given
 * changes nothing that was not saved.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { rowReader } from "../db/rows.ts";
import { sessions } from "../db/schema.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import { setNewest } from "../core/bounded.ts";
import { sortableId } from "../core/sortable-id.ts";

export interface SessionState {
  id: string;
  context: Record<string, unknown>;
  /** True when this turn starts the session (nothing stored yet). */
  isNew: boolean;
  /** The expired session this one replaces. */
  endsId: string | null;
  /** The user's last input before this one (in any session), or null for a new user. */
  lastActiveAt: number | null;
}

interface Cached {
  id: string;
  contextJson: string;
  lastActiveAt: number;
}

export function newSessionId(): string {
  return sortableId("s_");
}

/** The user's open session (at most one: the index sessions_current). */
const CURRENT_SQL = "SELECT id, context, last_active_at FROM sessions WHERE endpoint_id = ? AND page_id = ? AND user_id = ? AND ended_at IS NULL LIMIT 1";
const readCurrent = rowReader(sessions, ["id", "context", "lastActiveAt"]);

/** The user's last input in any session (null when none is stored). */
const LAST_ACTIVE_SQL = "SELECT max(last_active_at) AS last_active_at FROM sessions WHERE endpoint_id = ? AND page_id = ? AND user_id = ?";
const readLastActive = rowReader(sessions, ["lastActiveAt"]);

const END_SQL = "UPDATE sessions SET ended_at = ? WHERE id = ?";
/** `ended_at` is null, or the turn's time when the flow ended the session with this turn. */
const INSERT_SQL = "INSERT INTO sessions (id, endpoint_id, page_id, user_id, context, created_at, last_active_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
/**
 * An upsert, so that a session the retention purge deleted while the turn ran comes back; a
 * session reset (ended) meanwhile stays ended.
 */
const UPSERT_SQL = `${INSERT_SQL} ON CONFLICT (id) DO UPDATE SET context = excluded.context, last_active_at = excluded.last_active_at, ended_at = excluded.ended_at WHERE sessions.ended_at IS NULL`;

export class SessionStore {
  /** Least recently used first (a Map keeps insertion order; a hit is moved to the end). */
  readonly #cache = new Map<string, Cached>();
  /** A counter that `current` reads and `forget` advances, and the value at each user's last forget. */
  #generation = 0;
  readonly #forgotten = new Map<string, number>();
  #forgotAllAt = -1;
  readonly #readAt = new Map<string, number>();

  constructor(
    private readonly database: Database,
    private readonly capacity = 10_000,
  ) {}

  /** The session the next input of this user belongs to (a new one when the old has expired). */
  async current(key: UserKey, now: number, expirationMinutes: number): Promise<SessionState> {
    const id = userKeyId(key);
    setNewest(this.#readAt, id, this.#generation, this.capacity);
    let row = this.#cache.get(id);
    if (row) {
      this.#cache.delete(id);
      this.#cache.set(id, row);
    } else {
      const args = [key.endpointId, key.pageId, key.userId];
      const found = (await this.database.client.execute({ sql: CURRENT_SQL, args })).rows[0];
      if (!found) {
        // No open session: a new user, or one whose session was reset or purged.
        const last = (await this.database.client.execute({ sql: LAST_ACTIVE_SQL, args })).rows[0];
        return { id: newSessionId(), context: {}, isNew: true, endsId: null, lastActiveAt: last ? readLastActive(last).lastActiveAt : null };
      }
      const current = readCurrent(found);
      row = { id: current.id, contextJson: current.context, lastActiveAt: current.lastActiveAt };
      this.#remember(id, row);
    }
    const expired = expirationMinutes > 0 && now - row.lastActiveAt > expirationMinutes * 60_000;
    if (expired) return { id: newSessionId(), context: {}, isNew: true, endsId: row.id, lastActiveAt: row.lastActiveAt };
    return { id: row.id, context: parseContext(row.contextJson), isNew: false, endsId: null, lastActiveAt: row.lastActiveAt };
  }

  /**
   * The statements that store the session after a turn, with the context the flow left, and the
   * function to call once they are committed (the memory follows the database, never leads it).
   * `end`: the flow ended the session with this turn (`end_session`): it is stored ended, with
   * this context, and the user's next input starts a new one.
   */
  save(
    key: UserKey,
    session: SessionState,
    context: Record<string, unknown>,
    now: number,
    options: { end?: boolean } = {},
  ): { statements: InStatement[]; committed(): void } {
    const statements: InStatement[] = [];
    const json = JSON.stringify(context);
    const end = options.end === true;
    if (session.endsId) statements.push({ sql: END_SQL, args: [now, session.endsId] });
    statements.push({
      sql: session.isNew ? INSERT_SQL : UPSERT_SQL,
      args: [session.id, key.endpointId, key.pageId, key.userId, json, now, now, end ? now : null],
    });
    const id = userKeyId(key);
    // What `current` saw: a forget after it (the flow was running) wins over this turn's memory.
    const generation = this.#readAt.get(id) ?? this.#generation;
    return {
      statements,
      committed: () => {
        // Ended by the flow, or reset or erased while the turn ran: the memory must not bring the old session back.
        if (end || (this.#forgotten.get(id) ?? -1) >= generation || this.#forgotAllAt >= generation) this.#cache.delete(id);
        else this.#remember(id, { id: session.id, contextJson: json, lastActiveAt: now });
      },
    };
  }

  /** Call after changing or deleting this user's sessions other than through `save`. */
  forget(key: UserKey): void {
    const id = userKeyId(key);
    this.#cache.delete(id);
    setNewest(this.#forgotten, id, this.#generation++, this.capacity);
  }

  /** Call after changing sessions of many users at once. */
  forgetAll(): void {
    this.#cache.clear();
    this.#forgotAllAt = this.#generation++;
  }

  #remember(id: string, row: Cached): void {
    setNewest(this.#cache, id, row, this.capacity);
  }
}

function parseContext(text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}
