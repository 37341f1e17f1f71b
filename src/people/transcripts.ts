/**
 * Transcripts (`collect_conversations`): each turn's input and the messages it queued, written in
 * the commit of the work that produced them, and read back by the admin API per user, session or
 * contact.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { columnList, rowReader } from "../db/rows.ts";
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

const INSERT_SQL = "INSERT INTO transcripts (endpoint_id, page_id, user_id, contact_id, session_id, direction, source, text, data, created_at) VALUES ";
const INSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

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
    sql: INSERT_SQL + lines.map(() => INSERT_ROW).join(", "),
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
/** The conversations API's query; its WHERE is made of the filters given (FILTERS). */
const CONVERSATION_SQL = `SELECT ${columnList(transcripts, ENTRY_KEYS)} FROM transcripts WHERE `;
const FILTERS = { userId: "user_id = ?", endpointId: "endpoint_id = ?", sessionId: "session_id = ?", contactId: "contact_id = ?" } as const;

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

  /** The transcript, oldest first: the last `limit` entries that match. */
  async conversation(filter: { userId?: string; endpointId?: string; sessionId?: string; contactId?: string }, limit: number): Promise<TranscriptEntry[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    for (const name of ["userId", "endpointId", "sessionId", "contactId"] as const) {
      const value = filter[name];
      if (value) {
        where.push(FILTERS[name]);
        args.push(value);
      }
    }
    const result = await this.database.client.execute({
      sql: `${CONVERSATION_SQL}${where.join(" AND ") || "1"} ORDER BY id DESC LIMIT ?`,
      args: [...args, limit],
    });
    return result.rows.map(readEntry).reverse().map(transcriptEntry);
  }
}
