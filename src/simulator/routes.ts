/**
 * `/simulator`: the chat page and its small API. Only mounted when `[simulator] enabled` (on in
 * the demo); otherwise these paths do not exist (404 like any unknown path).
 *
 *   GET  /                           302 to /simulator (without the simulator, / stays unknown: 404)
 *   GET  /simulator                  the page (embedded in the binary; no CDN)
 *   GET  /simulator/api/setup        endpoints, their Pages, persistent menus; the simulated users
 *   POST /simulator/api/users        {endpoint_id, page_id, name} → a new simulated user (201)
 *   POST /simulator/api/send         {endpoint_id, page_id, user_id, text | quick_reply | postback} (202)
 *   POST /simulator/api/done         {endpoint_id, page_id, user_id}: a person marks the handover Done (202)
 *   GET  /simulator/api/events?endpoint_id=&page_id=&user_id=   server-sent events: the thread state, the
 *                                    conversation so far (history.ts), then what Messenger would show
 *
 * Bodies and queries are checked by Elysia against the schemas below; refusals, like every error
 * thrown here (`HttpError`), are answered by the app's error plugin (http/error-plugin.ts). Before
 * that, the hooks of this plugin refuse, in this order: another `Host` (403 host_not_allowed, see
 * hosts.ts), a body that is not JSON (415), a cross-site request (403), a body over
 * `[server] max_body_bytes` (413).
 */
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { jsonResponse } from "../http/responses.ts";
import { HttpError } from "../http/errors.ts";
import { readJsonBody, requireJsonContentType } from "../http/json-body.ts";
import type { Threads } from "../handover/threads.ts";
import type { Logger } from "../log/logger.ts";
import { SIMULATOR_PAGE } from "./page/page.ts";
import type { AllowedHosts } from "./hosts.ts";
import { MAX_USERS_PER_ENDPOINT, type SimulatedUser, type Simulator } from "./simulator.ts";
import { eventStream } from "./event-stream.ts";
import { followWithHistory } from "./history.ts";

/** Named in validation messages: "invalid simulator request: /page_id: …". */
const title = "simulator request";
const Id = Type.String({ minLength: 1, maxLength: 64 });
const Digits = Type.String({ pattern: "^[0-9]+$", maxLength: 32 });
const Tap = Type.Object(
  { title: Type.String({ minLength: 1, maxLength: 200 }), payload: Type.String({ minLength: 1, maxLength: 1000 }) },
  { additionalProperties: false },
);
const UserRef = { endpoint_id: Id, page_id: Digits, user_id: Digits };

export const NewUserBody = Type.Object(
  { endpoint_id: Id, page_id: Digits, name: Type.String({ minLength: 1, maxLength: 60 }) },
  { additionalProperties: false, title },
);
export const SendBody = Type.Object(
  { ...UserRef, text: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })), quick_reply: Type.Optional(Tap), postback: Type.Optional(Tap) },
  { additionalProperties: false, title },
);
export const DoneBody = Type.Object(UserRef, { additionalProperties: false, title });
/** Other query parameters (a cache buster, say) are ignored. */
export const EventsQuery = Type.Object(UserRef, { additionalProperties: true, title });

export interface SimulatorRouteDeps {
  simulator: Simulator;
  threads: Threads;
  log: Logger;
  maxBodyBytes: number;
}

