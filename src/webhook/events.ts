/**
 * The webhook envelope and the events inside it. The envelope is checked at the boundary (a body
 * that is not one is refused as a whole); then every `entry[]` and every `messaging[]`/`standby[]`
 * item becomes one `InboxEvent` (inbox/events.ts): which Page, which user, what kind, when, and the
 * key that makes a redelivery of the same event a no-op.
 *
 * An entry or item that cannot be understood never fails the rest of the batch: Facebook
 * redelivers the same body after a non-200, so one bad item would be refused again and again until
 * Facebook disables the webhook. An item is then stored as kind `malformed` (with why, never
 * processed); an entry without a usable Page id, which has nowhere to be stored, is ignored and
 * reported. Nothing in here throws on what a body contains.
 */
import { Type, type Static } from "@sinclair/typebox";
import { checker, firstProblem } from "../core/checks.ts";
import { EVENT_KINDS, isUnsent, type EventKind, type InboxEvent } from "../inbox/events.ts";
import { USER_REF_PREFIX } from "../core/user-key.ts";
import { boundedJson, deeperThan } from "./bounded-json.ts";

/**
 * Milliseconds since 1970 as Meta writes them (whole, 13 digits), up to the last one a JS Date
 * holds: anything else (1e400 parses to Infinity) could not be stored or turned into a date.
 */
const Millis = Type.Integer({ minimum: 0, maximum: 8.64e15 });

const Party = Type.Object({
  id: Type.Optional(Type.String()),
  user_ref: Type.Optional(Type.String()),
});

/** One `messaging[]` / `standby[]` item. Only what we route on is checked; the rest is kept as is. */
export const MessagingItem = Type.Object({
  sender: Type.Optional(Party),
  recipient: Type.Optional(Party),
  timestamp: Type.Optional(Millis),
});
export type MessagingItem = Static<typeof MessagingItem> & Record<string, unknown>;

/**
 * The envelope: what makes a body a Messenger webhook at all. The entries are looked at one by one
 * (`parseEntry`), so that one bad entry does not refuse its neighbours.
 */
export const PageEnvelope = Type.Object({
  object: Type.Literal("page"),
  entry: Type.Array(Type.Unknown()),
});
export type PageEnvelope = Static<typeof PageEnvelope>;

const checkEnvelope = checker(PageEnvelope);
const checkItem = checker(MessagingItem);

/**
 * How deep an item may be nested. Messenger's deepest items (an echo of a generic template with
 * buttons) are about 8 levels; a deeper one is stored as malformed, which keeps every stored event
 * safe to serialise and to hand to a flow.
 */
export const MAX_ITEM_DEPTH = 64;
/** At most this much of a malformed item's JSON is stored (characters); the rest is cut off. */
export const MAX_MALFORMED_JSON = 64 * 1024;
/** A PSID (and a Page id): digits, as Meta writes them; a bound keeps a hostile id from becoming a lane key or a Graph path. */
const PSID_PATTERN = /^[0-9]{1,32}$/;
/** A checkbox / chat plugin `user_ref`: chosen by the web page that shows the plugin, so only bounded, printable ASCII. */
const USER_REF_PATTERN = /^[\x21-\x7e]{1,256}$/;
/** A mid (or another id in a dedup key): storable as it is (no control characters, no lone surrogate), bounded. */
const KEY_PART_PATTERN = /^[^\p{Cc}\p{Cs}]{1,1024}$/u;
/** A delivery's `mids` above this many is not Meta's (one delivery confirms a handful). */
const MAX_MIDS = 1000;

/** Kinds about the Page, not about one person: they may come without a user, and never run the flow. */
const PAGE_KINDS: ReadonlySet<EventKind> = new Set(["app_roles", "policy_enforcement", "unknown"]);

/** Handover fields that name an app: an app id (digits, as a string or a number) or null. */
const APP_ID_FIELDS: Partial<Record<EventKind, string[]>> = {
  pass_thread_control: ["previous_owner_app_id", "new_owner_app_id"],
  take_thread_control: ["previous_owner_app_id", "new_owner_app_id"],
  request_thread_control: ["requested_owner_app_id"],
};

