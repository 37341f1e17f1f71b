/**
 * Answers from the Send API that do not say clearly whether the message arrived (docs/reply-lanes.md):
 * a message is sent again only when Graph certainly did not take it. Signed webhooks in, a fake
 * Graph API on loopback out.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { PAGE_ID, PSID } from "../helpers/config.ts";
import { messageTexts, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function conversation(options: Parameters<typeof startConversation>[0] = {}): Promise<Conversation> {
  const c = await startConversation({
    files: { "flows/outputs.ts": 'export default async () => ({ outputs: [{ text: "one" }, { text: "two" }, { text: "three" }] });' },
    flow: 'kind = "script"\nmodule = "flows/outputs.ts"',
    ...options,
  });
  open.push(c);
  return c;
}

const textOf = (body: unknown) => (body as { message?: { text?: string } } | undefined)?.message?.text;
/** Every Send API call carrying this text, answered or not. */
const callsFor = (c: Conversation, text: string) => c.graph.calls.filter((call) => textOf(call.body) === text);

async function outbox(c: Conversation): Promise<{ text: string; status: string; attempts: number; last_error: string | null }[]> {
  await c.app.writes.drain();
  const result = await c.database.client.execute("SELECT body, status, attempts, last_error FROM outbox WHERE kind = 'message' ORDER BY id");
  return result.rows.map((r) => ({
    text: JSON.parse(String(r.body)).message.text,
    status: String(r.status),
    attempts: Number(r.attempts),
    last_error: r.last_error === null ? null : String(r.last_error),
  }));
}

async function statuses(c: Conversation): Promise<string[]> {
  return (await outbox(c)).map((r) => r.status);
}

async function metrics(c: Conversation): Promise<string> {
  return (await fetch(`${c.url}/metrics`)).text();
}

describe("a 200 that cannot be read: Graph took the message", () => {
  for (const garbled of ["not_json", "cut_off"] as const) {
    test(`${garbled}: sent once, the lane goes on, unconfirmed and counted; no echo subscription needed`, async () => {
      const c = await conversation();
      c.graph.failNext({ garbled }, { when: (body) => textOf(body) === "two" });
      await c.post([userText("go")]);
      expect(messageTexts(await c.graph.waitForSends(3, { recipientId: PSID }))).toEqual(["one", "two", "three"]);
      await until(async () => (await statuses(c)).every((s) => s !== "pending" && s !== "sending"));
      expect(await statuses(c)).toEqual(["sent", "unconfirmed", "sent"]);
      expect(callsFor(c, "two")).toHaveLength(1); // never sent again
      expect(callsFor(c, "two")[0]!.status).toBe(200);
      const row = (await outbox(c))[1]!;
      expect(JSON.parse(row.last_error!)).toMatchObject({ kind: "unreadable_answer", status: 200 });
      expect(await metrics(c)).toMatch(/messenger_sends_total\{endpoint="support",result="unconfirmed"\} 1/);
      expect(await metrics(c)).toMatch(/messenger_graph_requests_total\{operation="send",result="unreadable_answer"\} 1/);
    });
  }

  test("its echo marks the unconfirmed message sent", async () => {
    const c = await conversation({ echoes: true });
    c.graph.failNext({ garbled: "cut_off" }, { when: (body) => textOf(body) === "two" });
    await c.post([userText("go")]);
    await c.graph.waitForSends(3, { recipientId: PSID });
    await c.graph.flushWebhooks();
    await until(async () => (await statuses(c)).every((s) => s === "sent"));
    expect(callsFor(c, "two")).toHaveLength(1);
  });
});

