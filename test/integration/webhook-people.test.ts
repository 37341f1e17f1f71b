/**
 * Who an event is about, end to end (signed webhook → inbox → flow → reply lane → fake Graph API):
 * a person known only by a user_ref, a message the user unsent, an event that names nobody.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { PAGE_ID, PSID } from "../helpers/config.ts";
import { messageTexts, rows, startConversation, until, userText, type Conversation, type ConversationOptions } from "../helpers/conversation.ts";

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

const FLOW = 'kind = "script"\nmodule = "flows/agent.ts"';
const FILES = {
  "flows/agent.ts": `
export default async (input) => {
  if (input.source === "handover") return { outputs: [{ text: "handover " + input.handover.status }] };
  if (input.data.optin?.ref === "handover") return { outputs: [{ text: "passing you on" }], handover: {} };
  return { outputs: [{ text: "one:" + input.user_id + ":" + input.text }, { text: "two" }] };
};
`,
};

async function conversation(options: ConversationOptions = {}): Promise<Conversation> {
  const c = await startConversation({ files: FILES, flow: FLOW, ...options });
  open.push(c);
  return c;
}

/** Until every stored event is processed and every reply settled (sent, dropped or failed). */
async function settled(c: Conversation): Promise<void> {
  await until(async () => {
    const [pending] = await rows(
      c,
      "SELECT (SELECT count(*) FROM inbox WHERE status = 'pending') + (SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending'))",
    );
    return Number(pending![0]) === 0;
  });
}

const checkboxOptin = (userRef: string, ref = "checkout") => ({ recipient: { id: PAGE_ID }, timestamp: Date.now(), optin: { ref, user_ref: userRef } });

describe("a person known only by a user_ref (checkbox plugin)", () => {
  test("gets the first message, sent to { user_ref }; the rest is dropped with the reason; no typing_on or mark_seen", async () => {
    const c = await conversation({ messenger: { typing: true, markSeen: true } });
    expect(await c.post([checkboxOptin("ur_42")])).toBe(200);
    await settled(c);
    const sends = c.graph.sends({ recipientId: "ur_42" });
    expect(sends.map((s) => s.senderAction ?? s.message?.text)).toEqual(["one:user_ref:ur_42:"]);
    expect(c.graph.calls.some((call) => JSON.stringify(call.body ?? "").includes('"user_ref:ur_42"'))).toBe(false);
    // No profile to ask the User Profile API for: there is no PSID yet.
    expect(c.graph.calls.filter((call) => call.method === "GET" && decodeURIComponent(call.path).includes("user_ref"))).toEqual([]);
    const outbox = await rows(c, "SELECT kind, status, last_error FROM outbox WHERE user_id = 'user_ref:ur_42' ORDER BY id");
    expect(outbox.map((r) => [r[0], r[1]])).toEqual([
      ["message", "sent"],
      ["message", "dropped"],
    ]);
    expect(JSON.parse(String(outbox[1]![2])).reason).toContain("only one message may be sent to a user_ref");
  });

  test("a handover asked for such a person is dropped with the reason, and the flow hears it failed", async () => {
    const c = await conversation();
    expect(await c.post([checkboxOptin("ur_7", "handover")])).toBe(200);
    await until(async () => (await rows(c, "SELECT 1 FROM outbox WHERE user_id = 'user_ref:ur_7' AND kind = 'control' AND status = 'dropped'")).length > 0);
    // The flow hears of it through an event stored after the drop's own commit: nothing is pending in between.
    await until(async () => (await rows(c, "SELECT 1 FROM inbox WHERE user_id = 'user_ref:ur_7' AND kind = 'handover'")).length > 0);
    await settled(c);
    expect(c.graph.calls.filter((call) => call.path.endsWith("/pass_thread_control"))).toEqual([]);
    const [control] = await rows(c, "SELECT last_error FROM outbox WHERE user_id = 'user_ref:ur_7' AND kind = 'control'");
    expect(JSON.parse(String(control![0])).reason).toContain("needs their PSID");
    // The first message went; the flow's answer to the failed handover is a second one, dropped.
    expect(messageTexts(c.graph.sends({ recipientId: "ur_7" }))).toEqual(["passing you on"]);
    const outbox = await rows(c, "SELECT kind, status, body FROM outbox WHERE user_id = 'user_ref:ur_7' ORDER BY id");
    expect(outbox.map((r) => [r[0], r[1]])).toEqual([
      ["message", "sent"],
      ["control", "dropped"],
      ["message", "dropped"],
    ]);
    expect(JSON.parse(String(outbox[2]![2])).message.text).toBe("handover error");
  });
});

describe("a message the user unsent (is_deleted)", () => {
  test("does not run the flow and is recorded as done; the next message is answered", async () => {
    const c = await conversation();
    const now = Date.now();
    const unsent = { sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: now, message: { mid: "m_unsent_1", is_deleted: true } };
    expect(await c.post([unsent, userText("still here", { timestamp: now + 1 })])).toBe(200);
    await settled(c);
    expect(messageTexts(c.sends(PSID))).toEqual([`one:${PSID}:still here`, "two"]);
    const inbox = await rows(c, "SELECT kind, dedup_key, status FROM inbox ORDER BY timestamp");
    expect(inbox.map((r) => [r[0], r[1], r[2]])).toEqual([
      ["message", "unsent:m_unsent_1", "done"],
      ["message", expect.stringMatching(/^message:m_test_/), "done"],
    ]);
    expect(c.app.metrics.render()).toContain('messenger_inputs_total{endpoint="support",source="user"} 1');
  });
});

describe("an event that names nobody", () => {
  test("is stored as malformed and never runs the flow or sends to recipient ''", async () => {
    const c = await conversation();
    const nobody = { recipient: { id: PAGE_ID }, timestamp: Date.now(), message: { mid: "m_nobody_1", text: "who am I" } };
    expect(await c.post([nobody, userText("me")])).toBe(200);
    await settled(c);
    expect(c.graph.sends().map((s) => s.recipientId)).toEqual([PSID, PSID]);
    const inbox = await rows(c, "SELECT kind, user_id, status FROM inbox ORDER BY id");
    expect(inbox.map((r) => [r[0], r[1], r[2]])).toEqual([
      ["malformed", "", "done"],
      ["message", PSID, "done"],
    ]);
  });
});
