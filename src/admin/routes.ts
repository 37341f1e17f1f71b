/**
 * The admin API (SPEC §10), under `/api`: `Authorization: Bearer <one of [admin] api_keys>`,
 * compared in constant time; 401 otherwise. With no keys configured every `/api` path answers
 * 404 (the API is off). JSON in and out; bodies checked against admin/schemas.ts; described at
 * `/api/openapi.json` (served without a key: it holds no data).
 *
 * inject and notify store before they answer 202: an inject is an inbox event (kind "inject") that
 * runs in the user's inbound lane, in order with what the user says; a notify is queued in the
 * user's reply lane at once.
 */
import { randomBytes } from "node:crypto";
import { Elysia } from "elysia";
import type { Static, TSchema } from "@sinclair/typebox";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Clock } from "../core/clock.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Logger } from "../log/logger.ts";
import { jsonResponse } from "../http/responses.ts";
import { errorResponse } from "../http/errors.ts";
import { nextRequestId } from "../http/request-id.ts";
import { sameSecret } from "../http/secrets.ts";
import type { ConversationEngine, InjectedInput } from "../conversations/engine.ts";
import type { SessionStore } from "../conversations/sessions.ts";
import type { Contacts } from "../people/contacts.ts";
import type { ContactViews } from "../people/contact-views.ts";
import type { SessionViews } from "../people/session-views.ts";
import { messageText, transcriptInsert, type Transcripts } from "../people/transcripts.ts";
import { countStatement, dayOf, type Analytics } from "../people/analytics.ts";
import type { Subject, UserData } from "../people/user-data.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import { enqueueReplies } from "../replies/outbox.ts";
import { convertOutput } from "../messenger/convert.ts";
import { Output } from "../flows/schema.ts";
import type { Inbox } from "../inbox/inbox.ts";
import type { UserKey } from "../core/user-key.ts";
import { InjectBody, NotifyBody, ThreadBody } from "./schemas.ts";
import { checkJson as checkBody, checkValue } from "../core/checks.ts";
import type { Transformers } from "../transformers/transformers.ts";
import { RATE_LIMIT, type MessengerProfiles } from "../messenger/profile.ts";
import { MASK } from "../log/mask.ts";
import { openApiDocument } from "./openapi.ts";
import { targetAppId, type CallFailure, type Threads } from "../handover/threads.ts";

export interface AdminDeps {
  config: Config;
  inbox: Inbox;
  engine: ConversationEngine;
  replies: ReplyLanes;
  sessions: SessionStore;
  contacts: Contacts;
  userData: UserData;
  contactViews: ContactViews;
  sessionViews: SessionViews;
  transcripts: Transcripts;
  analytics: Analytics;
  pages: PageDirectory;
  writes: WriteQueue;
  clock: Clock;
  log: Logger;
  transformers: Transformers;
  profiles: MessengerProfiles;
  threads: Threads;
}

/** The object's listed keys that are defined (a non-object gives {}). */
function pick(value: unknown, keys: string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null) return {};
  const v = value as Record<string, unknown>;
  return Object.fromEntries(keys.filter((k) => v[k] !== undefined).map((k) => [k, v[k]]));
}

const apiOff = (requestId?: string) => errorResponse("admin_api_off", "the admin API is off: set [admin] api_keys in the settings", requestId);

type Handler = (ctx: { request: Request; params: Record<string, string>; query: URLSearchParams; requestId: string; log: Logger }) => Promise<Response> | Response;

