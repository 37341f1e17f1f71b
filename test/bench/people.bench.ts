/**
 * People benchmark: the conversations throughput phase (conversations.bench.ts) with profiles,
 * contacts, sessions and transcripts on, and with 1,000,000 contacts already stored; then admin
 * API lookup latency against that database.
 *
 *   npm run bench:people
 *   BENCH_USERS=1000 BENCH_MESSAGES=10 BENCH_CONTACTS=1000000 BENCH_LOOKUPS=2000 BENCH_LOOKUP_SECONDS=30 npm run bench:people
 *
 * Throughput (three runs, each on a fresh database, compiled binary, builtin:echo,
 * message_delay_ms = 0, typing indicators off): every user sends BENCH_MESSAGES messages, one
 * after the other, all users at once (at most 64 POSTs in flight). Turns/s = replies / time from
 * the first POST to the last reply at the fake Send API; each user's replies must come back in
 * order, none lost. Before it, BENCH_WARMUP_USERS (default 100) other users × 3 messages warm the
 * server up; they are not counted.
 *   off: request_profile_data, update/merge_contact_profiles, contact_profiles,
 *        collect_conversations, collect_analytics all false (sessions cannot be turned off).
 *   on:  profiles fetched from the fake Graph API (every user has one), contact profiles updated
 *        and stored, transcripts and analytics written, sessions (expiration 30 min).
 *   on + N contacts: as "on", after `migrate` and BENCH_CONTACTS contacts, PSIDs and sessions
 *        inserted into the database (other PSIDs than the benchmark users').
 * Admin API (the "on + N contacts" server, idle after its run): BENCH_LOOKUPS sequential requests
 * each (stopping early after BENCH_LOOKUP_SECONDS per kind, so that an unindexed lookup cannot
 * stretch the run; n in the table says how many were made), for GET /api/contacts?user_id=<seeded PSID>,
 * GET /api/contacts/<seeded contact id>, GET /api/conversations?user_id=<benchmark user>&limit=20,
 * and GET /healthz as the baseline.
 */
import { createClient } from "@libsql/client";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { binaryUnderTest, run as runToEnd, start, type Running } from "../smoke/binary-helpers.ts";
import { benchSettings, fmt, peakRssMb, percentile, signedMessage, throughput as measureThroughput, type Throughput } from "./load.ts";

const USERS = Number(process.env.BENCH_USERS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10);
const CONTACTS = Number(process.env.BENCH_CONTACTS ?? 1_000_000);
const LOOKUPS = Number(process.env.BENCH_LOOKUPS ?? 2000);
const LOOKUP_SECONDS = Number(process.env.BENCH_LOOKUP_SECONDS ?? 30);
const IN_FLIGHT = 64;
const SECRET = "bench-app-secret-0123456789";
const PAGE = "104857600012345";
const request = (url: string, user: string, text: string) => signedMessage(url, PAGE, SECRET, user, text);
const TOKEN = "bench-page-token";
const ADMIN_KEY = "bench-admin-key-0123456789";
const ENDPOINT = "bench";
/** Seeded PSIDs: SEED_PSID_BASE + i, i = 1…CONTACTS; benchmark users are 63… (see psid). */
const SEED_PSID_BASE = 7100000000000000;
const seedPsid = (i: number) => String(SEED_PSID_BASE + i);
const seedContactId = (i: number) => `c_seed${String(i).padStart(9, "0")}`;
const psid = (run: number, u: number) => String(6300000000000000 + run * 1_000_000 + u);
/** Warm-up users per server (not measured): the first turns after a start are slower (JIT, caches). */
const WARMUP_USERS = Number(process.env.BENCH_WARMUP_USERS ?? 100);
const WARMUP_RUN = (run: number) => 10 + run;

// ---- load generation: as in conversations.bench.ts (which exports nothing) ----

const thousands = (n: number) => n.toLocaleString("en-US");
const signed = (n: number, digits = 0) => (n >= 0 ? "+" : "") + fmt(n, digits);

/** `users` users (`psid(run, u)`) × `messages` messages; counts only the replies to them. */
const throughput = (url: string, graph: FakeGraph, run: number, users = USERS, messages = MESSAGES): Promise<Throughput> =>
  measureThroughput({ url, graph, users, messages, inFlight: IN_FLIGHT, psid: (u) => psid(run, u), request });

// ---- the binary ----

