/** Rows of the reply lanes (table `outbox`): what the engine and the APIs add to a user's lane. */
import { randomBytes } from "node:crypto";
import type { Client, InStatement, ResultSet } from "@libsql/client";
import { insertedIds, rowReader, valuesSql } from "../db/rows.ts";
import { meta } from "../db/schema.ts";
import type { WriteQueue } from "../db/write-queue.ts";

const readValue = rowReader(meta, ["value"]);
/** No RETURNING: the ids are read from the last one (`insertedIds`), which costs the driver one call less per statement. */
const insertSql = valuesSql(
  "INSERT INTO outbox (endpoint_id, page_id, user_id, source, inbox_id, session_id, kind, body, created_at, status, attempts, first_attempt_at) VALUES ",
  12,
);

/** seen: the engine's mark_seen; typing: its typing indicator while a flow works (conversations/typing.ts). */
export type OutboxSource = "flow" | "inject" | "notify" | "handover" | "seen" | "typing";

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
  /** A sender action (mark_seen, a typing indicator), sent as soon as its turn in the lane comes. */
  senderAction?: "mark_seen" | "typing_on" | "typing_off";
  /** A handover (kind "control"): `pass_thread_control` once everything before it is sent. */
  passThread?: { targetAppId: string; metadata: string | null };
}

/** The body of a "control" item. */
export interface ControlBody {
  control: "pass_thread_control";
  target_app_id: string;
  metadata: string | null;
}

/** An item of a reply lane, as the lane works with it (a row of `outbox` that is still open). */
export interface OutboxItem {
  id: number;
  endpointId: string;
  pageId: string;
  userId: string;
  /** message (typing and delay apply) | action (a sender action) | control (pass_thread_control) */
  kind: string;
  /** The Send API body without `recipient`, as JSON. */
  body: string;
  status: "pending" | "sending";
  attempts: number;
  nextAttemptAt: number | null;
  firstAttemptAt: number | null;
  // In memory only, for the lane (replies/lanes.ts and the files it uses):
  /** Graph took it; only its outcome is still to be stored. Never sent again, whatever happens to that write. */
  accepted?: { status: "sent" | "unconfirmed"; messageId: string | null; error?: Record<string, unknown> };
  /** The last call's answer was unclear: the lane waits for the echo until this time. */
  echoWaitUntil?: number;
  /** When that unclear answer came (also set at start for a row marked unclear before a stop). */
  unclearSince?: number;
  /** Its echo came back: the row says sent. */
  echoed?: boolean;
  /** (control) An earlier call may have passed the thread: ask Graph before passing again. */
  maybeDone?: boolean;
  /** The event whose turn queued it (metrics/turn-timings.ts follows it); not read back after a restart. */
  inboxId?: number;
  /**
   * Committed already marked "sending" with the turn (enqueueReplies `markFirst`): the lane sends
   * it once a sync covers that commit, without a "sending" write of its own.
   */
  premarked?: boolean;
}

export interface Enqueued {
  /** Commit this together with whatever produced the replies. */
  statement: InStatement;
  /** After the commit: the new lane items, from the statement's result. */
  items(result: ResultSet): OutboxItem[];
}

/**
 * One INSERT for the replies, in order; commit it together with whatever produced them, then
 * hand `items(result)` to the reply lanes. (Plain SQL: it runs once per turn.)
 */
export function enqueueReplies(replies: NewReply[], now: number, options: { markFirst?: boolean } = {}): Enqueued | null {
  if (replies.length === 0) return null;
  // The turn's first message, committed as "sending" when the lane will send it at once (lanes.ts `sendsAtOnce`).
  const markFirst = options.markFirst === true && !replies[0]!.passThread && !replies[0]!.senderAction;
  const rows = replies.map((r, i) => ({
    reply: r,
    marked: markFirst && i === 0,
    kind: r.passThread ? "control" : r.senderAction ? "action" : "message",
    body: JSON.stringify(
      r.passThread
        ? ({ control: "pass_thread_control", target_app_id: r.passThread.targetAppId, metadata: r.passThread.metadata } satisfies ControlBody)
        : r.senderAction
          ? { sender_action: r.senderAction }
          : { messaging_type: r.messagingType ?? "RESPONSE", ...(r.tag ? { tag: r.tag } : {}), message: r.message ?? {} },
    ),
  }));
  return {
    statement: {
      sql: insertSql(rows.length),
      args: rows.flatMap(({ reply: r, kind, body, marked }) => {
        return [
          r.endpointId,
          r.pageId,
          r.userId,
          r.source,
          r.inboxId ?? null,
          r.sessionId ?? null,
          kind,
          body,
          now,
          marked ? "sending" : "pending",
          marked ? 1 : 0,
          marked ? now : null,
        ];
      }),
    },
    items(result) {
      const first = insertedIds(result, rows.length);
      return rows.map(({ reply: r, kind, body, marked }, i) => ({
        id: first + i,
        endpointId: r.endpointId,
        pageId: r.pageId,
        userId: r.userId,
        kind,
        body,
        status: marked ? "sending" : "pending",
        attempts: marked ? 1 : 0,
        nextAttemptAt: null,
        firstAttemptAt: marked ? now : null,
        ...(r.inboxId != null ? { inboxId: r.inboxId } : {}),
        ...(marked ? { premarked: true } : {}),
      }));
    },
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

const SELECT_INSTALL_ID_SQL = "SELECT value FROM meta WHERE key = 'install_id'";

/**
 * This database's install id (created once, kept in `meta`): what tells our own echoes from
 * those of another deployment on the same Page.
 */
export async function installId(writes: WriteQueue, client: Client): Promise<string> {
  // Read first: a start on a full disk must not fail on a write that changes nothing.
  const existing = await client.execute(SELECT_INSTALL_ID_SQL);
  if (existing.rows.length > 0) return readValue(existing.rows[0]!).value;
  await writes.run([
    {
      sql: "INSERT INTO meta (key, value, updated_at) VALUES ('install_id', ?, ?) ON CONFLICT (key) DO NOTHING",
      args: [randomBytes(6).toString("base64url"), Date.now()],
    },
  ]);
  const row = await client.execute(SELECT_INSTALL_ID_SQL);
  return readValue(row.rows[0]!).value;
}
