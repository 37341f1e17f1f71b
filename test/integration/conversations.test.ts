/**
 * Conversations end to end, in process: signed webhooks → inbox → flow → reply lanes → a fake
 * Graph API on loopback. Timing assertions use generous margins.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { PAGE_ID, PSID, PSID_2 } from "../helpers/config.ts";
import { messageTexts, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function conversation(options: Parameters<typeof startConversation>[0] = {}): Promise<Conversation> {
  const c = await startConversation(options);
  open.push(c);
  return c;
}

/** A script flow answering every input with these outputs (`$` is replaced by the input text). */
function outputsFlow(...texts: string[]): Record<string, string> {
  return {
    "flows/outputs.ts": `export default async (input) => ({ outputs: ${JSON.stringify(texts.map((text) => ({ text })))}.map((o) => ({ text: o.text.replace("$", input.text) })) });`,
  };
}
const OUTPUTS_FLOW = 'kind = "script"\nmodule = "flows/outputs.ts"';

/** Waits until no reply is between "sending" and "sent" (the lane records after Graph answers). */
async function settled(c: Conversation) {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    await c.app.writes.drain();
    const open = await rows(c, "SELECT count(*) AS n FROM outbox WHERE status = 'sending'");
    if (Number(open[0]!.n) === 0) return;
    await Bun.sleep(10);
  }
  throw new Error("replies did not settle");
}

/** Polls until the query returns at least one row. */
async function waitForRows(c: Conversation, sql: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = await rows(c, sql);
    if (found.length > 0) return found;
    await Bun.sleep(10);
  }
  throw new Error(`no row for: ${sql}`);
}

async function rows(c: Conversation, sql: string, args: (string | number)[] = []) {
  const result = await c.database.client.execute({ sql, args });
  return result.rows.map((r) => Object.fromEntries(result.columns.map((col, i) => [col, r[i]])));
}

