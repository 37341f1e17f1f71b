/**
 * The CPU one turn costs in this process: the app built from the source (src/app.ts) on a SQLite
 * file in a temporary folder (WAL, fsync and checkpoints as in production), builtin:echo, metrics
 * on, and a Graph API that is a function answering at once (no network, no other process). USERS
 * users each post their next message after the previous one's 200, through the app's own request
 * handler, until ROUNDS × TURNS replies have been sent. The process's CPU time (all its threads:
 * user + system) per turn is read round by round, after a warm-up round that is not counted.
 *
 *   bun test/bench/hot-path.bench.ts
 *   BENCH_TURNS=20000 BENCH_ROUNDS=5 BENCH_USERS=64 bun test/bench/hot-path.bench.ts
 *
 * What it leaves out on purpose: the network on both sides and any other process, whose share of
 * the machine makes the side-by-side figures move by 10–30 % from one run to the next. The same
 * turns through the same code measured by CPU time move by a few percent: small changes of the
 * hot path can be compared here (run two checkouts alternately), and then confirmed side by side.
 * The requests are made (signed) before each round, outside the measured time.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/app.ts";
import { resolveSettings } from "../../src/config/load.ts";
import { openDatabase } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { GraphClient } from "../../src/messenger/graph.ts";
import { envelope, metaJson, textMessage, webhookHeaders } from "../../src/simulator/webhook-driver.ts";

const TURNS = Number(process.env.BENCH_TURNS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const USERS = Number(process.env.BENCH_USERS ?? 64);
const PAGE = "104857600012345";
const SECRET = "hot_path_bench_secret_0123456789";

let sent = 0;
let wanted = Number.POSITIVE_INFINITY;
let reached: () => void = () => {};
const graphFetch = (async (_url: string | URL | Request, init?: RequestInit) => {
  if (init?.method === "POST" && ++sent >= wanted) reached();
  return Response.json({ recipient_id: "1", message_id: `m_${sent}` });
}) as typeof fetch;

const dir = mkdtempSync(join(tmpdir(), "hot-path-"));
const config = resolveSettings(
  {
    storage: { url: `file:${join(dir, "bench.db")}` },
    flows: { echo: { kind: "script", module: "builtin:echo" } },
    endpoints: [
      {
        id: "bench",
        flow: "echo",
        verify_token: "bench",
        app_secret: SECRET,
        pages: [{ id: PAGE, access_token: "EAAbenchPageToken0123456789" }],
        profiles: { request_profile_data: false },
        messenger: { typing_indicators: false, message_delay_ms: 0, mark_seen: false },
      },
    ],
  },
  { env: {} },
);
const db = await openDatabase(config.storage.url);
await applyMigrations(db, { backupBefore: false });
const graph = new GraphClient({ url: "http://graph.invalid", version: config.graph.version, timeoutMs: config.graph.timeout_ms, fetch: graphFetch });
const app = await createApp({ config, db, graph, log: silentLogger });
await app.start();

let message = 0;
/** USERS × per-user lists of signed requests, made before the round. */
function requests(perUser: number): Request[][] {
  const out: Request[][] = [];
  for (let u = 0; u < USERS; u++) {
    const list: Request[] = [];
    for (let m = 0; m < perUser; m++) {
      const n = message++;
      const time = 1_700_000_000_000 + n;
      const item = textMessage(PAGE, String(7_000_000_000_000_000 + u), `Hello, this is message ${n}, of user ${u}`, { mid: `m_hot_${n}`, timestamp: time });
      const body = metaJson(envelope(PAGE, [item], { time }));
      list.push(new Request("http://bench.invalid/webhooks/bench", { method: "POST", headers: webhookHeaders(body, SECRET), body }));
    }
    out.push(list);
  }
  return out;
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

async function round(turns: number): Promise<{ cpuUsPerTurn: number; turnsPerS: number }> {
  const perUser = Math.ceil(turns / USERS);
  const lists = requests(perUser);
  const done = new Promise<void>((resolve) => (reached = resolve));
  wanted = sent + perUser * USERS;
  const [cpu0, t0] = [cpuMs(), performance.now()];
  await Promise.all(
    lists.map(async (list) => {
      for (const request of list) {
        const response = await app.http.handle(request);
        if (response.status !== 200) throw new Error(`webhook answered ${response.status}: ${await response.text()}`);
      }
    }),
  );
  await done;
  const [cpu, ms] = [cpuMs() - cpu0, performance.now() - t0];
  const n = perUser * USERS;
  return { cpuUsPerTurn: (cpu * 1000) / n, turnsPerS: (n / ms) * 1000 };
}

try {
  console.log(`hot path: ${USERS} users, builtin:echo, a SQLite file, ${ROUNDS} rounds of ${TURNS} turns after one not counted`);
  await round(TURNS);
  const results = [];
  for (let r = 0; r < ROUNDS; r++) {
    const result = await round(TURNS);
    results.push(result);
    console.log(`round ${r + 1}: ${result.cpuUsPerTurn.toFixed(1)} µs CPU per turn, ${Math.round(result.turnsPerS)} turns/s`);
  }
  const sorted = results.map((r) => r.cpuUsPerTurn).sort((a, b) => a - b);
  console.log(`median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} µs CPU per turn (min ${sorted[0]!.toFixed(1)}, max ${sorted.at(-1)!.toFixed(1)})`);
} finally {
  await app.shutdown();
  db.close();
  rmSync(dir, { recursive: true, force: true });
}
