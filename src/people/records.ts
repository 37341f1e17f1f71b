/**
 * Reading, exporting, erasing and purging what is stored about people (SPEC §7, §8, §10).
 *
 * A person is known by their PSIDs (one per Page). Everything stored about a PSID carries
 * (endpoint_id, page_id, user_id): inbox events, outbox messages, sessions, transcripts, the
 * contact link. Erasure deletes all of those for every PSID of the contact, and the contact;
 * analytics hold counts only. Erasure and the retention purge also clear the in-memory caches
 * (the callers pass `forget`).
 */
import type { InStatement, Row } from "@libsql/client";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { UserKey } from "../core/user-key.ts";
import { yieldToIo } from "../core/yield.ts";

/** Rows deleted per statement by the retention purge. */
export const PURGE_BATCH = 1000;

export interface ContactView {
  id: string;
  endpoint_id: string;
  profile: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  last_active_at: string;
  users: { page_id: string; user_id: string; first_seen_at: string; last_seen_at: string }[];
}

export interface SessionView {
  id: string;
  endpoint_id: string;
  page_id: string;
  user_id: string;
  context: Record<string, unknown>;
  created_at: string;
  last_active_at: string;
  ended_at: string | null;
  current: boolean;
}

export interface TranscriptEntry {
  id: number;
  endpoint_id: string;
  page_id: string;
  user_id: string;
  contact_id: string | null;
  session_id: string | null;
  direction: "in" | "out";
  source: string;
  text: string | null;
  data: unknown;
  created_at: string;
}

/** The columns sessionView() and transcriptEntry() read, in their order. */
const SESSION_COLUMNS = "id, endpoint_id, page_id, user_id, context, created_at, last_active_at, ended_at";
const TRANSCRIPT_COLUMNS = "id, endpoint_id, page_id, user_id, contact_id, session_id, direction, source, text, data, created_at";

const iso = (v: unknown): string => new Date(Number(v)).toISOString();
const isoOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : iso(v));