describe("replies", () => {
  test("echo flow answers a user message through the Send API", async () => {
    const c = await conversation();
    expect(await c.post([userText("hello")])).toBe(200);
    const [send] = await c.graph.waitForSends(1, { recipientId: PSID });
    expect(send!.message.text).toBe("You said: hello");
    expect(send!.messagingType).toBe("RESPONSE");
    expect(send!.metadata).toMatch(/^me:[A-Za-z0-9_-]+:\d+$/);
    expect(send!.message.quick_replies.map((q: { title: string }) => q.title)).toEqual(["Buttons", "Cards", "Hello"]);
  });

  test("three outputs with typing on and a 300 ms delay: typing, message ×3 with the gaps", async () => {
    const c = await conversation({ files: outputsFlow("one", "two", "three"), flow: OUTPUTS_FLOW, messenger: { typing: true, delayMs: 300 } });
    await c.post([userText("go")]);
    const sends = await c.graph.waitForSends(6, { recipientId: PSID }, 10_000);
    expect(sends.map((s) => (s.type === "action" ? s.senderAction : s.message.text))).toEqual(["typing_on", "one", "typing_on", "two", "typing_on", "three"]);
    for (let i = 0; i < 6; i += 2) {
      const gap = sends[i + 1]!.at - sends[i]!.at;
      expect(gap).toBeGreaterThanOrEqual(280);
      expect(gap).toBeLessThan(1500);
    }
  });

  test("without typing indicators only the delay separates the messages", async () => {
    const c = await conversation({ files: outputsFlow("one", "two"), flow: OUTPUTS_FLOW, messenger: { typing: false, delayMs: 200 } });
    await c.post([userText("go")]);
    const sends = await c.graph.waitForSends(2, { recipientId: PSID }, 10_000);
    expect(sends.every((s) => s.type === "message")).toBe(true);
    expect(sends[1]!.at - sends[0]!.at).toBeGreaterThanOrEqual(180);
  });

  test("two users in parallel take about as long as one", async () => {
    const flow = { files: outputsFlow("a", "b", "c"), flow: OUTPUTS_FLOW, messenger: { typing: false, delayMs: 250 } };
    const c = await conversation(flow);
    let started = performance.now();
    await c.post([userText("x", { psid: PSID })]);
    await c.graph.waitForSends(3, { recipientId: PSID }, 10_000);
    const one = performance.now() - started;

    started = performance.now();
    await Promise.all([c.post([userText("y", { psid: PSID_2 })]), c.post([userText("z", { psid: "6301234567890789" })])]);
    await Promise.all([c.graph.waitForSends(3, { recipientId: PSID_2 }, 10_000), c.graph.waitForSends(3, { recipientId: "6301234567890789" }, 10_000)]);
    const two = performance.now() - started;
    expect(one).toBeGreaterThanOrEqual(700);
    expect(two).toBeLessThan(one * 1.6);
  });

  test("two quick inputs from one user never interleave their replies", async () => {
    const c = await conversation({ files: outputsFlow("$-1", "$-2", "$-3"), flow: OUTPUTS_FLOW, messenger: { typing: true, delayMs: 50 } });
    const t = Date.now();
    await Promise.all([c.post([userText("a", { timestamp: t })]), c.post([userText("b", { timestamp: t + 1 })])]);
    const sends = await c.graph.waitForSends(12, { recipientId: PSID }, 10_000);
    expect(messageTexts(sends)).toEqual(["a-1", "a-2", "a-3", "b-1", "b-2", "b-3"]);
  });

  test("events redelivered out of order are processed in Facebook's timestamp order", async () => {
    const c = await conversation({ files: outputsFlow("$"), flow: OUTPUTS_FLOW });
    const t = Date.now();
    // One POST whose items arrive in the wrong order (a redelivery after an outage).
    await c.post([userText("second", { timestamp: t + 10 }), userText("first", { timestamp: t })]);
    const sends = await c.graph.waitForSends(2, { recipientId: PSID });
    expect(messageTexts(sends)).toEqual(["first", "second"]);
  });

  test("a batch of several users in one POST: every user gets an answer", async () => {
    const c = await conversation({ files: outputsFlow("$"), flow: OUTPUTS_FLOW });
    const users = Array.from({ length: 8 }, (_, i) => `63012345678900${10 + i}`);
    await c.post(users.map((psid) => userText(`hi ${psid}`, { psid })));
    for (const psid of users) expect(messageTexts(await c.graph.waitForSends(1, { recipientId: psid }))).toEqual([`hi ${psid}`]);
  });

  test("a redelivered webhook does not run the flow twice", async () => {
    const c = await conversation({ files: outputsFlow("$"), flow: OUTPUTS_FLOW });
    const item = userText("once");
    await c.post([item]);
    await c.post([item]);
    await c.graph.waitForSends(1, { recipientId: PSID });
    await c.post([userText("next")]);
    const sends = await c.graph.waitForSends(2, { recipientId: PSID });
    expect(messageTexts(sends)).toEqual(["once", "next"]);
  });

  test("mark_seen goes before the reply, in the same lane", async () => {
    const c = await conversation({ messenger: { markSeen: true, typing: true } });
    await c.post([userText("hi")]);
    const sends = await c.graph.waitForSends(3, { recipientId: PSID });
    expect(sends.map((s) => s.senderAction ?? "message")).toEqual(["mark_seen", "typing_on", "message"]);
  });

  test("echoes, deliveries and reads update the sent message and never run the flow", async () => {
    const c = await conversation({ echoes: true });
    c.graph.configureWebhook({ url: `${c.url}/webhooks/support`, appSecret: "test_app_secret_0123" }, { echoes: true, deliveries: true, reads: true });
    await c.post([userText("hi")]);
    await c.graph.waitForSends(1, { recipientId: PSID });
    await c.graph.flushWebhooks();
    await c.app.writes.drain();
    // Wait until the state events are applied (they are applied on arrival).
    const deadline = Date.now() + 5000;
    let out: Record<string, unknown>[] = [];
    while (Date.now() < deadline) {
      out = await rows(c, "SELECT status, message_id, delivered_at, read_at FROM outbox WHERE kind = 'message'");
      if (out[0]?.read_at) break;
      await Bun.sleep(20);
    }
    expect(out).toHaveLength(1);
    expect(out[0]!.status).toBe("sent");
    expect(out[0]!.message_id).toMatch(/^m_/);
    expect(out[0]!.delivered_at).not.toBeNull();
    expect(out[0]!.read_at).not.toBeNull();
    const inbox = await rows(c, "SELECT kind, status FROM inbox ORDER BY id");
    expect(inbox.map((r) => r.kind)).toEqual(["message", "echo", "delivery", "read"]);
    expect(inbox.every((r) => r.status === "done")).toBe(true);
    expect(c.sends(PSID)).toHaveLength(1); // the echo did not make the bot talk to itself
  });
});

