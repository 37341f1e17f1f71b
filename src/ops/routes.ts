/** Operations endpoints, no auth: liveness, readiness, Prometheus metrics. */
import { Elysia } from "elysia";
import type { Registry } from "../metrics/registry.ts";
import { jsonResponse } from "../http/responses.ts";
import type { Readiness } from "./readiness.ts";

export interface OpsDeps {
  readiness: Readiness;
  metrics: Registry;
  metricsEnabled: boolean;
}

export function opsRoutes({ readiness, metrics, metricsEnabled }: OpsDeps) {
  const app = new Elysia({ name: "ops" })
    .get("/healthz", () => jsonResponse(200, { status: "ok" }))
    .get("/readyz", async () => {
      const { ready, checks } = await readiness.evaluate();
      return jsonResponse(ready ? 200 : 503, { status: ready ? "ready" : "not_ready", checks });
    });
  if (!metricsEnabled) return app;
  return app.get("/metrics", async () => {
    await metrics.collect();
    return new Response(metrics.render(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
  });
}
