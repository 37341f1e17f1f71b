/**
 * A faithful stand-in for `graph.facebook.com` (messenger-platform.md §12): the Send API with
 * Graph's validation, auth and error envelopes, the messaging window, User Profile, ID matching,
 * handover and Messenger Profile. Every request is recorded; failures can be scripted per call;
 * successful sends can emit signed echo / delivery / read webhooks back to our server.
 * Served with `Bun.serve` on 127.0.0.1 only, or called in process through `handle()`.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { Server } from "bun";
import { systemClock, type Clock } from "../core/clock.ts";
import { PAYLOAD_MAX, charLength, validateSendBody } from "./messenger-limits.ts";
import {
  PAGE_INBOX_APP_ID,
  deliverWebhook,
  delivery,
  echo,
  envelope,
  metaJson,
  passThreadControl,
  read,
  requestThreadControl,
  takeThreadControl,
  textMessage,
  type MessagingEvent,
} from "./webhook-driver.ts";

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
const HOUR = 3_600_000;
const WINDOW_MS = 24 * HOUR;
const HUMAN_AGENT_WINDOW_MS = 7 * 24 * HOUR;
const AUTH_KEYS = new Set(["access_token", "appsecret_proof"]);
const PROFILE_FIELDS = ["id", "name", "first_name", "last_name", "profile_pic", "locale", "timezone", "gender"];
const DEFAULT_PROFILE_FIELDS = ["id", "name", "first_name", "last_name", "profile_pic"];
const PERMISSIONED_FIELDS: Record<string, string> = { locale: "pages_user_locale", timezone: "pages_user_timezone", gender: "pages_user_gender" };
const MESSENGER_PROFILE_FIELDS = ["get_started", "greeting", "persistent_menu", "ice_breakers", "whitelisted_domains", "account_linking_url", "commands"];
const MENU_ITEMS_MAX = 20;
const MENU_TITLE_MAX = 30;
const GREETING_TEXT_MAX = 160;
const ICE_BREAKERS_MAX = 4;
const WHITELISTED_DOMAINS_MAX = 50;
const WINDOW_MESSAGE =
  "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview";

const DEFAULT_MESSAGES: Record<number, string> = {
  1: "An unknown error has occurred.",
  2: "An unexpected error has occurred. Please retry your request later.",
  4: "(#4) Application request limit reached",
  10: WINDOW_MESSAGE,
  17: "(#17) User request limit reached",
  32: "(#32) Page request limit reached",
  100: "(#100) Invalid parameter",
  190: "Invalid OAuth access token.",
  200: "(#200) Permissions error",
  368: "(#368) The action attempted has been deemed abusive or is otherwise disallowed",
  551: "(#551) This person isn't available right now.",
  613: "(#613) Calls to this api have exceeded the rate limit.",
};
const DEFAULT_SUBCODES: Record<number, number> = { 10: 2018278, 551: 1545041 };
const TRANSIENT_CODES = new Set([2, 4, 17, 32, 613]);
/** Graph messages that carry no "(#code)" prefix. */
const UNPREFIXED_CODES = new Set([1, 2, 104, 190, 2500]);

const NETWORK_ERROR = Symbol("network error");
type Outcome = Response | typeof NETWORK_ERROR;

interface ErrorSpec {
  code: number;
  message: string;
  subcode?: number;
  type?: string;
  status?: number;
  isTransient?: boolean;
  headers?: Record<string, string>;
}

class GraphError extends Error {
  constructor(readonly spec: ErrorSpec) {
    super(spec.message);
  }
}

function graphFail(code: number, message: string, extra: Omit<ErrorSpec, "code" | "message"> = {}): never {
  throw new GraphError({ code, message, ...extra });
}

