/**
 * Webhook benchmark: signed Messenger webhook POSTs over loopback to the compiled binary, side by
 * side with a bare Bun.serve that answers 200 to the same requests (the ceiling on this machine).
 *
 *   npm run bench                      # 10 s per phase
 *   BENCH_SECONDS=20 npm run bench     # longer phases
 *
 * Phases, for each target: (1) closed loop with BENCH_CONCURRENCY connections (default 32) as
 * fast as it answers: throughput and latency; (2) open loop at BENCH_RATE requests/s (default
 * 1000): latency measured from the scheduled send time, so a stall counts against the server.
 * Two event mixes for the binary: Facebook delivery reports (stored and applied; no flow, no send),
 * and user messages, each of which the binary also answers (builtin:echo, reply lanes, a fake
 * Graph API in this process), so the second mix measures acknowledging while doing all the work.
 * Before each open-loop phase the binary first works off the backlog the closed loop left.
 * Afterwards the binary's database must hold exactly one inbox row per acknowledged event.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { signBody } from "../../src/webhook/signature.ts";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { binaryUnderTest, start, type Running } from "../smoke/binary-helpers.ts";
import { benchSettings, fmt, peakRssMb, percentile } from "./load.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECRET = "bench-app-secret-0123456789";
const PAGE = "104857600012345";

interface Result {
  requests: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

// Bodies are made and signed before the clock starts, so the client spends its time sending.
let sequence = 0;
/** "message": a user writes (the binary answers through builtin:echo and its lanes).
 *  "delivery": Facebook reports a delivery (stored and applied; no flow, no send). */
let mix: "message" | "delivery" = "message";
function nextRequest(): { body: string; signature: string } {
  const n = ++sequence;
  const sender = String(6300000000000000 + (n % 5000));
  const event =
    mix === "message"
      ? {
          sender: { id: sender },
          recipient: { id: PAGE },
          timestamp: 1767225600000 + n,
          message: { mid: `m_bench_${n}`, text: `message number ${n} with some ordinary text in it` },
        }
      : { sender: { id: sender }, recipient: { id: PAGE }, delivery: { mids: [`m_sent_${n}`], watermark: 1767225600000 + n } };
  const body = JSON.stringify({
    object: "page",
    entry: [
      {
        id: PAGE,
        time: 1767225600000 + n,
        messaging: [event],
      },
    ],
  });
  return { body, signature: signBody(SECRET, body) };
}

function prepare(count: number) {
  return Array.from({ length: count }, nextRequest);
}

async function send(url: string, r: { body: string; signature: string }): Promise<boolean> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": r.signature },
    body: r.body,
  });
  await response.arrayBuffer();
  return response.status === 200;
}

async function closedLoop(url: string, seconds: number, concurrency: number): Promise<Result> {
  const pool = prepare(Math.max(20_000, concurrency * 100));
  let next = 0;
  const latenciesMs: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        if (next >= pool.length) pool.push(...prepare(5_000));
        const r = pool[next++]!;
        const t0 = performance.now();
        const ok = await send(url, r).catch(() => false);
        latenciesMs.push(performance.now() - t0);
        if (!ok) errors++;
      }
    }),
  );
  return { requests: latenciesMs.length, errors, seconds: (performance.now() - started) / 1000, latenciesMs };
}

async function openLoop(url: string, seconds: number, rate: number): Promise<Result> {
  const total = Math.round(seconds * rate);
  const pool = prepare(total);
  const latenciesMs: number[] = [];
  let errors = 0;
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  const tickMs = 5;
  for (let i = 0; i < total; ) {
    const due = started + (i * 1000) / rate;
    const now = performance.now();
    if (due > now) {
      await Bun.sleep(Math.min(tickMs, due - now));
      continue;
    }
    // Send everything that is due; latency counts from when it was due.
    while (i < total && started + (i * 1000) / rate <= performance.now()) {
      const scheduled = started + (i * 1000) / rate;
      const r = pool[i++]!;
      inFlight.push(
        send(url, r)
          .catch(() => false)
          .then((ok) => {
            latenciesMs.push(performance.now() - scheduled);
            if (!ok) errors++;
          }),
      );
    }
  }
  await Promise.all(inFlight);
  return { requests: latenciesMs.length, errors, seconds: (performance.now() - started) / 1000, latenciesMs };
}

function summary(r: Result) {
  return {
    rps: r.requests / r.seconds,
    p50: percentile(r.latenciesMs, 50),
    p99: percentile(r.latenciesMs, 99),
    max: Math.max(...r.latenciesMs),
    errors: r.errors,
    requests: r.requests,
  };
}

async function startBinary(dir: string, graphUrl: string): Promise<{ server: Running; url: string; dbFile: string }> {
  const bin = await binaryUnderTest();
  writeFileSync(join(dir, "bench.toml"), benchSettings({ db: "bench", graphUrl }));
  const server = start(bin, ["serve", "--config", "bench.toml"], { cwd: dir });
  const line = await server.waitFor((l) => l.msg === "listening");
  return { server, url: `${line.url}/webhooks/bench`, dbFile: join(dir, "data", "bench.db") };
}

async function startCeiling(): Promise<{ server: Running; url: string }> {
  const server = start(process.execPath, [join(import.meta.dir, "ceiling-server.ts")], { cwd: import.meta.dir });
  const line = await server.waitFor((l) => l.msg === "listening");
  return { server, url: `${line.url}/webhooks/bench` };
}

