/**
 * What a FakeGraph is made of and what it records: the Pages and users it knows, its options, the
 * calls and sends it saw, the failures a test scripts, the webhook POSTs it made.
 */
import type { Clock } from "../../core/clock.ts";

export interface FakePage {
  id: string;
  token: string;
  /** The app that owns the token; echoes carry it as `app_id`. Default `DEFAULT_APP_ID`. */
  appId?: string;
  /** Checks `appsecret_proof` (always for `ids_for_pages`; for every call when `requireProof`). */
  appSecret?: string;
  requireProof?: boolean;
  name?: string;
  /** Conversation Routing: take / request thread control answer "Handover Protocol APIs disabled for this page." */
  conversationRouting?: boolean;
  /** Where this Page's webhook events go (default: the fake's `webhook.url`): one fake can serve several endpoints. */
  webhookUrl?: string;
  /** The token has expired: every call answers 190 / 463. */
  tokenExpired?: boolean;
  /** The token's permissions. When given without `pages_messaging`, sends answer 403 code 200; `pages_user_*` grant profile fields. */
  scopes?: string[];
}

export interface FakeGraphOptions {
  pages: FakePage[];
  clock?: Clock;
  requireMessagingType?: boolean;
  /** Where echoes / deliveries / reads / handover events are POSTed, signed with `appSecret` (default: the Page's). */
  webhook?: {
    url: string;
    appSecret?: string;
    timeoutMs?: number;
    /** redeliveries after a failure, with doubling delays from 100 ms (default 6) */
    retries?: number;
    /** Called when a POST was given up after its retries (the simulator reports it). */
    onGiveUp?: (delivery: WebhookDelivery) => void;
  };
  echoes?: boolean;
  deliveries?: boolean;
  reads?: boolean;
  /** pageId → business id, for `ids_for_pages`. */
  business?: Record<string, string>;
  /** Unknown PSIDs in sends answer 100 / 2018001 "No matching user found" (default: any PSID is accepted). */
  strictRecipients?: boolean;
  /** When set, sends to (and passes of) a thread owned by another app fail with this error (the real code is unknown). */
  threadOwnerError?: { code: number; subcode?: number; message?: string; status?: number };
}

export interface FakeUser {
  profile?: Record<string, unknown>;
  /** 551 / 1545041 "This person isn't available right now." */
  unavailable?: boolean;
  /** Code 2 "An unexpected error has occurred…" (a user who blocked the Page), with `blockedStatus` (default 400). */
  blockedCode2?: boolean;
  blockedStatus?: number;
  /** A phone-number-only account: the profile answers 100 / 2018218. */
  phoneOnly?: boolean;
  /** Epoch ms of the user's last message; only users with one are checked against the 24-hour window. */
  lastInboundAt?: number;
  /** Granted profile permissions (`pages_user_locale`, `pages_user_timezone`, `pages_user_gender`). */
  permissions?: string[];
  /** The same person on several Pages: `ids_for_pages` links PSIDs with the same `person` across one business. */
  person?: string;
  /** The next this many profile requests answer Graph's transient code 2 (HTTP 500). */
  profileFailures?: number;
}

export interface RecordedCall {
  seq: number;
  /** performance.now() ms at arrival. */
  at: number;
  /** Clock ms at arrival. */
  time: number;
  method: string;
  path: string;
  pageId: string | null;
  query: Record<string, string>;
  body: unknown;
  /** 0 when no answer reached the client (network error, or the client gave up first). */
  status: number;
  response: unknown;
}

export interface RecordedSend {
  seq: number;
  at: number;
  pageId: string;
  recipientId: string;
  type: "message" | "action";
  senderAction?: string;
  message?: any;
  messagingType?: string;
  tag?: string;
  metadata?: string;
  messageId?: string;
}

export type ScriptedFailure =
  | { code: number; subcode?: number; status?: number; message?: string; type?: string; isTransient?: boolean; headers?: Record<string, string> }
  /**
   * Holds the answer for `timeoutMs`. If the client gives up first, the call is dropped (status 0,
   * nothing sent); otherwise it is then handled normally. `deliver: true` sends the message at once
   * and only holds the answer: the lost-answer case in which a retry double-sends.
   */
  | { timeoutMs: number; deliver?: boolean }
  /** The connection is closed without an answer. */
  | { networkError: true }
  /**
   * The message is taken (recorded, echoed), but the 200 answer is garbled: a body that is not
   * JSON (`not_json`), or the connection closed after the status line and part of the body (`cut_off`).
   */
  | { garbled: "not_json" | "cut_off" };

export interface SendFilter {
  pageId?: string;
  recipientId?: string;
}

export interface FailureOptions extends SendFilter {
  times?: number;
  /** The edge the failure is for: `messages` (default), or a handover edge such as `pass_thread_control` (code failures and network errors). */
  edge?: string;
  when?: (body: any) => boolean;
}

export interface WebhookDelivery {
  pageId: string;
  body: string;
  status: number | null;
  error?: string;
}

export const DEFAULT_APP_ID = "987654321098765";

/** The app a Page's token belongs to (the one our server is): echoes carry it, it owns threads by default. */
export function appIdOf(page: FakePage): string {
  return page.appId ?? DEFAULT_APP_ID;
}