describe("Send API failures", () => {
  test("613 twice, then success: retried head-of-line, order kept", async () => {
    const c = await conversation({ files: outputsFlow("one", "two", "three"), flow: OUTPUTS_FLOW });
    c.graph.failNext({ code: 613 }, { times: 2, when: (body) => body.message?.text === "one" });
    await c.post([userText("go")]);
    const sends = await c.graph.waitForSends(3, { recipientId: PSID }, 10_000);
    expect(messageTexts(sends)).toEqual(["one", "two", "three"]);
    const attempts = c.graph.calls.filter((call) => (call.body as { message?: { text?: string } })?.message?.text === "one");
    expect(attempts.map((a) => a.status)).toEqual([400, 400, 200]);
    const retries = c.logs.records().filter((r) => r.msg.startsWith("send failed (rate limited (613))"));
    expect(retries).toHaveLength(2);
  });

  test("a 5xx is retried (a connection lost before the answer: test/integration/send-outcomes.test.ts)", async () => {
    const c = await conversation({ files: outputsFlow("one", "two"), flow: OUTPUTS_FLOW });
    c.graph.failNext({ code: 2, status: 500 }, { when: (body) => body.message?.text === "one" });
    await c.post([userText("go")]);
    expect(messageTexts(await c.graph.waitForSends(2, { recipientId: PSID }, 10_000))).toEqual(["one", "two"]);
    expect(c.graph.calls.filter((call) => (call.body as { message?: { text?: string } })?.message?.text === "one").map((call) => call.status)).toEqual([
      500, 200,
    ]);
  });

  test("outside the 24-hour window and user unavailable: dropped, recorded, the lane goes on", async () => {
    const c = await conversation({ files: outputsFlow("one", "two", "three"), flow: OUTPUTS_FLOW });
    c.graph.failNext({ code: 10, subcode: 2018278 }, { when: (body) => body.message?.text === "one" });
    c.graph.failNext({ code: 551, subcode: 1545041 }, { when: (body) => body.message?.text === "two" });
    await c.post([userText("go")]);
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }))).toEqual(["three"]);
    await settled(c);
    const out = await rows(c, "SELECT status, last_error FROM outbox ORDER BY id");
    expect(out.map((r) => r.status)).toEqual(["dropped", "dropped", "sent"]);
    expect(JSON.parse(String(out[0]!.last_error))).toMatchObject({ code: 10, subcode: 2018278, reason: "outside_window" });
    expect(JSON.parse(String(out[1]!.last_error))).toMatchObject({ code: 551, reason: "user_unavailable" });
  });

  test("a send whose echo arrives before its late answer times out is not sent again", async () => {
    // Meta takes the message at once, but its HTTP answer comes after our 800 ms timeout; the echo
    // in between marks the message sent, and the timeout must not undo that.
    const c = await conversation({ files: outputsFlow("one", "two"), flow: OUTPUTS_FLOW, echoes: true, graphSettings: "timeout_ms = 800" });
    c.graph.failNext({ timeoutMs: 3000, deliver: true }, { when: (body) => body.message?.text === "one" });
    await c.post([userText("go")]);
    await c.graph.waitForSends(2, { recipientId: PSID }, 10_000);
    // The lane went on after the timeout; wait until it has recorded everything.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !c.logs.records().some((r) => r.msg.startsWith("send failed"))) await Bun.sleep(20);
    await settled(c);
    expect(messageTexts(c.sends(PSID))).toEqual(["one", "two"]);
    const out = await rows(c, "SELECT status FROM outbox ORDER BY id");
    expect(out.map((r) => r.status)).toEqual(["sent", "sent"]);
  });

  test("an echo stamped by another deployment on the same Page does not mark our message sent", async () => {
    const c = await conversation({ files: outputsFlow("one"), flow: OUTPUTS_FLOW });
    c.graph.failNext({ code: 613 }, { times: 100, when: (body) => body.message?.text === "one" });
    await c.post([userText("go")]);
    const [{ id }] = (await waitForRows(c, "SELECT id FROM outbox WHERE attempts > 0 AND last_error IS NOT NULL")) as [{ id: number }];
    // Same outbox id, another install's stamp: staging's echo, say.
    const foreign = {
      sender: { id: PAGE_ID },
      recipient: { id: PSID },
      timestamp: Date.now(),
      message: { is_echo: true, app_id: 111111111111111, mid: "m_other", metadata: `me:otherInstall:${id}`, text: "one" },
    };
    expect(await c.post([foreign])).toBe(200);
    await waitForRows(c, "SELECT id FROM inbox WHERE kind = 'echo' AND status = 'done'");
    const [row] = await rows(c, "SELECT status FROM outbox WHERE id = ?", [id]);
    expect(row!.status).toBe("pending");
  });

  test("a message still failing after retry_for_minutes is given up and recorded; the lane goes on", async () => {
    let offset = 0;
    const clock = { now: () => Date.now() + offset };
    const c = await conversation({ files: outputsFlow("one", "two"), flow: OUTPUTS_FLOW, graphSettings: "retry_for_minutes = 1", clock });
    c.graph.failNext({ code: 2, status: 500 }, { times: 1000, when: (body) => body.message?.text === "one" });
    await c.post([userText("go")]);
    await waitForRows(c, "SELECT id FROM outbox WHERE attempts >= 2");
    // 40 s in, it is still tried: attempts made now are within the minute ...
    offset = 40_000;
    const [{ attempts }] = (await rows(c, "SELECT attempts FROM outbox ORDER BY id LIMIT 1")) as [{ attempts: number }];
    await waitForRows(c, `SELECT id FROM outbox WHERE attempts >= ${attempts + 2}`);
    expect(c.sends(PSID)).toHaveLength(0);
    // ... and 61 s after the first attempt it is given up, though the last attempt was 21 s ago:
    // the window runs from the first attempt, it does not restart with each one.
    offset = 61_000;
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }, 10_000))).toEqual(["two"]);
    await settled(c);
    const out = await rows(c, "SELECT status, last_error FROM outbox ORDER BY id");
    expect(out.map((r) => r.status)).toEqual(["failed", "sent"]);
    expect(JSON.parse(String(out[0]!.last_error))).toMatchObject({ code: 2 });
    expect(String(JSON.parse(String(out[0]!.last_error)).reason)).toStartWith("gave up after");
    expect(c.logs.records().some((r) => r.level === "error" && r.msg.startsWith("gave up a message after retrying for 1 minutes"))).toBe(true);
  });

  test("an invalid token (190) pauses the Page: /readyz says so, messages wait; a new token resumes them", async () => {
    // The settings carry a token the fake does not know: Graph answers 190.
    const first = await startConversation({ files: outputsFlow("one", "two"), flow: OUTPUTS_FLOW, pageToken: "EAAGrevokedToken0000" });
    await first.post([userText("go")]);
    const deadline = Date.now() + 5000;
    while (first.app.pages.paused().length === 0 && Date.now() < deadline) await Bun.sleep(10);
    expect(first.app.pages.paused()).toMatchObject([{ endpointId: "support", pageId: PAGE_ID }]);
    const ready = await first.app.http.handle(new Request("http://localhost/readyz"));
    expect(ready.status).toBe(503);
    expect(JSON.stringify(await ready.json())).toContain(`Page ${PAGE_ID} of endpoint support is paused`);
    expect(first.sends()).toHaveLength(0);
    expect(first.logs.records().some((r) => r.level === "error" && r.msg.includes("sending to Page"))).toBe(true);
    await first.close({ keepDir: true, keepGraph: true });

    // Restart with the same bad token: still paused, nothing sent.
    const again = await startConversation({ flow: OUTPUTS_FLOW, dir: first.dir, graph: first.graph, pageToken: "EAAGrevokedToken0000" });
    expect(again.app.pages.paused()).toMatchObject([{ endpointId: "support", pageId: PAGE_ID }]);
    expect((await again.app.http.handle(new Request("http://localhost/readyz"))).status).toBe(503);
    // The lane looked at its items and stopped at the pause (not merely: nothing came yet).
    await until(() => again.app.replies.activeLanes === 0);
    expect(again.sends()).toHaveLength(0);
    await again.close({ keepDir: true, keepGraph: true });

    // Restart with the right token: resumed, both messages sent in order.
    const second = await conversation({ files: {}, flow: OUTPUTS_FLOW, dir: first.dir, graph: first.graph });
    expect(messageTexts(await second.graph.waitForSends(2, { recipientId: PSID }))).toEqual(["one", "two"]);
    expect(second.app.pages.paused()).toEqual([]);
  });
});

