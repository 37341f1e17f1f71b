/** Rows of the reply lanes (table `outbox`): what the engine and the APIs add to a user's lane. */
import { randomBytes } from "node:crypto";
import type { Client, InStatement } from "@libsql/client";

export type OutboxSource = "flow" | "inject" | "notify" | "handover" | "seen";

export interface NewReply {
  endpointId: string;
  pageId: string;
  userId: string;
  source: OutboxSource;
  inboxId?: number | null;
  sessionId?: string | null;
  /** A message: typing indicator and delay apply. */
  message?: Record<string, unknown>;
  messagingType?: "RESPONSE" | "UPDATE" | "MESSAGE_TAG";
  tag?: string;
  /** A sender action such as mark_seen, sent as soon as its turn in the lane comes. */
  senderAction?: "mark_seen" | "typing_on" | "typing_off";
}

/**
 * One INSERT for the replies, in order; commit it together with whatever produced them.
 * (Plain SQL: it runs once per turn.)
 */
export function enqueueReplies(replies: NewReply[], now: number): InStatement | null {
  if (replies.length === 0) return null;
  return {
    sql:
      "INSERT INTO outbox (endpoint_id, page_id, user_id, source, inbox_id, session_id, kind, body, created_at) VALUES " +
      replies.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", "),
    args: replies.flatMap((r) => [
      r.endpointId,
      r.pageId,
      r.userId,
      r.source,
      r.inboxId ?? null,
      r.sessionId ?? null,
      r.senderAction ? "action" : "message",
      JSON.stringify(
        r.senderAction
          ? { sender_action: r.senderAction }
          : { messaging_type: r.messagingType ?? "RESPONSE", ...(r.tag ? { tag: r.tag } : {}), message: r.message ?? {} },
      ),
      now,
    ]),
  };
}

/**
 * The `metadata` stamp that lets the echo of a message be matched to its outbox row:
 * `me:<install>:<outbox id>`. Echoes go to every app subscribed to the Page, so a second
 * deployment on the same Page (staging next to production, say) sees ours too; the install id,
 * random per database, keeps its outbox ids from being taken for ours.
 */
export function stampFor(installId: string, outboxId: number): string {
  return `me:${installId}:${outboxId}`;
}

/** The outbox id of one of our own stamps; null for anybody else's metadata. */
export function outboxIdFromStamp(installId: string, metadata: unknown): number | null {
  if (typeof metadata !== "string") return null;
  const m = /^me:([A-Za-z0-9_-]+):(\d+)$/.exec(metadata);
  return m && m[1] === installId ? Number(m[2]) : null;
}

/**
 * This database's install id (created once, kept in `meta`): what tells our own echoes from
 * those of another deployment on the same Page.
 */
export async function installId(client: Client): Promise<string> {
  await client.execute({
    sql: "INSERT INTO meta (key, value, updated_at) VALUES ('install_id', ?, ?) ON CONFLICT (key) DO NOTHING",
    args: [randomBytes(6).toString("base64url"), Date.now()],
  });
  const row = await client.execute("SELECT value FROM meta WHERE key = 'install_id'");
  return String(row.rows[0]![0]);
}
