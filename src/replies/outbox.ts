/** Rows of the reply lanes (table `outbox`): what the engine and the APIs add to a user's lane. */
import type { InStatement } from "@libsql/client";
import type { Db } from "../db/client.ts";
import { outbox } from "../db/schema.ts";
import { statement } from "../db/statement.ts";

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

/** One INSERT for the replies, in order; commit it together with whatever produced them. */
export function enqueueReplies(db: Db, replies: NewReply[], now: number): InStatement | null {
  if (replies.length === 0) return null;
  return statement(
    db.insert(outbox).values(
      replies.map((r) => ({
        endpointId: r.endpointId,
        pageId: r.pageId,
        userId: r.userId,
        source: r.source,
        inboxId: r.inboxId ?? null,
        sessionId: r.sessionId ?? null,
        kind: r.senderAction ? "action" : "message",
        body: JSON.stringify(
          r.senderAction
            ? { sender_action: r.senderAction }
            : { messaging_type: r.messagingType ?? "RESPONSE", ...(r.tag ? { tag: r.tag } : {}), message: r.message ?? {} },
        ),
        createdAt: now,
      })),
    ),
  );
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
