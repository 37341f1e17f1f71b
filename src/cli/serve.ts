/**
 * `serve`: open and migrate the database, take the instance lock, listen, print the banner, and
 * stop cleanly on SIGTERM/SIGINT (a second signal exits at once); reload the settings on SIGHUP.
 */
import type { Config } from "../config/load.ts";
import { formatProblem } from "../config/problems.ts";
import { BACKSTOP_FRAMES } from "../db/checkpointer.ts";
import { openDatabase, type Database, type OpenOptions } from "../db/client.ts";
import { applyMigrations } from "../db/migrate.ts";
import { acquireInstanceLock, type InstanceLock } from "../db/lock.ts";
import { createApp } from "../app.ts";
import { warmUp } from "./warm-up.ts";
import { createLogger } from "../log/logger.ts";
import { displayUrl } from "../log/scrub.ts";
import { VERSION } from "../version.ts";
import { securityWarnings } from "../config/validate.ts";
import type { CliIo } from "./main.ts";

export interface ServeOverrides {
  host?: string | undefined;
  port?: number | undefined;
  /** `--adopt`: accept another program's SQLite file as the database. */
  adopt?: boolean | undefined;
}

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/** The database of the settings' `[storage]`, opened the same way by serve and migrate. */
export function openStorage(config: Config, options: Pick<OpenOptions, "adopt" | "onCheckpointError">): Promise<Database> {
  return openDatabase(config.storage.url, { authToken: config.storage.auth_token, cacheMib: config.storage.cache_mib, ...options });
}

export async function serve(config: Config, overrides: ServeOverrides, io: CliIo): Promise<number> {
  const log = createLogger({ level: config.log.level, format: config.log.format, secrets: config.secrets });
  for (const warning of config.warnings) log.warn(`settings: ${formatProblem(warning)}`);
  if (!config.demo) for (const warning of securityWarnings(config)) log.warn(warning);

  const database = await openStorage(config, {
    adopt: overrides.adopt ?? false,
    onCheckpointError: (error) =>
      log.warn(
        `a WAL checkpoint off the event loop failed (${(error as Error)?.message ?? String(error)}): check the disk's free space and the database folder's permissions; until one succeeds, SQLite checkpoints on the main connection once the WAL holds ${BACKSTOP_FRAMES.toLocaleString("en")} pages`,
      ),
  });
  let lock: InstanceLock | null = null;
  try {
    // With [cluster] enabled several instances share the file, and the leases say who runs what
    // (docs/scale-out.md); otherwise one server per file.
    if (database.file && !config.cluster.enabled) lock = await acquireInstanceLock(database.file, `serve pid ${process.pid}`);
    // Two instances starting together may both find a migration to apply: the second to try
    // fails on what the first created, and finds nothing left to apply when it looks again.
    const options = { backupBefore: config.storage.backup_before_migrate };
    const migrations = await applyMigrations(database, options).catch((error) =>
      config.cluster.enabled ? applyMigrations(database, options) : Promise.reject(error),
    );
    if (database.litestream) log.info("Litestream replicates this database: checkpoints are left to it", { folder: database.litestream });
    if (migrations.applied > 0) log.info("database migrated", { applied: migrations.applied, total: migrations.total, backup: migrations.backup });
  } catch (error) {
    lock?.release();
    database.close();
    throw error;
  }

  // SIGHUP reloads the settings file (config/live.ts: what can change live changes, the rest is
  // reported as needing a restart) and the transformer modules and NLU scripts, which are also
  // watched (where file events do not arrive). Taken from the start, so that an early SIGHUP does not end the process.
  let reload: (() => Promise<void>) | null = null;
  process.on("SIGHUP", () => {
    if (!reload) return log.info("SIGHUP while starting: nothing to reload yet");
    log.info("SIGHUP: reloading the settings and the transformer modules");
    void reload().catch((error) => log.error("reloading failed", { error }));
  });

  // The turn path's code compiled before the first real turn (cli/warm-up.ts): private, in memory.
  const warm = await warmUp(config.server.warm_up_turns);
  if (warm.error) log.warn("the warm-up failed (server.warm_up_turns); the first turns run colder", { error: warm.error });
  else if (warm.turns > 0) log.info("warmed up", { turns: warm.turns, ms: Math.round(warm.ms) });

  const app = await createApp({
    config,
    db: database,
    log,
    instanceAbout: JSON.stringify({ version: VERSION, pid: process.pid, port: overrides.port ?? config.server.port }),
    // After a failed fsync the kernel may have dropped the unwritten pages: stop, and let the
    // restart recover from what is really on disk (nothing unsynced was acknowledged).
    onDurabilityFailure: () => process.exit(2),
  });
  reload = () => Promise.all([app.reload(), app.transformers.reload(), app.understanding.reload()]).then(() => {});

  // The signals are taken before the server listens: a SIGTERM that comes while it starts (a
  // supervisor's stop right after the port opened) stops it cleanly once the start is done,
  // instead of killing it with the default handler.
  let resolveExit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));
  let startup: Promise<unknown> = Promise.resolve();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      log.warn(`second ${signal}: exiting at once`);
      process.exit(2);
    }
    stopping = true;
    log.info("stopping: no new webhooks, finishing what was accepted", { signal });
    try {
      await startup.catch(() => {});
      app.simulator.closeStreams(); // an open simulator page must not hold the stop
      await app.server.stop();
      await app.shutdown();
      // Another instance may be using the file (docs/scale-out.md): then the WAL stays for it.
      if (!config.cluster.enabled) await database.checkpoint();
      database.close();
      lock?.release();
      log.info("stopped");
      resolveExit(0);
    } catch (error) {
      log.error("stopping failed", { error });
      resolveExit(2);
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  const host = overrides.host ?? config.server.host;
  const port = overrides.port ?? config.server.port;
  try {
    app.server.listen({
      hostname: host,
      port,
      // Elysia's default would let a second copy bind the same port silently and write the same database.
      reusePort: false,
      // Bun answers 413 itself beyond this; the webhook route checks the exact limit.
      maxRequestBodySize: config.server.max_body_bytes + 1,
    });
  } catch (error) {
    lock?.release();
    database.close();
    const code = (error as { code?: string }).code;
    if (code === "EADDRINUSE" || /in use/i.test(String((error as Error).message))) {
      throw new StartupError(`port ${port} on ${host} is already in use: stop the other process or change server.port`);
    }
    throw new StartupError(`cannot listen on ${host}:${port}: ${(error as Error).message}`);
  }
  const actualPort = app.server.server?.port ?? port;
  const base = `http://${host.includes(":") ? `[${host}]` : host}:${actualPort}`;
  const webhookBase = config.server.public_url?.replace(/\/+$/, "") ?? base;
  const endpoints = config.endpoints.map((e) => ({ id: e.id, url: `${webhookBase}/webhooks/${e.id}`, pages: e.pages.length, enabled: e.enabled }));
  // The simulator's stand-in posts to this very server, over loopback.
  const loopback = host === "0.0.0.0" || host === "::" ? `http://127.0.0.1:${actualPort}` : base;
  app.simulator.listening(loopback, host);
  if (app.simulator.enabled && !config.demo) {
    log.warn(
      `the simulator is on: whoever reaches ${base}/simulator can talk to your endpoints as made-up users (never as real ones, and nothing is sent to Facebook for them); turn [simulator] enabled off where that is not wanted`,
    );
  }
  startup = app.start();
  await startup;
  log.info("listening", { version: VERSION, url: base, port: actualPort, demo: config.demo, endpoints });
  io.err(banner(config, base, endpoints, database, loopback));

  return exited;
}

