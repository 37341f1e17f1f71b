/**
 * Reaching a user from outside the conversation, both stored before the 202:
 *
 *   POST /api/endpoints/{id}/inject   an inbox event (kind "inject") that runs the flow in the user's
 *                                     inbound lane, in order with what the user says
 *   POST /api/endpoints/{id}/notify   messages queued in the user's reply lane at once, no flow
 *
 * and the same from any body, mapped by the endpoint's handleInject / handleNotify transformer
 * (docs/transformers.md): `POST /webhooks/{endpointId}/inject` and `/notify`, with the admin key too.
 */
import { Elysia } from "elysia";
import type { EndpointSettings } from "../config/schema.ts";
import type { Clock } from "../core/clock.ts";
import { checkValue } from "../core/checks.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { InjectedInput } from "../conversations/input.ts";
import type { SessionStore } from "../conversations/sessions.ts";
import { Output } from "../flows/schema.ts";
import { HttpError } from "../http/errors.ts";
import { jsonResponse } from "../http/responses.ts";
import type { Inbox } from "../inbox/inbox.ts";
import type { Logger } from "../log/logger.ts";
import { convertOutput } from "../messenger/convert.ts";
import { countStatement } from "../people/analytics.ts";
import type { ContactViews } from "../people/contact-views.ts";
import { messageText, transcriptInsert } from "../people/transcripts.ts";
import type { UserData } from "../people/user-data.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import { enqueueReplies } from "../replies/outbox.ts";
import type { Transformers } from "../transformers/transformers.ts";
import type { AdminGuard } from "./guard.ts";
import { endpointNamed, userOn, type Endpoints } from "./lookup.ts";
import { answer, errorAnswer } from "./openapi.ts";
import { EndpointParams, InjectBody, NotifyBody, WebhookParams } from "./schemas.ts";
import { sortableId } from "../core/sortable-id.ts";

export interface UserRouteDeps {
  guard: AdminGuard;
  endpoints: Endpoints;
  inbox: Inbox;
  replies: ReplyLanes;
  sessions: SessionStore;
  userData: UserData;
  contactViews: ContactViews;
  transformers: Transformers;
  writes: WriteQueue;
  clock: Clock;
}