describe("turns", () => {
  test("the session context persists between turns and resets after expiry", async () => {
    let offset = 0;
    const c = await conversation({ expirationMinutes: 30, clock: { now: () => Date.now() + offset } });
    await c.post([userText("one")]);
    await c.graph.waitForSends(1);
    await c.post([userText("two")]);
    await c.graph.waitForSends(2);
    await c.app.writes.drain();
    let sessions = await rows(c, "SELECT id, context FROM sessions");
    expect(sessions).toHaveLength(1);
    expect(JSON.parse(String(sessions[0]!.context))).toEqual({ count: 2 });
    offset = 31 * 60_000; // 31 minutes of silence
    await c.post([userText("three")]);
    await c.graph.waitForSends(3);
    await c.app.writes.drain();
    sessions = await rows(c, "SELECT id, context, ended_at FROM sessions ORDER BY created_at");
    expect(sessions).toHaveLength(2);
    expect(sessions[0]!.ended_at).not.toBeNull();
    expect(JSON.parse(String(sessions[1]!.context))).toEqual({ count: 1 });
  });

  test("a flow that throws or returns an invalid result: logged with endpoint and session, nothing sent, the lane goes on", async () => {
    const c = await conversation({
      files: {
        "flows/moody.ts": `export default async (input) => {
          if (input.text === "throw") throw new Error("agent exploded");
          if (input.text === "invalid") return { outputs: [{ buttons: [{ type: "postback", title: "x" }] }] };
          return { outputs: [{ text: "fine: " + input.text }] };
        };`,
      },
      flow: 'kind = "script"\nmodule = "flows/moody.ts"',
    });
    const t = Date.now();
    await c.post([userText("throw", { timestamp: t }), userText("invalid", { timestamp: t + 1 }), userText("ok", { timestamp: t + 2 })]);
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }))).toEqual(["fine: ok"]);
    const errors = c.logs.records().filter((r) => r.level === "error");
    expect(errors.map((e) => e.msg)).toEqual([
      expect.stringContaining("agent exploded"),
      expect.stringContaining("invalid flow result at /outputs/0/buttons/0"),
    ]);
    for (const e of errors) {
      expect(e.endpoint).toBe("support");
      expect(String(e.session)).toMatch(/^s_/);
    }
    await c.app.writes.drain();
    const inbox = await rows(c, "SELECT status, last_error FROM inbox ORDER BY timestamp");
    expect(inbox.map((r) => r.status)).toEqual(["done", "done", "done"]);
    expect(String(inbox[0]!.last_error)).toContain("agent exploded");
  });

  test("a hanging http agent for one user never delays another user", async () => {
    let release: () => void = () => {};
    const agent = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request) {
        const input = (await request.json()) as { text: string };
        if (input.text === "hang") await new Promise<void>((resolve) => (release = resolve));
        return Response.json({ outputs: [{ text: `agent: ${input.text}` }] });
      },
    });
    try {
      const c = await conversation({ flow: `kind = "http"\nurl = "http://127.0.0.1:${agent.port}/agent"\ntimeout_ms = 3000` });
      const started = performance.now();
      await c.post([userText("hang", { psid: PSID })]);
      await c.post([userText("quick", { psid: PSID_2 })]);
      expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID_2 }))).toEqual(["agent: quick"]);
      expect(performance.now() - started).toBeLessThan(2000);
      // The hanging turn ends at its timeout, cleanly: logged, nothing odd sent.
      const deadline = Date.now() + 6000;
      while (!c.logs.records().some((r) => r.msg.includes("did not answer within 3000 ms")) && Date.now() < deadline) await Bun.sleep(20);
      const timeout = c.logs.records().find((r) => r.msg.includes("did not answer within 3000 ms"));
      expect(timeout).toMatchObject({ level: "error", endpoint: "support", user: PSID });
      expect(c.sends(PSID)).toHaveLength(0);
      // The same user's next message is served.
      await c.post([userText("again", { psid: PSID })]);
      expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }))).toEqual(["agent: again"]);
    } finally {
      release();
      agent.stop(true);
    }
  });

  test("the http agent receives the flow input of docs/flows.md", async () => {
    const inputs: Record<string, any>[] = [];
    const agent = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request) {
        const input = (await request.json()) as Record<string, any>;
        inputs.push({ ...input, authorization: request.headers.get("authorization") });
        return Response.json({ outputs: [], context: { seen: inputs.length } });
      },
    });
    try {
      const c = await conversation({ flow: `kind = "http"\nurl = "http://127.0.0.1:${agent.port}/agent"\nheaders = { Authorization = "Bearer agent-token" }` });
      const t = Date.now();
      await c.post([
        userText("plain", { timestamp: t }),
        { sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: t + 1, message: { mid: "m_qr", text: "Blue", quick_reply: { payload: "COLOR_BLUE" } } },
        {
          sender: { id: PSID },
          recipient: { id: PAGE_ID },
          timestamp: t + 2,
          postback: { mid: "m_pb", title: "Start", payload: "GET_STARTED", referral: { ref: "promo", source: "SHORTLINK" } },
        },
        {
          sender: { id: PSID },
          recipient: { id: PAGE_ID },
          timestamp: t + 3,
          message: { mid: "m_img", attachments: [{ type: "image", payload: { url: "https://cdn.example.test/a.jpg" } }] },
        },
      ]);
      const deadline = Date.now() + 5000;
      while (inputs.length < 4 && Date.now() < deadline) await Bun.sleep(10);
      expect(inputs).toHaveLength(4);
      const [plain, quick, postback, image] = inputs as [any, any, any, any];
      expect(plain).toMatchObject({
        endpoint_id: "support",
        page_id: PAGE_ID,
        user_id: PSID,
        source: "user",
        text: "plain",
        locale: "en",
        context: {},
        nlu: null,
        handover: null,
      });
      expect(plain.session_id).toMatch(/^s_/);
      expect(plain.authorization).toBe("Bearer agent-token");
      expect(plain.data.request.message.mid).toBeString();
      expect(quick).toMatchObject({ text: "COLOR_BLUE", data: { payload: "COLOR_BLUE" }, context: { seen: 1 } });
      expect(quick.data.request.message.text).toBe("Blue");
      expect(postback).toMatchObject({ text: "GET_STARTED", data: { payload: "GET_STARTED", referral: { ref: "promo", source: "SHORTLINK" } } });
      expect(image).toMatchObject({ text: "", data: { attachments: [{ type: "image", url: "https://cdn.example.test/a.jpg" }] } });
      expect(new Set(inputs.map((i) => i.session_id)).size).toBe(1);
    } finally {
      agent.stop(true);
    }
  });

  test("standby events, handover events and echoes never run the flow", async () => {
    // (A person's echo pausing the bot is test/integration/handover.test.ts.)
    const c = await conversation({ files: outputsFlow("$"), flow: OUTPUTS_FLOW, endpointToml: "[endpoints.handover]\npause_on_human_reply = false" });
    const t = Date.now();
    await c.post([userText("in standby", { timestamp: t })], { standby: true });
    await c.post([
      {
        sender: { id: PAGE_ID },
        recipient: { id: PSID },
        timestamp: t + 1,
        message: { is_echo: true, app_id: 263902037430900, mid: "m_human", text: "a human wrote" },
      },
      { sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: t + 2, pass_thread_control: { new_owner_app_id: "987654321098765", metadata: "done" } },
      userText("real", { timestamp: t + 3 }),
    ]);
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }))).toEqual(["real"]);
    await c.app.writes.drain();
    const inbox = await rows(c, "SELECT kind, standby, status FROM inbox ORDER BY timestamp, id");
    // The standby message recorded that another app had the thread, so the pass back to us gave the
    // flow its "completed" turn (an event of kind handover; its empty answer sends nothing): handover.test.ts.
    expect(inbox.map((r) => `${r.kind}:${r.status}`)).toEqual(["message:done", "echo:done", "pass_thread_control:done", "handover:done", "message:done"]);
    expect(c.sends(PSID)).toHaveLength(1);
  });
});