function banner(
  config: Config,
  base: string,
  endpoints: { id: string; url: string; pages: number; enabled: boolean }[],
  database: Database,
  simulatorBase: string,
): string {
  const lines = [
    "",
    `  messenger-endpoint ${VERSION}  listening on ${base}`,
    `  settings   ${config.file ?? "none: built-in demo"}`,
    // A libSQL URL may carry a token (`?authToken=…`) or a password: neither goes to the terminal.
    `  database   ${database.file ?? displayUrl(database.url)}`,
    "",
    "  webhook URLs (Facebook App > Messenger > Webhooks > Callback URL):",
    ...endpoints.map((e) => `    ${e.id.padEnd(16)} ${e.url}   ${e.pages} Page${e.pages === 1 ? "" : "s"}${e.enabled ? "" : "  (disabled)"}`),
    "",
    `  health     ${base}/healthz   ${base}/readyz${config.metrics.enabled ? `   ${base}/metrics` : ""}`,
    ...(config.simulator.enabled ? ["", `  simulator  ${simulatorBase}/simulator   chat with your endpoints as made-up users, in a browser`] : []),
  ];
  if (!config.server.public_url && !config.demo) {
    lines.push("", "  Facebook needs HTTPS: put a TLS reverse proxy in front and set server.public_url to print the public URLs.");
  }
  if (config.demo) {
    lines.push(
      "",
      "  DEMO MODE: no settings file was found (--config, $MESSENGER_ENDPOINT_CONFIG, ./messenger-endpoint.toml).",
      '  Endpoint "demo" runs the built-in echo flow; its data is in ./data/.',
      "  To connect a real Facebook Page: run `messenger-endpoint init` (it writes ./messenger-endpoint.toml, the",
      "  commented settings manual), fill in your Page id and token and App secret, run `messenger-endpoint check`,",
      "  and start again.",
    );
  }
  lines.push("");
  return lines.join("\n");
}