export function userRoutes(deps: UserRouteDeps) {
  const { guard, endpoints, clock, userData } = deps;

  /** Stores an injected input in the user's inbound lane; 202 with the session id. */
  const inject = async (endpoint: EndpointSettings, body: InjectBody, requestId: string, log: Logger): Promise<Response> => {
    const { user_id, page_id, text, data } = body;
    if (text === undefined && data === undefined) throw new HttpError("empty", "give text, data or both");
    const key = await userOn(userData, endpoint, user_id, page_id);
    const now = clock.now();
    const session = await deps.sessions.current(key, now, endpoint.session.expiration_minutes);
    // A new session's id is chosen now, so the caller learns it; the current one is only reported
    // (if it expires before the turn runs, the turn starts a new one as for any input).
    const item: InjectedInput = {
      ...(text !== undefined ? { text } : {}),
      ...(data !== undefined ? { data } : {}),
      ...(session.isNew ? { new_session_id: session.id } : {}),
    };
    const dedupKey = sortableId("inject:");
    await deps.inbox.store(endpoint.id, [
      { pageId: key.pageId, userId: key.userId, kind: "inject", standby: false, dedupKey, timestamp: now, item: item as never },
    ]);
    log.info("input injected", { endpoint: endpoint.id, session: session.id });
    return jsonResponse(202, { status: "queued", endpoint_id: endpoint.id, page_id: key.pageId, user_id: key.userId, session_id: session.id }, requestId);
  };

  /** Queues messages in the user's reply lane, no flow; 202. */
  const notify = async (endpoint: EndpointSettings, body: NotifyBody, requestId: string, log: Logger): Promise<Response> => {
    const { user_id, page_id, text, data, output, messaging_type, tag } = body;
    if (text === undefined && data === undefined && output === undefined) throw new HttpError("empty", "give text, data or output: there is nothing to send");
    if (messaging_type === "MESSAGE_TAG" && !tag) throw new HttpError("invalid_body", "messaging_type MESSAGE_TAG needs a tag (e.g. ACCOUNT_UPDATE)");
    const checked = checkValue(Output, { ...(data ?? {}), ...(output ?? {}), ...(text !== undefined ? { text } : {}) });
    if (!checked.ok) {
      throw new HttpError(
        "invalid_body",
        `invalid notify body: data and output must be output fields (text, quick_replies, buttons, cards, image, audio, video, file, messenger): ${checked.problem}`,
      );
    }
    const converted = convertOutput(checked.value, { preferParagraphs: false });
    if (converted.messages.length === 0) {
      throw new HttpError("empty", `nothing to send in this notify${converted.warnings.length ? `: ${converted.warnings.join("; ")}` : ""}`);
    }
    const key = await userOn(userData, endpoint, user_id, page_id);
    const now = clock.now();
    const enqueue = enqueueReplies(
      converted.messages.map((message) => ({ ...key, source: "notify" as const, message, messagingType: messaging_type ?? "UPDATE", ...(tag ? { tag } : {}) })),
      now,
    )!;
    const statements = [enqueue.statement];
    if (endpoint.data_protection.collect_conversations) {
      const contactId = endpoint.data_protection.contact_profiles ? await deps.contactViews.contactIdOf(key) : null;
      statements.push(
        transcriptInsert(
          key,
          contactId,
          null,
          converted.messages.map((message) => ({ direction: "out", source: "notify", text: messageText(message), data: message })),
          now,
        ),
      );
    }
    if (endpoint.data_protection.collect_analytics) statements.push(countStatement(endpoint.id, now, { outputs: converted.messages.length }));
    const results = await deps.writes.run(statements);
    const items = enqueue.items(results[0]!);
    deps.replies.accept(items);
    log.info("notify queued", { endpoint: endpoint.id, messages: items.length });
    return jsonResponse(
      202,
      { status: "queued", endpoint_id: endpoint.id, page_id: key.pageId, user_id: key.userId, messages: items.length, warnings: converted.warnings },
      requestId,
    );
  };

  /**
   * An inject or notify from any body: the transformer maps it to `{ user_id, text?, data? }`. A
   * falsy return drops it (200); a failure uses the body as it is (it must then be a valid admin
   * body), or with abort_on_error answers 422 (503 when it could not run in time).
   */
  const transformed = async (
    kind: "inject" | "notify",
    endpointId: string,
    request: Request,
    body: unknown,
    requestId: string,
    log: Logger,
  ): Promise<Response> => {
    const endpoint = endpointNamed(endpoints, endpointId);
    const fn = kind === "inject" ? "handleInject" : "handleNotify";
    if (!deps.transformers.enabled(endpoint.id, fn)) {
      throw new HttpError(
        "transformer_off",
        `the ${kind} transformer of endpoint ${endpoint.id} is off: set [endpoints.transformers] ${kind} = true (or use POST /api/endpoints/${endpoint.id}/${kind})`,
      );
    }
    const tlog = log.child({ endpoint: endpoint.id });
    const args = { request: { method: request.method, headers: Object.fromEntries([...request.headers].filter(([h]) => h !== "authorization")), body } };
    const verdict = kind === "inject" ? await deps.transformers.inject(endpoint, args, tlog) : await deps.transformers.notify(endpoint, args, tlog);
    if (verdict.action === "drop") return jsonResponse(200, { status: "dropped", message: `${fn} returned nothing: nothing was done` }, requestId);
    if (verdict.action === "abort") {
      // A time limit or a stop may pass: 503 (try again); a failure of the code itself: 422.
      if (verdict.unavailable) {
        throw new HttpError("transformer_unavailable", `${fn} could not run in time and abort_on_error is on; try again: ${verdict.reason}`);
      }
      throw new HttpError("transformer_failed", `${fn} failed and abort_on_error is on: ${verdict.reason}`);
    }
    const mapped = verdict.value ?? body;
    const schema = kind === "inject" ? InjectBody : NotifyBody;
    const checked = checkValue(schema, pick(mapped, Object.keys(schema.properties)));
    if (!checked.ok) {
      throw new HttpError("invalid_body", `${verdict.value ? `${fn} returned` : `${fn} failed and the body is not`} a valid ${kind}: ${checked.problem}`);
    }
    return kind === "inject" ? inject(endpoint, checked.value as InjectBody, requestId, log) : notify(endpoint, checked.value as NotifyBody, requestId, log);
  };

  const queued = (what: string, fields: Record<string, unknown>) => answer(what, { type: "object", properties: fields });
  const byTransformer = (kind: "inject" | "notify", fn: string) => ({
    summary: `${kind === "inject" ? "Inject" : "Notify"} from any body: the endpoint's ${fn} transformer maps it to a ${kind} body (docs/transformers.md)`,
    requestBody: { required: false, content: { "*/*": { schema: {} } }, description: `Any body: JSON is given to ${fn} parsed, anything else as text` },
    responses: {
      "200": answer(`${fn} returned nothing: nothing was done`),
      "202": answer(`as POST /api/endpoints/{id}/${kind}`),
      "400": errorAnswer(`what ${fn} returned is not a valid ${kind} body`),
      "404": errorAnswer("unknown endpoint or user, or the transformer is off"),
      "422": errorAnswer(`${fn} failed and abort_on_error is on`),
      "503": errorAnswer(`${fn} could not run in time and abort_on_error is on`),
    },
  });

  return new Elysia({ name: "admin-users" })
    .use(guard.plugin)
    .post("/api/endpoints/:id/inject", ({ params, body, requestId, log }) => inject(endpointNamed(endpoints, params.id), body, requestId, log), {
      params: EndpointParams,
      ...guard.jsonBody(InjectBody),
      detail: {
        summary: "Run the flow as if the user had said it (source: inject); replies go through the user's lane",
        responses: { "202": queued("stored; runs in the user's lane", { session_id: { type: "string" } }), "400": errorAnswer("invalid or empty body") },
      },
    })
    .post("/api/endpoints/:id/notify", ({ params, body, requestId, log }) => notify(endpointNamed(endpoints, params.id), body, requestId, log), {
      params: EndpointParams,
      ...guard.jsonBody(NotifyBody),
      detail: {
        summary: "Send to the user through their reply lane, without the flow",
        responses: { "202": queued("queued", { messages: { type: "integer" } }), "400": errorAnswer("invalid body, or nothing to send") },
      },
    })
    .post(
      "/webhooks/:endpointId/inject",
      ({ params, request, body, requestId, log }) => transformed("inject", params.endpointId, request, body, requestId, log),
      {
        params: WebhookParams,
        ...guard.anyBody,
        detail: byTransformer("inject", "handleInject"),
      },
    )
    .post(
      "/webhooks/:endpointId/notify",
      ({ params, request, body, requestId, log }) => transformed("notify", params.endpointId, request, body, requestId, log),
      {
        params: WebhookParams,
        ...guard.anyBody,
        detail: byTransformer("notify", "handleNotify"),
      },
    );
}

/** The object's listed keys that are defined (a non-object gives {}). */
function pick(value: unknown, keys: string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null) return {};
  const v = value as Record<string, unknown>;
  return Object.fromEntries(keys.filter((k) => v[k] !== undefined).map((k) => [k, v[k]]));
}
