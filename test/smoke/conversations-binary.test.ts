/**
 * Conversations through the compiled binary, against a fake Graph API in this process that sends
 * echoes back to the binary's webhook like Facebook: typing and delays, and kill -9 in the middle
 * of a lane, with the restart on the same database delivering the rest once, in order.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { signBody } from "../../src/webhook/signature.ts";
import { installBinary, start, type Running } from "./binary-helpers.ts";

const SECRET = "smoke-app-secret-0123456789";
const PAGE = "104857600012345";
const TOKEN = "smoke-page-token-abcdef";
const USER = "6301234567890123";
const OUTPUTS = ["one", "two", "three", "four", "five", "six"];
const ADMIN_KEY = "smoke-admin-key-0123456789";

function settings(graphUrl: string, messenger: { typing: boolean; delayMs: number }, module = "flows/outputs.ts") {
  return `
[server]
port = 0
[storage]
url = "file:data/conversations.db"
[admin]
api_keys = ["${ADMIN_KEY}"]
[graph]
url = "${graphUrl}"
min_retry_delay_ms = 50
resend_after_ms = 1500
[flows.outputs]
kind = "script"
module = "${module}"
[[endpoints]]
id = "smoke"
flow = "outputs"
verify_token = "smoke-verify-token"
app_secret = "${SECRET}"
pages = [ { id = "${PAGE}", access_token = "${TOKEN}" } ]
[endpoints.messenger]
typing_indicators = ${messenger.typing}
message_delay_ms = ${messenger.delayMs}
`;
}

async function postMessage(base: string, mid: string, text: string, user = USER) {
  const body = JSON.stringify({
    object: "page",
    entry: [{ id: PAGE, time: Date.now(), messaging: [{ sender: { id: user }, recipient: { id: PAGE }, timestamp: Date.now(), message: { mid, text } }] }],
  });
  const response = await fetch(`${base}/webhooks/smoke`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signBody(SECRET, body) },
    body,
  });
  expect(response.status).toBe(200);
}

const USER_2 = "6301234567890456";
const texts = (graph: FakeGraph, user = USER) =>
  graph
    .sends({ recipientId: user })
    .filter((s) => s.type === "message")
    .map((s) => s.message.text as string);

describe("conversations through the compiled binary", () => {
  let install: Awaited<ReturnType<typeof installBinary>>;
  let graph: FakeGraph;
  const running: Running[] = [];

  beforeAll(async () => {
    install = await installBinary();
    mkdirSync(join(install.dir, "flows"));
    writeFileSync(
      join(install.dir, "flows", "outputs.ts"),
      `export default async (input) => ({ outputs: ${JSON.stringify(OUTPUTS)}.map((text) => ({ text })) });\n`,
    );
    // Three outputs that name the input they answer.
    writeFileSync(
      join(install.dir, "flows", "tagged.ts"),
      "export default async (input) => ({ outputs: [1, 2, 3].map((n) => ({ text: `${input.text}:${n}` })) });\n",
    );
    // Hands over on "human"; says how the thread came back.
    writeFileSync(
      join(install.dir, "flows", "handover.ts"),
      'export default async (input) => input.source === "handover" ? { outputs: [{ text: "back:" + input.handover.status }] } : input.text === "human" ? { outputs: [{ text: "connecting" }], handover: { metadata: "smoke" } } : { outputs: [{ text: "bot:" + input.text }] };\n',
    );
    graph = await FakeGraph.start({ pages: [{ id: PAGE, token: TOKEN, appSecret: SECRET }] });
  });
  afterAll(async () => {
    for (const r of running) if (r.proc.exitCode === null) r.proc.kill("SIGKILL");
    await graph.stop();
    install.cleanup();
  });

  /** Starts the binary; a restart passes the port of the first start (Facebook's callback URL stays the same). */
  async function serve(
    messenger: { typing: boolean; delayMs: number },
    port?: number,
    module?: string,
  ): Promise<{ server: Running; base: string; port: number }> {
    for (const r of running) if (r.proc.exitCode === null && r.proc.signalCode === null) throw new Error("a server from an earlier step still runs");
    writeFileSync(join(install.dir, "settings.toml"), settings(graph.url, messenger, module));
    const server = start(install.bin, ["serve", "--config", "settings.toml", ...(port ? ["--port", String(port)] : [])], { cwd: install.dir });
    running.push(server);
    const base = String((await server.waitFor((l) => l.msg === "listening")).url);
    graph.configureWebhook({ url: `${base}/webhooks/smoke`, appSecret: SECRET }, { echoes: true });
    return { server, base, port: Number(new URL(base).port) };
  }

  /** Lets every echo reach the server, then stops it: SIGTERM must end it with exit code 0. */
  async function stop(server: Running): Promise<void> {
    await graph.flushWebhooks();
    server.proc.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  }

  test("typing, delay, message — for each of the outputs, with the gaps", async () => {
    graph.reset();
    const { server, base } = await serve({ typing: true, delayMs: 300 });
    await postMessage(base, "m_typing_1", "go");
    const sends = await graph.waitForSends(12, { recipientId: USER }, 15_000);
    expect(sends.map((s) => (s.type === "action" ? s.senderAction : s.message.text))).toEqual(OUTPUTS.flatMap((t) => ["typing_on", t]));
    for (let i = 0; i < 12; i += 2) expect(sends[i + 1]!.at - sends[i]!.at).toBeGreaterThanOrEqual(280);
    await stop(server);
  });

  test("kill -9 in the middle of a lane, restart on the same database: the rest arrives once, in order", async () => {
    graph.reset();
    const first = await serve({ typing: false, delayMs: 250 });
    await postMessage(first.base, "m_kill_1", "go");
    await graph.waitForSends(2, { recipientId: USER }, 10_000);
    first.server.proc.kill("SIGKILL");
    await first.server.exited;
    const before = texts(graph);
    expect(before.length).toBeGreaterThanOrEqual(2);
    expect(before.length).toBeLessThan(6);

    const second = await serve({ typing: false, delayMs: 0 }, first.port);
    try {
      await graph.waitForSends(6, { recipientId: USER }, 15_000);
      await graph.flushWebhooks();
      expect(texts(graph)).toEqual(OUTPUTS);
    } finally {
      second.server.proc.kill("SIGTERM");
      expect(await second.server.exited).toBe(0);
    }
    expect(texts(graph)).toEqual(OUTPUTS);
  });

  test("kill -9 while a send is in flight: its echo confirms it, and it is not sent again", async () => {
    graph.reset();
    // "three" reaches Facebook, but the answer is held: the process dies before it records it.
    graph.failNext({ timeoutMs: 10_000, deliver: true }, { when: (body) => body.message?.text === "three" });
    const first = await serve({ typing: false, delayMs: 0 });
    await postMessage(first.base, "m_kill_2", "go");
    await graph.waitForSends(3, { recipientId: USER }, 10_000);
    first.server.proc.kill("SIGKILL");
    await first.server.exited;
    expect(texts(graph)).toEqual(["one", "two", "three"]);

    // The echo of "three" is redelivered to the restarted server, which then skips it.
    const second = await serve({ typing: false, delayMs: 0 }, first.port);
    try {
      await graph.waitForSends(6, { recipientId: USER }, 15_000);
      await graph.flushWebhooks();
      expect(texts(graph)).toEqual(OUTPUTS);
    } finally {
      second.server.proc.kill("SIGTERM");
      expect(await second.server.exited).toBe(0);
    }
  });

  test("two users in parallel take about as long as one; one user's two quick inputs never interleave", async () => {
    graph.reset();
    const { server, base } = await serve({ typing: false, delayMs: 300 }, undefined, "flows/tagged.ts");
    try {
      const started = performance.now();
      await Promise.all([postMessage(base, "m_par_a1", "a1"), postMessage(base, "m_par_b1", "b1", USER_2)]);
      await postMessage(base, "m_par_a2", "a2");
      await Promise.all([graph.waitForSends(6, { recipientId: USER }, 15_000), graph.waitForSends(3, { recipientId: USER_2 }, 15_000)]);
      // User 2's three replies (3 × 300 ms) were not held up behind user 1's six.
      const lastOf2 = Math.max(...graph.sends({ recipientId: USER_2 }).map((s) => s.at));
      expect(lastOf2 - started).toBeLessThan(1500);
      expect(texts(graph)).toEqual(["a1:1", "a1:2", "a1:3", "a2:1", "a2:2", "a2:3"]);
      expect(texts(graph, USER_2)).toEqual(["b1:1", "b1:2", "b1:3"]);
    } finally {
      await stop(server);
    }
  });

  test("admin API: inject runs the flow in the user's lane after what they said; notify is sent without a flow", async () => {
    graph.reset();
    const { server, base } = await serve({ typing: false, delayMs: 0 }, undefined, "flows/tagged.ts");
    try {
      const api = (path: string, body: unknown, key = ADMIN_KEY) =>
        fetch(`${base}/api/endpoints/smoke/${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      expect((await api("notify", { user_id: USER, text: "x" }, "wrong-key-0123456789")).status).toBe(401);
      expect((await api("inject", { user_id: "6301234567899999", text: "x" })).status).toBe(404); // never wrote
      await postMessage(base, "m_admin_1", "said");
      const injected = await api("inject", { user_id: USER, text: "injected" });
      expect(injected.status).toBe(202);
      expect(((await injected.json()) as { session_id: string }).session_id).toMatch(/^s_/);
      await graph.waitForSends(6, { recipientId: USER }, 15_000);
      const notified = await api("notify", { user_id: USER, text: "Your order shipped" });
      expect(notified.status).toBe(202);
      await graph.waitForSends(7, { recipientId: USER }, 15_000);
      expect(texts(graph)).toEqual(["said:1", "said:2", "said:3", "injected:1", "injected:2", "injected:3", "Your order shipped"]);
      expect(graph.sends({ recipientId: USER }).at(-1)!.messagingType).toBe("UPDATE");
    } finally {
      await stop(server);
    }
  });

  test("handover: to the Page Inbox, held across kill -9 and a restart, back on Done", async () => {
    graph.reset();
    const first = await serve({ typing: false, delayMs: 0 }, undefined, "flows/handover.ts");
    await postMessage(first.base, "m_ho_1", "human");
    const [pass] = await graph.waitForCalls((c) => c.path.endsWith("/pass_thread_control"), 1, 10_000);
    expect(pass!.body).toMatchObject({ recipient: { id: USER }, target_app_id: "263902037430900", metadata: "smoke" });
    const thread = async (base: string) =>
      (await (await fetch(`${base}/api/endpoints/smoke/users/${USER}/thread`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()) as {
        state: string;
      };
    const deadline = Date.now() + 10_000; // recorded once Graph's answer is back
    while ((await thread(first.base)).state !== "handover" && Date.now() < deadline) await Bun.sleep(20);
    expect((await thread(first.base)).state).toBe("handover");
    first.server.proc.kill("SIGKILL");
    await first.server.exited;

    const second = await serve({ typing: false, delayMs: 0 }, first.port, "flows/handover.ts");
    try {
      expect((await thread(second.base)).state).toBe("handover");
      graph.userMessage(PAGE, USER, "hello?"); // in standby: the Page Inbox owns the thread
      graph.inboxDone(PAGE, USER);
      await graph.waitForSends(2, { recipientId: USER }, 15_000);
      expect(texts(graph)).toEqual(["connecting", "back:completed"]);
      expect((await thread(second.base)).state).toBe("bot");
    } finally {
      await stop(second.server);
    }
  });

  test("613 twice, then success: retried head-of-line, order kept", async () => {
    graph.reset();
    graph.failNext({ code: 613 }, { times: 2, when: (body) => body.message?.text === "two" });
    const { server, base } = await serve({ typing: false, delayMs: 0 });
    try {
      await postMessage(base, "m_613", "go");
      await graph.waitForSends(6, { recipientId: USER }, 15_000);
      expect(texts(graph)).toEqual(OUTPUTS);
      const attempts = graph.calls.filter((c) => (c.body as { message?: { text?: string } })?.message?.text === "two");
      expect(attempts.map((a) => a.status)).toEqual([400, 400, 200]);
    } finally {
      await stop(server);
    }
  });

  test("SIGTERM while a send is in flight: it finishes and is recorded, the rest waits for the restart", async () => {
    graph.reset();
    // Graph holds its answer to "three" for a second; SIGTERM comes in that second.
    graph.failNext({ timeoutMs: 1000 }, { when: (body) => body.message?.text === "three" });
    const first = await serve({ typing: false, delayMs: 0 });
    await postMessage(first.base, "m_term", "go");
    const [held] = await graph.waitForCalls((c) => (c.body as { message?: { text?: string } })?.message?.text === "three", 1, 10_000, { inFlight: true });
    expect(held!.status).toBe(0); // not answered yet
    first.server.proc.kill("SIGTERM");
    expect(await first.server.exited).toBe(0);
    expect(texts(graph)).toEqual(["one", "two", "three"]);

    const second = await serve({ typing: false, delayMs: 0 }, first.port);
    try {
      await graph.waitForSends(6, { recipientId: USER }, 15_000);
      await graph.flushWebhooks();
      expect(texts(graph)).toEqual(OUTPUTS); // "three" was recorded as sent: not sent again
    } finally {
      second.server.proc.kill("SIGTERM");
      expect(await second.server.exited).toBe(0);
    }
  });
});
