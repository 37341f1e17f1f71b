/**
 * Meta → our server: webhook bodies built and signed the way Meta sends them (what our webhook
 * reads of them: docs/webhook.md). Snake_case fields, IDs as strings (except `app_id` on echoes, a
 * number), timestamps in epoch milliseconds, and the body escaped like Meta's (`\u00e9`, `\/`)
 * before it is signed, so the signature covers the exact bytes on the wire.
 */
import { createHmac, randomBytes } from "node:crypto";
import { signBody } from "../webhook/signature.ts";

/**
 * JSON as Meta serializes it: every non-ASCII UTF-16 unit as `\uXXXX` in lower-case hex (an emoji
 * becomes its two surrogate escapes) and `/` as `\/`. Both only occur inside strings in JSON text,
 * so replacing them everywhere is safe.
 */
export function metaJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError("metaJson: value is not serializable");
  return json.replace(/[\u0080-\uffff/]/g, (c) => (c === "/" ? "\\/" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`));
}

/** A messaging event: `sender`, `recipient`, `timestamp` and one event key. */
export type MessagingEvent = Record<string, unknown>;

export interface EntrySpec {
  pageId: string;
  items: MessagingEvent[];
  /** Put the items in `standby[]` (the app is not the thread owner). */
  standby?: boolean;
  time?: number;
}

export interface WebhookBody {
  object: "page";
  entry: Record<string, unknown>[];
}

function entryOf(spec: EntrySpec): Record<string, unknown> {
  return { id: spec.pageId, time: spec.time ?? nextTimestamp(), [spec.standby ? "standby" : "messaging"]: spec.items };
}

/** `{object:"page", entry:[{id, time, messaging|standby: items}]}`. */
export function envelope(pageId: string, items: MessagingEvent[], options: { standby?: boolean; time?: number } = {}): WebhookBody {
  return { object: "page", entry: [entryOf({ pageId, items, ...options })] };
}

/** Several entries in one POST (several Pages or time slices). */
export function multiEnvelope(entries: EntrySpec[]): WebhookBody {
  return { object: "page", entry: entries.map(entryOf) };
}

/**
 * A source of message ids unique across restarts: `<prefix><tag>_<n>`, with a random tag per
 * source and a counter. A counter alone starts again at 1 in every process, and the inbox (which
 * drops an event whose endpoint and mid it has stored: src/inbox/inbox.ts) would take the new
 * messages of a restarted simulator for redeliveries.
 */
export function midSource(prefix = "m_sim_"): () => string {
  const tag = randomBytes(9).toString("base64url");
  let n = 0;
  return () => `${prefix}${tag}_${(++n).toString().padStart(6, "0")}`;
}

// Message IDs (unique per process: midSource) and strictly increasing timestamps for events that don't give them.
export const nextMid = midSource();
let lastTimestamp = 0;

export function nextTimestamp(): number {
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  return lastTimestamp;
}

interface Common {
  mid?: string;
  timestamp?: number;
}

function fromUser(page: string, psid: string, timestamp: number | undefined, body: Record<string, unknown>): MessagingEvent {
  return { sender: { id: psid }, recipient: { id: page }, timestamp: timestamp ?? nextTimestamp(), ...body };
}

/** user → page text; `quickReplyPayload` makes it a tapped quick reply, `replyTo` a reply. */
export function textMessage(page: string, psid: string, text: string, options: Common & { quickReplyPayload?: string; replyTo?: string } = {}): MessagingEvent {
  const message: Record<string, unknown> = { mid: options.mid ?? nextMid(), text };
  if (options.quickReplyPayload !== undefined) message.quick_reply = { payload: options.quickReplyPayload };
  if (options.replyTo !== undefined) message.reply_to = { mid: options.replyTo, is_self_reply: false };
  return fromUser(page, psid, options.timestamp, { message });
}

export interface Referral {
  ref?: string;
  source?: string;
  type?: string;
  ad_id?: string;
  ads_context_data?: Record<string, unknown>;
  referer_uri?: string;
  [key: string]: unknown;
}

/**
 * A postback (button, Get Started, menu item). `standby: true` gives the variant other apps see
 * in `standby[]`: no payload.
 */
export function postback(
  page: string,
  psid: string,
  payload: string,
  options: Common & { title?: string; referral?: Referral; standby?: boolean } = {},
): MessagingEvent {
  const body: Record<string, unknown> = { mid: options.mid ?? nextMid(), title: options.title ?? payload };
  if (!options.standby) body.payload = payload;
  if (options.referral) body.referral = { source: "SHORTLINK", type: "OPEN_THREAD", ...options.referral };
  return fromUser(page, psid, options.timestamp, { postback: body });
}

export type AttachmentType = "image" | "audio" | "video" | "file" | "sticker" | "location" | "fallback" | "reel" | "ig_reel" | "post" | "ig_post";

/**
 * A user's attachment. `url` becomes `payload.url`; `payload` replaces the payload entirely
 * (e.g. `null` for a fallback, coordinates for a location).
 */
export function attachment(
  page: string,
  psid: string,
  type: AttachmentType,
  url?: string,
  options: Common & { payload?: Record<string, unknown> | null; title?: string } = {},
): MessagingEvent {
  const payload = options.payload !== undefined ? options.payload : url === undefined ? null : { url };
  const item: Record<string, unknown> = { type, payload };
  if (options.title !== undefined) item.title = options.title;
  if (type === "fallback" && url !== undefined) item.URL = url;
  return fromUser(page, psid, options.timestamp, { message: { mid: options.mid ?? nextMid(), attachments: [item] } });
}

/** A re-entry into an existing thread (`messaging_referrals`). Defaults: SHORTLINK / OPEN_THREAD. */
export function referral(page: string, psid: string, ref: Referral = {}, options: Pick<Common, "timestamp"> = {}): MessagingEvent {
  return fromUser(page, psid, options.timestamp, { referral: { source: "SHORTLINK", type: "OPEN_THREAD", ...ref } });
}

/** The Page Inbox's app ID: the app that owns a thread while a person answers in the Page's inbox. */
export const PAGE_INBOX_APP_ID = "263902037430900";

/** A message sent by the Page (this app, another app, or the Page Inbox): page → user. */
export function echo(
  page: string,
  psid: string,
  options: Common & { text?: string; appId: string | number; metadata?: string; attachments?: unknown[]; quickReplies?: unknown[] },
): MessagingEvent {
  const message: Record<string, unknown> = { is_echo: true, app_id: Number(options.appId) };
  if (options.metadata !== undefined) message.metadata = options.metadata;
  message.mid = options.mid ?? nextMid();
  if (options.text !== undefined) message.text = options.text;
  if (options.attachments !== undefined) message.attachments = options.attachments;
  if (options.quickReplies !== undefined) message.quick_replies = options.quickReplies;
  return { sender: { id: page }, recipient: { id: psid }, timestamp: options.timestamp ?? nextTimestamp(), message };
}

/** `message_deliveries`: no `timestamp`, as in Meta's example. */
export function delivery(page: string, psid: string, watermark: number, mids?: string[]): MessagingEvent {
  const body: Record<string, unknown> = {};
  if (mids !== undefined) body.mids = mids;
  body.watermark = watermark;
  return { sender: { id: psid }, recipient: { id: page }, delivery: body };
}

export function read(page: string, psid: string, watermark: number, options: Pick<Common, "timestamp"> = {}): MessagingEvent {
  return fromUser(page, psid, options.timestamp, { read: { watermark } });
}

export function reaction(
  page: string,
  psid: string,
  mid: string,
  options: Pick<Common, "timestamp"> & { action?: "react" | "unreact"; reaction?: string; emoji?: string } = {},
): MessagingEvent {
  const action = options.action ?? "react";
  const body: Record<string, unknown> = {};
  if (action === "react") {
    body.reaction = options.reaction ?? "love";
    body.emoji = options.emoji ?? "\u2764\ufe0f";
  }
  body.action = action;
  body.mid = mid;
  return fromUser(page, psid, options.timestamp, { reaction: body });
}

export function messageEdit(page: string, psid: string, mid: string, text: string, numEdit = 1, options: Pick<Common, "timestamp"> = {}): MessagingEvent {
  return fromUser(page, psid, options.timestamp, { message_edit: { mid, text, num_edit: numEdit } });
}

/** Legacy Send-to-Messenger / checkbox opt-in (`ref`, optional `user_ref`). */
export function optin(page: string, psid: string, ref: string, options: Pick<Common, "timestamp"> & { userRef?: string } = {}): MessagingEvent {
  const body: Record<string, unknown> = { ref };
  if (options.userRef !== undefined) body.user_ref = options.userRef;
  return fromUser(page, psid, options.timestamp, { optin: body });
}

/** Control passed to `newOwnerAppId` (sent to the new owner). `previousOwnerAppId` null: the thread was idle. */
export function passThreadControl(
  page: string,
  psid: string,
  newOwnerAppId: string,
  metadata?: string,
  options: Pick<Common, "timestamp"> & { previousOwnerAppId?: string | null } = {},
): MessagingEvent {
  const body: Record<string, unknown> = {};
  if (options.previousOwnerAppId !== undefined) body.previous_owner_app_id = options.previousOwnerAppId;
  body.new_owner_app_id = newOwnerAppId;
  if (metadata !== undefined) body.metadata = metadata;
  return fromUser(page, psid, options.timestamp, { pass_thread_control: body });
}

/** Control taken from `previousOwnerAppId` (sent to the previous owner). */
export function takeThreadControl(
  page: string,
  psid: string,
  previousOwnerAppId: string | null,
  metadata?: string,
  options: Pick<Common, "timestamp"> & { newOwnerAppId?: string } = {},
): MessagingEvent {
  const body: Record<string, unknown> = { previous_owner_app_id: previousOwnerAppId };
  if (options.newOwnerAppId !== undefined) body.new_owner_app_id = options.newOwnerAppId;
  if (metadata !== undefined) body.metadata = metadata;
  return fromUser(page, psid, options.timestamp, { take_thread_control: body });
}

/** Another app asks the owner for control (sent to the Primary Receiver; the ID is a number in Meta's docs). */
export function requestThreadControl(
  page: string,
  psid: string,
  requestedOwnerAppId: string | number,
  metadata?: string,
  options: Pick<Common, "timestamp"> = {},
): MessagingEvent {
  const body: Record<string, unknown> = { requested_owner_app_id: Number(requestedOwnerAppId) };
  if (metadata !== undefined) body.metadata = metadata;
  return fromUser(page, psid, options.timestamp, { request_thread_control: body });
}

/** `X-Hub-Signature: sha1=<hex>`, the legacy header Meta still sends next to the sha256 one. */
export function signBodySha1(appSecret: string, body: Uint8Array | string): string {
  return `sha1=${createHmac("sha1", appSecret).update(body).digest("hex")}`;
}

/** The headers Meta sends with a webhook POST over `body`'s exact bytes. */
export function webhookHeaders(body: string | Uint8Array, appSecret?: string): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (appSecret !== undefined) {
    headers["x-hub-signature-256"] = signBody(appSecret, body);
    headers["x-hub-signature"] = signBodySha1(appSecret, body);
  }
  return headers;
}

/**
 * POSTs `body` (already serialized: pass `metaJson(...)`) to `url`, signed over the exact bytes
 * when `appSecret` is given.
 */
export function deliverWebhook(
  url: string,
  body: string,
  appSecret?: string,
  init: { headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { ...webhookHeaders(body, appSecret), ...init.headers },
    body,
    ...(init.signal ? { signal: init.signal } : {}),
  });
}
