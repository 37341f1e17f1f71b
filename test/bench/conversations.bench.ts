/**
 * Conversations benchmark: many users × several messages through the compiled binary with
 * builtin:echo and message_delay_ms = 0, against a fake Graph API in this process.
 *
 *   npm run bench:conversations
 *   BENCH_USERS=1000 BENCH_MESSAGES=10 BENCH_RATE=200 BENCH_SECONDS=10 npm run bench:conversations
 *
 * 1. Throughput: every user sends BENCH_MESSAGES messages, one after the other (each POST waits
 *    for its 200), all users at once (at most 64 POSTs in flight). Turns/s = replies / time from
 *    the first POST to the last reply at the Send API. Each user's replies must come back in the
 *    order of their messages.
 * 2. Latency at a steady BENCH_RATE turns/s (open loop): from the start of each webhook POST to
 *    the Send API call carrying its reply.
 * Baseline, same run: the same POSTs to a bare Bun.serve that answers 200 (requests/s).
 * Run once with typing indicators off and once on (each reply is then two Send API calls).
 * 3. NLU and translation on vs off (language.ts), the same throughput phase with stand-ins of an
 *    NLU service and a translation provider; BENCH_LANGUAGE=0 leaves it out.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { binaryUnderTest, start, type Running } from "../smoke/binary-helpers.ts";
import { languagePhases } from "./language.ts";
import { benchSettings, fmt, limiter, messagesArrived, openLoop, peakRssMb, percentile, post, replies, signedMessage, throughput } from "./load.ts";

const USERS = Number(process.env.BENCH_USERS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const LANGUAGE = process.env.BENCH_LANGUAGE !== "0";
const IN_FLIGHT = 64;
const SECRET = "bench-app-secret-0123456789";
const PAGE = "104857600012345";
const request = (url: string, user: string, text: string) => signedMessage(url, PAGE, SECRET, user, text);
const TOKEN = "bench-page-token";

let run = 0;
const psid = (u: number) => String(6300000000000000 + run * 1_000_000 + u);

async function latencyAtRate(url: string, graph: FakeGraph): Promise<{ p50: number; p99: number; max: number; lost: number }> {
  run++;
  const total = Math.round(RATE * SECONDS);
  const user = (i: number) => psid(i % 1000);
  const before = replies(graph).length;
  const starts = await openLoop(RATE, total, (i) => post(request(url, user(i), `r${i}`)));
  await messagesArrived(graph, before + total, 120_000);
  const postStarts = new Map(starts.map((t0, i) => [`${user(i)} You said: r${i}`, t0]));
  const latencies: number[] = [];
  for (const s of replies(graph).slice(before)) {
    const t0 = postStarts.get(`${s.recipientId} ${s.message?.text}`);
    if (t0 !== undefined) latencies.push(s.at - t0);
  }
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies), lost: total - latencies.length };
}

async function startBinary(dir: string, graphUrl: string, typing: boolean): Promise<{ server: Running; url: string }> {
  writeFileSync(
    join(dir, "bench.toml"),
    benchSettings({
      db: `bench-${typing ? "typing" : "plain"}`,
      graphUrl,
      endpoint: `[endpoints.messenger]\ntyping_indicators = ${typing}\nmessage_delay_ms = 0`,
    }),
  );
  const server = start(await binaryUnderTest(), ["serve", "--config", "bench.toml"], { cwd: dir });
  const line = await server.waitFor((l) => l.msg === "listening");
  return { server, url: `${line.url}/webhooks/bench` };
}

const dir = mkdtempSync(join(tmpdir(), "me-bench-conv-"));
mkdirSync(join(dir, "data"));
try {
  console.error(`conversations benchmark: ${USERS} users × ${MESSAGES} messages; latency at ${RATE} turns/s for ${SECONDS} s`);
  const ceiling = start(process.execPath, [join(import.meta.dir, "ceiling-server.ts")], { cwd: import.meta.dir });
  const ceilingUrl = `${(await ceiling.waitFor((l) => l.msg === "listening")).url}/webhooks/bench`;
  const limit = limiter(IN_FLIGHT);
  const ceilingStarted = performance.now();
  await Promise.all(
    Array.from({ length: USERS }, async (_, u) => {
      for (let m = 1; m <= MESSAGES; m++) await limit(() => post(request(ceilingUrl, psid(u), `${m}`)));
    }),
  );
  const ceilingRps = (USERS * MESSAGES) / ((performance.now() - ceilingStarted) / 1000);
  ceiling.proc.kill("SIGTERM");
  await ceiling.exited;

  const lines: string[] = [];
  for (const typing of [false, true]) {
    const graph = await FakeGraph.start({ pages: [{ id: PAGE, token: TOKEN, appSecret: SECRET }] });
    const app = await startBinary(dir, graph.url, typing);
    run++;
    const t = await throughput({ url: app.url, graph, users: USERS, messages: MESSAGES, inFlight: IN_FLIGHT, psid, request });
    const l = await latencyAtRate(app.url, graph);
    const rss = peakRssMb(app.server.proc.pid);
    app.server.proc.kill("SIGTERM");
    await app.server.exited;
    await graph.stop();
    lines.push(
      `| ${typing ? "on" : "off"} | ${fmt(t.turnsPerSecond, 0)} | ${fmt((100 * t.turnsPerSecond) / ceilingRps, 1)} % | ${t.replies} | ${t.orderOk ? "yes" : "NO"} | ${fmt(l.p50, 1)} | ${fmt(l.p99, 1)} | ${fmt(l.max, 1)} | ${l.lost} | ${fmt(rss, 0)} |`,
    );
    if (!t.orderOk || l.lost > 0) process.exitCode = 1;
  }
  console.log(`baseline: bare Bun.serve answered the same POSTs at ${fmt(ceilingRps, 0)} requests/s\n`);
  console.log(`| typing indicators | turns/s | of baseline | replies | per-user order | p50 ms at ${RATE}/s | p99 ms | max ms | lost | peak RSS MB |`);
  console.log(`|---|---:|---:|---:|---|---:|---:|---:|---:|---:|`);
  console.log(lines.join("\n"));
  if (LANGUAGE) {
    const language = await languagePhases({
      bin: await binaryUnderTest(),
      dir,
      users: USERS,
      messages: MESSAGES,
      inFlight: IN_FLIGHT,
      psid: (r, u) => String(6300000000000000 + r * 1_000_000 + u),
      nextRun: () => ++run,
    });
    console.log(`\nNLU and translation, ${USERS} users × ${MESSAGES} messages, typing off (stand-ins on loopback, in this process):\n`);
    console.log(language.lines.join("\n"));
    if (!language.ok) process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