function unsupported(method: string, id: string): never {
  graphFail(
    100,
    `Unsupported ${method.toLowerCase()} request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
    { subcode: 33, type: "GraphMethodException" },
  );
}

/** Throws a scripted Graph error. */
function scriptedFail(failure: Extract<ScriptedFailure, { code: number }>): never {
  throw new GraphError({
    code: failure.code,
    message: failure.message ?? DEFAULT_MESSAGES[failure.code] ?? "An unknown error has occurred.",
    subcode: failure.subcode ?? DEFAULT_SUBCODES[failure.code],
    type: failure.type,
    status: failure.status,
    isTransient: failure.isTransient,
    headers: failure.headers,
  } as ErrorSpec);
}

function invalid(message: string, subcode?: number): never {
  graphFail(100, `(#100) ${message}`, subcode === undefined ? {} : { subcode });
}

function traceId(): string {
  return "A" + randomBytes(16).toString("base64url").slice(0, 22);
}

function proofFor(appSecret: string, token: string): string {
  return createHmac("sha256", appSecret).update(token).digest("hex");
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A form or query value: JSON when it looks like an object or array (Graph's convention), else the string. */
function jsonish(value: string): unknown {
  const t = value.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      return value;
    }
  }
  return value;
}

function userKey(pageId: string, psid: string): string {
  return `${pageId}\u0000${psid}`;
}

/** A held answer, released by its timer, the client giving up, or `stop()`. */
interface Hold {
  timer: ReturnType<typeof setTimeout>;
  finish: (how: "elapsed" | "aborted" | "stopped") => void;
}

interface Waiter {
  check: () => boolean;
}

export class FakeGraph {
  readonly calls: RecordedCall[] = [];
  /** Every webhook POST the fake made (echoes, deliveries, reads, handover events), in order. */
  readonly webhookDeliveries: WebhookDelivery[] = [];
  readonly #options: FakeGraphOptions;
  readonly #clock: Clock;
  readonly #pagesByToken = new Map<string, FakePage>();
  readonly #pagesById = new Map<string, FakePage>();
  #server: Server<undefined> | null = null;
  #url = "";
  #seq = 0;
  #sends: RecordedSend[] = [];
  #failures: { failure: ScriptedFailure; remaining: number; options: FailureOptions }[] = [];
  #users = new Map<string, FakeUser>();
  #owners = new Map<string, string | null>();
  #profiles = new Map<string, Record<string, unknown>>();
  /** Messenger profile API calls per Page (times), for its rate limit. */
  #profileCalls = new Map<string, number[]>();
  #attachments = new Map<string, Record<string, unknown>>();
  readonly #inFlight = new Set<RecordedCall>();
  readonly #holds = new Set<Hold>();
  readonly #waiters = new Set<Waiter>();
  readonly #sendListeners: ((send: RecordedSend) => void)[] = [];
  #webhookChain: Promise<void> = Promise.resolve();
  #stopped = false;
  /** Bumped by reset(): webhook deliveries queued before it are abandoned. */
  #generation = 0;
  readonly #rev = String(1_000_000_000 + Math.floor(Math.random() * 8_999_999_999));

  constructor(options: FakeGraphOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    for (const page of options.pages) {
      this.#pagesByToken.set(page.token, page);
      this.#pagesById.set(page.id, page);
    }
  }

  /** Starts the fake on 127.0.0.1 with a free port. */
  static async start(options: FakeGraphOptions): Promise<FakeGraph> {
    const graph = new FakeGraph(options);
    graph.#server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (request) => {
        const outcome = await graph.#dispatch(request);
        return outcome === NETWORK_ERROR ? brokenResponse() : outcome;
      },
    });
    graph.#url = `http://127.0.0.1:${graph.#server.port}`;
    return graph;
  }

  /** `http://127.0.0.1:PORT` (empty for a fake that was constructed, not started). */
  get url(): string {
    return this.#url;
  }

  /**
   * The same handler, in process. A scripted network error rejects like `fetch` does (a
   * TypeError, or the request signal's reason when the caller gave up).
   */
  async handle(request: Request): Promise<Response> {
    const outcome = await this.#dispatch(request);
    if (outcome !== NETWORK_ERROR) return outcome;
    if (request.signal.aborted) throw request.signal.reason;
    throw new TypeError("fetch failed: the connection was closed without an answer (fake Graph API network error)");
  }

  /** Successful `POST …/messages`, in arrival order. */
  sends(filter: SendFilter = {}): RecordedSend[] {
    return this.#sends.filter((s) => (filter.pageId === undefined || s.pageId === filter.pageId) && (filter.recipientId === undefined || s.recipientId === filter.recipientId));
  }

  /** Queues a scripted failure for the next matching `/messages` call(s); queued failures are used first-in, first-out. */
  failNext(failure: ScriptedFailure, options: FailureOptions = {}): void {
    this.#failures.push({ failure, remaining: options.times ?? 1, options });
  }

  /** Adds or updates a user of a Page (merged with what was set before). */
  setUser(pageId: string, psid: string, user: FakeUser): void {
    const key = userKey(pageId, psid);
    this.#users.set(key, { ...this.#users.get(key), ...user });
  }

  /** Which Pages belong to which business (for `ids_for_pages`), replacing what was set before. */
  setBusiness(business: Record<string, string>): void {
    this.#options.business = { ...business };
  }

  user(pageId: string, psid: string): FakeUser | undefined {
    return this.#users.get(userKey(pageId, psid));
  }

  /** The user wrote to the Page at `at` (default: now): opens the 24-hour window. */
  userMessaged(pageId: string, psid: string, at?: number): void {
    this.setUser(pageId, psid, { lastInboundAt: at ?? this.#clock.now() });
  }

  /** The app owning the thread; `null` when idle. Default: the Page's app. */
  threadOwner(pageId: string, psid: string): string | null {
    const key = userKey(pageId, psid);
    return this.#owners.has(key) ? this.#owners.get(key)! : this.#appId(this.#page(pageId));
  }

  setThreadOwner(pageId: string, psid: string, appId: string | null): void {
    this.#owners.set(userKey(pageId, psid), appId);
  }

  /** A human marks the conversation "Done" in the Page Inbox: control returns to the Page's app, which gets `pass_thread_control`. */
  inboxDone(pageId: string, psid: string, metadata?: string): void {
    const page = this.#page(pageId);
    const previous = this.threadOwner(pageId, psid);
    this.setThreadOwner(pageId, psid, this.#appId(page));
    this.#emit(page, [passThreadControl(pageId, psid, this.#appId(page), metadata, { previousOwnerAppId: previous ?? PAGE_INBOX_APP_ID, timestamp: this.#clock.now() })]);
  }

  /** Whether the Page's app (the one our server is) owns the thread: its events then come in messaging[], else in standby[]. */
  #ownedByPageApp(page: FakePage, psid: string): boolean {
    return this.threadOwner(page.id, psid) === this.#appId(page);
  }

  /**
   * The user writes to the Page: a text message to our webhook, in `messaging[]` while our app owns
   * the thread and in `standby[]` while another app (the Page Inbox) does. Opens the 24-hour window.
   */
  userMessage(pageId: string, psid: string, text: string): MessagingEvent {
    return this.userEvent(pageId, psid, textMessage(pageId, psid, text, { timestamp: this.#clock.now() }));
  }

  /** Any event from the user (a message, a quick reply, a postback), routed like `userMessage`. */
  userEvent(pageId: string, psid: string, event: MessagingEvent): MessagingEvent {
    const page = this.#page(pageId);
    this.userMessaged(pageId, psid);
    const standby = !this.#ownedByPageApp(page, psid);
    // Apps that do not own the thread get postbacks without their payload (messenger-platform.md §3.10).
    const item = standby && isObject(event.postback) ? { ...event, postback: { ...event.postback, payload: undefined } } : event;
    this.#emit(page, [item], { standby });
    return event;
  }

  /** Called with every successful Send API call (the simulator shows them as they come). */
  onSend(listener: (send: RecordedSend) => void): void {
    this.#sendListeners.push(listener);
  }

  /** A person answers in the Page Inbox: the echo (app 263902037430900), in standby[] unless our app owns the thread. */
  inboxReply(pageId: string, psid: string, text: string): MessagingEvent {
    const page = this.#page(pageId);
    const event = echo(pageId, psid, { appId: PAGE_INBOX_APP_ID, text, timestamp: this.#clock.now() });
    this.#emit(page, [event], { standby: !this.#ownedByPageApp(page, psid) });
    return event;
  }

  /** A person takes the conversation in the Page Inbox: the Inbox owns the thread, our app (the previous owner) gets `take_thread_control`. */
  inboxTake(pageId: string, psid: string, metadata?: string): void {
    const page = this.#page(pageId);
    const previous = this.threadOwner(pageId, psid);
    this.setThreadOwner(pageId, psid, PAGE_INBOX_APP_ID);
    if (previous === this.#appId(page)) {
      this.#emit(page, [takeThreadControl(pageId, psid, previous, metadata, { newOwnerAppId: PAGE_INBOX_APP_ID, timestamp: this.#clock.now() })]);
    }
  }

  /** The Page Inbox asks our app (the owner) for the thread: `request_thread_control`; nothing changes until we pass. */
  inboxRequest(pageId: string, psid: string, metadata?: string): void {
    const page = this.#page(pageId);
    this.#emit(page, [requestThreadControl(pageId, psid, PAGE_INBOX_APP_ID, metadata, { timestamp: this.#clock.now() })]);
  }

  /** The stored Messenger Profile of a Page. */
  messengerProfile(pageId: string): Record<string, unknown> {
    return { ...this.#profiles.get(pageId) };
  }

  /** Resolves once at least `count` matching sends exist. */
  waitForSends(count: number, filter: SendFilter = {}, timeoutMs = 5000): Promise<RecordedSend[]> {
    return this.#wait(
      () => {
        const found = this.sends(filter);
        return found.length >= count ? found : null;
      },
      timeoutMs,
      () => `waited ${timeoutMs} ms for ${count} send(s) matching ${JSON.stringify(filter)}; saw ${this.sends(filter).length}`,
    );
  }

  /**
   * Resolves once at least `count` answered calls match; with `inFlight`, calls that arrived and
   * are not answered yet (a held answer, say) count too.
   */
  waitForCalls(predicate: (c: RecordedCall) => boolean, count = 1, timeoutMs = 5000, options: { inFlight?: boolean } = {}): Promise<RecordedCall[]> {
    const matching = () => this.calls.filter((c) => (options.inFlight || !this.#inFlight.has(c)) && predicate(c));
    return this.#wait(
      () => {
        const found = matching();
        return found.length >= count ? found : null;
      },
      timeoutMs,
      () => `waited ${timeoutMs} ms for ${count} call(s); ${matching().length} matched of ${this.calls.length}: ${this.calls.map((c) => `${c.method} ${c.path} ${c.status}`).join(", ")}`,
    );
  }

  /** Resolves when every webhook POST made so far has been answered (or failed). */
  async flushWebhooks(): Promise<void> {
    let chain: Promise<void>;
    do {
      chain = this.#webhookChain;
      await chain;
    } while (chain !== this.#webhookChain);
  }

  /** Back to the just-started state: recorded traffic, scripted failures, users, thread owners and profiles are forgotten. */
  reset(): void {
    this.#generation++;
    this.calls.length = 0;
    this.webhookDeliveries.length = 0;
    this.#sends = [];
    this.#failures = [];
    this.#users = new Map();
    this.#owners = new Map();
    this.#profiles = new Map();
    this.#profileCalls = new Map();
    this.#attachments = new Map();
  }

  /** Releases held answers, closes the server and waits for webhook POSTs in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const hold of [...this.#holds]) hold.finish("stopped");
    this.#server?.stop(true);
    this.#server = null;
    await this.flushWebhooks();
  }

  // ---- internals -------------------------------------------------------------------------

  #page(pageId: string): FakePage {
    const page = this.#pagesById.get(pageId);
    if (!page) throw new Error(`FakeGraph: unknown page ${pageId}`);
    return page;
  }

  #appId(page: FakePage): string {
    return page.appId ?? DEFAULT_APP_ID;
  }

  #wait<T>(check: () => T | null, timeoutMs: number, describe: () => string): Promise<T> {
    const first = check();
    if (first !== null) return Promise.resolve(first);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        check: () => {
          const found = check();
          if (found === null) return false;
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(found);
          return true;
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(describe()));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  #sent(send: RecordedSend): void {
    this.#notify();
    for (const listener of this.#sendListeners) listener(send);
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter.check();
  }

  #hold(ms: number, signal: AbortSignal): Promise<"elapsed" | "aborted" | "stopped"> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve("aborted");
      const onAbort = () => hold.finish("aborted");
      const hold: Hold = {
        timer: setTimeout(() => hold.finish("elapsed"), ms),
        finish: (how) => {
          clearTimeout(hold.timer);
          signal.removeEventListener("abort", onAbort);
          this.#holds.delete(hold);
          resolve(how);
        },
      };
      signal.addEventListener("abort", onAbort);
      this.#holds.add(hold);
    });
  }

  async #dispatch(request: Request): Promise<Outcome> {
    const url = new URL(request.url);
    const method = request.method.toUpperCase();
    const query = Object.fromEntries(url.searchParams);
    const call: RecordedCall = {
      seq: ++this.#seq,
      at: performance.now(),
      time: this.#clock.now(),
      method,
      path: url.pathname,
      pageId: null,
      query,
      body: undefined,
      status: 0,
      response: null,
    };
    this.calls.push(call);
    this.#inFlight.add(call);
    let outcome: Outcome;
    try {
      outcome = await this.#route(request, url, call);
    } catch (error) {
      if (error instanceof GraphError) outcome = this.#errorResponse(error.spec);
      else {
        console.error("FakeGraph: handler failed", error);
        outcome = this.#errorResponse({ code: 1, message: DEFAULT_MESSAGES[1]!, status: 500 });
      }
    }
    if (outcome === NETWORK_ERROR || request.signal.aborted) {
      call.status = 0;
      call.response = null;
    } else {
      call.status = outcome.status;
      // A garbled answer's body must reach the client as it is: reading a clone would consume it first.
      call.response = GARBLED.has(outcome) ? null : await outcome.clone().json().catch(() => null);
    }
    this.#inFlight.delete(call);
    this.#notify();
    return request.signal.aborted ? NETWORK_ERROR : outcome;
  }

  async #route(request: Request, url: URL, call: RecordedCall): Promise<Outcome> {
    const method = call.method;
    const parsed = await parseBody(request);
    call.body = parsed;
    this.#notify(); // a call with its body is visible to waitForCalls(..., { inFlight: true })
    const body: Record<string, unknown> = isObject(parsed) ? parsed : {};

    const segments = url.pathname.split("/").filter(Boolean).map(safeDecode);
    if (segments[0] !== undefined && /^v\d+\.\d+$/.test(segments[0])) segments.shift();
    const [node, edge, ...rest] = segments;
    if (node === undefined) unsupported(method, "");
    if (rest.length > 0) graphFail(2500, `Unknown path components: /${rest.join("/")}`);

    // Parameters: the query and the body count alike (Graph's convention); JSON-looking values are parsed.
    const params: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(call.query)) params[k] = jsonish(v);
    if (method !== "GET") Object.assign(params, body);

    // Auth (§12.2).
    const authorization = request.headers.get("authorization");
    const bearer = authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
    const token = call.query.access_token ?? (typeof body.access_token === "string" ? body.access_token : undefined) ?? bearer;
    if (!token) graphFail(104, "An access token is required to request this resource.");
    const page = this.#pagesByToken.get(token);
    if (!page) graphFail(190, "Invalid OAuth access token.");
    if (page.tokenExpired) graphFail(190, "Error validating access token: Session has expired.", { subcode: 463 });
    call.pageId = page.id;
    const proof = call.query.appsecret_proof ?? (typeof body.appsecret_proof === "string" ? body.appsecret_proof : undefined);
    const proofRequired = page.requireProof === true || edge === "ids_for_pages" || edge === "ids_for_apps";
    if (proof !== undefined) {
      if (!page.appSecret || proof !== proofFor(page.appSecret, token)) {
        graphFail(100, "Invalid appsecret_proof provided in the API argument", { type: "GraphMethodException" });
      }
    } else if (proofRequired) {
      graphFail(100, "API calls from the server require an appsecret_proof argument", { type: "GraphMethodException" });
    }
    for (const key of AUTH_KEYS) delete params[key];

    const isPageNode = node === "me" || node === page.id;
    if (!isPageNode && this.#pagesById.has(node)) unsupported(method, node); // another Page's node with this token
    if (isPageNode) {
      switch (edge) {
        case undefined:
          if (method !== "GET") unsupported(method, node);
          return this.#ok({ name: page.name ?? `Page ${page.id}`, id: page.id });
        case "messages":
          if (method !== "POST") unsupported(method, node);
          return this.#messages(page, params, request.signal, call);
        case "message_attachments":
          if (method !== "POST") unsupported(method, node);
          return this.#uploadAttachment(params);
        case "pass_thread_control":
        case "take_thread_control":
        case "request_thread_control":
        case "release_thread_control":
          if (method !== "POST") unsupported(method, node);
          return this.#handover(page, edge, params);
        case "thread_owner":
          if (method !== "GET") unsupported(method, node);
          return this.#threadOwnerEdge(page, params);
        case "secondary_receivers":
          if (method !== "GET") unsupported(method, node);
          return this.#ok({ data: [{ id: PAGE_INBOX_APP_ID, name: "Page Inbox" }] });
        case "messenger_profile":
          return this.#messengerProfileEdge(page, method, params);
        default:
          graphFail(2500, `Unknown path components: /${edge}`);
      }
    }
    // A user node: a PSID of this Page.
    if (edge === undefined) {
      if (method !== "GET") unsupported(method, node);
      return this.#profile(page, node, params);
    }
    if (edge === "ids_for_pages") {
      if (method !== "GET") unsupported(method, node);
      return this.#idsForPages(page, node, params, url);
    }
    graphFail(2500, `Unknown path components: /${edge}`);
  }

  #ok(body: unknown, headers: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(body), {
      status: 200,
      headers: { "content-type": "application/json; charset=UTF-8", "x-fb-trace-id": traceId(), "x-fb-rev": this.#rev, ...headers },
    });
  }

  #errorResponse(spec: ErrorSpec): Response {
    const fbtrace = traceId();
    let message = spec.message;
    if (!message.startsWith("(#") && !UNPREFIXED_CODES.has(spec.code) && spec.type !== "GraphMethodException") message = `(#${spec.code}) ${message}`;
    const error: Record<string, unknown> = { message, type: spec.type ?? "OAuthException", code: spec.code };
    if (spec.subcode !== undefined) error.error_subcode = spec.subcode;
    const transient = spec.isTransient ?? (TRANSIENT_CODES.has(spec.code) ? true : undefined);
    if (transient !== undefined) error.is_transient = transient;
    error.fbtrace_id = fbtrace;
    const status = spec.status ?? (spec.code >= 200 && spec.code <= 299 ? 403 : 400);
    return new Response(JSON.stringify({ error }), {
      status,
      headers: { "content-type": "application/json; charset=UTF-8", "x-fb-trace-id": fbtrace, "x-fb-rev": this.#rev, ...spec.headers },
    });
  }

  #takeFailure(pageId: string, params: Record<string, unknown>, edge = "messages"): ScriptedFailure | null {
    const recipient = isObject(params.recipient) ? params.recipient : {};
    const recipientId = recipient.id === undefined ? undefined : String(recipient.id);
    const index = this.#failures.findIndex(
      ({ options }) =>
        (options.edge ?? "messages") === edge &&
        (options.pageId === undefined || options.pageId === pageId) &&
        (options.recipientId === undefined || options.recipientId === recipientId) &&
        (options.when === undefined || options.when(params)),
    );
    if (index < 0) return null;
    const entry = this.#failures[index]!;
    if (--entry.remaining <= 0) this.#failures.splice(index, 1);
    return entry.failure;
  }

  async #messages(page: FakePage, params: Record<string, unknown>, signal: AbortSignal, call: RecordedCall): Promise<Outcome> {
    const failure = this.#takeFailure(page.id, params);
    if (failure) {
      if ("networkError" in failure) return NETWORK_ERROR;
      if ("garbled" in failure) {
        this.#send(page, params, call);
        return garbledResponse(failure.garbled);
      }
      if ("timeoutMs" in failure) {
        if (failure.deliver) {
          let answer: Response;
          try {
            answer = this.#send(page, params, call);
          } catch (error) {
            if (!(error instanceof GraphError)) throw error;
            answer = this.#errorResponse(error.spec);
          }
          const how = await this.#hold(failure.timeoutMs, signal);
          return how === "elapsed" ? answer : NETWORK_ERROR;
        }
        const how = await this.#hold(failure.timeoutMs, signal);
        if (how !== "elapsed") return NETWORK_ERROR;
      } else {
        scriptedFail(failure);
      }
    }
    return this.#send(page, params, call);
  }

  /** Validates, applies the user's state and the window, records the send and answers. */
  #send(page: FakePage, params: Record<string, unknown>, call: RecordedCall): Response {
    const verdict = validateSendBody(params, { requireMessagingType: this.#options.requireMessagingType === true });
    if (!verdict.ok) graphFail(verdict.code, verdict.message, verdict.subcode === undefined ? {} : { subcode: verdict.subcode });
    if (page.scopes && !page.scopes.includes("pages_messaging")) graphFail(200, "(#200) Permissions error");

    const recipient = params.recipient as Record<string, unknown>;
    const psid = recipient.id === undefined ? undefined : String(recipient.id);
    const user = psid === undefined ? undefined : this.user(page.id, psid);
    if (psid !== undefined && !user && this.#options.strictRecipients) invalid("No matching user found", 2018001);
    if (user?.unavailable) graphFail(551, "(#551) This person isn't available right now.", { subcode: 1545041 });
    if (user?.blockedCode2) graphFail(2, DEFAULT_MESSAGES[2]!, { status: user.blockedStatus ?? 400 });

    const now = this.#clock.now();
    if (user?.lastInboundAt !== undefined && now - user.lastInboundAt > WINDOW_MS) {
      const tagged = params.messaging_type === "MESSAGE_TAG" && typeof params.tag === "string";
      const allowed = tagged && (params.tag !== "HUMAN_AGENT" || now - user.lastInboundAt <= HUMAN_AGENT_WINDOW_MS);
      if (!allowed) graphFail(10, WINDOW_MESSAGE, { subcode: 2018278 });
    }
    if (psid !== undefined && this.threadOwner(page.id, psid) !== this.#appId(page)) this.#notOwner();

    const recipientId = psid ?? String(Object.values(recipient)[0]);
    const send: RecordedSend = { seq: call.seq, at: performance.now(), pageId: page.id, recipientId, type: params.sender_action ? "action" : "message" };
    if (params.sender_action) {
      send.senderAction = String(params.sender_action);
      this.#sends.push(send);
      this.#sent(send);
      return this.#ok(psid === undefined ? {} : { recipient_id: psid });
    }
    const message = params.message as Record<string, any>;
    const messageId = "m_" + randomBytes(30).toString("base64url");
    Object.assign(send, { message, messageId });
    if (typeof params.messaging_type === "string") send.messagingType = params.messaging_type;
    if (typeof params.tag === "string") send.tag = params.tag;
    if (typeof message.metadata === "string") send.metadata = message.metadata;
    this.#sends.push(send);
    this.#sent(send);
    if (psid !== undefined) this.#afterSend(page, psid, message, messageId, now);
    const withRecipient = psid !== undefined || (recipient.user_ref === undefined && recipient.phone_number === undefined);
    return this.#ok(withRecipient && psid !== undefined ? { recipient_id: psid, message_id: messageId } : { message_id: messageId });
  }

  /** Echo, delivery and read webhooks, posted after the answer and in order. */
  #afterSend(page: FakePage, psid: string, message: Record<string, any>, mid: string, sentAt: number): void {
    const o = this.#options;
    if (!o.webhook) return;
    if (o.echoes) {
      const attachments = message.attachment ? [{ type: message.attachment.type, payload: message.attachment.payload }] : undefined;
      this.#emit(page, [
        echo(page.id, psid, {
          appId: this.#appId(page),
          mid,
          timestamp: sentAt,
          ...(message.metadata !== undefined ? { metadata: message.metadata } : {}),
          ...(message.text !== undefined ? { text: message.text } : {}),
          ...(attachments ? { attachments } : {}),
          ...(message.quick_replies !== undefined ? { quickReplies: message.quick_replies } : {}),
        }),
      ]);
    }
    if (o.deliveries) this.#emit(page, [delivery(page.id, psid, sentAt, [mid])]);
    if (o.reads) this.#emit(page, [read(page.id, psid, sentAt, { timestamp: sentAt })]);
  }

  /** Queues a signed webhook POST of `items` for `page`; POSTs go out one at a time, in order. */
  #emit(page: FakePage, items: MessagingEvent[], options: { standby?: boolean } = {}): void {
    const webhook = this.#options.webhook;
    if (!webhook) return;
    const body = metaJson(envelope(page.id, items, { time: this.#clock.now(), ...options }));
    const secret = webhook.appSecret ?? page.appSecret;
    const record: WebhookDelivery = { pageId: page.id, body, status: null };
    this.webhookDeliveries.push(record);
    const generation = this.#generation;
    this.#webhookChain = this.#webhookChain.then(async () => {
      // Like Meta: a failed delivery (no answer, or not 200) is retried a few times.
      const retries = webhook.retries ?? 6;
      for (let attempt = 0; attempt <= retries && !this.#stopped && generation === this.#generation; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** (attempt - 1)));
        try {
          const response = await deliverWebhook(page.webhookUrl ?? webhook.url, body, secret, { signal: AbortSignal.timeout(webhook.timeoutMs ?? 10_000) });
          await response.arrayBuffer();
          record.status = response.status;
          delete record.error;
          if (response.status === 200) return;
        } catch (error) {
          record.error = String((error as Error)?.message ?? error);
        }
      }
      if (!this.#stopped && generation === this.#generation) webhook.onGiveUp?.(record);
    });
  }

  /** Points the fake's webhook POSTs (echoes, deliveries, reads, handover events) at a server. */
  configureWebhook(webhook: FakeGraphOptions["webhook"], emit: { echoes?: boolean; deliveries?: boolean; reads?: boolean } = {}): void {
    this.#options.webhook = webhook;
    if (emit.echoes !== undefined) this.#options.echoes = emit.echoes;
    if (emit.deliveries !== undefined) this.#options.deliveries = emit.deliveries;
    if (emit.reads !== undefined) this.#options.reads = emit.reads;
  }

  /** Emits arbitrary events to the configured webhook, signed like the fake's own (for scenario tests). */
  emitWebhook(pageId: string, items: MessagingEvent[], options: { standby?: boolean } = {}): void {
    this.#emit(this.#page(pageId), items, options);
  }

  #uploadAttachment(params: Record<string, unknown>): Response {
    const message = isObject(params.message) ? params.message : undefined;
    const attachment = message && isObject(message.attachment) ? message.attachment : undefined;
    if (!attachment) invalid("param message[attachment] is required");
    if (!["image", "audio", "video", "file"].includes(String(attachment.type))) invalid("param message[attachment][type] must be one of {image, audio, video, file}");
    const payload = isObject(attachment.payload) ? attachment.payload : {};
    if (typeof payload.url !== "string" && params.filedata === undefined) invalid("param message[attachment][payload][url] is required");
    const id = String(1_000_000_000_000_000n + BigInt(randomBytes(6).readUIntBE(0, 6)));
    this.#attachments.set(id, attachment);
    return this.#ok({ attachment_id: id });
  }

  #recipientId(params: Record<string, unknown>): string {
    const recipient = params.recipient;
    if (!isObject(recipient) || (typeof recipient.id !== "string" && typeof recipient.id !== "number") || String(recipient.id) === "") {
      invalid("param recipient[id] must be a non-empty string");
    }
    return String(recipient.id);
  }

  #handover(page: FakePage, edge: string, params: Record<string, unknown>): Response | typeof NETWORK_ERROR {
    const psid = this.#recipientId(params);
    const failure = this.#takeFailure(page.id, params, edge);
    if (failure && "networkError" in failure) return NETWORK_ERROR;
    if (failure && "code" in failure) scriptedFail(failure);
    if (params.metadata !== undefined) {
      if (typeof params.metadata !== "string") invalid("param metadata must be a string");
      if (charLength(params.metadata) > 1000) invalid("Length of param metadata must be less than or equal to 1000");
    }
    const appId = this.#appId(page);
    const routingBlocked = page.conversationRouting && (edge === "take_thread_control" || edge === "request_thread_control");
    if (routingBlocked) invalid("Handover Protocol APIs disabled for this page.");
    switch (edge) {
      case "pass_thread_control": {
        const target = params.target_app_id;
        if ((typeof target !== "string" && typeof target !== "number") || String(target) === "") invalid("param target_app_id must be a valid app ID");
        // Only the owner (or anybody, when the thread is idle) passes.
        const owner = this.threadOwner(page.id, psid);
        if (owner !== null && owner !== appId) this.#notOwner();
        this.setThreadOwner(page.id, psid, String(target));
        break;
      }
      case "take_thread_control":
        this.setThreadOwner(page.id, psid, appId);
        break;
      case "release_thread_control":
        if (this.threadOwner(page.id, psid) === appId) this.setThreadOwner(page.id, psid, null);
        break;
      // request_thread_control: the owner decides; nothing changes here.
    }
    return this.#ok({ success: true });
  }

  /** With `threadOwnerError` set: the call of an app that does not own the thread fails with it. */
  #notOwner(): void {
    const ownerError = this.#options.threadOwnerError;
    if (!ownerError) return;
    graphFail(ownerError.code, ownerError.message ?? DEFAULT_MESSAGES[ownerError.code] ?? "(#10) The app is not the thread owner", {
      ...(ownerError.subcode === undefined ? {} : { subcode: ownerError.subcode }),
      ...(ownerError.status === undefined ? {} : { status: ownerError.status }),
    });
  }

  #threadOwnerEdge(page: FakePage, params: Record<string, unknown>): Response {
    const recipient = params.recipient;
    if (typeof recipient !== "string" && typeof recipient !== "number") invalid("The parameter recipient is required");
    const owner = this.threadOwner(page.id, String(recipient));
    return this.#ok({ data: owner === null ? [] : [{ thread_owner: { app_id: owner } }] });
  }

  #profile(page: FakePage, psid: string, params: Record<string, unknown>): Response {
    const fields = typeof params.fields === "string" ? params.fields.split(",").map((f) => f.trim()).filter(Boolean) : DEFAULT_PROFILE_FIELDS;
    for (const field of fields) {
      if (!PROFILE_FIELDS.includes(field)) invalid(`Tried accessing nonexisting field (${field}) on node type (User)`);
    }
    const user = this.user(page.id, psid);
    if (!user) unsupported("GET", psid);
    if (user.phoneOnly) invalid("No profile available for this user.", 2018218);
    if ((user.profileFailures ?? 0) > 0) {
      user.profileFailures!--;
      graphFail(2, "An unexpected error has occurred. Please retry your request later.", { status: 500, isTransient: true });
    }
    for (const field of fields) {
      const permission = PERMISSIONED_FIELDS[field];
      if (permission && !user.permissions?.includes(permission) && !page.scopes?.includes(permission)) {
        invalid("Insufficient permission to access user profile", 2018247);
      }
    }
    const profile = { ...user.profile };
    if (profile.name === undefined && (profile.first_name !== undefined || profile.last_name !== undefined)) {
      profile.name = [profile.first_name, profile.last_name].filter((s) => s !== undefined).join(" ");
    }
    const out: Record<string, unknown> = {};
    for (const field of fields) {
      if (field === "id") continue;
      if (field === "profile_pic") out.profile_pic = this.#profilePic(psid, profile.profile_pic);
      else if (profile[field] !== undefined) out[field] = profile[field];
    }
    out.id = psid;
    return this.#ok(out);
  }

  /** The configured picture URL (or a generated one) with an `ext=` expiry, epoch seconds, a day ahead. */
  #profilePic(psid: string, configured: unknown): string {
    const url = new URL(typeof configured === "string" ? configured : "https://platform-lookaside.fbsbx.test/platform/profilepic/");
    if (typeof configured !== "string") url.searchParams.set("psid", psid);
    if (!url.searchParams.has("ext")) url.searchParams.set("ext", String(Math.floor(this.#clock.now() / 1000) + 86_400));
    if (!url.searchParams.has("hash")) url.searchParams.set("hash", randomBytes(8).toString("base64url"));
    return url.toString();
  }

  #idsForPages(page: FakePage, psid: string, params: Record<string, unknown>, url: URL): Response {
    const user = this.user(page.id, psid);
    if (!user) unsupported("GET", psid);
    const business = this.#options.business?.[page.id];
    const rows: { id: string; page: Record<string, string> }[] = [];
    if (business !== undefined && user.person !== undefined) {
      const others = [...this.#pagesById.values()].filter((p) => p.id !== page.id && this.#options.business?.[p.id] === business).sort((a, b) => a.id.localeCompare(b.id));
      for (const other of others) {
        if (params.page !== undefined && String(params.page) !== other.id) continue;
        for (const [key, candidate] of this.#users) {
          const [pageId, otherPsid] = key.split("\u0000") as [string, string];
          if (pageId !== other.id || candidate.person !== user.person) continue;
          rows.push({
            id: otherPsid,
            page: { id: other.id, name: other.name ?? `Page ${other.id}`, category: "Business", link: `https://www.facebook.com/${other.id}` },
          });
        }
      }
    }
    const limit = Math.max(1, Math.min(100, Number(params.limit ?? 25) || 25));
    const start = typeof params.after === "string" ? decodeCursor(params.after) + 1 : 0;
    const data = rows.slice(start, start + limit);
    if (data.length === 0) return this.#ok({ data: [] });
    const end = start + data.length;
    const paging: Record<string, unknown> = { cursors: { before: encodeCursor(start), after: encodeCursor(end - 1) } };
    if (end < rows.length) {
      const next = new URL(url);
      next.searchParams.set("after", encodeCursor(end - 1));
      next.searchParams.set("limit", String(limit));
      paging.next = next.toString();
    }
    return this.#ok({ data, paging });
  }

  #messengerProfileEdge(page: FakePage, method: string, params: Record<string, unknown>): Response {
    // Meta: about 10 calls per 10 minutes per Page for this API.
    const now = this.#clock.now();
    const recent = (this.#profileCalls.get(page.id) ?? []).filter((t) => t > now - 10 * 60_000);
    if (recent.length >= 10) graphFail(613, "Calls to this api have exceeded the rate limit.");
    this.#profileCalls.set(page.id, [...recent, now]);
    const stored = this.#profiles.get(page.id) ?? {};
    switch (method) {
      case "POST": {
        const given = MESSENGER_PROFILE_FIELDS.filter((f) => params[f] !== undefined);
        if (given.length === 0) invalid(`Requires one of the params: ${MESSENGER_PROFILE_FIELDS.join(",")}`);
        const update: Record<string, unknown> = {};
        for (const field of given) update[field] = params[field];
        validateMessengerProfile(update, stored);
        this.#profiles.set(page.id, { ...stored, ...update });
        return this.#ok({ result: "success" });
      }
      case "GET": {
        const fields = fieldList(params.fields);
        if (!fields) invalid("The parameter fields is required");
        for (const field of fields) {
          if (!MESSENGER_PROFILE_FIELDS.includes(field)) invalid(`Tried accessing nonexisting field (${field}) on node type (MessengerProfile)`);
        }
        const found: Record<string, unknown> = {};
        for (const field of fields) if (stored[field] !== undefined) found[field] = stored[field];
        return this.#ok({ data: Object.keys(found).length > 0 ? [found] : [] });
      }
      case "DELETE": {
        const fields = fieldList(params.fields);
        if (!fields || fields.length === 0) invalid("The parameter fields is required");
        for (const field of fields) {
          if (!MESSENGER_PROFILE_FIELDS.includes(field)) invalid(`param fields[] must be one of {${MESSENGER_PROFILE_FIELDS.join(", ")}}`);
        }
        const next = { ...stored };
        for (const field of fields) delete next[field];
        if (next.persistent_menu !== undefined && next.get_started === undefined) invalid("You must delete the persistent menu before deleting the Get Started button.");
        this.#profiles.set(page.id, next);
        return this.#ok({ result: "success" });
      }
      default:
        unsupported(method, "messenger_profile");
    }
  }
}

const GARBLED = new WeakSet<Response>();

/** A 200 that a client cannot read: HTML from a proxy, or a JSON body cut off by a closed connection. */
function garbledResponse(how: "not_json" | "cut_off"): Response {
  const response = how === "not_json" ? new Response("<html><body>Bad gateway, sort of</body></html>", { status: 200, headers: { "content-type": "text/html" } }) : cutOff();
  GARBLED.add(response);
  return response;
}

function cutOff(): Response {
  return new Response(
    new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"recipient_id":"'));
        setTimeout(() => controller.error(), 5);
      },
    }),
    { status: 200, headers: { "content-type": "application/json; charset=UTF-8" } },
  );
}

/** A Response whose body fails before anything is written: Bun closes the socket without an answer. */
function brokenResponse(): Response {
  return new Response(
    new ReadableStream({
      start(controller) {
        controller.error();
      },
    }),
  );
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function encodeCursor(index: number): string {
  return Buffer.from(`cursor:${index}`).toString("base64url");
}

function decodeCursor(cursor: string): number {
  const match = /^cursor:(\d+)$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match) invalid("param after is not a valid cursor");
  return Number(match[1]);
}

function fieldList(value: unknown): string[] | null {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === "string" && value.trim() !== "") return value.split(",").map((f) => f.trim()).filter(Boolean);
  return null;
}

/** JSON, urlencoded (JSON-string values) or multipart bodies; `undefined` when there is none. */
async function parseBody(request: Request): Promise<unknown> {
  if (request.method === "GET" || request.method === "HEAD") return undefined;
  const type = (request.headers.get("content-type") ?? "").toLowerCase();
  if (type.startsWith("multipart/form-data")) {
    const form = await request.formData();
    const out: Record<string, unknown> = {};
    for (const [key, value] of form.entries()) {
      out[key] = typeof value === "string" ? jsonish(value) : { filename: value.name, type: value.type, size: value.size };
    }
    return out;
  }
  const text = await request.text();
  if (text === "") return undefined;
  if (type.startsWith("application/x-www-form-urlencoded")) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of new URLSearchParams(text)) out[key] = jsonish(value);
    return out;
  }
  try {
    return JSON.parse(text);
  } catch {
    graphFail(100, "(#100) The request body is not valid JSON");
  }
}