export function simulatorRoutes({ simulator, threads, log, maxBodyBytes }: SimulatorRouteDeps) {
  const simulatedUser = (ref: { endpoint_id: string; page_id: string; user_id: string }): SimulatedUser => {
    const user = simulator.user(ref.endpoint_id, ref.page_id, ref.user_id);
    if (user) return user;
    throw new HttpError(
      "unknown_user",
      `user ${ref.user_id} is not a simulated user of endpoint ${ref.endpoint_id} on Page ${ref.page_id}: add one with POST /simulator/api/users`,
    );
  };

  // The hooks are local to this plugin: the routes below, and nothing else of the server.
  return (
    new Elysia({ name: "simulator" })
      // The server's root leads a newcomer to the page (before the hooks: a redirect to a path of its own tells nothing).
      .get("/", () => new Response(null, { status: 302, headers: { location: "/simulator", "cache-control": "no-store" } }))
      // A body is parsed before anything else runs (transform, validation): its checks come first.
      .onParse(async ({ request }) => {
        refuseOtherHosts(simulator.hosts, request);
        // JSON only, and only from this origin: another site's page cannot post here without the
        // browser asking first (a JSON POST needs a CORS preflight, which is never granted).
        requireJsonContentType(request);
        const site = request.headers.get("sec-fetch-site");
        if (site && site !== "same-origin" && site !== "none") throw new HttpError("cross_site", "the simulator's API answers only its own page");
        return readJsonBody(request, maxBodyBytes, title);
      })
      // Every route, with a body or not (checked again for a POST: cheap, and the rule is in one place).
      .onTransform(({ request }) => refuseOtherHosts(simulator.hosts, request))
      .get("/simulator", () => new Response(SIMULATOR_PAGE, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } }))
      .get("/simulator/api/setup", () => jsonResponse(200, { endpoints: simulator.setup(), users: simulator.users() }))
      .post(
        "/simulator/api/users",
        async ({ body }) => {
          const endpoint = simulator.setup().find((e) => e.id === body.endpoint_id) as { pages: { id: string }[] } | undefined;
          if (!endpoint) throw new HttpError("unknown_endpoint", `no endpoint "${body.endpoint_id}" in the settings`);
          if (!endpoint.pages.some((p) => p.id === body.page_id))
            throw new HttpError("unknown_page", `Page ${body.page_id} is not one of endpoint ${body.endpoint_id}'s Pages`);
          if (simulator.count(body.endpoint_id) >= MAX_USERS_PER_ENDPOINT) {
            throw new HttpError(
              "too_many_users",
              `endpoint ${body.endpoint_id} has ${MAX_USERS_PER_ENDPOINT} simulated users already: erase some with DELETE /api/endpoints/${body.endpoint_id}/users/{psid}`,
            );
          }
          const user = await simulator.addUser(body.endpoint_id, body.page_id, body.name);
          log.info("simulated user added", { endpoint: body.endpoint_id, page: body.page_id, user: user.user_id });
          return jsonResponse(201, user);
        },
        { body: NewUserBody },
      )
      .post(
        "/simulator/api/send",
        ({ body }) => {
          const user = simulatedUser(body);
          const given = [body.text !== undefined, body.quick_reply !== undefined, body.postback !== undefined].filter(Boolean).length;
          if (given !== 1) throw new HttpError("invalid_body", "give exactly one of text, quick_reply or postback");
          simulator.act(
            user,
            body.text !== undefined ? { text: body.text } : body.quick_reply ? { quick_reply: body.quick_reply } : { postback: body.postback! },
          );
          return jsonResponse(202, { status: "sent to the webhook" });
        },
        { body: SendBody },
      )
      .post(
        "/simulator/api/done",
        ({ body }) => {
          simulator.inboxDone(simulatedUser(body));
          return jsonResponse(202, { status: "marked done" });
        },
        { body: DoneBody },
      )
      .get(
        "/simulator/api/events",
        ({ query, request }) => {
          const user = simulatedUser(query);
          return eventStream(request.signal, simulator, (push) => {
            push({ type: "thread", state: threads.floor({ endpointId: user.endpoint_id, pageId: user.page_id, userId: user.user_id }) });
            return followWithHistory(
              (live) => simulator.subscribe(user, live),
              () => simulator.history(user),
              push,
            );
          });
        },
        { query: EventsQuery },
      )
  );
}

/** 403 for a request addressed to a name this server is not reached by (DNS rebinding: hosts.ts). */
function refuseOtherHosts(hosts: AllowedHosts, request: Request): void {
  const host = hosts.allows(request);
  if (host.ok) return;
  throw new HttpError(
    "host_not_allowed",
    `the simulator answers only requests addressed to this server's own names, not to ${JSON.stringify(host.name)} ` +
      `(a guard against DNS rebinding): if this server is reached by that name, add it to [simulator] allowed_hosts in the settings`,
  );
}
