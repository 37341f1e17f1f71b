/** `GET /api/analytics[?endpoint_id=&from=YYYY-MM-DD&to=YYYY-MM-DD]`: counts per endpoint and UTC day (default: the last 30 days). */
import { Elysia } from "elysia";
import type { Clock } from "../core/clock.ts";
import { jsonResponse } from "../http/responses.ts";
import { dayOf, type Analytics } from "../people/analytics.ts";
import type { AdminGuard } from "./guard.ts";
import { endpointNamed, type Endpoints } from "./lookup.ts";
import { answer, errorAnswer } from "./openapi.ts";
import { AnalyticsQuery } from "./schemas.ts";

export interface AnalyticsRouteDeps {
  guard: AdminGuard;
  endpoints: Endpoints;
  analytics: Analytics;
  clock: Clock;
}

export function analyticsRoutes({ guard, endpoints, analytics, clock }: AnalyticsRouteDeps) {
  return new Elysia({ name: "admin-analytics" }).use(guard.plugin).get(
    "/api/analytics",
    async ({ query, requestId }) => {
      const from = query.from ?? dayOf(clock.now() - 29 * 86_400_000);
      const to = query.to ?? dayOf(clock.now());
      if (query.endpoint_id) endpointNamed(endpoints, query.endpoint_id); // 404 for one not in the settings
      return jsonResponse(200, { from, to, days: await analytics.days(query.endpoint_id, from, to) }, requestId);
    },
    {
      query: AnalyticsQuery,
      detail: {
        summary: "Counts per endpoint and UTC day: inputs, outputs, sessions, users, failed sends",
        responses: { "200": answer("days"), "400": errorAnswer("bad day") },
      },
    },
  );
}
