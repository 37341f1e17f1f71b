/**
 * Sessions:
 *
 *   GET    /api/sessions?user_id=PSID[&endpoint_id=]   a PSID's sessions, newest first, with their context
 *   DELETE /api/sessions/{id}                          reset: the user's next input starts a new session
 */
import { Elysia } from "elysia";
import type { Clock } from "../core/clock.ts";
import type { SessionStore } from "../conversations/sessions.ts";
import { HttpError } from "../http/errors.ts";
import { jsonResponse } from "../http/responses.ts";
import type { SessionViews } from "../people/session-views.ts";
import type { AdminGuard } from "./guard.ts";
import { answer, errorAnswer } from "./openapi.ts";
import { SessionParams, UserQuery } from "./schemas.ts";

export interface SessionRouteDeps {
  guard: AdminGuard;
  sessionViews: SessionViews;
  sessions: SessionStore;
  clock: Clock;
}

export function sessionRoutes({ guard, sessionViews, sessions, clock }: SessionRouteDeps) {
  return new Elysia({ name: "admin-sessions" })
    .use(guard.plugin)
    .get(
      "/api/sessions",
      async ({ query, requestId }) => {
        const found = await sessionViews.sessions({ userId: query.user_id, endpointId: query.endpoint_id });
        if (found.length === 0) throw new HttpError("unknown_user", `no sessions of user ${query.user_id}`);
        return jsonResponse(200, { sessions: found }, requestId);
      },
      { query: UserQuery, detail: { summary: "A PSID's sessions, newest first", responses: { "200": answer("sessions"), "400": errorAnswer("no user_id") } } },
    )
    .delete(
      "/api/sessions/:id",
      async ({ params, requestId, log }) => {
        const session = await sessionViews.resetSession(params.id, clock.now());
        if (!session) throw new HttpError("unknown_session", `no session ${params.id}`);
        sessions.forget({ endpointId: session.endpoint_id, pageId: session.page_id, userId: session.user_id });
        log.info("session reset", { session: session.id });
        return jsonResponse(200, { reset: session.id, was_current: session.current }, requestId);
      },
      {
        params: SessionParams,
        ...guard.noBody,
        detail: { summary: "Reset: the user's next input starts a new session with an empty context", responses: { "200": answer("reset") } },
      },
    );
}
