/**
 * The webhook envelope and the events inside it. One TypeBox schema for the envelope (checked at
 * the boundary), then every `entry[]` and every `messaging[]`/`standby[]` item becomes one
 * `InboxEvent`: which Page, which user, what kind, when, and the key that makes a redelivery of the
 * same event a no-op.
 */
import { createHash } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";

const Party = Type.Object({
  id: Type.Optional(Type.String()),
  user_ref: Type.Optional(Type.String()),
});

/** One `messaging[]` / `standby[]` item. Only what we route on is checked; the rest is kept as is. */
export const MessagingItem = Type.Object({
  sender: Type.Optional(Party),
  recipient: Type.Optional(Party),
  timestamp: Type.Optional(Type.Number()),
});
export type MessagingItem = Static<typeof MessagingItem> & Record<string, unknown>;

export const Entry = Type.Object({
  id: Type.Union([Type.String(), Type.Number()]),
  time: Type.Optional(Type.Number()),
  messaging: Type.Optional(Type.Array(Type.Unknown())),
  standby: Type.Optional(Type.Array(Type.Unknown())),
});

export const PageEnvelope = Type.Object({
  object: Type.Literal("page"),
  entry: Type.Array(Entry),
});
export type PageEnvelope = Static<typeof PageEnvelope>;

const checkEnvelope = TypeCompiler.Compile(PageEnvelope);
const checkItem = TypeCompiler.Compile(MessagingItem);

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
 * API; `handover`, the thread came back on a timeout or a handover failed (src/handover/threads.ts).
 */
export type EventKind = (typeof EVENT_KINDS)[number] | "unknown" | "malformed" | "inject" | "handover";

/** Handover protocol events (messaging_handovers), handled by the engine with src/handover/. */
export const HANDOVER_KINDS: ReadonlySet<EventKind> = new Set(["pass_thread_control", "take_thread_control", "request_thread_control"]);

/** Kinds that are a person talking to the Page: these run the flow. */
export const USER_INPUT_KINDS: ReadonlySet<EventKind> = new Set(["message", "postback", "referral", "optin"]);

export interface InboxEvent {
  pageId: string;
  userId: string;
  kind: EventKind;
  standby: boolean;
  dedupKey: string;
  timestamp: number;
  item: MessagingItem;
}

export type ParsedBody =
  | { type: "events"; entries: ParsedEntry[]; skipped: SkippedItem[] }
  | { type: "ignored"; reason: string }
  | { type: "invalid"; reason: string };

export interface ParsedEntry {
  pageId: string;
  events: InboxEvent[];
}

export interface SkippedItem {
  pageId: string;
  reason: string;
}

/**
 * Parses a signature-checked body. `invalid` is answered 400; `ignored` (Dashboard test pings,
 * Page feed changes) 200 with nothing stored.
 */
export function parseWebhookBody(body: Uint8Array, now: number): ParsedBody {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return { type: "invalid", reason: "the body is not valid JSON" };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { type: "invalid", reason: "the body must be a JSON object" };
  }
  const record = json as Record<string, unknown>;
  if (record.object === undefined && "field" in record && "value" in record) {
    return { type: "ignored", reason: "App Dashboard test event (field/value shape)" };
  }
  if (record.object !== "page") {
    const got = record.object === undefined ? "no object field" : `object ${JSON.stringify(record.object)}`;
    return {
      type: "invalid",
      reason: `expected a Messenger webhook (object "page"), got ${got}: subscribe this URL to the Page webhook of the App`,
    };
  }
  if (!checkEnvelope.Check(json)) {
    const first = checkEnvelope.Errors(json).First();
    return { type: "invalid", reason: `malformed envelope at ${first?.path || "/"}: ${first?.message ?? "unexpected shape"}` };
  }
  const envelope = json as PageEnvelope;
  const entries: ParsedEntry[] = [];
  const skipped: SkippedItem[] = [];
  for (const entry of envelope.entry) {
    const pageId = String(entry.id);
    const events: InboxEvent[] = [];
    for (const [list, standby] of [
      [entry.messaging, false],
      [entry.standby, true],
    ] as const) {
      for (const raw of list ?? []) {
        const event = toInboxEvent(raw, pageId, standby, entry.time ?? now);
        if (typeof event !== "string") {
          events.push(event);
          continue;
        }
        // Acknowledged, so kept: Facebook has no replay. Stored for inspection, never run.
        skipped.push({ pageId, reason: event });
        events.push(malformedEvent(raw, pageId, standby, entry.time ?? now));
      }
    }
    entries.push({ pageId, events });
  }
  return { type: "events", entries, skipped };
}