export function adminRoutes(deps: AdminDeps) {
  const { config, userData, contactViews, sessionViews, transcripts, analytics, clock } = deps;
  const keys = config.admin.api_keys;
  const endpoints = new Map(config.endpoints.map((e) => [e.id, e]));
  const maxBody = config.server.max_body_bytes;

  /** Authenticates, then runs the handler; every answer carries the request id. */
  const api =
    (handler: Handler) =>
    async ({ request, params }: { request: Request; params: Record<string, string> }) => {
      const requestId = nextRequestId();
      if (keys.length === 0) return apiOff(requestId);
      const header = request.headers.get("authorization") ?? "";
      const match = /^Bearer\s+(.+)$/i.exec(header);
      // Every key is compared, so the time taken does not tell which one (or whether any) matched.
      let ok = false;
      if (match) for (const key of keys) ok = sameSecret(match[1]!.trim(), key) || ok;
      if (!ok) {
        return errorResponse("unauthorized", "send Authorization: Bearer <one of [admin] api_keys>", requestId, { "www-authenticate": 'Bearer realm="messenger-endpoint"' });
      }
      const log = deps.log.child({ request_id: requestId, api: `${request.method} ${new URL(request.url).pathname.replace(/\/[^/]*[0-9][^/]*/g, "/:id")}` });
      try {
        return await handler({ request, params, query: new URL(request.url).searchParams, requestId, log });
      } catch (error) {
        log.error("admin API request failed", { error });
        return errorResponse("internal_error", "internal error; see the server log", requestId);
      }
    };

  const readBody = async (request: Request, requestId: string): Promise<{ text: string } | Response> => {
    const length = Number(request.headers.get("content-length") ?? 0);
    if (length > maxBody) return errorResponse("too_large", `the body is over ${maxBody} bytes ([server] max_body_bytes)`, requestId);
    const text = await request.text();
    if (Buffer.byteLength(text) > maxBody) return errorResponse("too_large", `the body is over ${maxBody} bytes ([server] max_body_bytes)`, requestId);
    return { text };
  };

  const endpointOr404 = (id: string, requestId: string): EndpointSettings | Response =>
    endpoints.get(id) ?? errorResponse("unknown_endpoint", `no endpoint "${id}" in the settings`, requestId);

  /** The path's endpoint and the body checked against `schema`; or the 404 / 413 / 400 to answer. */
  const endpointAndBody = async <T extends TSchema>(schema: T, what: string, request: Request, id: string, requestId: string): Promise<{ endpoint: EndpointSettings; body: Static<T> } | Response> => {
    const endpoint = endpointOr404(id, requestId);
    if (endpoint instanceof Response) return endpoint;
    const raw = await readBody(request, requestId);
    if (raw instanceof Response) return raw;
    const body = checkBody(schema, raw.text);
    if (!body.ok) return errorResponse("invalid_body", `invalid ${what} body: ${body.problem}`, requestId);
    return { endpoint, body: body.value };
  };

  /** The user's lane key on the endpoint, or a 404 that says so. */
  const userOr404 = async (endpoint: EndpointSettings, userId: string, pageId: string | undefined, requestId: string): Promise<UserKey | Response> => {
    if (pageId && !endpoint.pages.some((p) => p.id === pageId)) {
      return errorResponse("unknown_page", `Page ${pageId} is not one of endpoint ${endpoint.id}'s pages`, requestId);
    }
    const page = await userData.pageOf(endpoint.id, userId, pageId);
    if (!page) return errorResponse("unknown_user", `user ${userId} has never written to endpoint ${endpoint.id}${pageId ? ` on Page ${pageId}` : ""}`, requestId);
    return { endpointId: endpoint.id, pageId: page, userId };
  };

  /**
   * GDPR erasure: the PSIDs are marked erased in the lanes before the deletes are queued, so a
   * turn in flight either committed before them (and its rows are deleted with the rest) or keeps
   * nothing; the caches are cleared after the commit.
   */
  const erase = async (subject: Subject, log: Logger): Promise<number> => {
    for (const key of subject.keys) {
      deps.engine.forgetUser(key);
      deps.replies.forgetUser(key);
      deps.threads.forgetUser(key);
    }
    const rows = await userData.erase(subject, log);
    for (const key of subject.keys) {
      deps.sessions.forget(key);
      deps.contacts.forget(key);
    }
    return rows;
  };
  const threadView = async (key: UserKey) => ({ ...(await deps.threads.view(key)), waiting_messages: deps.replies.waiting(key) });
  const masks = (endpointId: string) => endpoints.get(endpointId)?.data_protection.mask_logging ?? false;

  /** Stores an injected input in the user's inbound lane; 202 with the session id. */
  const inject = async (endpoint: EndpointSettings, body: InjectBody, requestId: string, log: Logger): Promise<Response> => {
    const { user_id, page_id, text, data } = body;
    if (text === undefined && data === undefined) return errorResponse("empty", "give text, data or both", requestId);
    const key = await userOr404(endpoint, user_id, page_id, requestId);
    if (key instanceof Response) return key;
    const now = clock.now();
    const session = await deps.sessions.current(key, now, endpoint.session.expiration_minutes);
    // A new session's id is chosen now, so the caller learns it; the current one is only reported
    // (if it expires before the turn runs, the turn starts a new one as for any input).
    const item: InjectedInput = { ...(text !== undefined ? { text } : {}), ...(data !== undefined ? { data } : {}), ...(session.isNew ? { new_session_id: session.id } : {}) };
    const dedupKey = `inject:${randomBytes(12).toString("base64url")}`;
    await deps.inbox.store(endpoint.id, [{ pageId: key.pageId, userId: key.userId, kind: "inject", standby: false, dedupKey, timestamp: now, item: item as never }]);
    log.info("input injected", { endpoint: endpoint.id, session: session.id });
    return jsonResponse(202, { status: "queued", endpoint_id: endpoint.id, page_id: key.pageId, user_id: key.userId, session_id: session.id }, requestId);
  };

  /** Queues messages in the user's reply lane, no flow; 202. */
  const notify = async (endpoint: EndpointSettings, body: NotifyBody, requestId: string, log: Logger): Promise<Response> => {
    const { user_id, page_id, text, data, output, messaging_type, tag } = body;
    if (text === undefined && data === undefined && output === undefined) return errorResponse("empty", "give text, data or output: there is nothing to send", requestId);
    if (messaging_type === "MESSAGE_TAG" && !tag) return errorResponse("invalid_body", "messaging_type MESSAGE_TAG needs a tag (e.g. ACCOUNT_UPDATE)", requestId);
    const checked = checkValue(Output, { ...(data ?? {}), ...(output ?? {}), ...(text !== undefined ? { text } : {}) });
    if (!checked.ok) return errorResponse("invalid_body", `invalid notify body: data and output must be output fields (text, quick_replies, buttons, cards, image, audio, video, file, messenger): ${checked.problem}`, requestId);
    const converted = convertOutput(checked.value, { preferParagraphs: false });
    if (converted.messages.length === 0) {
      return errorResponse("empty", `nothing to send in this notify${converted.warnings.length ? `: ${converted.warnings.join("; ")}` : ""}`, requestId);
    }
    const key = await userOr404(endpoint, user_id, page_id, requestId);
    if (key instanceof Response) return key;
    const now = clock.now();
    const enqueue = enqueueReplies(
      converted.messages.map((message) => ({ ...key, source: "notify" as const, message, messagingType: messaging_type ?? "UPDATE", ...(tag ? { tag } : {}) })),
      now,
    )!;
    const statements = [enqueue.statement];
    if (endpoint.data_protection.collect_conversations) {
      const contactId = endpoint.data_protection.contact_profiles ? await contactViews.contactIdOf(key) : null;
      statements.push(transcriptInsert(key, contactId, null, converted.messages.map((message) => ({ direction: "out", source: "notify", text: messageText(message), data: message })), now));
    }
    if (endpoint.data_protection.collect_analytics) statements.push(countStatement(endpoint.id, now, { outputs: converted.messages.length }));
    const results = await deps.writes.run(statements);
    const items = enqueue.items(results[0]!);
    deps.replies.accept(items);
    log.info("notify queued", { endpoint: endpoint.id, messages: items.length });
    return jsonResponse(202, { status: "queued", endpoint_id: endpoint.id, page_id: key.pageId, user_id: key.userId, messages: items.length, warnings: converted.warnings }, requestId);
  };

  /**
   * `/webhooks/{id}/inject` and `/notify`: the transformer maps any body to `{ user_id, text?, data? }`.
   * A falsy return drops it (200); a failure uses the body as it is (it must then be a valid admin
   * body), or with abort_on_error answers 422.
   */
  const transformed = async (kind: "inject" | "notify", endpointId: string, request: Request, requestId: string, log: Logger): Promise<Response> => {
    const endpoint = endpointOr404(endpointId, requestId);
    if (endpoint instanceof Response) return endpoint;
    const fn = kind === "inject" ? "handleInject" : "handleNotify";
    if (!deps.transformers.enabled(endpoint.id, fn)) {
      return errorResponse("transformer_off", `the ${kind} transformer of endpoint ${endpoint.id} is off: set [endpoints.transformers] ${kind} = true (or use POST /api/endpoints/${endpoint.id}/${kind})`, requestId);
    }
    const raw = await readBody(request, requestId);
    if (raw instanceof Response) return raw;
    let body: unknown = raw.text;
    try {
      body = JSON.parse(raw.text);
    } catch {
      // not JSON: the transformer gets the text
    }
    const tlog = log.child({ endpoint: endpoint.id });
    const args = { request: { method: request.method, headers: Object.fromEntries([...request.headers].filter(([h]) => h !== "authorization")), body } };
    const verdict = kind === "inject" ? await deps.transformers.inject(endpoint, args, tlog) : await deps.transformers.notify(endpoint, args, tlog);
    if (verdict.action === "drop") return jsonResponse(200, { status: "dropped", message: `handle${kind === "inject" ? "Inject" : "Notify"} returned nothing: nothing was done` }, requestId);
    if (verdict.action === "abort") {
      // A time limit or a stop may pass: 503 (try again); a failure of the code itself: 422.
      return verdict.unavailable
        ? errorResponse("transformer_unavailable", `${fn} could not run in time and abort_on_error is on; try again: ${verdict.reason}`, requestId)
        : errorResponse("transformer_failed", `${fn} failed and abort_on_error is on: ${verdict.reason}`, requestId);
    }
    const mapped = verdict.value ?? body;
    const checked = kind === "inject" ? checkValue(InjectBody, pick(mapped, Object.keys(InjectBody.properties))) : checkValue(NotifyBody, pick(mapped, Object.keys(NotifyBody.properties)));
    if (!checked.ok) return errorResponse("invalid_body", `${verdict.value ? `${fn} returned` : `${fn} failed and the body is not`} a valid ${kind}: ${checked.problem}`, requestId);
    return kind === "inject" ? inject(endpoint, checked.value as InjectBody, requestId, log) : notify(endpoint, checked.value as NotifyBody, requestId, log);
  };

  return new Elysia({ name: "admin" })
    .get("/api/openapi.json", () => (keys.length === 0 ? apiOff() : jsonResponse(200, openApiDocument())))
    .post(
      "/api/endpoints/:id/inject",
      api(async ({ request, params, requestId, log }) => {
        const checked = await endpointAndBody(InjectBody, "inject", request, params.id!, requestId);
        return checked instanceof Response ? checked : inject(checked.endpoint, checked.body, requestId, log);
      }),
    )
    .post(
      "/api/endpoints/:id/notify",
      api(async ({ request, params, requestId, log }) => {
        const checked = await endpointAndBody(NotifyBody, "notify", request, params.id!, requestId);
        return checked instanceof Response ? checked : notify(checked.endpoint, checked.body, requestId, log);
      }),
    )
    // Any body, mapped by the endpoint's handleInject / handleNotify transformer (SPEC §9).
    // (`:endpointId`: the same segment as the webhook's own route, whose parameter name the router requires.)
    .post("/webhooks/:endpointId/inject", api(({ request, params, requestId, log }) => transformed("inject", params.endpointId!, request, requestId, log)))
    .post("/webhooks/:endpointId/notify", api(({ request, params, requestId, log }) => transformed("notify", params.endpointId!, request, requestId, log)))
    .get(
      "/api/contacts",
      api(async ({ query, requestId }) => {
        const userId = query.get("user_id");
        if (!userId) return errorResponse("missing_user_id", "give ?user_id=<PSID>", requestId);
        const found = await contactViews.contactsByUser(userId, query.get("endpoint_id") ?? undefined);
        if (found.length === 0) return errorResponse("unknown_user", `no contact with user ${userId}`, requestId);
        return jsonResponse(200, found.length === 1 ? found[0] : { contacts: found }, requestId);
      }),
    )
    .get(
      "/api/contacts/:id",
      api(async ({ params, requestId }) => {
        const contact = await contactViews.contact(params.id!);
        return contact ? jsonResponse(200, contact, requestId) : errorResponse("unknown_contact", `no contact ${params.id}`, requestId);
      }),
    )
    .get(
      "/api/contacts/:id/export",
      api(async ({ params, requestId }) => {
        const subject = await userData.subject({ contactId: params.id! });
        return subject ? jsonResponse(200, await userData.export(subject), requestId) : errorResponse("unknown_contact", `no contact ${params.id}`, requestId);
      }),
    )
    .delete(
      "/api/contacts/:id",
      api(async ({ params, requestId, log }) => {
        const subject = await userData.subject({ contactId: params.id! });
        if (!subject) return errorResponse("unknown_contact", `no contact ${params.id}`, requestId);
        const rows = await erase(subject, log);
        log.info("contact erased with everything stored about its users", { contact_id: masks(subject.contact!.endpoint_id) ? MASK : params.id, rows });
        return jsonResponse(200, { erased: params.id, users: subject.keys.length, rows_deleted: rows }, requestId);
      }),
    )
    // The same by PSID: also when the endpoint keeps no contact profiles.
    .get(
      "/api/endpoints/:id/users/:userId/export",
      api(async ({ params, requestId }) => {
        const subject = await userData.subject({ endpointId: params.id!, userId: params.userId! });
        return subject ? jsonResponse(200, await userData.export(subject), requestId) : errorResponse("unknown_user", `endpoint ${params.id} has nothing stored about user ${params.userId}`, requestId);
      }),
    )
    .delete(
      "/api/endpoints/:id/users/:userId",
      api(async ({ params, requestId, log }) => {
        const subject = await userData.subject({ endpointId: params.id!, userId: params.userId! });
        if (!subject) return errorResponse("unknown_user", `endpoint ${params.id} has nothing stored about user ${params.userId}`, requestId);
        const rows = await erase(subject, log);
        log.info("user erased with everything stored about them", { endpoint: params.id, user: masks(params.id!) ? MASK : params.userId, rows });
        return jsonResponse(200, { erased: params.userId, contact_id: subject.contact?.id ?? null, users: subject.keys.length, rows_deleted: rows }, requestId);
      }),
    )
    // Who has the floor in the user's thread (SPEC §11), and changing it.
    .get(
      "/api/endpoints/:id/users/:userId/thread",
      api(async ({ params, query, requestId }) => {
        const endpoint = endpointOr404(params.id!, requestId);
        if (endpoint instanceof Response) return endpoint;
        const key = await userOr404(endpoint, params.userId!, query.get("page_id") ?? undefined, requestId);
        if (key instanceof Response) return key;
        return jsonResponse(200, await threadView(key), requestId);
      }),
    )
    .post(
      "/api/endpoints/:id/users/:userId/thread",
      api(async ({ request, params, requestId, log }) => {
        const checked = await endpointAndBody(ThreadBody, "thread", request, params.id!, requestId);
        if (checked instanceof Response) return checked;
        const { endpoint, body } = checked;
        const key = await userOr404(endpoint, params.userId!, body.page_id, requestId);
        if (key instanceof Response) return key;
        const { threads } = deps;
        const floor = threads.floor(key);
        const conflict = (message: string) => errorResponse("conflict", message, requestId);
        const callFailed = (failure: CallFailure) => errorResponse(failure.status === 503 ? "page_paused" : "graph_error", failure.status === 503 ? failure.message : `Meta refused it: ${failure.message}`, requestId);
        switch (body.action) {
          case "take": {
            const failed = await threads.take(key, "operator");
            if (failed) return callFailed(failed);
            break;
          }
          case "pass": {
            if (floor === "handover") return conflict("another app owns the thread already; take it first");
            const failed = await threads.pass(key, targetAppId(body.target ?? endpoint.handover.target), body.metadata ?? null);
            if (failed) return callFailed(failed);
            break;
          }
          case "pause":
            if (floor === "handover") return conflict("another app owns the thread; the bot is silent already");
            await threads.pause(key, body.minutes ?? endpoint.handover.pause_minutes);
            break;
          case "resume":
            if (floor === "handover") return conflict("another app owns the thread: use action take to have it back");
            await threads.returned(key, "resumed");
            break;
        }
        log.info(`thread ${body.action} by the operator`, { endpoint: endpoint.id });
        return jsonResponse(200, await threadView(key), requestId);
      }),
    )
    .get(
      "/api/sessions",
      api(async ({ query, requestId }) => {
        const userId = query.get("user_id");
        if (!userId) return errorResponse("missing_user_id", "give ?user_id=<PSID>", requestId);
        const sessions = await sessionViews.sessions({ userId, endpointId: query.get("endpoint_id") ?? undefined });
        if (sessions.length === 0) return errorResponse("unknown_user", `no sessions of user ${userId}`, requestId);
        return jsonResponse(200, { sessions }, requestId);
      }),
    )
    .delete(
      "/api/sessions/:id",
      api(async ({ params, requestId, log }) => {
        const session = await sessionViews.resetSession(params.id!, clock.now());
        if (!session) return errorResponse("unknown_session", `no session ${params.id}`, requestId);
        deps.sessions.forget({ endpointId: session.endpoint_id, pageId: session.page_id, userId: session.user_id });
        log.info("session reset", { session: session.id });
        return jsonResponse(200, { reset: session.id, was_current: session.current }, requestId);
      }),
    )
    .get(
      "/api/conversations",
      api(async ({ query, requestId }) => {
        const filter = {
          userId: query.get("user_id") ?? undefined,
          endpointId: query.get("endpoint_id") ?? undefined,
          sessionId: query.get("session_id") ?? undefined,
          contactId: query.get("contact_id") ?? undefined,
        };
        if (!filter.userId && !filter.sessionId && !filter.contactId) return errorResponse("missing_filter", "give ?user_id=, ?session_id= or ?contact_id=", requestId);
        if (filter.userId && !(await userData.knowsUser(filter.userId, filter.endpointId))) return errorResponse("unknown_user", `no sessions or contact of user ${filter.userId}`, requestId);
        const limit = Number(query.get("limit") ?? 100);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return errorResponse("invalid_limit", "limit is a whole number from 1 to 1000", requestId);
        return jsonResponse(200, { entries: await transcripts.conversation(filter, limit) }, requestId);
      }),
    )
    .get(
      "/api/endpoints",
      api(async ({ requestId }) => {
        const depth = await deps.replies.queueDepth();
        const pending = await deps.engine.pendingByEndpoint();
        const list = config.endpoints.map((e) => ({
          id: e.id,
          enabled: e.enabled,
          flow: e.flow,
          webhook_path: `/webhooks/${e.id}`,
          pages: e.pages.map((p) => {
            const paused = deps.pages.paused().find((x) => x.endpointId === e.id && x.pageId === p.id);
            const profile = deps.profiles.status(e.id, p.id);
            return { id: p.id, name: p.name ?? null, status: paused ? "paused" : "active", ...(paused ? { paused_reason: paused.reason } : {}), ...(profile ? { messenger_profile: profile } : {}) };
          }),
          reply_queue_depth: depth.get(e.id) ?? 0,
          threads: deps.threads.counts().get(e.id) ?? { handover: 0, paused: 0 },
          inbound_pending: pending.get(e.id) ?? 0,
        }));
        return jsonResponse(200, { endpoints: list }, requestId);
      }),
    )
    .post(
      "/api/endpoints/:id/messenger-profile",
      api(async ({ params, requestId, log }) => {
        const endpoint = endpointOr404(params.id!, requestId);
        if (endpoint instanceof Response) return endpoint;
        if (!endpoint.messenger_profile) return errorResponse("no_messenger_profile", `endpoint ${endpoint.id} declares no Messenger profile: add [endpoints.messenger_profile] to the settings`, requestId);
        const pages = await deps.profiles.apply(endpoint, { force: true });
        log.info("Messenger profile applied on request", { endpoint: endpoint.id, results: pages.map((p) => p.status) });
        const limited = pages.find((p) => p.status === "rate_limited");
        if (limited && pages.every((p) => p.status === "rate_limited")) {
          return new Response(JSON.stringify({ error: "rate_limited", message: `Meta allows ${RATE_LIMIT.calls} Messenger profile calls per 10 minutes per Page; try again in ${limited.retry_after_seconds} s`, pages }), {
            status: 429,
            headers: { "content-type": "application/json; charset=utf-8", "retry-after": String(limited.retry_after_seconds ?? 60), "x-request-id": requestId },
          });
        }
        const failed = pages.some((p) => p.status === "failed");
        return jsonResponse(failed ? 502 : 200, { endpoint_id: endpoint.id, pages }, requestId);
      }),
    )
    .get(
      "/api/analytics",
      api(async ({ query, requestId }) => {
        const today = dayOf(clock.now());
        const from = query.get("from") ?? dayOf(clock.now() - 29 * 86_400_000);
        const to = query.get("to") ?? today;
        const day = /^\d{4}-\d{2}-\d{2}$/;
        if (!day.test(from) || !day.test(to)) return errorResponse("invalid_day", "from and to are days: YYYY-MM-DD (UTC)", requestId);
        const endpointId = query.get("endpoint_id") ?? undefined;
        if (endpointId && !endpoints.has(endpointId)) return errorResponse("unknown_endpoint", `no endpoint "${endpointId}" in the settings`, requestId);
        return jsonResponse(200, { from, to, days: await analytics.days(endpointId, from, to) }, requestId);
      }),
    )
    .all("/api/*", ({ request }) =>
      keys.length === 0
        ? apiOff()
        : errorResponse("not_found", `no admin API route for ${request.method} ${new URL(request.url).pathname}; see /api/openapi.json`),
    );
}
