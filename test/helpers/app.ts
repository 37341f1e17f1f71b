/**
 * An app in process with its own temp folder, database (migrated), collecting logger and fixed
 * clock. Requests go through `app.http.handle`, no network.
 */
import { asc } from "drizzle-orm";
import { createApp, type App } from "../../src/app.ts";
import type { Config } from "../../src/config/load.ts";
import type { Clock } from "../../src/core/clock.ts";
import { openDatabase, type Database } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { inbox } from "../../src/db/schema.ts";
import { collectingLogger, type CollectingLogger } from "./log.ts";
import { configFromToml, settingsToml, type SettingsSpec } from "./config.ts";
import { tempDir, type TempDir } from "./tmp.ts";
import { webhookPost, type PostOptions } from "./webhook.ts";

export const FIXED_NOW = 1767225700000;

export function fixedClock(now = FIXED_NOW): Clock & { set(ms: number): void } {
  let t = now;
  return { now: () => t, set: (ms) => void (t = ms) };
}

export interface TestApp {
  readonly app: App;
  readonly config: Config;
  readonly database: Database;
  readonly logs: CollectingLogger;
  readonly dir: TempDir;
  readonly clock: ReturnType<typeof fixedClock>;
  handle(request: Request): Promise<Response>;
  post(endpointId: string, body: string | Uint8Array, options?: PostOptions): Promise<Response>;
  inboxRows(): Promise<(typeof inbox.$inferSelect)[]>;
  close(): Promise<void>;
}

export interface TestAppOptions extends SettingsSpec {
  /** Full settings text instead of `settingsToml(spec)`. */
  toml?: string;
  /**
   * Register the config's secrets with the logger (as serve does). Off by default, so tests see
   * what the code itself writes, not what redaction hides.
   */
  redactSecrets?: boolean;
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const dir = tempDir("app");
  const config = configFromToml(options.toml ?? settingsToml({ ...options, storageUrl: "file:data/test.db" }), { dir: dir.path });
  const database = await openDatabase(config.storage.url);
  await applyMigrations(database);
  const logs = collectingLogger(options.redactSecrets ? { secrets: config.secrets } : {});
  const clock = fixedClock();
  const app = await createApp({ config, db: database, log: logs.log, clock });
  let closed = false;
  return {
    app,
    config,
    database,
    logs,
    dir,
    clock,
    handle: (request) => app.http.handle(request),
    post: (endpointId, body, postOptions) => app.http.handle(webhookPost(endpointId, body, postOptions)),
    inboxRows: () => database.db.select().from(inbox).orderBy(asc(inbox.id)),
    async close() {
      if (closed) return;
      closed = true;
      await app.shutdown();
      database.close();
      dir.remove();
    },
  };
}