describe("no answer: a connection lost before the answer, or a timeout", () => {
  test("where echoes are known to arrive, a message whose echo does not come is sent again, in order", async () => {
    const c = await conversation({ echoes: true, lanes: { echoGraceMs: 300 } });
    // "one" goes through and its echo proves that echoes reach this endpoint; "two" is lost.
    c.graph.failNext({ networkError: true }, { when: (body) => textOf(body) === "two" });
    await c.post([userText("go")]);
    expect(messageTexts(await c.graph.waitForSends(3, { recipientId: PSID }, 10_000))).toEqual(["one", "two", "three"]);
    expect(callsFor(c, "two").map((call) => call.status)).toEqual([0, 200]);
    await c.graph.flushWebhooks();
    await until(async () => (await statuses(c)).every((s) => s === "sent"));
    expect(c.logs.records().some((r) => r.msg.startsWith("send failed (no echo after an unclear answer)"))).toBe(true);
  });

  test("remembered across a restart: the proof that echoes arrive is kept in the database", async () => {
    const first = await conversation({ echoes: true });
    await first.post([userText("go")]);
    await first.graph.waitForSends(3, { recipientId: PSID });
    await first.graph.flushWebhooks();
    await until(async () => (await statuses(first)).every((s) => s === "sent"));
    await first.close({ keepDir: true, keepGraph: true });
    open.splice(open.indexOf(first), 1);

    // The restarted server has seen no echo yet, but the database remembers that they come.
    first.graph.configureWebhook(undefined, { echoes: false });
    const second = await conversation({ dir: first.dir, graph: first.graph, lanes: { echoGraceMs: 300 } });
    open.push(first); // closes the fake Graph API too
    second.graph.failNext({ networkError: true }, { when: (body) => textOf(body) === "one" });
    await second.post([userText("again")]);
    await second.graph.waitForSends(6, { recipientId: PSID }, 10_000);
    expect(callsFor(second, "one").map((call) => call.status)).toEqual([200, 0, 200]);
  });

  test("where echoes are not known to arrive, the message is marked unconfirmed and not sent again", async () => {
    const c = await conversation({ lanes: { echoGraceMs: 300 } });
    c.graph.failNext({ networkError: true }, { when: (body) => textOf(body) === "two" });
    await c.post([userText("go")]);
    expect(messageTexts(await c.graph.waitForSends(2, { recipientId: PSID }, 10_000))).toEqual(["one", "three"]);
    await until(async () => (await statuses(c)).every((s) => s !== "pending" && s !== "sending"));
    expect(await statuses(c)).toEqual(["sent", "unconfirmed", "sent"]);
    expect(callsFor(c, "two")).toHaveLength(1);
    expect(c.logs.records().some((r) => r.level === "warn" && r.msg.includes("Subscribe the App's webhook to message_echoes"))).toBe(true);
    expect(await metrics(c)).toMatch(/messenger_sends_total\{endpoint="support",result="unconfirmed"\} 1/);
    expect(await metrics(c)).toMatch(/messenger_sends_total\{endpoint="support",result="unclear"\} 1/);
  });

  test("an echo that comes after the timeout ends the wait at once and the message is not sent again", async () => {
    // Graph takes "one" but answers after our 300 ms timeout; its echo is posted only after that.
    const c = await conversation({ graphSettings: "timeout_ms = 300", lanes: { echoGraceMs: 60_000 } });
    c.graph.failNext({ timeoutMs: 5_000, deliver: true }, { when: (body) => textOf(body) === "one" });
    await c.post([userText("go")]);
    const [sent] = await c.graph.waitForSends(1, { recipientId: PSID });
    await until(() => c.logs.records().some((r) => r.msg.startsWith("the Send API did not answer clearly (timeout)")));
    const started = performance.now();
    const echo = {
      sender: { id: PAGE_ID },
      recipient: { id: PSID },
      timestamp: Date.now(),
      message: { is_echo: true, mid: sent!.messageId, metadata: sent!.metadata, text: "one" },
    };
    expect(await c.post([echo])).toBe(200);
    expect(messageTexts(await c.graph.waitForSends(3, { recipientId: PSID }, 10_000))).toEqual(["one", "two", "three"]);
    expect(performance.now() - started).toBeLessThan(30_000); // not the 60 s wait
    await until(async () => (await statuses(c)).every((s) => s === "sent"));
    expect(callsFor(c, "one")).toHaveLength(1);
  });

  test("a graceful restart while the lane waits for the echo: the message is not sent again after the start", async () => {
    const first = await conversation({ lanes: { echoGraceMs: 60_000 } });
    first.graph.failNext({ networkError: true }, { when: (body) => textOf(body) === "two" });
    await first.post([userText("go")]);
    await until(() => first.logs.records().some((r) => r.msg.startsWith("the Send API did not answer clearly")));
    await until(async () => (await first.database.client.execute("SELECT 1 FROM outbox WHERE last_error LIKE '%\"unclear\":true%'")).rows.length === 1);
    await first.close({ keepDir: true, keepGraph: true });
    open.splice(open.indexOf(first), 1);
    const second = await conversation({ dir: first.dir, graph: first.graph, lanes: { echoGraceMs: 300 } });
    open.push(first); // closes the fake Graph API too
    expect(messageTexts(await second.graph.waitForSends(2, { recipientId: PSID }, 10_000))).toEqual(["one", "three"]);
    await until(async () => (await statuses(second)).every((s) => s !== "pending" && s !== "sending"));
    expect(await statuses(second)).toEqual(["sent", "unconfirmed", "sent"]);
    expect(callsFor(second, "two")).toHaveLength(1);
  });

  test("errors stored on a reply never carry a secret of the settings", async () => {
    const c = await conversation();
    c.graph.failNext(
      { code: 100, message: `Invalid parameter near EAAG${"x"} ${c.config.endpoints[0]!.pages[0]!.access_token}` },
      { when: (body) => textOf(body) === "two" },
    );
    await c.post([userText("go")]);
    await c.graph.waitForSends(2, { recipientId: PSID });
    await until(async () => (await statuses(c)).every((s) => s !== "pending" && s !== "sending"));
    const row = (await outbox(c))[1]!;
    expect(row.status).toBe("dropped");
    expect(row.last_error).toContain("Invalid parameter");
    expect(row.last_error).not.toContain(c.config.endpoints[0]!.pages[0]!.access_token);
  });
});
