/**
 * A whole conversation set-up in process: the app listening on a loopback port, a fake Graph API
 * that takes its sends (and, when asked, sends echoes back to the app's webhook like Facebook),
 * and helpers to post signed webhooks. Restartable on the same database.
 */
import { createApp, type App } from "../../src/app.ts";
import type { Config } from "../../src/config/load.ts";
import type { Clock, Timers } from "../../src/core/clock.ts";
import { openDatabase, type Database } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import type { FlowRegistry } from "../../src/flows/index.ts";
import { FakeGraph, type FakeGraphOptions, type RecordedSend } from "../../src/simulator/fake-graph.ts";
import { signBody } from "../../src/webhook/signature.ts";
import { parseSettings } from "../../src/config/load.ts";
import { APP_SECRET, PAGE_ID, PAGE_TOKEN, PSID, VERIFY_TOKEN, configFromToml } from "./config.ts";
import { collectingLogger, type CollectingLogger } from "./log.ts";
import { tempDir, type TempDir } from "./tmp.ts";

export const APP_ID = "987654321098765";

export interface ConversationOptions {
  /** `[flows.agent]` body (without the header); default: builtin:echo. */
  flow?: string;
  /** Lines for `[endpoints.messenger]`. */
  messenger?: { typing?: boolean; delayMs?: number; markSeen?: boolean };
  /** Lines for `[endpoints.session]`. */
  expirationMinutes?: number;
  /** Extra TOML appended to the settings (e.g. another flow). */
  extra?: string;
  /** Settings for `[graph]` beyond the URL. */
  graphSettings?: string;
  fakeGraph?: Partial<FakeGraphOptions>;
  /** The fake sends echoes of our messages to the webhook, as Facebook does. */
  echoes?: boolean;
  /** Files to write into the folder first (flow modules), by relative path. */
  files?: Record<string, string>;
  /** Reuse a folder (and its database) from an earlier set-up: a restart. */
  dir?: TempDir;
  graph?: FakeGraph;
  lanes?: { echoGraceMs?: number; minRetryDelayMs?: number };
  /** The Page token in the settings (default: the one the fake Graph API knows). */
  pageToken?: string;
  /** The app's clock (default: the system clock). */
  clock?: Clock;
  /** The app's timers (default: real ones); a ManualClock (manual-clock.ts) moves them by hand. */
  timers?: Timers;
  /** TOML appended after the endpoint's tables (e.g. `[endpoints.profiles]`). */
  endpointToml?: string;
  /** The transformers' time limit per run (default 5 s) and worker pool size. */
  transformers?: { timeoutMs?: number; poolSize?: number };
  /** The endpoint's Pages (default: the one Page the fake Graph API knows). */
  pages?: { id: string; token: string }[];
  /** Flows by name instead of those of the settings (an in-test flow that counts its calls, say). */
  flows?: FlowRegistry;
  /** Wraps the opened database before the app gets it (a client whose writes fail, say). */
  wrapDatabase?: (database: Database) => Database;
  /** The database probe's delays while writes fail (db/health.ts). */
  storageHealth?: { minDelayMs?: number; maxDelayMs?: number };
  /** Another database than the folder's file: a libSQL server (`storage.url`, its token, its request time limit). */
  storage?: { url: string; authToken?: string; requestTimeoutMs?: number };
  /** Write the settings to `settings.toml` in the folder and load them from there (a reload reads the file again). */
  settingsFile?: boolean;
}

export interface Conversation {
  app: App;
  graph: FakeGraph;
  config: Config;
  database: Database;
  logs: CollectingLogger;
  dir: TempDir;
  url: string;
  /** The settings' text; and with `settingsFile`, the file it is in (else null). */
  toml: string;
  settingsFile: string | null;
  /** POSTs a signed envelope with these messaging items for the Page; resolves with the status. */
  post(items: unknown[], options?: { pageId?: string; standby?: boolean }): Promise<number>;
  /** Successful Send API calls to a user, in arrival order. */
  sends(psid?: string): RecordedSend[];
  /** Stops the app (not the fake Graph API unless `all`) and closes the database. */
  close(options?: { keepDir?: boolean; keepGraph?: boolean }): Promise<void>;
}

let mids = 0;
export const nextMid = () => `m_test_${Date.now().toString(36)}_${++mids}`;

/** A user text message item with a fresh mid. */
export function userText(text: string, options: { psid?: string; timestamp?: number; mid?: string } = {}) {
  return {
    sender: { id: options.psid ?? PSID },
    recipient: { id: PAGE_ID },
    timestamp: options.timestamp ?? Date.now(),
    message: { mid: options.mid ?? nextMid(), text },
  };
}