function writeSettings(dir: string, name: string, on: boolean, graphUrl: string): string {
  const file = `${name}.toml`;
  writeFileSync(
    join(dir, file),
    benchSettings({
      db: name,
      graphUrl,
      top: `[admin]\napi_keys = ["${ADMIN_KEY}"]`,
      endpoint: `[endpoints.messenger]
typing_indicators = false
message_delay_ms = 0
[endpoints.profiles]
request_profile_data = ${on}
update_contact_profiles = ${on}
merge_contact_profiles = false
[endpoints.session]
expiration_minutes = 30
[endpoints.data_protection]
contact_profiles = ${on}
collect_conversations = ${on}
collect_analytics = ${on}`,
    }),
  );
  return file;
}

async function startBinary(bin: string, dir: string, settings: string): Promise<{ server: Running; base: string }> {
  const server = start(bin, ["serve", "--config", settings], { cwd: dir });
  const line = await server.waitFor((l) => l.msg === "listening", 60_000);
  return { server, base: String(line.url) };
}

/** `count` contacts, one PSID each on the benchmark Page, and a current session each, in three INSERT … SELECTs. */
async function seed(dbFile: string, count: number): Promise<number> {
  const started = performance.now();
  const now = Date.now();
  const client = createClient({ url: `file:${dbFile}` });
  try {
    await client.execute("PRAGMA synchronous = OFF");
    await client.execute("PRAGMA cache_size = -262144");
    const n = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) ";
    // Active within the last 20 days, so the retention purge (30 days) at start deletes none of them.
    const age = "(i % 20) * 86400000 + (i % 86400) * 1000";
    const profile = "json_object('first_name', 'Seed', 'last_name', 'User ' || i, 'locale', 'en_US', 'timezone', 1, 'gender', 'female')";
    await client.execute({
      sql: `${n}INSERT INTO contacts (id, endpoint_id, profile, created_at, updated_at, last_active_at)
            SELECT printf('c_seed%09d', i), ?, ${profile}, ? - 40 * 86400000 + i, ? - ${age}, ? - ${age} FROM n`,
      args: [count, ENDPOINT, now, now, now],
    });
    await client.execute({
      sql: `${n}INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, profile, profile_status, profile_expires_at, linked_at, first_seen_at, last_seen_at)
            SELECT ?, ?, CAST(${SEED_PSID_BASE} + i AS TEXT), printf('c_seed%09d', i),
                   json_object('id', CAST(${SEED_PSID_BASE} + i AS TEXT), 'first_name', 'Seed', 'last_name', 'User ' || i, 'profile_pic', 'https://platform-lookaside.fbsbx.test/platform/profilepic/?psid=' || (${SEED_PSID_BASE} + i)),
                   'ok', ? + 86400000, NULL, ? - 40 * 86400000 + i, ? - ${age} FROM n`,
      args: [count, ENDPOINT, PAGE, now, now, now],
    });
    await client.execute({
      sql: `${n}INSERT INTO sessions (id, endpoint_id, page_id, user_id, context, created_at, last_active_at, ended_at)
            SELECT printf('s_seed%09d', i), ?, ?, CAST(${SEED_PSID_BASE} + i AS TEXT), '{}', ? - ${age} - 60000, ? - ${age}, NULL FROM n`,
      args: [count, ENDPOINT, PAGE, now, now],
    });
    const types = await client.execute("SELECT typeof(created_at), typeof(last_active_at) FROM contacts LIMIT 1");
    if (String(types.rows[0]?.[0]) !== "integer" || String(types.rows[0]?.[1]) !== "integer") throw new Error("seeded times are not integers");
    const counted = await client.execute("SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM contact_users), (SELECT count(*) FROM sessions)");
    const row = counted.rows[0]!;
    const [c, u, s] = [Number(row[0]), Number(row[1]), Number(row[2])];
    if (c !== count || u !== count || s !== count) throw new Error(`seeding stored ${c} contacts, ${u} PSIDs, ${s} sessions; expected ${count} each`);
    await client.execute("PRAGMA wal_checkpoint(TRUNCATE)");
  } finally {
    client.close();
  }
  return (performance.now() - started) / 1000;
}

// ---- admin API lookups ----

