/**
 * The application, built from its dependencies so that every test can have its own database,
 * clock and log, and run in parallel with the others.
 */
import { Elysia, type AnyElysia } from "elysia";
import { sql } from "drizzle-orm";
import type { Config } from "./config/load.ts";
import type { Database } from "./db/client.ts";
import { meta } from "./db/schema.ts";
import { systemClock, type Clock } from "./clock.ts";
import { createLogger, type Logger } from "./log/logger.ts";
import { Registry } from "./metrics/registry.ts";
import { errorResponse } from "./http/responses.ts";
import { Readiness } from "./ops/readiness.ts";
import { opsRoutes } from "./ops/routes.ts";
import { Inbox } from "./webhook/inbox.ts";
import { webhookRoutes } from "./webhook/routes.ts";

export interface AppDeps {
  config: Config;
  db: Database;
  clock?: Clock;
  log?: Logger;
}

export interface App {
  readonly http: { handle(request: Request): Promise<Response> };
  readonly server: AnyElysia;
  readonly inbox: Inbox;
  readonly metrics: Registry;
  readonly readiness: Readiness;
  readonly log: Logger;
  /** Stop taking work and wait for what was accepted to be stored. Does not close the database. */
  shutdown(): Promise<void>;
}

export function createApp(deps: AppDeps): App {
  const { config, db } = deps;
  const clock = deps.clock ?? systemClock;
  const log = deps.log ?? createLogger({ level: config.log.level, format: config.log.format, secrets: config.secrets });
  const metrics = new Registry();
  const readiness = new Readiness();
  const inbox = new Inbox(db, clock, (error) => log.error("inbox listener failed", { error }));

  readiness.add("settings", () => (config.endpoints.length > 0 ? null : "no endpoints are configured: add an [[endpoints]] table"));
  readiness.add("database", async () => {
    try {
      await db.db
        .insert(meta)
        .values({ key: "readyz_probe", value: String(clock.now()), updatedAt: clock.now() })
        .onConflictDoUpdate({ target: meta.key, set: { value: sql`excluded.value`, updatedAt: sql`excluded.updated_at` } });
      return null;
    } catch (error) {
      return `the database is not writable: ${(error as Error).message}`;
    }
  });

  const server = new Elysia()
    .onError(({ code, error, request }) => {
      if (code === "NOT_FOUND") return errorResponse(404, "not_found", `no route for ${request.method} ${new URL(request.url).pathname}`);
      log.error("unhandled error while answering a request", { error, path: new URL(request.url).pathname });
      return errorResponse(500, "internal_error", "internal error; see the server log");
    })
    .use(opsRoutes({ readiness, metrics, metricsEnabled: config.metrics.enabled }))
    .use(webhookRoutes({ config, inbox, log, metrics, clock }));

  return {
    http: { handle: (request) => server.handle(request) },
    server,
    inbox,
    metrics,
    readiness,
    log,
    async shutdown() {
      readiness.markStopping();
      await inbox.drain();
    },
  };
}
