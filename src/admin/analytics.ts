/**
 * `GET /api/analytics[?endpoint_id=&from=YYYY-MM-DD&to=YYYY-MM-DD]`: counts per endpoint and UTC day
 * (default: the last 30 days), each day with the tokens its flows reported, by flow.
 */
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

const count = (description: string) => ({ type: "integer", minimum: 0, description });

/** The answer's shape, for the OpenAPI document (people/analytics.ts `DayCounts`). */
const ANALYTICS_ANSWER = {
  type: "object",
  properties: {
    from: { type: "string", description: "YYYY-MM-DD (UTC)" },
    to: { type: "string", description: "YYYY-MM-DD (UTC)" },
    days: {
      type: "array",
      items: {
        type: "object",
        properties: {
          endpoint_id: { type: "string" },
          day: { type: "string", description: "YYYY-MM-DD (UTC)" },
          inputs: count("flow turns"),
          outputs: count("messages queued by flows and notify"),
          sessions: count("sessions started"),
          users: count("distinct users with an input that day"),
          failed_sends: count("messages given up or dropped"),
          tokens: {
            type: "object",
            description: "The tokens the endpoint's flows reported that day (FlowContext usage), by flow name; {} when none did",
            additionalProperties: {
              type: "object",
              properties: { prompt_tokens: count("prompt tokens"), completion_tokens: count("completion tokens") },
              required: ["prompt_tokens", "completion_tokens"],
            },
          },
        },
        required: ["endpoint_id", "day", "inputs", "outputs", "sessions", "users", "failed_sends", "tokens"],
      },
    },
  },
  required: ["from", "to", "days"],
};

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
        summary: "Counts per endpoint and UTC day: inputs, outputs, sessions, users, failed sends, and the tokens of each flow",
        responses: { "200": answer("the days from `from` to `to` that have counts, by day then endpoint", ANALYTICS_ANSWER), "400": errorAnswer("bad day") },
      },
    },
  );
}
