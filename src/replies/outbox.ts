/** Rows of the reply lanes (table `outbox`): what the engine and the APIs add to a user's lane. */
import type { InStatement } from "@libsql/client";

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

/** The `metadata` stamp that lets the echo of a message be matched to its outbox row. */
export function stampFor(outboxId: number): string {
  return `me:${outboxId}`;
}

export function outboxIdFromStamp(metadata: unknown): number | null {
  if (typeof metadata !== "string") return null;
  const m = /^me:(\d+)$/.exec(metadata);
  return m ? Number(m[1]) : null;
}
