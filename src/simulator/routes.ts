/**
 * `/simulator` (SPEC §14): the chat page and its small API. Only mounted when `[simulator] enabled`
 * (on in the demo); otherwise these paths do not exist (404 like any unknown path).
 *
 *   GET  /simulator                  the page (embedded in the binary; no CDN)
 *   GET  /simulator/api/setup        endpoints, their Pages, persistent menus; the simulated users
 *   POST /simulator/api/users        {endpoint_id, page_id, name} → a new simulated user (201)
 *   POST /simulator/api/send         {endpoint_id, page_id, user_id, text | quick_reply | postback} (202)
 *   POST /simulator/api/done         {endpoint_id, page_id, user_id}: a person marks the handover Done (202)
 *   GET  /simulator/api/events?endpoint_id=&page_id=&user_id=   server-sent events: what Messenger would show
 *
 * Every one of them answers only requests addressed to this server's own names (hosts.ts): 403
 * for any other `Host`, so that a site using DNS rebinding cannot drive it from a browser.
 */
import { Elysia } from "elysia";
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { errorResponse, jsonResponse } from "../http/responses.ts";
import { checkJson as checkBody } from "../core/checks.ts";
import type { Threads } from "../handover/threads.ts";
import type { Logger } from "../log/logger.ts";
import { SIMULATOR_PAGE } from "./page/page.ts";
import { MAX_USERS_PER_ENDPOINT, type SimulatedUser, type Simulator, type SimulatorEvent } from "./simulator.ts";

const Id = Type.String({ minLength: 1, maxLength: 64 });
const Digits = Type.String({ pattern: "^[0-9]+$", maxLength: 32 });
const Tap = Type.Object({ title: Type.String({ minLength: 1, maxLength: 200 }), payload: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false });
const UserRef = { endpoint_id: Id, page_id: Digits, user_id: Digits };

export const NewUserBody = Type.Object({ endpoint_id: Id, page_id: Digits, name: Type.String({ minLength: 1, maxLength: 60 }) }, { additionalProperties: false });
export const SendBody = Type.Object(
  { ...UserRef, text: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })), quick_reply: Type.Optional(Tap), postback: Type.Optional(Tap) },
  { additionalProperties: false },
);
export const DoneBody = Type.Object(UserRef, { additionalProperties: false });

export interface SimulatorRouteDeps {
  simulator: Simulator;
  threads: Threads;
  log: Logger;
  maxBodyBytes: number;
}