export type ParsedBody =
  | { type: "events"; entries: ParsedEntry[]; skipped: SkippedItem[]; ignoredEntries: IgnoredEntry[] }
  | { type: "ignored"; reason: string }
  | { type: "invalid"; reason: string };

export interface ParsedEntry {
  pageId: string;
  events: InboxEvent[];
}

/** An item stored as `malformed`, and why. */
export interface SkippedItem {
  pageId: string;
  reason: string;
}

/** An entry with no Page to store its items under: nothing of it is stored. */
export interface IgnoredEntry {
  /** Its place in `entry[]`. */
  index: number;
  reason: string;
}

/**
 * Parses a signature-checked body. `invalid` is answered 400; `ignored` (Dashboard test pings)
 * 200 with nothing stored.
 */
export function parseWebhookBody(body: Uint8Array, now: number): ParsedBody {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    // A RangeError is the parser's own stack running out (nesting no webhook has).
    const why = error instanceof RangeError ? "the body is nested too deeply to be read" : "the body is not valid JSON";
    return { type: "invalid", reason: why };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { type: "invalid", reason: "the body must be a JSON object" };
  }
  const record = json as Record<string, unknown>;
  if (record.object === undefined && "field" in record && "value" in record) {
    return { type: "ignored", reason: "App Dashboard test event (field/value shape)" };
  }
  if (record.object !== "page") {
    const got =
      record.object === undefined
        ? "no object field"
        : typeof record.object === "string"
          ? `object ${JSON.stringify(record.object.slice(0, 64))}`
          : `object of type ${typeName(record.object)}`;
    return {
      type: "invalid",
      reason: `expected a Messenger webhook (object "page"), got ${got}: subscribe this URL to the Page webhook of the App`,
    };
  }
  if (!checkEnvelope.Check(json)) {
    return { type: "invalid", reason: `malformed envelope: entry must be a list, got ${typeName(record.entry)}` };
  }
  const entries: ParsedEntry[] = [];
  const skipped: SkippedItem[] = [];
  const ignoredEntries: IgnoredEntry[] = [];
  (json as PageEnvelope).entry.forEach((entry, index) => {
    try {
      const parsed = parseEntry(entry, now, skipped);
      if (typeof parsed === "string") ignoredEntries.push({ index, reason: parsed });
      else entries.push(parsed);
    } catch (error) {
      // Not expected (each item is read defensively), and still no reason to refuse the batch.
      ignoredEntries.push({ index, reason: `the entry could not be read: ${(error as Error)?.message ?? String(error)}` });
    }
  });
  return { type: "events", entries, skipped, ignoredEntries };
}

/** One `entry[]` element → its Page's events, or why it has none to store. */
function parseEntry(entry: unknown, now: number, skipped: SkippedItem[]): ParsedEntry | string {
  if (!isObject(entry)) return `the entry is ${typeName(entry)}, not an object`;
  const pageId = pageIdOf(entry.id);
  if (pageId === null) return `the entry's id is not a Page id (${typeName(entry.id)}); its items have no Page to be stored under`;
  // A bad entry time is only a missing fallback: the items carry their own timestamps.
  const time = checkMillis(entry.time) ? entry.time : now;
  const events: InboxEvent[] = [];
  for (const [key, standby] of [
    ["messaging", false],
    ["standby", true],
  ] as const) {
    const list = entry[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      // Kept, like a malformed item: it may have been events.
      const reason = `entry.${key} is ${typeName(list)}, not a list`;
      skipped.push({ pageId, reason });
      events.push(malformedEvent(list, pageId, standby, reason));
      continue;
    }
    for (const raw of list) {
      let event: InboxEvent | string;
      try {
        event = toInboxEvent(raw, pageId, standby, time);
      } catch (error) {
        event = `the item could not be read: ${(error as Error)?.message ?? String(error)}`;
      }
      if (typeof event !== "string") {
        events.push(event);
        continue;
      }
      // Acknowledged, so kept: Facebook has no replay. Stored for inspection, never run.
      skipped.push({ pageId, reason: event });
      events.push(malformedEvent(raw, pageId, standby, event));
    }
  }
  return { pageId, events };
}

