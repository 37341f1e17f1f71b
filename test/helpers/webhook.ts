/** Meta-shaped webhook bodies, signed with the App Secret, and the requests that carry them. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { signBody } from "../../src/webhook/signature.ts";
import { APP_SECRET, PAGE_ID, PSID, VERIFY_TOKEN } from "./config.ts";

export const FIXTURES = join(import.meta.dir, "..", "fixtures");

/** A fixture's exact bytes as text (sign these, not a re-serialization). */
export function fixtureText(name: string): string {
  return readFileSync(join(FIXTURES, name.endsWith(".json") ? name : `${name}.json`), "utf8");
}

export function fixtureJson<T = any>(name: string): T {
  return JSON.parse(fixtureText(name)) as T;
}

export interface EntrySpec {
  id?: string;
  time?: number;
  messaging?: unknown[];
  standby?: unknown[];
  changes?: unknown[];
}

export function envelope(entries: EntrySpec[], object = "page"): Record<string, unknown> {
  return {
    object,
    entry: entries.map((e) => ({ id: e.id ?? PAGE_ID, time: e.time ?? 1767225600123, ...e })),
  };
}

/** `user → page` text message item. */
export function textItem(mid: string, text = "hi there", options: { psid?: string; pageId?: string; timestamp?: number } = {}) {
  return {
    sender: { id: options.psid ?? PSID },
    recipient: { id: options.pageId ?? PAGE_ID },
    timestamp: options.timestamp ?? 1767225599876,
    message: { mid, text },
  };
}

export function postbackItem(mid: string, payload: string, options: { psid?: string; pageId?: string; timestamp?: number } = {}) {
  return {
    sender: { id: options.psid ?? PSID },
    recipient: { id: options.pageId ?? PAGE_ID },
    timestamp: options.timestamp ?? 1767225604000,
    postback: { mid, title: payload, payload },
  };
}

/** One envelope with one text message for `pageId`. */
export function textBody(mid: string, options: { psid?: string; pageId?: string; timestamp?: number; text?: string } = {}): string {
  return JSON.stringify(envelope([{ id: options.pageId ?? PAGE_ID, messaging: [textItem(mid, options.text, options)] }]));
}

export const BASE_URL = "http://localhost";

export interface PostOptions {
  /** App Secret to sign with; null: send no signature header. Default: the test App Secret. */
  secret?: string | null;
  /** Use this header value instead of a computed signature. */
  signature?: string;
  headers?: Record<string, string>;
}

export function webhookPost(endpointId: string, body: string | Uint8Array, options: PostOptions = {}): Request {
  const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
  const secret = options.secret === undefined ? APP_SECRET : options.secret;
  if (options.signature !== undefined) headers["x-hub-signature-256"] = options.signature;
  else if (secret !== null) headers["x-hub-signature-256"] = signBody(secret, body);
  return new Request(`${BASE_URL}/webhooks/${endpointId}`, { method: "POST", headers, body });
}

export function verificationGet(endpointId: string, params: { mode?: string | null; token?: string | null; challenge?: string | null } = {}): Request {
  const query = new URLSearchParams();
  const mode = params.mode === undefined ? "subscribe" : params.mode;
  const token = params.token === undefined ? VERIFY_TOKEN : params.token;
  const challenge = params.challenge === undefined ? "1158201444" : params.challenge;
  if (mode !== null) query.set("hub.mode", mode);
  if (token !== null) query.set("hub.verify_token", token);
  if (challenge !== null) query.set("hub.challenge", challenge);
  return new Request(`${BASE_URL}/webhooks/${endpointId}?${query}`);
}

export function get(path: string): Request {
  return new Request(`${BASE_URL}${path}`);
}
