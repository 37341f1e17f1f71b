/**
 * What handover tells the rest of the code: the Page Inbox's app id, the target of a pass, and
 * what the flow hears when the thread comes back (`input.handover`, docs/handover.md).
 */
import type { UserKey } from "../core/user-key.ts";
import type { InboxEvent } from "../inbox/events.ts";

/** The Page Inbox's app id: passing the thread to it puts the conversation in front of people. */
export const PAGE_INBOX_APP_ID = "263902037430900";

/** What the flow gets as `input.handover` when control comes back (docs/handover.md). */
export interface HandoverOutcome {
  status: "completed" | "timeout" | "error";
  /** What came back with the thread (the other app's metadata), else what we sent. */
  metadata: string | null;
  /** The app that had the thread. */
  owner_app_id: string | null;
  /** When the thread left us (ISO time). */
  since: string | null;
  /** status "error": why the thread could not be passed. */
  error?: { message: string; code?: number };
}

/** The synthesized inbox event (kind "handover") that gives the flow its `source: "handover"` turn. */
export interface HandoverEvent {
  handover: HandoverOutcome;
  /** The Messenger event that brought the thread back (a pass_thread_control), for `data.request`. */
  request?: unknown;
}

/** The app id a target names (`page_inbox` or an app id). */
export const targetAppId = (target: string): string => (target === "page_inbox" ? PAGE_INBOX_APP_ID : target);

/**
 * The inbox event (kind "handover") that gives the flow its `source: "handover"` turn: `unique`
 * names what it ends, so that storing it again (after a crash) is a no-op; `timestamp` places it
 * in the user's lane.
 */
export function outcomeEvent(key: UserKey, outcome: HandoverOutcome, unique: string, timestamp: number, request?: unknown): InboxEvent {
  const event: HandoverEvent = { handover: outcome, ...(request !== undefined ? { request } : {}) };
  return {
    pageId: key.pageId,
    userId: key.userId,
    kind: "handover",
    standby: false,
    dedupKey: `handover:${outcome.status}:${key.pageId}:${key.userId}:${unique}`,
    timestamp,
    item: event as unknown as InboxEvent["item"],
  };
}
