/**
 * The endpoints:
 *
 *   GET  /api/endpoints                              each endpoint with its Pages' status (active, or
 *                                                    paused and why; the last Messenger profile result),
 *                                                    queue depths and threads not held by the bot
 *   POST /api/endpoints/{id}/messenger-profile       apply the declared Messenger profile to each Page now
 */
import { Elysia } from "elysia";
import type { ConversationEngine } from "../conversations/engine.ts";
import type { Threads } from "../handover/threads.ts";
import { HttpError } from "../http/errors.ts";
import { jsonResponse } from "../http/responses.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import { RATE_LIMIT, type MessengerProfiles } from "../messenger/profile.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import type { AdminGuard } from "./guard.ts";
import { endpointNamed, type Endpoints } from "./lookup.ts";
import { answer, errorAnswer } from "./openapi.ts";
import { EndpointParams } from "./schemas.ts";

export interface EndpointRouteDeps {
  guard: AdminGuard;
  endpoints: Endpoints;
  engine: ConversationEngine;
  replies: ReplyLanes;
  threads: Threads;
  pages: PageDirectory;
  profiles: MessengerProfiles;
}

export function endpointRoutes({ guard, endpoints, engine, replies, threads, pages, profiles }: EndpointRouteDeps) {
  return new Elysia({ name: "admin-endpoints" })
    .use(guard.plugin)
    .get(
      "/api/endpoints",
      async ({ requestId }) => {
        const depth = await replies.queueDepth();
        const pending = await engine.pendingByEndpoint();
        const list = [...endpoints.values()].map((e) => ({
          id: e.id,
          enabled: e.enabled,
          flow: e.flow,
          webhook_path: `/webhooks/${e.id}`,
          pages: e.pages.map((p) => {
            const paused = pages.paused().find((x) => x.endpointId === e.id && x.pageId === p.id);
            const profile = profiles.status(e.id, p.id);
            return {
              id: p.id,
              name: p.name ?? null,
              status: paused ? "paused" : "active",
              ...(paused ? { paused_reason: paused.reason } : {}),
              ...(profile ? { messenger_profile: profile } : {}),
            };
          }),
          reply_queue_depth: depth.get(e.id) ?? 0,
          threads: threads.counts().get(e.id) ?? { handover: 0, paused: 0 },
          inbound_pending: pending.get(e.id) ?? 0,
        }));
        return jsonResponse(200, { endpoints: list }, requestId);
      },
      { detail: { summary: "Endpoints with Page status and queue depths", responses: { "200": answer("endpoints") } } },
    )
    .post(
      "/api/endpoints/:id/messenger-profile",
      async ({ params, requestId, log }) => {
        const endpoint = endpointNamed(endpoints, params.id);
        if (!endpoint.messenger_profile) {
          throw new HttpError(
            "no_messenger_profile",
            `endpoint ${endpoint.id} declares no Messenger profile: add [endpoints.messenger_profile] to the settings`,
          );
        }
        const results = await profiles.apply(endpoint, { force: true });
        log.info("Messenger profile applied on request", { endpoint: endpoint.id, results: results.map((p) => p.status) });
        const limited = results.find((p) => p.status === "rate_limited");
        if (limited && results.every((p) => p.status === "rate_limited")) {
          throw new HttpError(
            "rate_limited",
            `Meta allows ${RATE_LIMIT.calls} Messenger profile calls per 10 minutes per Page; try again in ${limited.retry_after_seconds} s`,
            { "retry-after": String(limited.retry_after_seconds ?? 60) },
            { pages: results },
          );
        }
        // Per-Page results, also when one failed (502): the others may have been applied.
        return jsonResponse(results.some((p) => p.status === "failed") ? 502 : 200, { endpoint_id: endpoint.id, pages: results }, requestId);
      },
      {
        params: EndpointParams,
        ...guard.noBody,
        detail: {
          summary: "Apply the declared Messenger profile to each Page now",
          responses: {
            "200": answer("per-Page results"),
            "400": errorAnswer("no [endpoints.messenger_profile]"),
            "429": errorAnswer("Meta's rate limit leaves no room"),
            "502": answer("Meta refused it for a Page: the per-Page results"),
          },
        },
      },
    );
}
