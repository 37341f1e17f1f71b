/**
 * What the inbox holds: the kinds of events and one event as stored. The webhook makes them from
 * Facebook's envelope (webhook/events.ts); the admin API (`inject`) and the handover threads
 * (`handover`) store kinds of their own; the conversation engine works through them.
 */

/** Event kinds, named after the key that carries them (`policy-enforcement` → `policy_enforcement`). */
export const EVENT_KINDS = [
  "message",
  "echo",
  "postback",
  "referral",
  "optin",
  "reaction",
  "message_edit",
  "delivery",
  "read",
  "pass_thread_control",
  "take_thread_control",
  "request_thread_control",
  "app_roles",
  "account_linking",
  "policy_enforcement",
  "game_play",
] as const;
/**
 * Not from Facebook, stored in the inbox like the rest: `inject`, an input given through the admin
 * API; `handover`, the thread came back on a timeout or a handover failed (src/handover/threads.ts);
 * `erased` and `thread_changed`, with several instances, notices to the instance that runs the
 * person (src/conversations/notices.ts).
 */
export type EventKind = (typeof EVENT_KINDS)[number] | "unknown" | "malformed" | "inject" | "handover" | "erased" | "thread_changed";

/** Handover protocol events (messaging_handovers), handled by the engine with src/handover/. */
export const HANDOVER_KINDS: ReadonlySet<EventKind> = new Set(["pass_thread_control", "take_thread_control", "request_thread_control"]);

/** Kinds that are a person talking to the Page: these run the flow (unless `isUnsent`). */
export const USER_INPUT_KINDS: ReadonlySet<EventKind> = new Set(["message", "postback", "referral", "optin"]);

/** Kinds that report on messages sent (echoes, deliveries, reads): applied on arrival, never run the flow. */
export const STATE_KINDS: ReadonlySet<EventKind> = new Set(["echo", "delivery", "read"]);

/** One event as the inbox stores it (a row of the `inbox` table, db/schema.ts). */
export interface InboxEvent {
  pageId: string;
  /** The person it is about; '' for Page-level events. */
  userId: string;
  kind: EventKind;
  /** Came in `standby[]`: another app owns the thread. */
  standby: boolean;
  /** What makes a redelivery of the same event a no-op (unique per endpoint). */
  dedupKey: string;
  /** Facebook's time of the event (ms since 1970). */
  timestamp: number;
  /** The messaging item as it came (checked by webhook/events.ts), or what `inject` / `handover` stored. */
  item: Record<string, unknown>;
}

/** A message the user unsent (`message.is_deleted`): stored, never run (the flow would get an empty text). */
export function isUnsent(item: unknown): boolean {
  return isObject(item) && isObject(item.message) && item.message.is_deleted === true;
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
