/**
 * Transcripts (`collect_conversations`): each turn's input and the messages it queued, written in
 * the commit of the work that produced them, and read back by the admin API per user, session or
 * contact.
 */
import type { InStatement, Row } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { column, columnList, rowReader, valuesSql } from "../db/rows.ts";
import { transcripts } from "../db/schema.ts";
import { isoTime, storedJson } from "../db/values.ts";
import type { UserKey } from "../core/user-key.ts";
import { referencesAsText } from "../core/html.ts";

export interface TranscriptLine {
  direction: "in" | "out";
  /** in: user | inject; out: flow | inject | notify */
  source: string;
  text: string | null;
  /** in: the input's data; out: the Messenger message. */
  data: unknown;
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

const insertSql = valuesSql(
  "INSERT INTO transcripts (endpoint_id, page_id, user_id, contact_id, session_id, direction, source, text, data, created_at) VALUES ",
  10,
);

/** One INSERT for transcript lines of one user (kept with the work that produced them). */
export function transcriptInsert(
  key: UserKey,
  contactId: string | null,
  sessionId: string | null,
  given: TranscriptLine[],
  now: number,
  options: { hideExternalReferences?: boolean } = {},
): InStatement {
  const lines = options.hideExternalReferences ? given.map((l) => (l.direction === "in" ? withReferencesAsText(l) : l)) : given;
  return {
    sql: insertSql(lines.length),
    args: lines.flatMap((l) => [
      key.endpointId,
      key.pageId,
      key.userId,
      contactId,
      sessionId,
      l.direction,
      l.source,
      l.text,
      l.data === undefined ? null : JSON.stringify(l.data),
      now,
    ]),
  };
}

/**
 * `hide_external_references`: a user input's links and images kept as text — `<a>`/`<img>` tags
 * in its text escaped, and its attachments' `url` given as `reference` — so that a transcript
 * viewer neither loads nor links them.
 */
function withReferencesAsText(line: TranscriptLine): TranscriptLine {
  const data = line.data as { attachments?: unknown } | null | undefined;
  const attachments = Array.isArray(data?.attachments)
    ? data.attachments.map((a) => {
        if (typeof a !== "object" || a === null || !("url" in a)) return a;
        const { url, ...rest } = a as Record<string, unknown>;
        return { ...rest, reference: url };
      })
    : undefined;
  return {
    ...line,
    text: line.text === null ? null : referencesAsText(line.text),
    data: attachments ? { ...(data as Record<string, unknown>), attachments } : line.data,
  };
}

/** The text of a Messenger message, for the transcript. */
export const messageText = (message: Record<string, unknown> | undefined): string | null => (typeof message?.text === "string" ? message.text : null);

const ENTRY_KEYS = ["id", "endpointId", "pageId", "userId", "contactId", "sessionId", "direction", "source", "text", "data", "createdAt"] as const;
const readEntry = rowReader(transcripts, ENTRY_KEYS);
/** The conversations API's query for one PSID (through the index transcripts_user); the other filters given are added (FILTERS). */
const CONVERSATION_SQL = `SELECT ${columnList(transcripts, ENTRY_KEYS)} FROM transcripts WHERE user_id = ?`;
const FILTERS = { endpointId: "endpoint_id = ?", sessionId: "session_id = ?", contactId: "contact_id = ?" } as const;
/** The PSID of a session, and the PSIDs of a contact: their lines are among those PSIDs' lines. */
const USER_OF_SESSION_SQL = "SELECT user_id FROM sessions WHERE id = ?";
const USERS_OF_CONTACT_SQL = "SELECT DISTINCT user_id FROM contact_users WHERE contact_id = ?";
const readUserId = (row: Row) => String(column(row, "user_id"));

export function transcriptEntry(row: Pick<typeof transcripts.$inferSelect, (typeof ENTRY_KEYS)[number]>): TranscriptEntry {
  return {
    id: row.id,
    endpoint_id: row.endpointId,
    page_id: row.pageId,
    user_id: row.userId,
    contact_id: row.contactId,
    session_id: row.sessionId,
    direction: row.direction as "in" | "out",
    source: row.source,
    text: row.text,
    data: storedJson(row.data),
    created_at: isoTime(row.createdAt),
  };
}

/** Transcripts as the admin API reads them (hand-written SQL: it answers requests). */
export class Transcripts {
  constructor(private readonly database: Database) {}

  /**
   * The transcript, oldest first: the last `limit` entries that match. Read per PSID: the PSID
   * given, else the session's, else the contact's (a contact's lines are those of its PSIDs under
   * it), then merged by id.
   */
  async conversation(filter: { userId?: string; endpointId?: string; sessionId?: string; contactId?: string }, limit: number): Promise<TranscriptEntry[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    for (const name of ["endpointId", "sessionId", "contactId"] as const) {
      const value = filter[name];
      if (value) {
        where.push(` AND ${FILTERS[name]}`);
        args.push(value);
      }
    }
    const sql = `${CONVERSATION_SQL}${where.join("")} ORDER BY id DESC LIMIT ?`;
    const found: ReturnType<typeof readEntry>[] = [];
    for (const userId of await this.#users(filter)) {
      found.push(...(await this.database.client.execute({ sql, args: [userId, ...args, limit] })).rows.map(readEntry));
    }
    return found
      .sort((a, b) => b.id - a.id)
      .slice(0, limit)
      .reverse()
      .map(transcriptEntry);
  }

  async #users(filter: { userId?: string; sessionId?: string; contactId?: string }): Promise<string[]> {
    if (filter.userId) return [filter.userId];
    const { client } = this.database;
    if (filter.sessionId) return (await client.execute({ sql: USER_OF_SESSION_SQL, args: [filter.sessionId] })).rows.map(readUserId);
    if (filter.contactId) return (await client.execute({ sql: USERS_OF_CONTACT_SQL, args: [filter.contactId] })).rows.map(readUserId);
    return [];
  }
}