function isHttpsUrl(value: unknown): boolean {
  if (typeof value !== "string" || !URL.canParse(value)) return false;
  return new URL(value).protocol === "https:";
}

function checkLocales(list: unknown[], param: string): void {
  if (!list.some((item) => isObject(item) && item.locale === "default")) invalid(`param ${param} must contain an entry with locale "default"`);
}

/** Messenger Profile rules (§9, §12.3 item 6). `stored` is what the Page already has. */
function validateMessengerProfile(update: Record<string, unknown>, stored: Record<string, unknown>): void {
  if (update.get_started !== undefined) {
    const g = update.get_started;
    if (!isObject(g) || typeof g.payload !== "string" || g.payload === "") invalid("param get_started[payload] must be a non-empty string");
    if (charLength(g.payload) > PAYLOAD_MAX) invalid(`Length of param get_started[payload] must be less than or equal to ${PAYLOAD_MAX}`);
  }
  if (update.greeting !== undefined) {
    const greeting = update.greeting;
    if (!Array.isArray(greeting) || greeting.length === 0) invalid("param greeting must be a non-empty array");
    greeting.forEach((g, i) => {
      if (!isObject(g) || typeof g.locale !== "string" || typeof g.text !== "string") invalid(`param greeting[${i}] must have a locale and a text`);
      if (charLength(g.text) > GREETING_TEXT_MAX) invalid(`Length of param greeting[${i}][text] must be less than or equal to ${GREETING_TEXT_MAX}`);
    });
    checkLocales(greeting, "greeting");
  }
  if (update.persistent_menu !== undefined) {
    const menu = update.persistent_menu;
    if (!Array.isArray(menu) || menu.length === 0) invalid("param persistent_menu must be a non-empty array");
    if (update.get_started === undefined && stored.get_started === undefined) invalid("You must set a Get Started button if you also wish to use persistent menu.");
    menu.forEach((m, i) => {
      const p = `persistent_menu[${i}]`;
      if (!isObject(m) || typeof m.locale !== "string") invalid(`param ${p}[locale] is required`);
      if (m.call_to_actions === undefined) {
        if (m.composer_input_disabled !== true) invalid(`param ${p}[call_to_actions] is required`);
        return;
      }
      if (!Array.isArray(m.call_to_actions)) invalid(`param ${p}[call_to_actions] must be an array`);
      if (m.call_to_actions.length > MENU_ITEMS_MAX) invalid(`param ${p}[call_to_actions] must have at most ${MENU_ITEMS_MAX} elements`);
      m.call_to_actions.forEach((b: unknown, j: number) => {
        const bp = `${p}[call_to_actions][${j}]`;
        if (!isObject(b) || (b.type !== "postback" && b.type !== "web_url")) invalid(`param ${bp}[type] must be one of {postback, web_url}`);
        if (typeof b.title !== "string" || b.title === "") invalid(`param ${bp}[title] must be a non-empty string`);
        if (charLength(b.title) > MENU_TITLE_MAX) invalid(`Length of param ${bp}[title] must be less than or equal to ${MENU_TITLE_MAX}`);
        if (b.type === "postback" && (typeof b.payload !== "string" || b.payload === "" || charLength(b.payload) > PAYLOAD_MAX)) {
          invalid(`param ${bp}[payload] must be a non-empty string of at most ${PAYLOAD_MAX} characters`);
        }
        if (b.type === "web_url" && (typeof b.url !== "string" || !URL.canParse(b.url))) invalid(`param ${bp}[url] must be a valid URL`);
      });
    });
    checkLocales(menu, "persistent_menu");
  }
  if (update.ice_breakers !== undefined) {
    const ice = update.ice_breakers;
    if (!Array.isArray(ice)) invalid("param ice_breakers must be an array");
    const localized = ice.every((e) => isObject(e) && e.call_to_actions !== undefined);
    const groups: unknown[][] = localized ? ice.map((e) => (Array.isArray(e.call_to_actions) ? e.call_to_actions : [null])) : [ice];
    for (const group of groups) {
      if (group.length > ICE_BREAKERS_MAX) invalid(`param ice_breakers must have at most ${ICE_BREAKERS_MAX} questions per locale`);
      for (const q of group) {
        if (!isObject(q) || typeof q.question !== "string" || q.question === "" || typeof q.payload !== "string" || q.payload === "") {
          invalid("param ice_breakers entries need a non-empty question and payload");
        }
      }
    }
  }
  if (update.whitelisted_domains !== undefined) {
    const domains = update.whitelisted_domains;
    if (!Array.isArray(domains)) invalid("param whitelisted_domains must be an array");
    if (domains.length > WHITELISTED_DOMAINS_MAX) invalid(`param whitelisted_domains must have at most ${WHITELISTED_DOMAINS_MAX} elements`);
    domains.forEach((d, i) => {
      if (!isHttpsUrl(d)) invalid(`param whitelisted_domains[${i}] must be a valid https URL`);
    });
  }
  if (update.account_linking_url !== undefined && !isHttpsUrl(update.account_linking_url)) invalid("param account_linking_url must be a valid https URL");
  if (update.commands !== undefined && !Array.isArray(update.commands)) invalid("param commands must be an array");
}
