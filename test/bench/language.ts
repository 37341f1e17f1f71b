/**
 * The conversations benchmark's language phases (conversations.bench.ts runs them after its own
 * table, in the same run): what an NLU connector and real-time translation cost per turn.
 *
 * The compiled binary with a plain echo flow (one answer per turn, "You said: <text>" with three
 * quick replies, so that every phase sends the same number of messages), no delay, typing off,
 * runs the throughput phase of load.ts on a fresh database per phase, after an uncounted warm-up:
 *
 * - **off**: no NLU, no translation;
 * - **NLU**: `[endpoints.nlu] kind = "http"` against the fake NLU (src/simulator/fake-nlu/) on a
 *   loopback port of this process: one call per turn;
 * - **translation, cache on**: `provider = "deepl"` against the fake providers
 *   (src/simulator/fake-translation.ts), German users (`user_language = "de"`), the flow in
 *   English: the user's text to English, the answer and its quick-reply titles back to German;
 *   `cache_hours = 24`. Users write "hallo <m>", so the same ten texts and ten answers come back
 *   again and again: the cache's best case;
 * - **translation, cache off**: the same with `cache_hours = 0`: two provider calls per turn, the
 *   worst case;
 * - **NLU + translation**, cache on.
 *
 * The stand-ins answer in this process, which also sends the webhooks and plays the Graph API:
 * their own work is part of what is measured, as a real provider's would not be (on this
 * machine's two cores). Every user's replies must answer their messages in order (by the number
 * each text ends with), none lost. Reported: turns/s, the ratio to off, the cost per turn in µs
 * (1e6/phase − 1e6/off) and the calls each turn made to the stand-ins.
 *
 * Then what a user waits, with the stand-ins answering BENCH_SERVICE_MS (50) later, as services
 * across the internet would: LATENCY_TURNS new users write the same "hallo 1" at LATENCY_RATE
 * turns/s (open loop), from the webhook POST to the Send API call of the reply; the reply is a
 * common one, so with the cache on only the user's own text goes to the provider.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { FakeNlu } from "../../src/simulator/fake-nlu/fake-nlu.ts";
import { FakeTranslation } from "../../src/simulator/fake-translation.ts";
import { start, type Running } from "../smoke/binary-helpers.ts";
import {
  BENCH,
  benchSettings,
  fmt,
  messagesArrived,
  openLoop,
  peakRssMb,
  percentile,
  post,
  replies,
  signedMessage,
  throughput,
  type Throughput,
} from "./load.ts";

const SERVICE_MS = Number(process.env.BENCH_SERVICE_MS ?? 50);
const LATENCY_RATE = 50;
const LATENCY_TURNS = 250;

const FLOW = `
const MENU = [
  { title: "Buttons", payload: "SHOW_BUTTONS" },
  { title: "Cards", payload: "SHOW_CARDS" },
  { title: "Hello", payload: "HELLO" },
];
export default async (input) => ({ outputs: [{ text: \`You said: \${input.text}\`, quick_replies: MENU }] });
`;

interface Phase {
  name: string;
  nlu: boolean;
  translation: "off" | "cached" | "uncached";
}

const PHASES: Phase[] = [
  { name: "off", nlu: false, translation: "off" },
  { name: "NLU (http stand-in)", nlu: true, translation: "off" },
  { name: "translation, cache on", nlu: false, translation: "cached" },
  { name: "translation, cache off", nlu: false, translation: "uncached" },
  { name: "NLU + translation, cache on", nlu: true, translation: "cached" },
];

function endpointToml(phase: Phase, nluUrl: string, translationUrl: string): string {
  const lines = ["[endpoints.messenger]", "typing_indicators = false", "message_delay_ms = 0"];
  if (phase.nlu) lines.push("[endpoints.nlu]", 'kind = "http"', `url = "${nluUrl}/parse"`);
  if (phase.translation !== "off")
    lines.push(
      "[endpoints.translation]",
      'provider = "deepl"',
      `url = "${translationUrl}"`,
      'api_key = "bench-deepl-key:fx"',
      'flow_language = "en"',
      'user_language = "de"',
      `cache_hours = ${phase.translation === "cached" ? 24 : 0}`,
    );
  return lines.join("\n");
}

interface Measured extends Throughput {
  rss: number;
  p50: number;
  p99: number;
  nluCalls: number;
  translationCalls: number;
}

export interface LanguageOptions {
  bin: string;
  dir: string;
  users: number;
  messages: number;
  inFlight: number;
  /** A PSID per (run, user), distinct across runs. */
  psid(run: number, u: number): string;
  /** A run number no other phase of the benchmark uses. */
  nextRun(): number;
}