function json(v: unknown): any {
  if (typeof v !== "string") return null;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

export interface TranscriptLine {
  direction: "in" | "out";
  /** in: user | inject; out: flow | inject | notify */
  source: string;
  text: string | null;
  /** in: the input's data; out: the Messenger message. */
  data: unknown;
}

/** One INSERT for transcript lines of one user (kept with the work that produced them). */
export function transcriptInsert(key: UserKey, contactId: string | null, sessionId: string | null, lines: TranscriptLine[], now: number): InStatement {
  return {
    sql: `INSERT INTO transcripts (endpoint_id, page_id, user_id, contact_id, session_id, direction, source, text, data, created_at) VALUES ${lines.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
    args: lines.flatMap((l) => [key.endpointId, key.pageId, key.userId, contactId, sessionId, l.direction, l.source, l.text, l.data === undefined ? null : JSON.stringify(l.data), now]),
  };
}

/** The text of a Messenger message, for the transcript. */
export const messageText = (message: Record<string, unknown> | undefined): string | null => (typeof message?.text === "string" ? message.text : null);

export class PeopleRecords {
  constructor(
    private readonly database: Database,
    private readonly writes: WriteQueue,
  ) {}

  async #rows(sql: string, args: (string | number | null)[]): Promise<Row[]> {
    return (await this.database.client.execute({ sql, args })).rows;
  }

  /** The Page a PSID talks to on this endpoint (its latest), or null when the endpoint never saw it. */
  async pageOf(endpointId: string, userId: string, pageId?: string): Promise<string | null> {
    const page = pageId ? " AND page_id = ?" : "";
    const args = pageId ? [endpointId, userId, pageId] : [endpointId, userId];
    for (const sql of [
      `SELECT page_id FROM sessions WHERE endpoint_id = ? AND user_id = ?${page} ORDER BY last_active_at DESC LIMIT 1`,
      `SELECT page_id FROM contact_users WHERE endpoint_id = ? AND user_id = ?${page} ORDER BY last_seen_at DESC LIMIT 1`,
      `SELECT page_id FROM inbox WHERE endpoint_id = ? AND user_id = ?${page} AND kind <> 'inject' ORDER BY id DESC LIMIT 1`,
    ]) {
      const rows = await this.#rows(sql, args);
      if (rows[0]) return String(rows[0][0]);
    }
    return null;
  }

  async contactIdOf(key: UserKey): Promise<string | null> {
    const rows = await this.#rows("SELECT contact_id FROM contact_users WHERE endpoint_id = ? AND page_id = ? AND user_id = ?", [key.endpointId, key.pageId, key.userId]);
    return rows[0] ? String(rows[0][0]) : null;
  }

  /** Contacts with this PSID (on any endpoint, or on one). */
  async contactsByUser(userId: string, endpointId?: string): Promise<ContactView[]> {
    const rows = await this.#rows(
      `SELECT DISTINCT contact_id FROM contact_users WHERE user_id = ?${endpointId ? " AND endpoint_id = ?" : ""}`,
      endpointId ? [userId, endpointId] : [userId],
    );
    const out: ContactView[] = [];
    for (const r of rows) {
      const contact = await this.contact(String(r[0]));
      if (contact) out.push(contact);
    }
    return out;
  }

  async contact(id: string): Promise<ContactView | null> {
    const rows = await this.#rows("SELECT id, endpoint_id, profile, created_at, updated_at, last_active_at FROM contacts WHERE id = ?", [id]);
    const c = rows[0];
    if (!c) return null;
    const users = await this.#rows("SELECT page_id, user_id, first_seen_at, last_seen_at FROM contact_users WHERE contact_id = ? ORDER BY first_seen_at, page_id", [id]);
    return {
      id: String(c[0]),
      endpoint_id: String(c[1]),
      profile: json(c[2]) ?? {},
      created_at: iso(c[3]),
      updated_at: iso(c[4]),
      last_active_at: iso(c[5]),
      users: users.map((u) => ({ page_id: String(u[0]), user_id: String(u[1]), first_seen_at: iso(u[2]), last_seen_at: iso(u[3]) })),
    };
  }

  #keysOf(contact: ContactView): UserKey[] {
    return contact.users.map((u) => ({ endpointId: contact.endpoint_id, pageId: u.page_id, userId: u.user_id }));
  }

  async sessions(filter: { endpointId?: string; userId: string }): Promise<SessionView[]> {
    const rows = await this.#rows(
      `SELECT ${SESSION_COLUMNS} FROM sessions WHERE user_id = ?${filter.endpointId ? " AND endpoint_id = ?" : ""} ORDER BY created_at DESC`,
      filter.endpointId ? [filter.userId, filter.endpointId] : [filter.userId],
    );
    return rows.map(sessionView);
  }

  async session(id: string): Promise<SessionView | null> {
    const rows = await this.#rows(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ?`, [id]);
    return rows[0] ? sessionView(rows[0]) : null;
  }

  /** Ends the session: the user's next input starts a new one with an empty context. */
  async resetSession(id: string, now: number): Promise<SessionView | null> {
    const session = await this.session(id);
    if (!session) return null;
    if (session.current) await this.writes.run([{ sql: "UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL", args: [now, id] }]);
    return session;
  }

  /** The transcript, oldest first: the last `limit` entries that match. */
  async conversation(filter: { userId?: string; endpointId?: string; sessionId?: string; contactId?: string }, limit: number): Promise<TranscriptEntry[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.userId) (where.push("user_id = ?"), args.push(filter.userId));
    if (filter.endpointId) (where.push("endpoint_id = ?"), args.push(filter.endpointId));
    if (filter.sessionId) (where.push("session_id = ?"), args.push(filter.sessionId));
    if (filter.contactId) (where.push("contact_id = ?"), args.push(filter.contactId));
    const rows = await this.#rows(
      `SELECT ${TRANSCRIPT_COLUMNS} FROM transcripts ` +
        `WHERE ${where.join(" AND ") || "1"} ORDER BY id DESC LIMIT ?`,
      [...args, limit],
    );
    return rows.reverse().map(transcriptEntry);
  }

  /**
   * Whom a GDPR request is about: the contact's PSIDs, or a PSID of an endpoint (its contact's
   * PSIDs when it has one; else the PSID on every Page it wrote to). Null when nothing is known.
   */
  async subject(by: { contactId: string } | { endpointId: string; userId: string }): Promise<{ contact: ContactView | null; keys: UserKey[] } | null> {
    if ("contactId" in by) {
      const contact = await this.contact(by.contactId);
      return contact ? { contact, keys: this.#keysOf(contact) } : null;
    }
    const linked = await this.#rows("SELECT contact_id FROM contact_users WHERE endpoint_id = ? AND user_id = ? LIMIT 1", [by.endpointId, by.userId]);
    if (linked[0]) return this.subject({ contactId: String(linked[0][0]) });
    const pages = await this.#rows(
      "SELECT page_id FROM sessions WHERE endpoint_id = ?1 AND user_id = ?2 UNION SELECT page_id FROM transcripts WHERE user_id = ?2 AND endpoint_id = ?1 " +
        "UNION SELECT page_id FROM inbox WHERE endpoint_id = ?1 AND user_id = ?2 UNION SELECT page_id FROM outbox WHERE endpoint_id = ?1 AND user_id = ?2",
      [by.endpointId, by.userId],
    );
    if (pages.length === 0) return null;
    return { contact: null, keys: pages.map((r) => ({ endpointId: by.endpointId, pageId: String(r[0]), userId: by.userId })) };
  }

  /** Everything stored about the subject (GDPR export). */
  async export(subject: { contact: ContactView | null; keys: UserKey[] }): Promise<Record<string, unknown>> {
    const sessions: SessionView[] = [];
    const transcript: TranscriptEntry[] = [];
    const received: unknown[] = [];
    const sent: unknown[] = [];
    const facebook: unknown[] = [];
    const storage: unknown[] = [];
    const handover: unknown[] = [];
    for (const k of subject.keys) {
      const args = [k.endpointId, k.pageId, k.userId];
      sessions.push(...(await this.#rows(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE endpoint_id = ? AND page_id = ? AND user_id = ? ORDER BY created_at`, args)).map(sessionView));
      transcript.push(
        ...(await this.#rows(
          `SELECT ${TRANSCRIPT_COLUMNS} FROM transcripts WHERE endpoint_id = ? AND page_id = ? AND user_id = ? ORDER BY id`,
          args,
        )).map(transcriptEntry),
      );
      for (const r of await this.#rows("SELECT page_id, kind, timestamp, event FROM inbox WHERE endpoint_id = ? AND page_id = ? AND user_id = ? ORDER BY timestamp, id", args)) {
        received.push({ page_id: String(r[0]), kind: String(r[1]), timestamp: iso(r[2]), event: json(r[3]) });
      }
      for (const r of await this.#rows("SELECT page_id, source, body, status, created_at, sent_at FROM outbox WHERE endpoint_id = ? AND page_id = ? AND user_id = ? ORDER BY id", args)) {
        sent.push({ page_id: String(r[0]), source: String(r[1]), body: json(r[2]), status: String(r[3]), created_at: iso(r[4]), sent_at: isoOrNull(r[5]) });
      }
      for (const r of await this.#rows("SELECT storage_key, value, updated_at FROM transformer_storage WHERE endpoint_id = ? AND substr(storage_key, 1, ?) = ?", [k.endpointId, storagePrefix(k.userId).length, storagePrefix(k.userId)])) {
        storage.push({ endpoint_id: k.endpointId, key: json(r[0]), value: json(r[1]), updated_at: iso(r[2]) });
      }
      for (const r of await this.#rows("SELECT page_id, state, owner_app_id, metadata, since, last_human_at, paused_until, last_error FROM threads WHERE endpoint_id = ? AND page_id = ? AND user_id = ?", args)) {
        handover.push({ page_id: String(r[0]), state: String(r[1]), owner_app_id: r[2] ?? null, metadata: r[3] ?? null, since: iso(r[4]), last_human_at: isoOrNull(r[5]), paused_until: isoOrNull(r[6]), last_error: r[7] ?? null });
      }
      for (const r of await this.#rows("SELECT page_id, user_id, profile, profile_status, profile_expires_at, linked_at FROM contact_users WHERE endpoint_id = ? AND page_id = ? AND user_id = ?", args)) {
        facebook.push({ page_id: String(r[0]), user_id: String(r[1]), profile: json(r[2]), profile_status: r[3] ?? null, profile_expires_at: isoOrNull(r[4]), linked_at: isoOrNull(r[5]) });
      }
    }
    return {
      contact: subject.contact,
      users: subject.keys.map((k) => ({ endpoint_id: k.endpointId, page_id: k.pageId, user_id: k.userId })),
      facebook_profiles: facebook,
      sessions,
      transcript,
      events_received: received,
      messages_sent: sent,
      transformer_storage: storage,
      handover,
      exported_at: new Date().toISOString(),
    };
  }

  /**
   * Erases the subject: everything stored about each of its PSIDs, and its contact, in one
   * durable commit. The caller marks the PSIDs erased in the lanes first (a turn in flight then
   * keeps nothing) and clears the caches after.
   */
  async erase(subject: { contact: ContactView | null; keys: UserKey[] }): Promise<number> {
    const statements: InStatement[] = [];
    for (const k of subject.keys) {
      const args = [k.endpointId, k.pageId, k.userId];
      for (const table of ["inbox", "outbox", "sessions", "transcripts", "contact_users", "threads", "simulator_users"]) {
        statements.push({ sql: `DELETE FROM ${table} WHERE endpoint_id = ? AND page_id = ? AND user_id = ?`, args });
      }
      // Transformer session storage kept under this PSID (getSessionStorage(userId, sessionId)).
      statements.push(deleteStorageOf(k));
    }
    if (subject.contact) {
      const id = subject.contact.id;
      statements.push({ sql: "DELETE FROM transcripts WHERE contact_id = ?", args: [id] }, { sql: "DELETE FROM contacts WHERE id = ?", args: [id] });
    }
    const results = await this.writes.run(statements);
    return results.reduce((n, r) => n + r.rowsAffected, 0);
  }

  /** Deletes the transformer session storage kept under these PSIDs. */
  async eraseTransformerStorage(keys: UserKey[]): Promise<void> {
    const statements = keys.map(deleteStorageOf);
    if (statements.length > 0) await this.writes.run(statements);
  }

  /** Whether the endpoint (or any) has a session or contact for this PSID. */
  async knowsUser(userId: string, endpointId?: string): Promise<boolean> {
    const filter = endpointId ? " AND endpoint_id = ?" : "";
    const args = endpointId ? [userId, endpointId] : [userId];
    const rows = await this.#rows(`SELECT 1 FROM sessions WHERE user_id = ?${filter} UNION ALL SELECT 1 FROM contact_users WHERE user_id = ?${filter} LIMIT 1`, [...args, ...args]);
    return rows.length > 0;
  }

  /**
   * `retention_days`: deletes transcripts older than the cut-off, contacts idle since before it
   * (with their PSID links), sessions ended or idle since before it, and finished inbox and outbox
   * rows. Returns counts.
   *
   * The local driver runs statements on the event loop, so the work is cut into batches of
   * `PURGE_BATCH` rows with a yield between them: webhooks are answered while a large backlog is
   * purged. Tables whose ids grow with time (inbox, outbox, transcripts) are walked in id ranges
   * from the oldest row and the walk stops at the first young range, so an hourly run over a big
   * table that has nothing to purge costs one indexed lookup, not a scan.
   */
  async purge(endpointId: string, cutoff: number): Promise<Record<string, number>> {
    const counts: Record<string, number> = { transcripts: 0, contacts: 0, contact_users: 0, sessions: 0, inbox: 0, outbox: 0, transformer_storage: 0 };
    counts.transcripts = await this.#purgeByIdRange("transcripts", "created_at", "1", endpointId, cutoff);
    counts.inbox = await this.#purgeByIdRange("inbox", "received_at", "status <> 'pending'", endpointId, cutoff);
    counts.outbox = await this.#purgeByIdRange("outbox", "created_at", "status NOT IN ('pending', 'sending')", endpointId, cutoff);
    for (;;) {
      const [idle] = await this.writes.run(
        [{ sql: "DELETE FROM transformer_storage WHERE rowid IN (SELECT rowid FROM transformer_storage WHERE endpoint_id = ? AND updated_at < ? LIMIT ?)", args: [endpointId, cutoff, PURGE_BATCH] }],
        { durable: false },
      );
      counts.transformer_storage! += idle!.rowsAffected;
      if (idle!.rowsAffected < PURGE_BATCH) break;
      await yieldToIo();
    }
    for (;;) {
      const idle = await this.#rows("SELECT id FROM contacts WHERE endpoint_id = ? AND last_active_at < ? LIMIT ?", [endpointId, cutoff, PURGE_BATCH]);
      if (idle.length === 0) break;
      const ids = idle.map((r) => String(r[0]));
      const marks = ids.map(() => "?").join(", ");
      const [users, contacts] = await this.writes.run(
        [
          { sql: `DELETE FROM contact_users WHERE contact_id IN (${marks})`, args: ids },
          { sql: `DELETE FROM contacts WHERE id IN (${marks})`, args: ids },
        ],
        { durable: false },
      );
      counts.contact_users! += users!.rowsAffected;
      counts.contacts! += contacts!.rowsAffected;
      await yieldToIo();
    }
    // Sessions ended, or idle (a user silent for longer than the retention, also with
    // expiration_minutes = 0), before the cut-off: walked in rowid ranges, since their age is
    // not in rowid order.
    for (let after = 0; ; ) {
      const range = await this.#rows("SELECT rowid FROM sessions WHERE rowid > ? ORDER BY rowid LIMIT ?", [after, PURGE_BATCH]);
      if (range.length === 0) break;
      const last = Number(range[range.length - 1]![0]);
      const [result] = await this.writes.run(
        [{ sql: "DELETE FROM sessions WHERE rowid > ? AND rowid <= ? AND endpoint_id = ? AND coalesce(ended_at, last_active_at) < ?", args: [after, last, endpointId, cutoff] }],
        { durable: false },
      );
      counts.sessions! += result!.rowsAffected;
      after = last;
      await yieldToIo();
    }
    return counts;
  }

  async #purgeByIdRange(table: string, timeColumn: string, finished: string, endpointId: string, cutoff: number): Promise<number> {
    let deleted = 0;
    let after = 0;
    for (;;) {
      const range = await this.#rows(`SELECT id, ${timeColumn} FROM ${table} WHERE id > ? ORDER BY id LIMIT ?`, [after, PURGE_BATCH]);
      if (range.length === 0 || Number(range[0]![1]) >= cutoff) break;
      const last = Number(range[range.length - 1]![0]);
      const [result] = await this.writes.run(
        [{ sql: `DELETE FROM ${table} WHERE id > ? AND id <= ? AND endpoint_id = ? AND ${timeColumn} < ? AND ${finished}`, args: [after, last, endpointId, cutoff] }],
        { durable: false },
      );
      deleted += result!.rowsAffected;
      after = last;
      await yieldToIo();
    }
    return deleted;
  }

  async analytics(endpointId: string | undefined, fromDay: string, toDay: string): Promise<Record<string, unknown>[]> {
    const rows = await this.#rows(
      `SELECT endpoint_id, day, inputs, outputs, sessions, users, failed_sends FROM analytics_daily WHERE day >= ? AND day <= ?${endpointId ? " AND endpoint_id = ?" : ""} ORDER BY day, endpoint_id`,
      endpointId ? [fromDay, toDay, endpointId] : [fromDay, toDay],
    );
    return rows.map((r) => ({
      endpoint_id: String(r[0]),
      day: String(r[1]),
      inputs: Number(r[2]),
      outputs: Number(r[3]),
      sessions: Number(r[4]),
      users: Number(r[5]),
      failed_sends: Number(r[6]),
    }));
  }
}