describe("restarts", () => {
  test("events stored while nothing processed them are answered after the start", async () => {
    const first = await startConversation({ files: outputsFlow("$"), flow: OUTPUTS_FLOW });
    // Stop processing right away, then store events: as if the process died after the 200.
    await first.app.shutdown();
    const t = Date.now();
    await first.post([userText("stored-1", { timestamp: t }), userText("stored-2", { timestamp: t + 1 })]);
    await first.close({ keepDir: true, keepGraph: true });
    expect(first.sends()).toHaveLength(0);
    const second = await conversation({ flow: OUTPUTS_FLOW, dir: first.dir, graph: first.graph });
    expect(messageTexts(await second.graph.waitForSends(2, { recipientId: PSID }))).toEqual(["stored-1", "stored-2"]);
  });

  test("a graceful stop in the middle of a lane keeps the rest; the restart sends it once, in order", async () => {
    const files = outputsFlow("one", "two", "three", "four");
    const first = await startConversation({ files, flow: OUTPUTS_FLOW, messenger: { typing: false, delayMs: 300 } });
    await first.post([userText("go")]);
    await first.graph.waitForSends(1, { recipientId: PSID }, 5000);
    await first.close({ keepDir: true, keepGraph: true });
    const before = messageTexts(first.sends(PSID));
    expect(before.length).toBeLessThan(4);
    const second = await conversation({ flow: OUTPUTS_FLOW, dir: first.dir, graph: first.graph, messenger: { typing: false, delayMs: 0 } });
    expect(messageTexts(await second.graph.waitForSends(4, { recipientId: PSID }, 5000))).toEqual(["one", "two", "three", "four"]);
    await second.app.writes.drain();
    expect(second.sends(PSID)).toHaveLength(4);
  });
});

describe("where a turn's time goes (src/metrics/turn-timings.ts)", () => {
  test("one turn with two messages: each step observed once, the whole turn once, up to its first message's send", async () => {
    const c = await conversation({ flow: OUTPUTS_FLOW, files: outputsFlow("one: $", "two") });
    expect(await c.post([userText("hi")])).toBe(200);
    await c.graph.waitForSends(2, { recipientId: PSID });
    await until(() => c.app.metrics.render().includes("messenger_turn_end_to_end_seconds_count 1"));
    const text = c.app.metrics.render();
    for (const stage of ["verified", "stored", "fsynced", "turn_started", "flow_answered", "outputs_stored", "send_started", "graph_answered"]) {
      expect(text).toContain(`messenger_turn_stage_seconds_count{stage="${stage}"} 1`);
    }
    // A delivery report is stored and applied, with no turn: only the POST's steps.
    expect(
      await c.post([{ sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: Date.now(), delivery: { mids: ["m_x"], watermark: Date.now() } }]),
    ).toBe(200);
    const after = c.app.metrics.render();
    expect(after).toContain('messenger_turn_stage_seconds_count{stage="stored"} 2');
    expect(after).toContain('messenger_turn_stage_seconds_count{stage="turn_started"} 1');
  });
});
