/**
 * `GET /api/conversations?user_id=…|session_id=…|contact_id=…[&endpoint_id=][&limit=N]`: transcript
 * entries, oldest first (the last N: default 100, at most 1000).
 */
import { Elysia } from "elysia";
import { HttpError } from "../http/errors.ts";
import { jsonResponse } from "../http/responses.ts";
import type { Transcripts } from "../people/transcripts.ts";
import type { UserData } from "../people/user-data.ts";
import type { AdminGuard } from "./guard.ts";
import { answer, errorAnswer } from "./openapi.ts";
import { ConversationsQuery } from "./schemas.ts";

export interface ConversationRouteDeps {
  guard: AdminGuard;
  userData: UserData;
  transcripts: Transcripts;
}

export function conversationRoutes({ guard, userData, transcripts }: ConversationRouteDeps) {
  return new Elysia({ name: "admin-conversations" }).use(guard.plugin).get(
    "/api/conversations",
    async ({ query, requestId }) => {
      const filter = { userId: query.user_id, endpointId: query.endpoint_id, sessionId: query.session_id, contactId: query.contact_id };
      if (!filter.userId && !filter.sessionId && !filter.contactId) throw new HttpError("missing_filter", "give ?user_id=, ?session_id= or ?contact_id=");
      if (filter.userId && !(await userData.knowsUser(filter.userId, filter.endpointId))) {
        throw new HttpError("unknown_user", `no sessions or contact of user ${filter.userId}`);
      }
      return jsonResponse(200, { entries: await transcripts.conversation(filter, query.limit ?? 100) }, requestId);
    },
    {
      query: ConversationsQuery,
      // A query arrives as text: `limit` is made a number (as `Number()` reads it) before the schema checks it.
      transform({ query }) {
        const given = query as Record<string, unknown>;
        if (typeof given.limit === "string") given.limit = Number(given.limit);
      },
      detail: {
        summary: "Transcript entries, oldest first (the last `limit`)",
        responses: { "200": answer("entries"), "400": errorAnswer("no filter, or a bad limit") },
      },
    },
  );
}