export function simulatorRoutes({ simulator, threads, log, maxBodyBytes }: SimulatorRouteDeps) {
  const body = async <T extends TSchema>(schema: T, request: Request): Promise<Static<T> | Response> => {
    // JSON only, and only from this origin: another site's page cannot post here without the
    // browser asking first (a JSON POST needs a CORS preflight, which is never granted).
    if (!(request.headers.get("content-type") ?? "").toLowerCase().startsWith("application/json")) {
      return errorResponse(415, "json_only", "send the body as JSON with content-type: application/json");
    }
    const site = request.headers.get("sec-fetch-site");
    if (site && site !== "same-origin" && site !== "none") return errorResponse(403, "cross_site", "the simulator's API answers only its own page");
    const text = await request.text();
    if (Buffer.byteLength(text) > maxBodyBytes) return errorResponse(413, "too_large", `the body is over ${maxBodyBytes} bytes`);
    const checked = checkBody(schema, text);
    return checked.ok ? checked.value : errorResponse(400, "invalid_body", `invalid simulator request: ${checked.problem}`);
  };
  const userOr404 = (ref: { endpoint_id: string; page_id: string; user_id: string }): SimulatedUser | Response =>
    simulator.user(ref.endpoint_id, ref.page_id, ref.user_id) ??
    errorResponse(404, "unknown_user", `user ${ref.user_id} is not a simulated user of endpoint ${ref.endpoint_id} on Page ${ref.page_id}: add one with POST /simulator/api/users`);

  return new Elysia({ name: "simulator" })
    // Local to this plugin: the routes below, and nothing else of the server.
    .onBeforeHandle(({ request }) => {
      const host = simulator.hosts.allows(request);
      if (host.ok) return;
      return errorResponse(
        403,
        "host_not_allowed",
        `the simulator answers only requests addressed to this server's own names, not to ${JSON.stringify(host.name)} ` +
          `(a guard against DNS rebinding): if this server is reached by that name, add it to [simulator] allowed_hosts in the settings`,
      );
    })
    .get("/simulator", () => new Response(SIMULATOR_PAGE, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } }))
    .get("/simulator/api/setup", () => jsonResponse(200, { endpoints: simulator.setup(), users: simulator.users() }))
    .post("/simulator/api/users", async ({ request }) => {
      const b = await body(NewUserBody, request);
      if (b instanceof Response) return b;
      const endpoint = simulator.setup().find((e) => e.id === b.endpoint_id) as { pages: { id: string }[] } | undefined;
      if (!endpoint) return errorResponse(404, "unknown_endpoint", `no endpoint "${b.endpoint_id}" in the settings`);
      if (!endpoint.pages.some((p) => p.id === b.page_id)) return errorResponse(404, "unknown_page", `Page ${b.page_id} is not one of endpoint ${b.endpoint_id}'s Pages`);
      if (simulator.count(b.endpoint_id) >= MAX_USERS_PER_ENDPOINT) {
        return errorResponse(409, "too_many_users", `endpoint ${b.endpoint_id} has ${MAX_USERS_PER_ENDPOINT} simulated users already: erase some with DELETE /api/endpoints/${b.endpoint_id}/users/{psid}`);
      }
      const user = await simulator.addUser(b.endpoint_id, b.page_id, b.name);
      log.info("simulated user added", { endpoint: b.endpoint_id, page: b.page_id, user: user.user_id });
      return jsonResponse(201, user);
    })
    .post("/simulator/api/send", async ({ request }) => {
      const b = await body(SendBody, request);
      if (b instanceof Response) return b;
      const user = userOr404(b);
      if (user instanceof Response) return user;
      const given = [b.text !== undefined, b.quick_reply !== undefined, b.postback !== undefined].filter(Boolean).length;
      if (given !== 1) return errorResponse(400, "invalid_body", "give exactly one of text, quick_reply or postback");
      simulator.act(user, b.text !== undefined ? { text: b.text } : b.quick_reply ? { quick_reply: b.quick_reply } : { postback: b.postback! });
      return jsonResponse(202, { status: "sent to the webhook" });
    })
    .post("/simulator/api/done", async ({ request }) => {
      const b = await body(DoneBody, request);
      if (b instanceof Response) return b;
      const user = userOr404(b);
      if (user instanceof Response) return user;
      simulator.inboxDone(user);
      return jsonResponse(202, { status: "marked done" });
    })
    .get("/simulator/api/events", ({ request }) => {
      const q = new URL(request.url).searchParams;
      const user = userOr404({ endpoint_id: q.get("endpoint_id") ?? "", page_id: q.get("page_id") ?? "", user_id: q.get("user_id") ?? "" });
      if (user instanceof Response) return user;
      return eventStream(request.signal, simulator, (push) => {
        push({ type: "thread", state: threads.floor({ endpointId: user.endpoint_id, pageId: user.page_id, userId: user.user_id }) });
        return simulator.subscribe(user, push);
      });
    });
}

/** A `text/event-stream` response: `start` subscribes and returns its unsubscribe; a comment every 15 s keeps proxies from closing it. */
function eventStream(signal: AbortSignal, simulator: Simulator, start: (push: (event: SimulatorEvent) => void) => () => void): Response {
  const encoder = new TextEncoder();
  let stop = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (chunk: string) => {
        try {
          controller.enqueue(encoder.encode(chunk));
        } catch {
          stop();
        }
      };
      const unsubscribe = start((event) => send(`data: ${JSON.stringify(event)}\n\n`));
      const keepAlive = setInterval(() => send(": keep-alive\n\n"), 15_000);
      let untrack = () => {};
      stop = () => {
        untrack();
        clearInterval(keepAlive);
        unsubscribe();
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      untrack = simulator.trackStream(() => stop());
      signal.addEventListener("abort", () => stop(), { once: true });
      send(": connected\n\n");
    },
    cancel() {
      stop();
    },
  });
  return new Response(stream, { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive" } });
}
