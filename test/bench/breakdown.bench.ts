/**
 * Where one turn's time goes at a steady rate: the compiled binary with builtin:echo (typing off,
 * no delay, no profile requests), a fake Graph API in this process, RATE turns/s over USERS users
 * for SECONDS, twice: right after the start (cold) and again (warm). For each phase it prints the
 * client's end-to-end latency (POST start → the Send API call) and, from the server's own
 * /metrics, each step of the turn (`messenger_turn_stage_seconds`, metrics/turn-timings.ts) and
 * the event loop's delay (`messenger_event_loop_delay_seconds`).
 *
 *   npm run bench:breakdown
 *   BENCH_RATE=200 BENCH_SECONDS=5 BENCH_USERS=100 npm run bench:breakdown
 *
 * A step's quantiles come from histogram buckets: "≤ 2" means the bucket up to 2 ms.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { binaryUnderTest, start } from "../smoke/binary-helpers.ts";
import { BENCH, benchSettings, fmt, messagesArrived, openLoop, peakRssMb, percentile, post, replies, signedMessage } from "./load.ts";

const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const USERS = Number(process.env.BENCH_USERS ?? 100);
const STAGES = ["verified", "stored", "fsynced", "turn_started", "flow_answered", "outputs_stored", "send_started", "graph_answered"];

type Buckets = Map<string, { le: number; count: number }[]>;

/** `name{stage="x",le="y"} n` lines of one histogram, by its label (stage or ""). */
function histogram(text: string, name: string, label: string): Buckets {
  const out: Buckets = new Map();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    const key = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1] ?? "";
    const le = /le="([^"]+)"/.exec(line)![1]!;
    const count = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (!out.has(key)) out.set(key, []);
    out.get(key)!.push({ le: le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), count });
  }
  return out;
}

/** The bucket bound (ms) under which `q` of the observations between two scrapes fall. */
function quantile(before: { le: number; count: number }[] | undefined, after: { le: number; count: number }[], q: number): number {
  const delta = after.map((b, i) => ({ le: b.le, count: b.count - (before?.[i]?.count ?? 0) }));
  const total = delta.at(-1)!.count;
  if (total === 0) return Number.NaN;
  return delta.find((b) => b.count >= q * total)!.le * 1000;
}

/** The process's CPU time so far in ms: user and system. */
function cpuMs(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 }; // utime, stime in clock ticks (100/s)
}

const gauge = (text: string, name: string, quantileLabel: string) =>
  Number(new RegExp(`^${name}\\{quantile="${quantileLabel.replace(".", "\\.")}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN) * 1000;

const dir = mkdtempSync(join(tmpdir(), "me-bench-breakdown-"));
mkdirSync(join(dir, "data"));
const graph = await FakeGraph.start({ pages: [{ id: BENCH.page, token: BENCH.token, appSecret: BENCH.secret }] });
try {
  writeFileSync(
    join(dir, "bench.toml"),
    benchSettings({
      db: "breakdown",
      graphUrl: graph.url,
      endpoint: "[endpoints.messenger]\ntyping_indicators = false\nmessage_delay_ms = 0\n[endpoints.profiles]\nrequest_profile_data = false",
    }),
  );
  const server = start(await binaryUnderTest(), ["serve", "--config", "bench.toml"], { cwd: dir });
  const base = (await server.waitFor((l) => l.msg === "listening")).url as string;
  const url = `${base}/webhooks/${BENCH.endpoint}`;
  const scrape = async () => (await fetch(`${base}/metrics`)).text();
  console.error(`turn breakdown: ${RATE} turns/s for ${SECONDS} s over ${USERS} users, twice (cold, then warm)`);
  const rows: string[] = [];
  for (const phase of ["cold", "warm"]) {
    const before = await scrape();
    const cpuBefore = cpuMs(server.proc.pid);
    const total = Math.round(RATE * SECONDS);
    const sent = replies(graph).length;
    const user = (i: number) => String(6400000000000000 + (phase === "cold" ? 0 : 1_000_000) + (i % USERS));
    const starts = await openLoop(RATE, total, (i) => post(signedMessage(url, BENCH.page, BENCH.secret, user(i), `${phase}${i}`)));
    await messagesArrived(graph, sent + total, 60_000);
    const after = await scrape();
    const cpuAfter = cpuMs(server.proc.pid);
    const cpu = `${fmt((cpuAfter.user - cpuBefore.user) / total, 2)} + ${fmt((cpuAfter.system - cpuBefore.system) / total, 2)}`;
    const due = new Map(starts.map((t0, i) => [`${user(i)} You said: ${phase}${i}`, t0]));
    const latencies = replies(graph)
      .slice(sent)
      .map((s) => (due.has(`${s.recipientId} ${s.message?.text}`) ? s.at - due.get(`${s.recipientId} ${s.message?.text}`)! : Number.NaN))
      .filter(Number.isFinite);
    const [hb, ha] = [histogram(before, "messenger_turn_stage_seconds", "stage"), histogram(after, "messenger_turn_stage_seconds", "stage")];
    const [tb, ta] = [histogram(before, "messenger_turn_end_to_end_seconds", "none"), histogram(after, "messenger_turn_end_to_end_seconds", "none")];
    const steps = STAGES.map((s) => `${s} ≤ ${fmt(quantile(hb.get(s), ha.get(s) ?? [], 0.5), 2)} / ${fmt(quantile(hb.get(s), ha.get(s) ?? [], 0.99), 2)}`);
    rows.push(
      `| ${phase} | ${cpu} | ${fmt(percentile(latencies, 50))} / ${fmt(percentile(latencies, 99))} / ${fmt(Math.max(...latencies))} | ` +
        `≤ ${fmt(quantile(tb.get(""), ta.get("") ?? [], 0.5), 2)} / ${fmt(quantile(tb.get(""), ta.get("") ?? [], 0.99), 2)} | ${steps.join("<br>")} | ` +
        `${fmt(gauge(after, "messenger_event_loop_delay_seconds", "0.5"), 2)} / ${fmt(gauge(after, "messenger_event_loop_delay_seconds", "0.99"), 2)} / ${fmt(gauge(after, "messenger_event_loop_delay_seconds", "1"), 2)} |`,
    );
  }
  console.log(
    "\n| phase | server CPU ms per turn, user + system | client e2e p50 / p99 / max ms | server turn p50 / p99 ms | steps p50 / p99 ms | event loop delay p50 / p99 / max ms |",
  );
  console.log("|---|---:|---|---|---|---|");
  for (const r of rows) console.log(r);
  console.log(`\npeak RSS ${fmt(peakRssMb(server.proc.pid), 0)} MB`);
  server.proc.kill("SIGTERM");
  await server.exited;
} finally {
  await graph.stop();
  rmSync(dir, { recursive: true, force: true });
}