/** One messaging item → an inbox event, or the reason it cannot be one. */
export function toInboxEvent(raw: unknown, pageId: string, standby: boolean, fallbackTime: number): InboxEvent | string {
  if (!isObject(raw)) return `malformed messaging item: it is ${typeName(raw)}, not an object`;
  // Before anything walks it: a deep item would overflow the stack of whatever serialises it later.
  if (deeperThan(raw, MAX_ITEM_DEPTH)) return `malformed messaging item: nested deeper than ${MAX_ITEM_DEPTH} levels`;
  if (!checkItem.Check(raw)) {
    const first = firstProblem(MessagingItem, raw);
    return `malformed messaging item at ${first?.path || "/"}: ${first?.message ?? "unexpected shape"}`;
  }
  const item = raw as MessagingItem;
  const found = kindOf(item);
  if ("problem" in found) return `malformed messaging item: ${found.problem}`;
  const { kind, body } = found;
  const user = userOf(item, pageId, kind);
  if (typeof user !== "string") return `malformed ${kind} item: ${user.problem}`;
  const bodyProblem = body ? problemOf(kind, body) : null;
  if (bodyProblem) return `malformed ${kind} item: ${bodyProblem}`;
  const watermark = checkMillis(body?.watermark) ? body.watermark : undefined;
  const timestamp = item.timestamp ?? watermark ?? fallbackTime;
  return { pageId, userId: user, kind, standby, timestamp, dedupKey: dedupKeyOf(item, kind, body, pageId, user, timestamp), item };
}

/**
 * An item that cannot be an event, kept for inspection: `{ reason, raw }`, or, when the item is
 * nested too deeply to store as JSON or its JSON is longer than MAX_MALFORMED_JSON characters,
 * `{ reason, raw_json, raw_length, truncated }` with the first MAX_MALFORMED_JSON characters of it.
 * Keyed by the sha256 of the whole item, so a redelivery stores it once.
 */
function malformedEvent(raw: unknown, pageId: string, standby: boolean, reason: string): InboxEvent {
  const json = boundedJson(raw, MAX_MALFORMED_JSON);
  // Its own time when it has a usable one, else 0: never the entry's or the arrival's, which may
  // differ between deliveries, and the dedup index is keyed by time and key.
  const own = isObject(raw) ? raw.timestamp : undefined;
  const item: Record<string, unknown> =
    json.truncated || deeperThan(raw, MAX_ITEM_DEPTH) ? { reason, raw_json: json.text, raw_length: json.length, truncated: json.truncated } : { reason, raw };
  return {
    pageId,
    userId: "",
    kind: "malformed",
    standby,
    timestamp: checkMillis(own) ? own : 0,
    dedupKey: `malformed:${pageId}:${json.sha256}`,
    item: item as MessagingItem,
  };
}

/** Every wire key of an event, and its kind (`message` is a message or an echo). */
const EVENT_KEYS: readonly [string, EventKind][] = [
  ["message", "message"],
  ["policy-enforcement", "policy_enforcement"],
  ...EVENT_KINDS.filter((k) => k !== "message" && k !== "echo").map((k) => [k, k] as [string, EventKind]),
];

/** The event's kind and its body (the object under its key); `unknown` for a key we do not know. */
function kindOf(item: Record<string, unknown>): { kind: EventKind; body: Record<string, any> | null } | { problem: string } {
  for (const [key, kind] of EVENT_KEYS) {
    const body = item[key];
    if (body === undefined) continue;
    // `"postback": null` is no postback: not read as one (its fields would be read off null).
    if (!isObject(body)) return { problem: `"${key}" is ${typeName(body)}, not an object` };
    return { kind: kind === "message" && body.is_echo === true ? "echo" : kind, body };
  }
  return { kind: "unknown", body: null };
}

/**
 * The person the event is about. Usually the sender; for echoes (sent by the Page) the recipient.
 * Meta's own examples swap sender and recipient for some handover events, so we take whichever
 * side is not the Page. Checkbox / chat-plugin users have only a `user_ref` (`user_ref:<ref>`).
 * An event about a person must name one; Page-level events (app_roles, policy_enforcement) and
 * unknown kinds may have none (`""`).
 */
