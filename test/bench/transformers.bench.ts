/**
 * Transformer benchmark: what an input and an output transformer cost per message.
 *
 *   npm run bench:transformers
 *   BENCH_USERS=1000 BENCH_MESSAGES=10 BENCH_ROUNDS=2 npm run bench:transformers
 *
 * The compiled binary with builtin:echo (no delay, typing off, people features off so that only
 * the transformers differ) runs the conversations throughput phase (test/bench/load.ts) on a
 * fresh database each time, alternating: no transformers, then handleInput + handleOutput (each a
 * worker round trip per message: the input's text is trimmed, the output passed through with one
 * field added). Every user's replies must arrive in order, none lost. Reported: turns/s, the
 * ratio to no transformers, and the cost per message in µs (1e6/on − 1e6/off).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { binaryUnderTest, start, type Running } from "../smoke/binary-helpers.ts";
import { benchSettings, fmt, peakRssMb, signedMessage, throughput, type Throughput } from "./load.ts";

const USERS = Number(process.env.BENCH_USERS ?? 1000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const IN_FLIGHT = 64;
const SECRET = "bench-app-secret-0123456789";
const PAGE = "104857600012345";
const TOKEN = "bench-page-token";
const request = (url: string, user: string, text: string) => signedMessage(url, PAGE, SECRET, user, text);

const TRANSFORMER = `
export function handleInput({ event }) {
  return { text: String(event.message?.text ?? "").trim() };
}
export function handleOutput({ processedOutput }) {
  return { ...processedOutput, metadata: undefined };
}
`;

function settings(dir: string, name: string, graphUrl: string, on: boolean): string {
  writeFileSync(join(dir, "transformer.ts"), TRANSFORMER);
  writeFileSync(
    join(dir, `${name}.toml`),
    benchSettings({
      db: name,
      graphUrl,
      endpoint: `[endpoints.messenger]
typing_indicators = false
message_delay_ms = 0
[endpoints.profiles]
request_profile_data = false
update_contact_profiles = false
[endpoints.data_protection]
contact_profiles = false
collect_conversations = false
collect_analytics = false
[endpoints.transformers]
module = "transformer.ts"
input = ${on}
output = ${on}`,
    }),
  );
  return `${name}.toml`;
}

async function once(bin: string, dir: string, graph: FakeGraph, name: string, on: boolean, run: number): Promise<Throughput & { rss: number }> {
  const server: Running = start(bin, ["serve", "--config", settings(dir, name, graph.url, on)], { cwd: dir });
  try {
    const base = String((await server.waitFor((l) => l.msg === "listening", 60_000)).url);
    const url = `${base}/webhooks/bench`;
    const psid = (u: number) => String(6300000000000000 + run * 1_000_000 + u);
    // Warm-up (not counted): JIT, workers, caches.
    await throughput({ url, graph, users: 100, messages: 3, inFlight: IN_FLIGHT, psid: (u) => String(6390000000000000 + run * 1_000_000 + u), request });
    const result = await throughput({ url, graph, users: USERS, messages: MESSAGES, inFlight: IN_FLIGHT, psid, request });
    return { ...result, rss: peakRssMb(server.proc.pid) };
  } finally {
    server.proc.kill("SIGTERM");
    await server.exited;
  }
}

async function main() {
  const bin = await binaryUnderTest();
  const dir = mkdtempSync(join(tmpdir(), "me-bench-transformers-"));
  const graph = await FakeGraph.start({ pages: [{ id: PAGE, token: TOKEN, appSecret: SECRET }] });
  console.error(`transformer benchmark: ${USERS} users × ${MESSAGES} messages, ${ROUNDS} rounds of off / on`);
  const rows: string[] = [];
  let ok = true;
  let run = 0;
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const off = await once(bin, dir, graph, `off${round}`, false, ++run);
      const on = await once(bin, dir, graph, `on${round}`, true, ++run);
      ok &&= off.orderOk && on.orderOk && off.lost === 0 && on.lost === 0;
      const cost = 1e6 / on.turnsPerSecond - 1e6 / off.turnsPerSecond;
      rows.push(
        `| ${round} | ${fmt(off.turnsPerSecond, 0)} | ${fmt(on.turnsPerSecond, 0)} | ${fmt(on.turnsPerSecond / off.turnsPerSecond, 2)} | ${cost >= 0 ? "+" : ""}${fmt(cost, 0)} | ${off.orderOk && on.orderOk ? "yes" : "NO"} | ${off.lost + on.lost} | ${fmt(off.rss, 0)} / ${fmt(on.rss, 0)} |`,
      );
    }
  } finally {
    await graph.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    [
      "| round | no transformers, turns/s | input + output transformers, turns/s | on / off | cost per message µs | per-user order | lost | peak RSS MB off / on |",
      "|---|---:|---:|---:|---:|---|---:|---:|",
      ...rows,
    ].join("\n"),
  );
  if (!ok) {
    console.error("order broken or replies lost");
    process.exit(1);
  }
}

await main();