/** One messaging item → an inbox event, or the reason it cannot be one. */
export function toInboxEvent(raw: unknown, pageId: string, standby: boolean, fallbackTime: number): InboxEvent | string {
  if (!checkItem.Check(raw)) {
    const first = checkItem.Errors(raw).First();
    return `malformed messaging item at ${first?.path || "/"}: ${first?.message ?? "unexpected shape"}`;
  }
  const item = raw as MessagingItem;
  const kind = kindOf(item);
  const userId = userOf(item, pageId);
  const anyItem = item as Record<string, any>;
  const watermark = typeof anyItem[kind]?.watermark === "number" ? (anyItem[kind].watermark as number) : undefined;
  const timestamp = item.timestamp ?? watermark ?? fallbackTime;
  return { pageId, userId, kind, standby, timestamp, dedupKey: dedupKeyOf(item, kind, pageId, userId, timestamp), item };
}

function malformedEvent(raw: unknown, pageId: string, standby: boolean, time: number): InboxEvent {
  const json = JSON.stringify(raw) ?? "null";
  return {
    pageId,
    userId: "",
    kind: "malformed",
    standby,
    timestamp: time,
    dedupKey: `malformed:${pageId}:${createHash("sha256").update(json).digest("hex")}`,
    item: { raw } as MessagingItem,
  };
}

function kindOf(item: Record<string, any>): EventKind {
  if (item.message) return item.message.is_echo ? "echo" : "message";
  if (item["policy-enforcement"]) return "policy_enforcement";
  for (const kind of EVENT_KINDS) if (kind !== "message" && kind !== "echo" && item[kind] !== undefined) return kind;
  return "unknown";
}

/**
 * The person the event is about. Usually the sender; for echoes (sent by the Page) the recipient.
 * Meta's own examples swap sender and recipient for some handover events, so we take whichever
 * side is not the Page. Checkbox / chat-plugin users have only a `user_ref`.
 */
function userOf(item: MessagingItem, pageId: string): string {
  const sender = item.sender?.id;
  const recipient = item.recipient?.id;
  if (sender && sender !== pageId) return sender;
  if (recipient && recipient !== pageId) return recipient;
  const ref = item.sender?.user_ref ?? (item as Record<string, any>).optin?.user_ref;
  return typeof ref === "string" ? `user_ref:${ref}` : "";
}

/**
 * What makes two deliveries the same event: the message id where the event has its own
 * (messages, echoes, postbacks since v11), else sender, timestamp and kind as the platform docs
 * suggest, with the detail that tells two events of one millisecond apart.
 */
function dedupKeyOf(item: Record<string, any>, kind: EventKind, pageId: string, userId: string, timestamp: number): string {
  switch (kind) {
    case "message":
    case "echo":
      if (item.message.mid) return `${kind}:${item.message.mid}`;
      break;
    case "postback":
      if (item.postback.mid) return `postback:${item.postback.mid}`;
      break;
    case "message_edit":
      if (item.message_edit.mid) return `edit:${item.message_edit.mid}:${item.message_edit.num_edit ?? ""}`;
      break;
    case "reaction":
      return `reaction:${pageId}:${userId}:${timestamp}:${item.reaction.action ?? ""}:${item.reaction.mid ?? ""}`;
  }
  // Without a message id: the same Page, user, kind and time is the same event.
  return `${kind}:${pageId}:${userId}:${timestamp}`;
}
