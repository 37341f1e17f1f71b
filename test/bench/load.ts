/** What the benchmarks share: signed webhook POSTs, a limit on POSTs in flight, percentiles, peak RSS. */
import { readFileSync } from "node:fs";
import type { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { signBody } from "../../src/webhook/signature.ts";

/** A signed webhook POST carrying one user text message (a fresh mid). */
export function signedMessage(url: string, page: string, secret: string, user: string, text: string) {
  const body = JSON.stringify({
    object: "page",
    entry: [
      {
        id: page,
        time: Date.now(),
        messaging: [
          {
            sender: { id: user },
            recipient: { id: page },
            timestamp: Date.now(),
            message: { mid: `m_${user}_${text}_${Math.random().toString(36).slice(2)}`, text },
          },
        ],
      },
    ],
  });
  return { url, body, signature: signBody(secret, body) };
}

/** POSTs it; anything but 200 throws. */
export async function post(r: { url: string; body: string; signature: string }): Promise<void> {
  const response = await fetch(r.url, { method: "POST", headers: { "content-type": "application/json", "x-hub-signature-256": r.signature }, body: r.body });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`webhook answered ${response.status}`);
}

/** A simple semaphore for the number of POSTs in flight. */
export function limiter(max: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

/** The process's peak resident memory (VmHWM), in MB. */
export function peakRssMb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    return NaN;
  }
}

/** Messages (not sender actions) the fake Graph API has taken. */
export const replies = (graph: FakeGraph) => graph.sends().filter((s) => s.type === "message");

/** Waits until the fake Graph API has taken `count` messages (sender actions not counted). */
export async function messagesArrived(graph: FakeGraph, count: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (replies(graph).length < count) {
    if (performance.now() > deadline) return;
    await Bun.sleep(5);
  }
}

export interface Throughput {
  turnsPerSecond: number;
  seconds: number;
  orderOk: boolean;
  replies: number;
  lost: number;
}

/**
 * `users` users × `messages` messages with builtin:echo: each user's messages one after the other
 * (each POST waits for its 200), all users at once (at most `inFlight` POSTs). Turns/s = replies /
 * time from the first POST to the last reply; each user's replies must say "You said: 1" … in order.
 */
export async function throughput(o: {
  url: string;
  graph: FakeGraph;
  users: number;
  messages: number;
  inFlight: number;
  psid(u: number): string;
  request(url: string, user: string, text: string): { url: string; body: string; signature: string };
  /** The reply text the flow gives to message `m` (default: builtin:echo's "You said: m"). */
  expected?(m: number): string;
  /** What user `u` writes as message `m` (default: "m"). */
  text?(u: number, m: number): string;
  /** Whether `reply` answers message `m` (default: it is `expected(m)`); for replies a benchmark cannot spell out, such as translated ones. */
  answers?(reply: string, m: number): boolean;
}): Promise<Throughput> {
  const limit = limiter(o.inFlight);
  const before = replies(o.graph).length;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: o.users }, async (_, u) => {
      for (let m = 1; m <= o.messages; m++) await limit(() => post(o.request(o.url, o.psid(u), o.text ? o.text(u, m) : `${m}`)));
    }),
  );
  await messagesArrived(o.graph, before + o.users * o.messages, 300_000);
  const all = replies(o.graph).slice(before);
  const seconds = (Math.max(...all.map((s) => s.at)) - started) / 1000;
  let orderOk = true;
  const byUser = new Map<string, string[]>();
  for (const s of all) {
    const list = byUser.get(s.recipientId) ?? [];
    list.push(String(s.message.text));
    byUser.set(s.recipientId, list);
  }
  const expected = o.expected ?? ((m: number) => `You said: ${m}`);
  const answers = o.answers ?? ((reply: string, m: number) => reply === expected(m));
  for (let u = 0; u < o.users; u++) {
    const got = byUser.get(o.psid(u)) ?? [];
    if (got.length !== o.messages || got.some((reply, i) => !answers(reply, i + 1))) orderOk = false;
  }
  return { turnsPerSecond: all.length / seconds, seconds, orderOk, replies: all.length, lost: Math.max(0, o.users * o.messages - all.length) };
}

/** The benchmarks' Page, its token and the App secret that signs their webhooks. */
export const BENCH = { page: "104857600012345", token: "bench-page-token", secret: "bench-app-secret-0123456789", endpoint: "bench" } as const;

/**
 * Settings for the binary under benchmark: one endpoint `bench` with builtin:echo (or the script
 * flow `flowModule`) on the bench Page; `top` goes before the endpoint (e.g. `[admin]`), `endpoint` after it (its own tables).
 * BENCH_CACHE_MIB sets `storage.cache_mib` (SQLite's page cache; the server's default when unset).
 */
export function benchSettings(o: { db: string; graphUrl: string; top?: string; endpoint?: string; flowModule?: string }): string {
  return `[server]
port = 0
[storage]
url = "file:data/${o.db}.db"
${process.env.BENCH_CACHE_MIB ? `cache_mib = ${Number(process.env.BENCH_CACHE_MIB)}` : ""}
[log]
level = "info"
[graph]
url = "${o.graphUrl}"
${o.top ?? ""}
[flows.echo]
kind = "script"
module = "${o.flowModule ?? "builtin:echo"}"
[[endpoints]]
id = "${BENCH.endpoint}"
flow = "echo"
verify_token = "bench-verify"
app_secret = "${BENCH.secret}"
pages = [ { id = "${BENCH.page}", access_token = "${BENCH.token}" } ]
${o.endpoint ?? ""}
`;
}

/**
 * Calls `send(i)` for i = 0 … total − 1 at `rate` per second, not waiting for answers (open loop);
 * resolves when every call has, with each call's planned start (performance.now() time).
 */
export async function openLoop(rate: number, total: number, send: (i: number) => Promise<void>): Promise<number[]> {
  const started = performance.now();
  const due = (i: number) => started + (i * 1000) / rate;
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; ) {
    if (due(i) > performance.now()) {
      await Bun.sleep(Math.min(5, due(i) - performance.now()));
      continue;
    }
    while (i < total && due(i) <= performance.now()) inFlight.push(send(i++));
  }
  await Promise.all(inFlight);
  return Array.from({ length: total }, (_, i) => due(i));
}