async function measure(o: LanguageOptions, phase: Phase, index: number, nlu: FakeNlu, translation: FakeTranslation): Promise<Measured> {
  const graph = await FakeGraph.start({ pages: [{ id: BENCH.page, token: BENCH.token, appSecret: BENCH.secret }] });
  const name = `language-${index}`;
  writeFileSync(
    join(o.dir, `${name}.toml`),
    benchSettings({ db: name, graphUrl: graph.url, flowModule: "plain-echo.mjs", endpoint: endpointToml(phase, nlu.url, translation.urlFor("deepl")) }),
  );
  const server: Running = start(o.bin, ["serve", "--config", `${name}.toml`], { cwd: o.dir });
  try {
    const url = `${(await server.waitFor((l) => l.msg === "listening", 60_000)).url}/webhooks/${BENCH.endpoint}`;
    const request = (to: string, user: string, text: string) => signedMessage(to, BENCH.page, BENCH.secret, user, text);
    const load = {
      url,
      graph,
      inFlight: o.inFlight,
      request,
      text: (_u: number, m: number) => `hallo ${m}`,
      // "You said: hallo 7", or translated "Du said: hallo 7": the answer to message 7.
      answers: (reply: string, m: number) => reply.endsWith(` ${m}`),
    };
    const warmUp = o.nextRun();
    await throughput({ ...load, users: 100, messages: 3, psid: (u) => o.psid(warmUp, u) });
    const nluBefore = nlu.requests.length;
    const translationBefore = translation.calls.length;
    const run = o.nextRun();
    const result = await throughput({ ...load, users: o.users, messages: o.messages, psid: (u) => o.psid(run, u) });
    const calls = { nluCalls: nlu.requests.length - nluBefore, translationCalls: translation.calls.length - translationBefore };
    const latencyRun = o.nextRun();
    const waited = await latency(url, graph, (u) => o.psid(latencyRun, u), nlu, translation);
    return { ...result, ...calls, ...waited, rss: peakRssMb(server.proc.pid) };
  } finally {
    server.proc.kill("SIGTERM");
    await server.exited;
    await graph.stop();
  }
}

/** Each of LATENCY_TURNS new users writes "hallo 1", with the stand-ins SERVICE_MS away: p50 and p99 ms from POST to reply. */
async function latency(url: string, graph: FakeGraph, psid: (u: number) => string, nlu: FakeNlu, translation: FakeTranslation) {
  nlu.latencyMs = translation.latencyMs = SERVICE_MS;
  try {
    const before = replies(graph).length;
    const starts = await openLoop(LATENCY_RATE, LATENCY_TURNS, (u) => post(signedMessage(url, BENCH.page, BENCH.secret, psid(u), "hallo 1")));
    await messagesArrived(graph, before + LATENCY_TURNS, 60_000);
    const started = new Map(starts.map((t0, u) => [psid(u), t0]));
    const waited = replies(graph)
      .slice(before)
      .map((s) => s.at - started.get(s.recipientId)!);
    if (waited.length !== LATENCY_TURNS) throw new Error(`latency: ${waited.length} of ${LATENCY_TURNS} replies arrived`);
    return { p50: percentile(waited, 50), p99: percentile(waited, 99) };
  } finally {
    nlu.latencyMs = translation.latencyMs = 0;
  }
}

/** Runs the phases once each; the table's lines, and whether every phase kept order and lost nothing. */
export async function languagePhases(o: LanguageOptions): Promise<{ lines: string[]; ok: boolean }> {
  writeFileSync(join(o.dir, "plain-echo.mjs"), FLOW);
  const nlu = FakeNlu.start();
  const translation = await FakeTranslation.start();
  const rows: string[] = [];
  let ok = true;
  let off = Number.NaN;
  try {
    for (const [index, phase] of PHASES.entries()) {
      const m = await measure(o, phase, index, nlu, translation);
      if (index === 0) off = m.turnsPerSecond;
      ok &&= m.orderOk && m.lost === 0;
      const cost = 1e6 / m.turnsPerSecond - 1e6 / off;
      const turns = o.users * o.messages;
      rows.push(
        `| ${phase.name} | ${fmt(m.turnsPerSecond, 0)} | ${fmt(m.turnsPerSecond / off, 2)} | ${index === 0 ? "—" : `${cost >= 0 ? "+" : ""}${fmt(cost, 0)}`} | ${fmt(m.nluCalls / turns, 2)} | ${fmt(m.translationCalls / turns, 3)} | ${fmt(m.p50, 0)} / ${fmt(m.p99, 0)} | ${m.orderOk ? "yes" : "NO"} | ${m.lost} | ${fmt(m.rss, 0)} |`,
      );
    }
  } finally {
    nlu.stop();
    await translation.stop();
  }
  return {
    ok,
    lines: [
      `| phase | turns/s | of off | cost per turn µs | NLU calls per turn | translation calls per turn | p50 / p99 ms, services ${SERVICE_MS} ms away | per-user order | lost | peak RSS MB |`,
      "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
      ...rows,
    ],
  };
}
