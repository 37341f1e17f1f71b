/**
 * Warms the turn path up before the server listens (`server.warm_up_turns`).
 *
 * Right after a start, the code of a turn runs in the JavaScript engine's first tiers until it has
 * run often enough to be compiled: measured with `npm run bench:breakdown`, the first seconds of a
 * fresh process cost 1.9 ms of CPU per turn against 1.2 ms later, and their p99 is 16–25 ms
 * against 10 ms. That is when Facebook redelivers what queued up during a restart.
 *
 * So serve first runs a few hundred made-up turns through a second, private app: the same code
 * (signature check, inbox, engine, the built-in echo flow, reply lanes, Graph client) on a database
 * in memory, with a Graph API that is a function in this process. Nothing of it touches the
 * operator's database, the network or the logs; it cannot send anything to anyone. It gives up
 * after WARM_UP_LIMIT_MS, and a failure only means a colder start (serve logs it as a warning).
 *
 * Off by default: the compiled code and what the private app left behind keep about 35 MB more
 * resident from the start (measured: idle RSS 64 → 100 MB), which a process reaches anyway after
 * its first few hundred real turns, but which a small VM may want to keep.
 */
import { createApp } from "../app.ts";
import { openDatabase } from "../db/client.ts";
import { applyMigrations } from "../db/migrate.ts";
import { resolveSettings } from "../config/load.ts";
import { GraphClient } from "../messenger/graph.ts";
import { silentLogger } from "../log/logger.ts";
import { envelope, metaJson, textMessage, webhookHeaders } from "../simulator/webhook-driver.ts";

/** The warm-up's made-up endpoint: its Page and secret exist only in the private app. */
const PAGE = "100000000000001";
const SECRET = "warm-up-secret-not-used-anywhere-else";
/** Users that talk at once: the lanes, the group commit and the engine see concurrent turns. */
const USERS = 20;
/** The warm-up stops here, done or not: a start must never wait long for it. */
const WARM_UP_LIMIT_MS = 5_000;

export interface WarmUpResult {
  /** Replies the private app sent to its stand-in Graph API. */
  turns: number;
  ms: number;
  error?: unknown;
}

export async function warmUp(turns: number): Promise<WarmUpResult> {
  const started = performance.now();
  if (turns <= 0) return { turns: 0, ms: 0 };
  let sent = 0;
  let allSent: () => void = () => {};
  const done = new Promise<void>((resolve) => (allSent = resolve));
  // The stand-in Graph API: answers every call at once, and is the only way out of the private app.
  const graphFetch = (async (_url: string | URL | Request, init?: RequestInit) => {
    if (init?.method === "POST" && ++sent >= turns) allSent();
    return Response.json({ recipient_id: "1", message_id: `m_warm_${sent}` });
  }) as typeof fetch;
  const config = resolveSettings(
    {
      storage: { url: ":memory:" },
      flows: { echo: { kind: "script", module: "builtin:echo" } },
      endpoints: [
        {
          id: "warm-up",
          flow: "echo",
          verify_token: "warm-up",
          app_secret: SECRET,
          pages: [{ id: PAGE, access_token: "warm-up-token" }],
          profiles: { request_profile_data: false },
          messenger: { typing_indicators: false, message_delay_ms: 0, mark_seen: false },
        },
      ],
      simulator: { enabled: false },
      metrics: { enabled: false },
    },
    { env: {} },
  );
  const db = await openDatabase(":memory:");
  let stopTimer = () => {};
  try {
    await applyMigrations(db, { backupBefore: false });
    const graph = new GraphClient({ url: "http://warm-up.invalid", version: config.graph.version, timeoutMs: config.graph.timeout_ms, fetch: graphFetch });
    const app = await createApp({ config, db, graph, log: silentLogger });
    try {
      await app.start();
      const limit = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, WARM_UP_LIMIT_MS);
        stopTimer = () => clearTimeout(timer);
      });
      const posting = (async () => {
        for (let m = 0; sent < turns && m * USERS < turns; m++) {
          const batch = [];
          for (let u = 0; u < USERS && m * USERS + u < turns; u++) batch.push(app.http.handle(webhook(u, m)));
          await Promise.all(batch);
        }
      })();
      await Promise.race([Promise.all([posting, done]), limit]);
    } finally {
      stopTimer();
      await app.shutdown();
    }
    return { turns: Math.min(sent, turns), ms: performance.now() - started };
  } catch (error) {
    return { turns: Math.min(sent, turns), ms: performance.now() - started, error };
  } finally {
    db.close();
  }
}

/** A signed text message of made-up user `u`, its `m`-th, as Facebook would POST it (simulator/webhook-driver.ts). */
function webhook(u: number, m: number): Request {
  const time = Date.now();
  const item = textMessage(PAGE, String(2_000_000_000_000_000 + u), `Hello, this is message ${m} of a warm-up user`, {
    mid: `m_warm_up_${u}_${m}`,
    timestamp: time + m,
  });
  const body = metaJson(envelope(PAGE, [item], { time }));
  return new Request("http://warm-up.invalid/webhooks/warm-up", { method: "POST", headers: webhookHeaders(body, SECRET), body });
}