function userOf(item: MessagingItem, pageId: string, kind: EventKind): string | { problem: string } {
  const pageLevel = PAGE_KINDS.has(kind);
  for (const [side, id] of [
    ["sender", item.sender?.id],
    ["recipient", item.recipient?.id],
  ] as const) {
    if (id === undefined || id === "" || id === pageId) continue;
    if (PSID_PATTERN.test(id)) return id;
    if (pageLevel) return "";
    return { problem: `${side}.id is not a PSID (a string of at most 32 digits)` };
  }
  const optin = (item as Record<string, unknown>).optin;
  const ref = item.sender?.user_ref ?? item.recipient?.user_ref ?? (isObject(optin) ? optin.user_ref : undefined);
  if (ref !== undefined && !pageLevel) {
    if (typeof ref === "string" && USER_REF_PATTERN.test(ref)) return USER_REF_PREFIX + ref;
    return { problem: "its user_ref is not 1 to 256 printable ASCII characters" };
  }
  if (pageLevel) return "";
  return { problem: "it names no person (no sender or recipient id other than the Page's, no user_ref), so it cannot be given to anybody" };
}

/** What a kind's body must have for the engine to read it safely. */
function problemOf(kind: EventKind, body: Record<string, any>): string | null {
  if (body.watermark !== undefined && body.watermark !== null && !checkMillis(body.watermark)) {
    return `${kind}.watermark is not whole milliseconds since 1970`;
  }
  if (kind === "delivery" && body.mids !== undefined && body.mids !== null) {
    if (!Array.isArray(body.mids) || body.mids.length > MAX_MIDS || !body.mids.every((m: unknown) => typeof m === "string")) {
      return `delivery.mids is not a list of at most ${MAX_MIDS} message ids`;
    }
  }
  for (const field of APP_ID_FIELDS[kind] ?? []) {
    const v = body[field];
    if (v === undefined || v === null || v === "") continue;
    if (!(typeof v === "string" && PSID_PATTERN.test(v)) && !(typeof v === "number" && Number.isSafeInteger(v) && v >= 0)) {
      return `${kind}.${field} is not an app id`;
    }
  }
  return null;
}

/**
 * What makes two deliveries the same event: the message id where the event has its own
 * (messages, echoes, postbacks since v11), else sender, timestamp and kind as the platform docs
 * suggest, with the detail that tells two events of one millisecond apart. An id that is not a
 * usable string (null, a number, a control character) is taken as absent.
 */
function dedupKeyOf(item: MessagingItem, kind: EventKind, body: Record<string, any> | null, pageId: string, userId: string, timestamp: number): string {
  const mid = typeof body?.mid === "string" ? keyPart(body.mid) : null;
  switch (kind) {
    case "message":
      // An unsend carries the mid of the message it takes back: its own key, not a duplicate of it.
      if (mid) return isUnsent(item) ? `unsent:${mid}` : `message:${mid}`;
      break;
    case "echo":
      if (mid) return `echo:${mid}`;
      break;
    case "postback":
      if (mid) return `postback:${mid}`;
      break;
    case "message_edit":
      if (mid) return `edit:${mid}:${keyPart(body!.num_edit) ?? ""}`;
      break;
    case "reaction":
      return `reaction:${pageId}:${userId}:${timestamp}:${keyPart(body!.action) ?? ""}:${mid ?? ""}`;
  }
  // Without a message id: the same Page, user, kind and time is the same event.
  return `${kind}:${pageId}:${userId}:${timestamp}`;
}

/** A string or number usable in a dedup key as it is, or null. */
function keyPart(v: unknown): string | null {
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return typeof v === "string" && KEY_PART_PATTERN.test(v) ? v : null;
}

function pageIdOf(id: unknown): string | null {
  if (typeof id === "string") return PSID_PATTERN.test(id) ? id : null;
  if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) return String(id);
  return null;
}

function checkMillis(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 8.64e15;
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** For messages: what a value is, never the value itself (which may be anything, of any size). */
function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}
