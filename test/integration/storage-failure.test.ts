/**
 * When the database refuses writes (a full disk), processing pauses instead of repeating work
 * (src/db/health.ts): the flow is not asked again for an input it answered, a message Graph took is
 * not sent again, nothing acknowledged is lost, and the logs stay short. The writes fail through an
 * injected client (test/helpers/failing-storage.ts); test/integration/disk-full.test.ts fills a
 * real filesystem.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { PAGE_ID, PAGE_TOKEN, PSID, PSID_2 } from "../helpers/config.ts";
import { messageTexts, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";
import { countingFlow } from "../helpers/counting-flow.ts";
import { WITH_KEYS, api } from "../helpers/admin.ts";
import { PAGE_INBOX_APP_ID } from "../../src/handover/threads.ts";
import { echo } from "../../src/simulator/webhook-driver.ts";
import { failingStorage } from "../helpers/failing-storage.ts";
import { ManualClock } from "../helpers/manual-clock.ts";

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function conversation(options: Parameters<typeof startConversation>[0]): Promise<Conversation> {
  const c = await startConversation({ storageHealth: { minDelayMs: 20, maxDelayMs: 100 }, ...options });
  open.push(c);
  return c;
}

async function ready(c: Conversation): Promise<{ status: number; body: { checks: Record<string, string> } }> {
  const response = await fetch(`${c.url}/readyz`);
  return { status: response.status, body: (await response.json()) as { checks: Record<string, string> } };
}

const errorLines = (c: Conversation) => c.logs.records().filter((r) => r.level === "error" || r.level === "warn");

describe("a turn whose outcome cannot be stored", () => {
  test("the flow is not asked again: the outcome is kept and stored once writes work again", async () => {
    const storage = failingStorage();
    const agent = countingFlow();
    const c = await conversation({ flows: agent.flows, wrapDatabase: storage.wrap });
    agent.hold();
    expect(await c.post([userText("hello")])).toBe(200);
    await until(() => agent.calls.get("hello") === 1);
    // The disk fills while the agent thinks: its answer cannot be committed.
    storage.fail(true);
    agent.release();
    await until(() => storage.refused >= 10); // many probes and retries later ...
    expect(agent.calls.get("hello")).toBe(1); // ... the agent was asked once
    expect(c.sends(PSID)).toHaveLength(0);
    const during = await ready(c);
    expect(during.status).toBe(503);
    expect(during.body.checks.database).toContain("writes to the database fail since");
    expect(during.body.checks.database).toContain("SQLITE_FULL");
    // A bounded number of lines, not one per retry.
    expect(errorLines(c).length).toBeLessThanOrEqual(4);

    storage.fail(false);
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }))).toEqual(["re: hello"]);
    expect(agent.calls.get("hello")).toBe(1);
    await until(async () => (await ready(c)).status === 200);
    expect(c.logs.records().some((r) => r.level === "info" && r.msg.startsWith("writes to the database work again"))).toBe(true);
  });

  test("while writes fail no turn starts; a webhook that cannot be stored gets 503, and is processed once when Facebook sends it again", async () => {
    const storage = failingStorage();
    const agent = countingFlow();
    const c = await conversation({ flows: agent.flows, wrapDatabase: storage.wrap });
    expect(await c.post([userText("first")])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID });
    storage.fail(true);
    const again = userText("second", { psid: PSID_2 });
    expect(await c.post([again])).toBe(503); // not stored, so not acknowledged
    expect(agent.calls.has("second")).toBe(false);
    storage.fail(false);
    expect(await c.post([again])).toBe(200); // Facebook's redelivery
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID_2 }))).toEqual(["re: second"]);
    expect(agent.calls.get("second")).toBe(1);
  });

  test("an event that fails for a reason of its own, when even its failure cannot be recorded, is tried five times with pauses, then left", async () => {
    const storage = failingStorage();
    const agent = countingFlow();
    // The engine's pauses on a clock moved by hand: what happens between them is seen, not slept through.
    const timers = new ManualClock();
    const c = await conversation({ flows: agent.flows, wrapDatabase: storage.wrap, timers });
    storage.fail(
      (sql) => sql.startsWith("INSERT INTO outbox") || sql.includes('"attempts"'),
      () => Object.assign(new Error("CHECK constraint failed"), { code: "SQLITE_CONSTRAINT_CHECK" }),
    );
    expect(await c.post([userText("poison")])).toBe(200);
    // The old code ran it again at once when even recording the failure failed: thousands of
    // calls. Now: pauses of 0.4, 0.8, 1.6 and 3.2 s between the five tries, then it is left.
    for (const [tries, pause] of [
      [1, 400],
      [2, 800],
      [3, 1_600],
      [4, 3_200],
    ] as const) {
      await until(() => timers.timers.length === 1 && agent.calls.get("poison") === tries);
      expect(timers.timers[0]! - timers.now()).toBe(pause); // nothing runs before the pause ends
      await timers.advance(pause - 1);
      expect(agent.calls.get("poison")).toBe(tries);
      await timers.advance(1);
    }
    await until(() => agent.calls.get("poison") === 5);
    await until(async () => ((await c.app.engine.pendingByEndpoint()).get("support") ?? 0) === 0);
    // Left: out of the work list, and no pause armed that could bring it back.
    await until(() => timers.timers.length === 0);
    expect(agent.calls.get("poison")).toBe(5);
  });
});

describe("an unclear Send API answer while writes fail", () => {
  test("the echo Facebook could not deliver (our webhook answered 503) is no proof: the message is not sent again", async () => {
    const storage = failingStorage();
    const agent = countingFlow();
    // Echoes are known to arrive ("re: first" proves it); "re: second" gets no answer in time.
    const c = await conversation({
      flows: agent.flows,
      wrapDatabase: storage.wrap,
      echoes: true,
      graphSettings: "timeout_ms = 300",
      lanes: { echoGraceMs: 300 },
    });
    await c.post([userText("first")]);
    await c.graph.waitForSends(1, { recipientId: PSID });
    await c.graph.flushWebhooks();
    await until(async () => (await c.database.client.execute("SELECT 1 FROM outbox WHERE status = 'sent'")).rows.length === 1);
    c.graph.failNext({ timeoutMs: 2_000, deliver: true }, { when: (body) => body.message?.text === "re: second" });
    // The disk fills as Graph takes it: its echo is refused (503), for longer than the echo wait.
    c.graph.onSend((send) => {
      if (send.message?.text === "re: second") storage.fail(true);
    });
    await c.post([userText("second")]);
    await c.graph.waitForSends(2, { recipientId: PSID });
    await until(() => c.logs.records().some((r) => r.msg.startsWith("the Send API did not answer clearly")));
    await Bun.sleep(800);
    storage.fail(false);
    await until(async () => (await c.database.client.execute("SELECT status FROM outbox WHERE body LIKE '%re: second%'")).rows[0]?.status === "unconfirmed");
    expect(await c.post([userText("third")])).toBe(200);
    await c.graph.waitForSends(3, { recipientId: PSID });
    expect(c.graph.calls.filter((call) => (call.body as { message?: { text?: string } })?.message?.text === "re: second")).toHaveLength(1);
  });
});

describe("a person erased while their state events wait for the database", () => {
  test("the round that waited is not written back for them once writes work again", async () => {
    const storage = failingStorage();
    const agent = countingFlow();
    const c = await conversation({ flows: agent.flows, wrapDatabase: storage.wrap, ...WITH_KEYS });
    expect(await c.post([userText("hello")])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID });
    // A person answers from the Page Inbox; its transcript line cannot be written: the round waits.
    storage.fail((sql) => sql.startsWith("INSERT INTO transcripts"));
    expect(await c.post([echo(PAGE_ID, PSID, { appId: PAGE_INBOX_APP_ID, text: "a person here" })], { standby: true })).toBe(200);
    await until(() => c.app.health.failedWrites > 0);
    // The operator erases the person meanwhile (deletes still work).
    expect((await api(c, "DELETE", `/api/endpoints/support/users/${PSID}`)).status).toBe(200);
    storage.fail(false);
    // A later state event of someone else goes through the same rounds, after the one that waited.
    const later = { sender: { id: PSID_2 }, recipient: { id: PAGE_ID }, timestamp: Date.now(), read: { watermark: Date.now() } };
    expect(await c.post([later])).toBe(200);
    await until(async () => (await c.database.client.execute("SELECT status FROM inbox WHERE kind = 'read'")).rows[0]?.status === "done");
    await c.app.writes.drain();
    const left = await c.database.client.execute({ sql: "SELECT count(*) AS n FROM transcripts WHERE user_id = ?", args: [PSID] });
    expect(Number(left.rows[0]!.n)).toBe(0);
  });
});

describe("a hostile state event", () => {
  test("an echo whose app_id cannot be read does not hold back the other events of its round", async () => {
    const c = await conversation({ echoes: false });
    await c.post([userText("hello")]);
    const [sent] = await c.graph.waitForSends(1, { recipientId: PSID });
    const hostile = {
      sender: { id: PAGE_ID },
      recipient: { id: PSID },
      timestamp: Date.now(),
      message: { is_echo: true, mid: "m_hostile", app_id: { toString: 1 }, text: "x" },
    };
    const ours = {
      sender: { id: PAGE_ID },
      recipient: { id: PSID },
      timestamp: Date.now() + 1,
      message: { is_echo: true, mid: sent!.messageId, metadata: sent!.metadata, text: sent!.message.text },
    };
    expect(await c.post([hostile, ours])).toBe(200);
    await until(async () => (await c.database.client.execute("SELECT count(*) AS n FROM inbox WHERE kind = 'echo' AND status = 'pending'")).rows[0]!.n === 0);
    const status = await c.database.client.execute("SELECT status FROM outbox WHERE kind = 'message'");
    expect(status.rows[0]!.status).toBe("sent");
  });
});

describe("/readyz while writes fail", () => {
  test("says why without quoting a secret the driver's message may carry", async () => {
    const storage = failingStorage();
    const c = await conversation({ wrapDatabase: storage.wrap });
    // A remote driver's error can quote its URL and token.
    storage.fail(true, () => Object.assign(new Error(`server error at libsql://db.example?authToken=${PAGE_TOKEN}`), { code: "SERVER_ERROR" }));
    const during = await ready(c);
    expect(during.status).toBe(503);
    expect(during.body.checks.database).toContain("server error at libsql://db.example");
    expect(JSON.stringify(during.body)).not.toContain(PAGE_TOKEN);
    storage.fail(false);
    await until(async () => (await ready(c)).status === 200);
  });
});

describe("a message Graph took whose 'sent' mark cannot be stored", () => {
  test("only the mark is stored again, never the message", async () => {
    const storage = failingStorage();
    const agent = countingFlow();
    const c = await conversation({ flows: agent.flows, wrapDatabase: storage.wrap });
    // The disk fills the moment Graph takes the message: its "sent" mark fails.
    c.graph.onSend((send) => {
      if (send.message?.text === "re: hello") storage.fail(true);
    });
    expect(await c.post([userText("hello")])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID });
    await until(() => storage.refused >= 10);
    storage.fail(false);
    await until(async () => {
      const rows = await c.database.client.execute("SELECT status FROM outbox WHERE kind = 'message'");
      return rows.rows.length === 1 && rows.rows[0]!.status === "sent";
    });
    // Let the lane look again: nothing more is sent.
    expect(await c.post([userText("next")])).toBe(200);
    expect(messageTexts(await c.graph.waitForSends(2, { recipientId: PSID }))).toEqual(["re: hello", "re: next"]);
    expect(c.graph.calls.filter((call) => (call.body as { message?: { text?: string } })?.message?.text === "re: hello")).toHaveLength(1);
  });
});