/** One second of traffic before measuring; returns how many events were acknowledged. */
/**
 * Waits until the binary has worked off what the previous phase left (every stored event
 * processed, every reply sent), so that the open-loop phase measures acknowledging at that rate,
 * not competing with a backlog. Reads the binary's database from here (WAL allows a reader).
 */
async function quiesce(dbFile: string, timeoutMs = 120_000): Promise<void> {
  const client = createClient({ url: `file:${dbFile}` });
  try {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const open = await client.execute(
        "SELECT (SELECT count(*) FROM inbox WHERE status = 'pending') + (SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending'))",
      );
      if (Number(open.rows[0]?.[0] ?? 0) === 0) return;
      await Bun.sleep(100);
    }
    const left = await client.execute(
      "SELECT kind, status, count(*) FROM inbox WHERE status = 'pending' GROUP BY 1, 2 UNION ALL SELECT kind, status, count(*) FROM outbox WHERE status IN ('pending', 'sending') GROUP BY 1, 2",
    );
    throw new Error(`the binary did not work off its backlog within ${timeoutMs} ms: ${JSON.stringify(left.rows)}`);
  } finally {
    client.close();
  }
}

async function warmUp(url: string): Promise<number> {
  const r = await closedLoop(url, 1, CONCURRENCY);
  return r.requests - r.errors;
}

const dir = mkdtempSync(join(tmpdir(), "me-bench-"));
try {
  console.error(`webhook benchmark: ${SECONDS} s per phase, ${CONCURRENCY} connections, open loop at ${RATE}/s`);
  const ceiling = await startCeiling();
  // The binary also answers each message (builtin:echo) through its reply lanes: a fake Graph
  // API in this process takes those sends, as Facebook would.
  const graph = await FakeGraph.start({ pages: [{ id: PAGE, token: "bench-page-token", appSecret: SECRET }] });
  const app = await startBinary(dir, graph.url);

  await warmUp(ceiling.url);
  const ceilingMax = summary(await closedLoop(ceiling.url, SECONDS, CONCURRENCY));
  const ceilingRate = summary(await openLoop(ceiling.url, SECONDS, RATE));
  let acknowledged = 0;
  const results: Record<string, { max: ReturnType<typeof summary>; rate: ReturnType<typeof summary> }> = {};
  for (const kind of ["delivery", "message"] as const) {
    mix = kind;
    acknowledged += await warmUp(app.url);
    const max = summary(await closedLoop(app.url, SECONDS, CONCURRENCY));
    await quiesce(app.dbFile).catch((error) => {
      const problems = app.server.lines.filter((l) => l.level === "error" || l.level === "warn").slice(-20);
      throw new Error(`${(error as Error).message}\nserver warnings and errors:\n${problems.map((l) => JSON.stringify(l)).join("\n")}`);
    });
    const rate = summary(await openLoop(app.url, SECONDS, RATE));
    acknowledged += max.requests - max.errors + (rate.requests - rate.errors);
    results[kind] = { max, rate };
  }
  const rss = peakRssMb(app.server.proc.pid);

  app.server.proc.kill("SIGTERM");
  ceiling.server.proc.kill("SIGTERM");
  await Promise.all([app.server.exited, ceiling.server.exited]);
  await graph.stop();

  const client = createClient({ url: `file:${app.dbFile}` });
  const rows = Number((await client.execute("SELECT count(*) FROM inbox")).rows[0]?.[0] ?? 0);
  client.close();

  const row = (phase: string, target: string, r: ReturnType<typeof summary>) =>
    `| ${phase} | ${target} | ${fmt(r.rps, 0)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.max, 1)} | ${r.errors} |`;
  const closed = `closed loop, ${CONCURRENCY} connections`;
  const open = `open loop, ${RATE}/s`;
  const table = [
    `| phase | target | requests/s | p50 ms | p99 ms | max ms | errors |`,
    `|---|---|---:|---:|---:|---:|---:|`,
    row(closed, "bare Bun.serve (ceiling)", ceilingMax),
    row(closed, "messenger-endpoint, delivery events", results.delivery!.max),
    row(closed, "messenger-endpoint, messages (each answered)", results.message!.max),
    row(open, "bare Bun.serve (ceiling)", ceilingRate),
    row(open, "messenger-endpoint, delivery events", results.delivery!.rate),
    row(open, "messenger-endpoint, messages (each answered)", results.message!.rate),
  ];
  console.log(table.join("\n"));
  const ratio = (r: ReturnType<typeof summary>) => fmt((100 * r.rps) / ceilingMax.rps, 1);
  console.log(
    `\nthroughput / ceiling: ${ratio(results.delivery!.max)} % storing only, ${ratio(results.message!.max)} % storing and answering every message ` +
      `(goal ≥ 25 %); p99 at ${RATE}/s: ${fmt(results.delivery!.rate.p99, 2)} / ${fmt(results.message!.rate.p99, 2)} ms (goal < 10 ms); ` +
      `peak RSS ${fmt(rss, 0)} MB; inbox rows ${rows} = acknowledged events ${acknowledged}: ${rows === acknowledged ? "yes" : "NO"}`,
  );
  if (rows !== acknowledged) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