/** mulberry32: the same "random" PSIDs and contact ids every run. */
function seeded(seedValue: number): () => number {
  let a = seedValue >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Lookup {
  name: string;
  count: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  firstError?: string;
}

/** Sequential GETs (one at a time), at most LOOKUPS of them or LOOKUP_SECONDS, whichever comes first. */
async function lookups(name: string, path: (i: number) => string, base: string, check: (status: number, body: any) => boolean): Promise<Lookup> {
  const times: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const deadline = performance.now() + LOOKUP_SECONDS * 1000;
  for (let i = 0; i < LOOKUPS && performance.now() < deadline; i++) {
    const t0 = performance.now();
    const response = await fetch(`${base}${path(i)}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const text = await response.text();
    times.push(performance.now() - t0);
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      // checked below
    }
    if (!check(response.status, body)) {
      errors++;
      firstError ??= `${path(i)} → ${response.status} ${text.slice(0, 200)}`;
    }
  }
  return { name, count: times.length, p50: percentile(times, 50), p99: percentile(times, 99), max: Math.max(...times), errors, firstError };
}

// ---- main ----

interface RunResult extends Throughput {
  label: string;
  contacts: number;
  rss: number;
}

const dir = mkdtempSync(join(tmpdir(), "me-bench-people-"));
mkdirSync(join(dir, "data"));
try {
  console.error(
    `people benchmark: ${USERS} users × ${MESSAGES} messages per run; ${thousands(CONTACTS)} contacts seeded for the third run; ` +
      `${LOOKUPS} admin lookups per kind (at most ${LOOKUP_SECONDS} s each)`,
  );
  const bin = await binaryUnderTest();
  const results: RunResult[] = [];
  let lookupResults: Lookup[] = [];
  let seedSeconds = NaN;
  let dbMb = NaN;

  const runs = [
    { label: "everything off", on: false, contacts: 0 },
    { label: "everything on", on: true, contacts: 0 },
    { label: `everything on, ${thousands(CONTACTS)} contacts stored`, on: true, contacts: CONTACTS },
  ];
  for (const [index, r] of runs.entries()) {
    const graph = await FakeGraph.start({ pages: [{ id: PAGE, token: TOKEN, appSecret: SECRET }] });
    if (r.on) {
      for (const [run, users] of [
        [index, USERS],
        [WARMUP_RUN(index), WARMUP_USERS],
      ] as const) {
        for (let u = 0; u < users; u++) {
          graph.setUser(PAGE, psid(run, u), {
            profile: { first_name: "Bench", last_name: `User ${u}`, locale: "en_US", timezone: 1, gender: "male" },
            permissions: ["pages_user_locale", "pages_user_timezone", "pages_user_gender"],
          });
        }
      }
    }
    const name = `run${index}`;
    const settings = writeSettings(dir, name, r.on, graph.url);
    if (r.contacts > 0) {
      const migrated = await runToEnd(bin, ["migrate", "--config", settings], dir);
      if (migrated.code !== 0) throw new Error(`migrate failed (${migrated.code}):\n${migrated.stdout}\n${migrated.stderr}`);
      console.error(`seeding ${thousands(r.contacts)} contacts…`);
      seedSeconds = await seed(join(dir, "data", `${name}.db`), r.contacts);
      dbMb = statSync(join(dir, "data", `${name}.db`)).size / 1024 / 1024;
      console.error(`seeded in ${fmt(seedSeconds, 1)} s (${fmt(dbMb, 0)} MB)`);
    }
    const app = await startBinary(bin, dir, settings);
    try {
      if (WARMUP_USERS > 0) {
        const w = await throughput(`${app.base}/webhooks/${ENDPOINT}`, graph, WARMUP_RUN(index), WARMUP_USERS, 3);
        if (!w.orderOk || w.lost > 0) throw new Error(`${r.label}: the warm-up lost replies or broke their order`);
      }
      console.error(`${r.label}: throughput…`);
      const t = await throughput(`${app.base}/webhooks/${ENDPOINT}`, graph, index);
      if (r.on) {
        const profileCalls = graph.calls.filter((c) => c.method === "GET" && c.path.includes(psid(index, 0))).length;
        if (profileCalls === 0) console.error(`warning: ${r.label}: no profile fetch seen for the first user`);
      }
      if (r.contacts > 0) {
        await Bun.sleep(500); // let the last sent-marks commit: the server is idle from here
        console.error(`${r.label}: admin API lookups…`);
        const random = seeded(42);
        const pick = () => 1 + Math.floor(random() * r.contacts);
        lookupResults = [
          await lookups(
            "GET /healthz (baseline)",
            () => "/healthz",
            app.base,
            (s) => s === 200,
          ),
          await lookups(
            "GET /api/contacts?user_id=<seeded PSID>",
            () => `/api/contacts?user_id=${seedPsid(pick())}`,
            app.base,
            (s, b) => s === 200 && typeof b?.id === "string",
          ),
          await lookups(
            "GET /api/contacts/<seeded contact id>",
            () => `/api/contacts/${seedContactId(pick())}`,
            app.base,
            (s, b) => s === 200 && b?.users?.length === 1,
          ),
          await lookups(
            "GET /api/conversations?user_id=<benchmark user>&limit=20",
            () => `/api/conversations?user_id=${psid(index, Math.floor(random() * USERS))}&limit=20`,
            app.base,
            (s, b) => s === 200 && b?.entries?.length === Math.min(20, 2 * MESSAGES),
          ),
        ];
      }
      results.push({ ...t, label: r.label, contacts: r.contacts, rss: peakRssMb(app.server.proc.pid) });
      if (!t.orderOk || t.lost > 0) process.exitCode = 1;
    } finally {
      app.server.proc.kill("SIGTERM");
      await app.server.exited;
      await graph.stop();
    }
  }

  const off = results[0]!;
  const overheadUs = (r: RunResult) => 1e6 / r.turnsPerSecond - 1e6 / off.turnsPerSecond;
  console.log(`\n${USERS} users × ${MESSAGES} messages per run, builtin:echo, message_delay_ms = 0, typing indicators off\n`);
  console.log(`| run | turns/s | on / off | per-turn overhead µs | replies | lost | per-user order | peak RSS MB |`);
  console.log(`|---|---:|---:|---:|---:|---:|---|---:|`);
  for (const r of results) {
    console.log(
      `| ${r.label} | ${fmt(r.turnsPerSecond, 0)} | ${r === off ? "1.00" : fmt(r.turnsPerSecond / off.turnsPerSecond, 2)} | ${r === off ? "0" : signed(overheadUs(r))} | ${r.replies} | ${r.lost} | ${r.orderOk ? "yes" : "NO"} | ${fmt(r.rss, 0)} |`,
    );
  }
  if (lookupResults.length > 0) {
    const health = lookupResults[0]!;
    console.log(
      `\nadmin API, sequential, server idle, ${thousands(CONTACTS)} contacts + ${thousands(CONTACTS)} PSIDs + ${thousands(CONTACTS)} sessions stored (seeded in ${fmt(seedSeconds, 1)} s, ${fmt(dbMb, 0)} MB)\n`,
    );
    console.log(`| request | n | p50 ms | p99 ms | max ms | p50 / healthz p50 | errors |`);
    console.log(`|---|---:|---:|---:|---:|---:|---:|`);
    for (const l of lookupResults) {
      console.log(
        `| ${l.name} | ${l.count} | ${fmt(l.p50, 2)} | ${fmt(l.p99, 2)} | ${fmt(l.max, 2)} | ${l === health ? "1.0" : fmt(l.p50 / health.p50, 1)} | ${l.errors} |`,
      );
    }
    for (const l of lookupResults) if (l.firstError) console.error(`${l.name}: first error: ${l.firstError}`);
    if (lookupResults.some((l) => l.errors > 0)) process.exitCode = 1;
  }
  const on = results[1];
  const big = results[2];
  const byUser = lookupResults[1];
  console.log(
    `\nsummary: off ${fmt(off.turnsPerSecond, 0)} turns/s` +
      (on ? `; on ${fmt(on.turnsPerSecond, 0)} turns/s (×${fmt(on.turnsPerSecond / off.turnsPerSecond, 2)}, ${signed(overheadUs(on))} µs per turn)` : "") +
      (big
        ? `; on with ${thousands(big.contacts)} contacts ${fmt(big.turnsPerSecond, 0)} turns/s (×${fmt(big.turnsPerSecond / off.turnsPerSecond, 2)}, ${signed(overheadUs(big))} µs per turn)`
        : "") +
      (byUser ? `; contact by PSID p50 ${fmt(byUser.p50, 2)} ms, p99 ${fmt(byUser.p99, 2)} ms` : "") +
      `; order ${results.every((r) => r.orderOk) ? "intact" : "BROKEN"}, ${results.reduce((n, r) => n + r.lost, 0)} replies lost`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