/** Deletes the transformer session storage kept under this PSID. */
function deleteStorageOf(k: UserKey): InStatement {
  const prefix = storagePrefix(k.userId);
  return { sql: "DELETE FROM transformer_storage WHERE endpoint_id = ? AND substr(storage_key, 1, ?) = ?", args: [k.endpointId, prefix.length, prefix] };
}

/** How a transformer storage key (the JSON of [userId, sessionId]) starts for this user. */
function storagePrefix(userId: string): string {
  return `${JSON.stringify([userId]).slice(0, -1)},`;
}

function sessionView(r: Row): SessionView {
  return {
    id: String(r[0]),
    endpoint_id: String(r[1]),
    page_id: String(r[2]),
    user_id: String(r[3]),
    context: json(r[4]) ?? {},
    created_at: iso(r[5]),
    last_active_at: iso(r[6]),
    ended_at: isoOrNull(r[7]),
    current: r[7] === null,
  };
}

function transcriptEntry(r: Row): TranscriptEntry {
  return {
    id: Number(r[0]),
    endpoint_id: String(r[1]),
    page_id: String(r[2]),
    user_id: String(r[3]),
    contact_id: r[4] === null ? null : String(r[4]),
    session_id: r[5] === null ? null : String(r[5]),
    direction: String(r[6]) as "in" | "out",
    source: String(r[7]),
    text: r[8] === null ? null : String(r[8]),
    data: json(r[9]),
    created_at: iso(r[10]),
  };
}