export async function startConversation(options: ConversationOptions = {}): Promise<Conversation> {
  const dir = options.dir ?? tempDir("conversation");
  for (const [name, content] of Object.entries(options.files ?? {})) dir.write(name, content);
  const graph =
    options.graph ??
    (await FakeGraph.start({
      pages: [{ id: PAGE_ID, token: PAGE_TOKEN, appSecret: APP_SECRET, appId: APP_ID }],
      ...options.fakeGraph,
    }));
  const m = options.messenger ?? {};
  const toml = `
[storage]
url = "${options.storage?.url ?? "file:data/conversation.db"}"
${options.storage?.authToken ? `auth_token = "${options.storage.authToken}"` : ""}
[log]
level = "debug"
[graph]
url = "${graph.url}"
min_retry_delay_ms = 20
max_retry_delay_ms = 200
${options.graphSettings ?? ""}
[flows.agent]
${options.flow ?? 'kind = "script"\nmodule = "builtin:echo"'}
${options.extra ?? ""}
[[endpoints]]
id = "support"
flow = "agent"
verify_token = "${VERIFY_TOKEN}"
app_id = "${APP_ID}"
app_secret = "${APP_SECRET}"
pages = [ ${(options.pages ?? [{ id: PAGE_ID, token: options.pageToken ?? PAGE_TOKEN }]).map((p) => `{ id = "${p.id}", access_token = "${p.token}" }`).join(", ")} ]
[endpoints.messenger]
typing_indicators = ${m.typing ?? false}
message_delay_ms = ${m.delayMs ?? 0}
mark_seen = ${m.markSeen ?? false}
[endpoints.session]
expiration_minutes = ${options.expirationMinutes ?? 30}
${options.endpointToml ?? ""}
`;
  const settingsFile = options.settingsFile ? dir.write("settings.toml", toml) : null;
  const config = settingsFile ? parseSettings(toml, { file: settingsFile, env: {} }) : configFromToml(toml, { dir: dir.path });
  const opened = await openDatabase(config.storage.url, { authToken: config.storage.auth_token, requestTimeoutMs: options.storage?.requestTimeoutMs });
  await applyMigrations(opened);
  const database = options.wrapDatabase ? options.wrapDatabase(opened) : opened;
  const logs = collectingLogger();
  const app = await createApp({
    config,
    db: database,
    log: logs.log,
    replyLanes: options.lanes,
    clock: options.clock,
    timers: options.timers,
    shutdownGraceMs: 2_000,
    transformers: options.transformers,
    flows: options.flows,
    storageHealth: options.storageHealth,
  });
  app.server.listen({ hostname: "127.0.0.1", port: 0, reusePort: false });
  const url = `http://127.0.0.1:${app.server.server!.port}`;
  if (options.echoes) graph.configureWebhook({ url: `${url}/webhooks/support`, appSecret: APP_SECRET }, { echoes: true });
  app.simulator.listening(url);
  await app.start();

  let closed = false;
  return {
    app,
    graph,
    config,
    database,
    logs,
    dir,
    url,
    toml,
    settingsFile,
    async post(items, postOptions = {}) {
      const body = JSON.stringify({
        object: "page",
        entry: [{ id: postOptions.pageId ?? PAGE_ID, time: Date.now(), [postOptions.standby ? "standby" : "messaging"]: items }],
      });
      const response = await fetch(`${url}/webhooks/support`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-hub-signature-256": signBody(APP_SECRET, body) },
        body,
      });
      await response.arrayBuffer();
      return response.status;
    },
    sends: (psid) => graph.sends(psid ? { recipientId: psid } : undefined),
    async close(closeOptions = {}) {
      if (closed) return;
      closed = true;
      await app.server.stop(true);
      await app.shutdown();
      database.close();
      if (!closeOptions.keepGraph) await graph.stop();
      if (!closeOptions.keepDir) dir.remove();
    },
  };
}

/** The messages (not sender actions) in a list of sends, as their text or attachment type. */
export function messageTexts(sends: RecordedSend[]): string[] {
  return sends.filter((s) => s.type === "message").map((s) => s.message?.text ?? `[${s.message?.attachment?.type ?? "?"}]`);
}

/** Polls a condition that an awaited event cannot signal (a log line, a row in the database). */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
}

/** Rows of a query on the conversation's database, after everything queued is committed. */
export async function rows(c: Conversation, sql: string, args: (string | number)[] = []) {
  await c.app.writes.drain();
  return (await c.database.client.execute({ sql, args })).rows;
}
