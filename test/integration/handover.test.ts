/**
 * Handover to people (docs/handover.md, issue 6) end to end, in process: our app on a loopback port, and
 * a fake Graph API that owns the threads, sends echoes of our messages and the handover events to
 * our webhook, and plays the Page Inbox (a person takes over, answers, marks the conversation Done).
 *
 * The fake is set to refuse every send into a thread our app does not own, so a message sent
 * while a person has the thread would be lost and its test would fail.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { PAGE_ID, PSID, PSID_2 } from "../helpers/config.ts";
import { messageTexts, rows, startConversation, until, userText, type Conversation, type ConversationOptions } from "../helpers/conversation.ts";
import { WITH_KEYS, api } from "../helpers/admin.ts";
import { PAGE_INBOX_APP_ID } from "../../src/handover/threads.ts";
import { echo } from "../../src/simulator/webhook-driver.ts";

const FLOW = 'kind = "script"\nmodule = "flows/agent.ts"';
const FILES = {
  "flows/agent.ts": `
export default async (input) => {
  if (input.source === "handover") {
    const h = input.handover;
    // After a failed handover the flow asks again: the server must not pass again (no loop).
    return { outputs: [{ text: "back:" + h.status + ":" + (h.metadata ?? "") + ":" + (h.owner_app_id ?? "") }], ...(h.status === "error" ? { handover: {} } : {}) };
  }
  if (input.text === "human") return { outputs: [{ text: "connecting" }], handover: { metadata: "refund question" } };
  if (input.text === "other app") return { handover: { target: "555000111", metadata: "to another app" } };
  if (input.text === "three") return { outputs: [{ text: "one" }, { text: "two" }, { text: "three" }] };
  if (input.text === "slow") {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return { outputs: [{ text: "slow done" }] };
  }
  return { outputs: [{ text: "bot:" + input.text + (input.handover ? "+" + input.handover.status : "") }] };
};
`,
};
/** A send into a thread owned by another app fails, as Meta's would. */
const OWNER_ERROR = { threadOwnerError: { code: 10, subcode: 2018300, message: "(#10) This app is not the owner of the thread" } };

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function conversation(handoverToml = "", options: ConversationOptions = {}): Promise<Conversation> {
  const c = await startConversation({
    files: FILES,
    flow: FLOW,
    echoes: true,
    ...WITH_KEYS,
    endpointToml: `[endpoints.handover]\n${handoverToml}`,
    ...options,
    fakeGraph: { ...OWNER_ERROR, ...options.fakeGraph },
  });
  open.push(c);
  return c;
}

const threadPath = (psid = PSID) => `/api/endpoints/support/users/${psid}/thread`;
const thread = async (c: Conversation, psid = PSID) => (await api(c, "GET", threadPath(psid))).body;
const callsTo = (c: Conversation, edge: string) => c.graph.calls.filter((call) => call.path.endsWith(`/${edge}`));
const texts = (c: Conversation, psid = PSID) => messageTexts(c.sends(psid));

/** The user writes and the bot's answer (the n-th message to the user) arrives. */
async function say(c: Conversation, text: string, n: number): Promise<void> {
  expect(await c.post([userText(text)])).toBe(200);
  await until(() => texts(c).length >= n);
}

/** No Send API call was refused (none went into a thread another app owned). */
function noRefusedSends(c: Conversation): void {
  // (status 0: not answered yet)
  const refused = c.graph.calls.filter((call) => call.path.endsWith("/messages") && call.status !== 200 && call.status !== 0);
  expect(refused.map((call) => JSON.stringify(call.response))).toEqual([]);
}

/** The inbox rows of the user are all processed. */
async function inboxDone(c: Conversation): Promise<void> {
  await until(async () => (await rows(c, "SELECT count(*) AS n FROM inbox WHERE status = 'pending'"))[0]!.n === 0);
}

describe("handover round trip", () => {
  test("bot → Page Inbox → a person answers → Done → the bot resumes with the status; messages queued meanwhile wait", async () => {
    const c = await conversation();
    await say(c, "hello", 1);
    expect(await c.post([userText("human")])).toBe(200);
    const [pass] = await c.graph.waitForCalls((call) => call.path.endsWith("/pass_thread_control"));
    // The flow's outputs go first, then the thread leaves.
    const connecting = c.sends(PSID).find((s) => s.message?.text === "connecting")!;
    expect(connecting.seq).toBeLessThan(pass!.seq);
    expect(pass!.body).toMatchObject({ recipient: { id: PSID }, target_app_id: PAGE_INBOX_APP_ID, metadata: "refund question" });
    expect(c.graph.threadOwner(PAGE_ID, PSID)).toBe(PAGE_INBOX_APP_ID);
    await until(async () => (await thread(c)).state === "handover");
    const during = await thread(c);
    expect(during).toMatchObject({ state: "handover", owner_app_id: PAGE_INBOX_APP_ID, metadata: "refund question", last_error: null });
    expect(Date.parse(during.timeout_at) - Date.parse(during.since)).toBe(60 * 60_000); // default timeout_minutes

    // While the Page Inbox has the thread: the user writes (standby), a person answers (echo),
    // and the operator queues a notification. The flow does not run, nothing is sent.
    c.graph.userMessage(PAGE_ID, PSID, "are you there?");
    c.graph.inboxReply(PAGE_ID, PSID, "Hi, this is Anna from support");
    expect((await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: PSID, text: "your refund is on its way" } })).status).toBe(202);
    await c.graph.flushWebhooks();
    await inboxDone(c);
    expect((await thread(c)).waiting_messages).toBe(1);
    expect(texts(c)).toEqual(["bot:hello", "connecting"]);

    // Anna marks the conversation Done: control comes back, the held message goes, then the flow's turn.
    c.graph.inboxDone(PAGE_ID, PSID, "resolved by Anna");
    await until(() => texts(c).length >= 4);
    expect(texts(c)).toEqual(["bot:hello", "connecting", "your refund is on its way", `back:completed:resolved by Anna:${PAGE_INBOX_APP_ID}`]);
    noRefusedSends(c);
    await until(async () => (await thread(c)).waiting_messages === 0); // the last send is recorded just after it arrives
    expect(await thread(c)).toMatchObject({ state: "bot", owner_app_id: null });

    // The transcript has the user's message the flow never saw, the person's answer and the turn.
    const lines = await rows(c, "SELECT direction, source, text FROM transcripts WHERE user_id = ? ORDER BY id", [PSID]);
    const bySource = lines.map((l) => `${l.direction}/${l.source}/${l.text ?? ""}`);
    expect(bySource).toContain("in/standby/are you there?");
    expect(bySource).toContain("out/human/Hi, this is Anna from support");
    expect(bySource).toContain("out/handover/");
    expect(bySource).toContain("in/handover/");
    // And the bot answers the user again.
    await say(c, "thanks", 5);
    expect(texts(c)[4]).toBe("bot:thanks");
  });

  test("a person taking the thread in the Page Inbox holds what the bot had still to send, until Done", async () => {
    const c = await conversation("", { messenger: { delayMs: 400 } });
    expect(await c.post([userText("three")])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID });
    c.graph.inboxTake(PAGE_ID, PSID, "I'll take this one");
    await until(async () => (await thread(c)).state === "handover");
    expect(await thread(c)).toMatchObject({ owner_app_id: PAGE_INBOX_APP_ID, metadata: "I'll take this one" });
    expect((await thread(c)).waiting_messages).toBeGreaterThanOrEqual(1);
    // The lane stops with "two" and "three" still queued: without the hold it would have sent them
    // (and been refused) before going idle.
    await until(() => c.app.replies.activeLanes === 0);
    expect(texts(c)).toEqual(["one"]);
    expect((await thread(c)).waiting_messages).toBe(2);
    c.graph.inboxDone(PAGE_ID, PSID);
    await until(() => texts(c).length >= 4, 15_000);
    expect(texts(c)).toEqual(["one", "two", "three", `back:completed:I'll take this one:${PAGE_INBOX_APP_ID}`]);
    noRefusedSends(c);
  });

  test("what the user says after the flow asked for a handover is for the people, not the flow", async () => {
    const c = await conversation("", { messenger: { delayMs: 300 } });
    const t = Date.now();
    expect(await c.post([userText("human", { timestamp: t }), userText("hello? anyone?", { timestamp: t + 1 })])).toBe(200);
    await c.graph.waitForCalls((call) => call.path.endsWith("/pass_thread_control"));
    await inboxDone(c);
    c.graph.inboxDone(PAGE_ID, PSID);
    await until(() => texts(c).length >= 2);
    await inboxDone(c);
    await c.app.writes.drain();
    expect(texts(c)).toEqual(["connecting", `back:completed:refund question:${PAGE_INBOX_APP_ID}`]);
    const held = await rows(c, "SELECT text FROM transcripts WHERE source = 'held'");
    expect(held.map((r) => r.text)).toEqual(["hello? anyone?"]);
  });

  test("a person taking the thread while a slow turn runs stops the queued messages at once", async () => {
    const c = await conversation("", { messenger: { delayMs: 400 } });
    const t = Date.now();
    expect(await c.post([userText("three", { timestamp: t }), userText("slow", { timestamp: t + 1 })])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID });
    c.graph.inboxTake(PAGE_ID, PSID);
    // Applied as it arrives, not after the slow turn (1.5 s) ends.
    await until(async () => (await thread(c)).state === "handover", 1_000);
    // The slow turn ends and its reply joins the others; the lane holds them all (idle, nothing sent).
    await inboxDone(c);
    await until(async () => c.app.replies.activeLanes === 0 && (await thread(c)).waiting_messages === 3);
    expect(texts(c)).toEqual(["one"]);
    c.graph.inboxDone(PAGE_ID, PSID);
    await until(() => texts(c).length >= 5, 15_000);
    expect(texts(c)).toEqual(["one", "two", "three", "slow done", `back:completed::${PAGE_INBOX_APP_ID}`]);
    noRefusedSends(c);
  });

  test("a person's last message arriving with or after the Done does not hand the thread over again", async () => {
    const c = await conversation();
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    const t = Date.now();
    const done = {
      sender: { id: PSID },
      recipient: { id: PAGE_ID },
      timestamp: t + 10,
      pass_thread_control: { previous_owner_app_id: PAGE_INBOX_APP_ID, new_owner_app_id: "987654321098765", metadata: "done" },
    };
    c.graph.setThreadOwner(PAGE_ID, PSID, "987654321098765");
    expect(await c.post([done])).toBe(200);
    expect(await c.post([echo(PAGE_ID, PSID, { appId: PAGE_INBOX_APP_ID, text: "bye!", timestamp: t })], { standby: true })).toBe(200);
    await until(() => texts(c).length >= 2);
    await inboxDone(c);
    await c.app.writes.drain();
    expect(texts(c)[1]).toBe(`back:completed:done:${PAGE_INBOX_APP_ID}`);
    expect((await thread(c)).state).toBe("bot");
    await until(async () => (await thread(c)).waiting_messages === 0);
    await say(c, "hello", 3);
  });

  test("a user message in messaging[] while we think people have the thread: it is ours again, and the flow hears so", async () => {
    const c = await conversation();
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    c.graph.setThreadOwner(PAGE_ID, PSID, "987654321098765"); // Meta gave it back without a word
    // Written a while after the handover (within 2 s of our own pass, Meta routed by the owner before it).
    expect(await c.post([userText("hi again", { timestamp: Date.now() + 3_000 })])).toBe(200);
    await until(() => texts(c).length >= 2);
    expect(texts(c)[1]).toBe("bot:hi again+completed");
    expect((await thread(c)).state).toBe("bot");
  });

  test("a message the user sent before our pass, arriving after it, does not give the thread back", async () => {
    const c = await conversation();
    const before = Date.now();
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    expect(await c.post([userText("sent before the pass", { timestamp: before })])).toBe(200);
    await inboxDone(c);
    expect(await thread(c)).toMatchObject({ state: "handover", owner_app_id: PAGE_INBOX_APP_ID });
    expect(texts(c)).toEqual(["connecting"]);
    noRefusedSends(c);
  });

  test("a standby message while we think we own the thread: nothing is sent into it until it is ours again", async () => {
    const c = await conversation();
    await say(c, "hello", 1);
    c.graph.setThreadOwner(PAGE_ID, PSID, "555000111"); // another app has it, and we were not told
    c.graph.userMessage(PAGE_ID, PSID, "to the other app");
    await until(async () => (await thread(c)).state === "handover");
    expect(await thread(c)).toMatchObject({ owner_app_id: null, timeout_at: null }); // whose thread it is, we do not know: no take
    expect((await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: PSID, text: "later" } })).status).toBe(202);
    await inboxDone(c);
    expect(texts(c)).toEqual(["bot:hello"]);
    c.graph.setThreadOwner(PAGE_ID, PSID, "987654321098765");
    c.graph.userMessage(PAGE_ID, PSID, "back to you");
    await until(() => texts(c).length >= 3);
    expect(texts(c)).toEqual(["bot:hello", "later", "bot:back to you+completed"]);
    noRefusedSends(c);
  });

  test("an inject that asks for a handover while people have the thread does not pass it again after Done", async () => {
    const c = await conversation();
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    expect((await api(c, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "human" } })).status).toBe(202);
    await inboxDone(c);
    c.graph.inboxDone(PAGE_ID, PSID);
    await until(() => texts(c).length >= 3);
    await inboxDone(c);
    await c.app.writes.drain();
    expect(texts(c)).toEqual(["connecting", "connecting", `back:completed:refund question:${PAGE_INBOX_APP_ID}`]);
    expect(callsTo(c, "pass_thread_control")).toHaveLength(1);
    expect(c.graph.threadOwner(PAGE_ID, PSID)).toBe("987654321098765");
  });

  test("a flow may hand over to another app by id", async () => {
    const c = await conversation();
    expect(await c.post([userText("other app")])).toBe(200);
    const [pass] = await c.graph.waitForCalls((call) => call.path.endsWith("/pass_thread_control"));
    expect(pass!.body).toMatchObject({ target_app_id: "555000111", metadata: "to another app" });
    await until(async () => (await thread(c)).state === "handover");
    expect((await thread(c)).owner_app_id).toBe("555000111");
  });
});

describe("timeout", () => {
  test("no reply from a person within timeout_minutes: the bot takes the thread back and the flow runs with status timeout", async () => {
    const c = await conversation("timeout_minutes = 0.005"); // 300 ms
    await say(c, "human", 1);
    await c.graph.waitForCalls((call) => call.path.endsWith("/take_thread_control"));
    await until(() => texts(c).length >= 2);
    expect(texts(c)).toEqual(["connecting", `back:timeout:refund question:${PAGE_INBOX_APP_ID}`]);
    expect(c.graph.threadOwner(PAGE_ID, PSID)).not.toBe(PAGE_INBOX_APP_ID);
    expect((await thread(c)).state).toBe("bot");
    expect(callsTo(c, "take_thread_control")).toHaveLength(1);
    noRefusedSends(c);
  });

  test("a person's reply starts the timeout again", async () => {
    const c = await conversation("timeout_minutes = 0.01"); // 600 ms
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    const before = await thread(c);
    expect(Date.parse(before.timeout_at)).toBe(Date.parse(before.since) + 600);
    await Bun.sleep(300);
    const repliedAt = Date.now();
    expect(await c.post([echo(PAGE_ID, PSID, { appId: PAGE_INBOX_APP_ID, text: "looking into it", timestamp: repliedAt })], { standby: true })).toBe(200);
    await until(async () => (await thread(c)).last_human_at !== null);
    expect(Date.parse((await thread(c)).timeout_at)).toBe(repliedAt + 600);
    const [take] = await c.graph.waitForCalls((call) => call.path.endsWith("/take_thread_control"));
    expect(take!.time).toBeGreaterThanOrEqual(repliedAt + 600);
    await until(() => texts(c).length >= 2);
    expect(callsTo(c, "take_thread_control")).toHaveLength(1);
  });

  test("timeout_minutes = 0 never takes the thread back", async () => {
    const c = await conversation("timeout_minutes = 0");
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    // No deadline: timeout_at is what the timer acts on (test/unit/handover/threads.test.ts shows none is armed).
    expect((await thread(c)).timeout_at).toBeNull();
    expect(callsTo(c, "take_thread_control")).toHaveLength(0);
    expect((await thread(c)).state).toBe("handover");
  });

  test("a take that fails for a passing reason is tried again later, also after a restart", async () => {
    const first = await startConversation({
      files: FILES,
      flow: FLOW,
      echoes: true,
      ...WITH_KEYS,
      endpointToml: "[endpoints.handover]\ntimeout_minutes = 0.005",
      fakeGraph: OWNER_ERROR,
    });
    first.graph.failNext(
      { code: 2, status: 500, message: "An unexpected error has occurred. Please retry your request later." },
      { edge: "take_thread_control" },
    );
    expect(await first.post([userText("human")])).toBe(200);
    await first.graph.waitForCalls((call) => call.path.endsWith("/take_thread_control"));
    await until(async () => (await thread(first)).last_error !== null);
    const failedAt = first.graph.calls.find((call) => call.path.endsWith("/take_thread_control"))!.time;
    await first.close({ keepDir: true, keepGraph: true });
    const c = await startConversation({
      files: FILES,
      flow: FLOW,
      echoes: true,
      ...WITH_KEYS,
      endpointToml: "[endpoints.handover]\ntimeout_minutes = 0.005",
      dir: first.dir,
      graph: first.graph,
    });
    open.push(c);
    const state = await thread(c);
    expect(state).toMatchObject({ state: "handover" });
    expect(state.last_error).toContain("take_thread_control");
    // Armed again for a minute after the failure (not forgotten because the last try failed).
    expect(Date.parse(state.timeout_at)).toBeGreaterThanOrEqual(failedAt + 59_000);
    expect(Date.parse(state.timeout_at)).toBeLessThanOrEqual(Date.now() + 61_000);
  });
});

describe("a person answering while the bot owns the thread", () => {
  test("pauses the bot for that user until the quiet time has passed", async () => {
    const c = await conversation("pause_minutes = 0.01"); // 600 ms
    await say(c, "hello", 1);
    c.graph.inboxReply(PAGE_ID, PSID, "A person here, let me help");
    await until(async () => (await thread(c)).state === "paused");
    const paused = await thread(c);
    expect(Date.parse(paused.paused_until) - Date.parse(paused.last_human_at)).toBe(600);
    // The user answers the person: the bot stays silent, the message is in the transcript.
    expect(await c.post([userText("thanks person")])).toBe(200);
    await inboxDone(c);
    // Another user is not paused.
    expect(await c.post([userText("hi", { psid: PSID_2 })])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID_2 });
    await until(async () => (await thread(c)).state === "bot", 5_000);
    await say(c, "bot again?", 2);
    expect(texts(c)).toEqual(["bot:hello", "bot:bot again?"]);
    const held = await rows(c, "SELECT text FROM transcripts WHERE user_id = ? AND source = 'held'", [PSID]);
    expect(held.map((r) => r.text)).toEqual(["thanks person"]);
  });

  test("pause_on_human_reply = false leaves the bot answering", async () => {
    const c = await conversation("pause_on_human_reply = false");
    await say(c, "hello", 1);
    c.graph.inboxReply(PAGE_ID, PSID, "A person here");
    await c.graph.flushWebhooks();
    await inboxDone(c);
    expect((await thread(c)).state).toBe("bot");
    await say(c, "still there?", 2);
  });

  test("our own echoes never pause the bot", async () => {
    const c = await conversation("pause_minutes = 30");
    await say(c, "one", 1);
    await say(c, "two", 2);
    await c.graph.flushWebhooks();
    await inboxDone(c);
    expect((await thread(c)).state).toBe("bot");
  });
});

describe("request_thread_control", () => {
  test("is honoured: the thread passes to the app that asked", async () => {
    const c = await conversation();
    await say(c, "hello", 1);
    c.graph.inboxRequest(PAGE_ID, PSID, "a person wants it");
    const [pass] = await c.graph.waitForCalls((call) => call.path.endsWith("/pass_thread_control"));
    expect(pass!.body).toMatchObject({ target_app_id: PAGE_INBOX_APP_ID, metadata: "a person wants it" });
    await until(async () => (await thread(c)).state === "handover");
    // The user's next message goes to the Page Inbox (standby): no flow, only the transcript.
    c.graph.userMessage(PAGE_ID, PSID, "hello again");
    await c.graph.flushWebhooks();
    await inboxDone(c);
    expect(texts(c)).toEqual(["bot:hello"]);
    expect(await rows(c, "SELECT count(*) AS n FROM outbox WHERE kind = 'message'")).toEqual([expect.objectContaining({ n: 1 })]);
    const standby = await rows(c, "SELECT text FROM transcripts WHERE source = 'standby'");
    expect(standby.map((r) => r.text)).toEqual(["hello again"]);
  });

  test("honour_requests = false: not passed", async () => {
    const c = await conversation("honour_requests = false");
    await say(c, "hello", 1);
    c.graph.inboxRequest(PAGE_ID, PSID);
    await c.graph.flushWebhooks();
    await inboxDone(c);
    expect(callsTo(c, "pass_thread_control")).toHaveLength(0);
    expect((await thread(c)).state).toBe("bot");
    await say(c, "still me", 2);
  });
});

describe("errors and Conversation Routing", () => {
  test("a Page on Conversation Routing refuses the take: reported once, the state stays, nothing loops", async () => {
    const c = await conversation("timeout_minutes = 0.002", {
      fakeGraph: {
        pages: [{ id: PAGE_ID, token: "EAAGpagetokenSECRET0001", appSecret: "test_app_secret_0123", appId: "987654321098765", conversationRouting: true }],
      },
    }); // 120 ms
    await say(c, "human", 1);
    await c.graph.waitForCalls((call) => call.path.endsWith("/take_thread_control"));
    await until(async () => (await thread(c)).last_error !== null);
    const state = await thread(c);
    expect(state.state).toBe("handover");
    expect(state.last_error).toContain("Handover Protocol APIs disabled for this page.");
    expect(state.timeout_at).toBeNull(); // no timer acts on it any more
    await until(() => c.logs.records().some((l) => l.level === "error" && l.msg.includes("Conversation Routing"))); // logged with how to fix
    // Nothing is armed to try again (test/unit/handover/threads.test.ts): still the one call.
    expect(callsTo(c, "take_thread_control")).toHaveLength(1);
    // The operator's take is refused the same way, and says so.
    const take = await api(c, "POST", threadPath(), { body: { action: "take" } });
    expect(take.status).toBe(502);
    expect(take.body.message).toContain("Handover Protocol APIs disabled");
    expect((await thread(c)).state).toBe("handover");
    // Pass still works on such Pages: Done in the Page Inbox brings the thread back.
    c.graph.inboxDone(PAGE_ID, PSID);
    await until(() => texts(c).length >= 2);
    expect(texts(c)[1]).toStartWith("back:completed:");
    expect(await thread(c)).toMatchObject({ state: "bot", last_error: null });
  });

  test("a refused pass: the bot keeps the thread, the flow hears status error once, and its new handover is not tried again", async () => {
    const c = await conversation();
    c.graph.failNext({ code: 100, message: "(#100) Invalid app id for pass thread control" }, { edge: "pass_thread_control" });
    await say(c, "human", 1);
    await until(() => texts(c).length >= 2);
    expect(texts(c)[1]).toBe(`back:error:refund question:${PAGE_INBOX_APP_ID}`);
    await inboxDone(c);
    await c.app.writes.drain();
    expect(callsTo(c, "pass_thread_control")).toHaveLength(1);
    const controls = await rows(c, "SELECT status FROM outbox WHERE kind = 'control'");
    expect(controls.map((r) => r.status)).toEqual(["dropped"]);
    const state = await thread(c);
    expect(state.state).toBe("bot");
    expect(state.last_error).toContain("Invalid app id");
    await say(c, "hello", 3);
  });

  test("a pass that fails for a passing reason is tried again, in order", async () => {
    const c = await conversation();
    c.graph.failNext({ code: 2, status: 500, message: "An unexpected error has occurred. Please retry your request later." }, { edge: "pass_thread_control" });
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    const passes = callsTo(c, "pass_thread_control");
    expect(passes.map((call) => call.status)).toEqual([500, 200]);
    // The output before the handover went first; the handover was tried again before anything else.
    expect(c.sends(PSID).find((s) => s.message?.text === "connecting")!.seq).toBeLessThan(passes[0]!.seq);
  });
});

describe("ordering, restarts and races", () => {
  test("a late Done after the bot took the thread back, then an older take (out of order): the thread stays with the bot", async () => {
    const c = await conversation();
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    expect((await api(c, "POST", threadPath(), { body: { action: "take" } })).body.state).toBe("bot");
    const t = Date.now() + 3_000;
    const done = {
      sender: { id: PSID },
      recipient: { id: PAGE_ID },
      timestamp: t + 10,
      pass_thread_control: { previous_owner_app_id: PAGE_INBOX_APP_ID, new_owner_app_id: "987654321098765" },
    };
    const olderTake = {
      sender: { id: PSID },
      recipient: { id: PAGE_ID },
      timestamp: t,
      take_thread_control: { previous_owner_app_id: "987654321098765", new_owner_app_id: PAGE_INBOX_APP_ID },
    };
    expect(await c.post([done])).toBe(200);
    expect(await c.post([olderTake])).toBe(200);
    await inboxDone(c);
    expect((await thread(c)).state).toBe("bot");
    await say(c, "still the bot", 2);
  });

  test("an inject asking for a handover while the flow's own handover waits in the lane: one pass", async () => {
    const c = await conversation("", { messenger: { delayMs: 300 } });
    expect(await c.post([userText("human")])).toBe(200);
    await until(async () => (await rows(c, "SELECT count(*) AS n FROM outbox WHERE kind = 'control'"))[0]!.n === 1);
    expect((await api(c, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "human" } })).status).toBe(202);
    await c.graph.waitForCalls((call) => call.path.endsWith("/pass_thread_control"));
    await until(async () => (await thread(c)).state === "handover");
    await inboxDone(c);
    c.graph.inboxDone(PAGE_ID, PSID);
    await until(() => texts(c).at(-1)?.startsWith("back:") === true, 10_000);
    await inboxDone(c);
    await c.app.writes.drain();
    expect(callsTo(c, "pass_thread_control")).toHaveLength(1);
    expect((await thread(c)).state).toBe("bot");
    noRefusedSends(c);
  });

  test("the completed turn survives a stop that comes before it ran", async () => {
    const first = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, fakeGraph: OWNER_ERROR });
    expect(await first.post([userText("human")])).toBe(200);
    await until(async () => (await thread(first)).state === "handover");
    // A slow inject holds the user's lane; Done arrives meanwhile; the server stops before the turn.
    expect((await api(first, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "slow" } })).status).toBe(202);
    await until(async () => (await rows(first, "SELECT count(*) AS n FROM inbox WHERE kind = 'inject' AND status = 'pending'"))[0]!.n === 1);
    first.graph.inboxDone(PAGE_ID, PSID);
    await until(async () => (await rows(first, "SELECT count(*) AS n FROM inbox WHERE kind = 'handover'"))[0]!.n === 1);
    await first.close({ keepDir: true, keepGraph: true });
    const c = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, dir: first.dir, graph: first.graph });
    open.push(c);
    await until(() => texts(c).some((t) => t.startsWith("back:completed")), 10_000);
    await inboxDone(c);
    expect(texts(c).filter((t) => t.startsWith("back:"))).toEqual([`back:completed:refund question:${PAGE_INBOX_APP_ID}`]);
  });

  test("a crash after Meta passed the thread and before we recorded it: the restart asks Meta and does not pass again", async () => {
    const first = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, fakeGraph: OWNER_ERROR });
    expect(await first.post([userText("human")])).toBe(200);
    await until(async () => (await thread(first)).state === "handover");
    await first.close({ keepDir: true, keepGraph: true });
    // As if the process had died between Meta's answer and our commit.
    const { openDatabase } = await import("../../src/db/client.ts");
    const db = await openDatabase(`file:${first.dir.path}/data/conversation.db`);
    await db.client.execute("UPDATE outbox SET status = 'sending' WHERE kind = 'control'");
    await db.client.execute("DELETE FROM threads");
    db.close();
    const c = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, dir: first.dir, graph: first.graph, lanes: { echoGraceMs: 50 } });
    open.push(c);
    await c.graph.waitForCalls((call) => call.path.endsWith("/thread_owner"));
    await until(async () => (await thread(c)).state === "handover");
    expect(callsTo(c, "pass_thread_control")).toHaveLength(1);
    expect(await rows(c, "SELECT status FROM outbox WHERE kind = 'control'")).toEqual([expect.objectContaining({ status: "sent" })]);
  });

  test("the operator's take failing for a passing reason keeps the timeout and says to try again", async () => {
    const c = await conversation("timeout_minutes = 10");
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    c.graph.failNext({ code: 2, status: 500, message: "An unexpected error has occurred. Please retry your request later." }, { edge: "take_thread_control" });
    const take = await api(c, "POST", threadPath(), { body: { action: "take" } });
    expect(take.status).toBe(502);
    expect(take.body.message).toContain("try again");
    const state = await thread(c);
    expect(state.state).toBe("handover");
    expect(Date.parse(state.timeout_at)).toBe(Date.parse(state.since) + 600_000);
    expect((await api(c, "POST", threadPath(), { body: { action: "take" } })).status).toBe(200);
  });
});

describe("more ordering, a refused token, and restarts", () => {
  test("take, Done and take again in one POST: the last take stands, and the flow is not told 'completed' into a thread it lost", async () => {
    const c = await conversation();
    await say(c, "hello", 1);
    const t = Date.now() + 3_000;
    const at = (ms: number, body: Record<string, unknown>) => ({ sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: t + ms, ...body });
    c.graph.setThreadOwner(PAGE_ID, PSID, PAGE_INBOX_APP_ID);
    expect(
      await c.post([
        at(0, { take_thread_control: { previous_owner_app_id: "987654321098765", new_owner_app_id: PAGE_INBOX_APP_ID } }),
        at(10, { pass_thread_control: { previous_owner_app_id: PAGE_INBOX_APP_ID, new_owner_app_id: "987654321098765" } }),
        at(20, { take_thread_control: { previous_owner_app_id: "987654321098765", new_owner_app_id: PAGE_INBOX_APP_ID } }),
      ]),
    ).toBe(200);
    await inboxDone(c);
    await c.app.writes.drain();
    expect(await thread(c)).toMatchObject({ state: "handover", owner_app_id: PAGE_INBOX_APP_ID });
    expect(Date.parse((await thread(c)).since)).toBe(t + 20);
    expect(texts(c)).toEqual(["bot:hello"]);
    noRefusedSends(c);
  });

  test("a take refused for the token (190) pauses the Page and is tried again, not given up", async () => {
    const c = await conversation("timeout_minutes = 0.005");
    c.graph.failNext({ code: 190, subcode: 463, message: "Error validating access token: Session has expired" }, { edge: "take_thread_control" });
    await say(c, "human", 1);
    await c.graph.waitForCalls((call) => call.path.endsWith("/take_thread_control"));
    await until(async () => (await thread(c)).last_error !== null);
    const state = await thread(c);
    expect(state.state).toBe("handover");
    expect(state.timeout_at).not.toBeNull(); // a retry is armed
    const ready = await fetch(`${c.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain(`Page ${PAGE_ID}`);
  });

  test("after a restart, events stamped before the last change are still stale", async () => {
    const first = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, fakeGraph: OWNER_ERROR });
    const beforePass = Date.now();
    expect(await first.post([userText("human", { timestamp: beforePass })])).toBe(200);
    await until(async () => (await thread(first)).state === "handover");
    await first.close({ keepDir: true, keepGraph: true });
    const c = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, dir: first.dir, graph: first.graph });
    open.push(c);
    // (A) a message sent just before the pass, redelivered after the restart: still the people's thread
    expect(await c.post([userText("sent before the pass", { timestamp: beforePass + 1 })])).toBe(200);
    await inboxDone(c);
    expect(await thread(c)).toMatchObject({ state: "handover", owner_app_id: PAGE_INBOX_APP_ID });
    // Done; then, after another restart, a person's answer stamped before the Done
    c.graph.inboxDone(PAGE_ID, PSID);
    await until(() => texts(c).length >= 2);
    const doneAt = Date.parse((await thread(c)).since);
    await c.close({ keepDir: true, keepGraph: true });
    open.splice(open.indexOf(c), 1);
    const d = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, dir: first.dir, graph: first.graph });
    open.push(d);
    expect(await d.post([echo(PAGE_ID, PSID, { appId: PAGE_INBOX_APP_ID, text: "bye", timestamp: doneAt - 1 })], { standby: true })).toBe(200);
    await inboxDone(d);
    await d.app.writes.drain();
    expect((await thread(d)).state).toBe("bot");
  });
});

describe("state across restarts", () => {
  test("a handed-over thread stays handed over after a restart, and Done still brings it back", async () => {
    const first = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, fakeGraph: OWNER_ERROR });
    expect(await first.post([userText("human")])).toBe(200);
    await until(async () => (await rows(first, "SELECT state FROM threads"))[0]?.state === "handover");
    await first.close({ keepDir: true, keepGraph: true });
    const c = await startConversation({ files: FILES, flow: FLOW, echoes: true, ...WITH_KEYS, dir: first.dir, graph: first.graph });
    open.push(c);
    expect((await thread(c)).state).toBe("handover");
    c.graph.userMessage(PAGE_ID, PSID, "still waiting");
    expect((await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: PSID, text: "held over the restart" } })).status).toBe(202);
    await c.graph.flushWebhooks();
    await inboxDone(c);
    expect(texts(c)).toEqual(["connecting"]);
    c.graph.inboxDone(PAGE_ID, PSID);
    await until(() => texts(c).length >= 3);
    // Done carried no metadata: the flow gets the one it handed over with.
    expect(texts(c)).toEqual(["connecting", "held over the restart", `back:completed:refund question:${PAGE_INBOX_APP_ID}`]);
    noRefusedSends(c);
  });
});

describe("admin API: a user's thread", () => {
  test("see, pass, take, pause and resume; wrong requests are refused with a reason", async () => {
    const c = await conversation();
    expect((await api(c, "GET", threadPath())).status).toBe(404); // never wrote
    await say(c, "hello", 1);
    await until(async () => (await thread(c)).waiting_messages === 0);
    expect(await thread(c)).toMatchObject({ endpoint_id: "support", page_id: PAGE_ID, user_id: PSID, state: "bot", owner_app_id: null, timeout_at: null });
    // An empty ?page_id= names no Page: the user's own Page, as without it.
    expect((await api(c, "GET", `${threadPath()}?page_id=`)).body).toMatchObject({ page_id: PAGE_ID, state: "bot" });

    const passed = await api(c, "POST", threadPath(), { body: { action: "pass", metadata: "from the operator" } });
    expect(passed.status).toBe(200);
    expect(passed.body).toMatchObject({ state: "handover", owner_app_id: PAGE_INBOX_APP_ID, metadata: "from the operator" });
    expect(c.graph.threadOwner(PAGE_ID, PSID)).toBe(PAGE_INBOX_APP_ID);
    expect((await api(c, "POST", threadPath(), { body: { action: "pass" } })).status).toBe(409);
    expect((await api(c, "POST", threadPath(), { body: { action: "pause", minutes: 5 } })).status).toBe(409);
    expect((await api(c, "POST", threadPath(), { body: { action: "resume" } })).status).toBe(409);

    const taken = await api(c, "POST", threadPath(), { body: { action: "take" } });
    expect(taken.status).toBe(200);
    expect(taken.body.state).toBe("bot");
    expect(c.graph.threadOwner(PAGE_ID, PSID)).not.toBe(PAGE_INBOX_APP_ID);

    const paused = await api(c, "POST", threadPath(), { body: { action: "pause", minutes: 5 } });
    expect(paused.status).toBe(200);
    expect(paused.body.state).toBe("paused");
    expect(await c.post([userText("during the pause")])).toBe(200);
    await inboxDone(c);
    expect(texts(c)).toEqual(["bot:hello"]);
    expect((await api(c, "POST", threadPath(), { body: { action: "resume" } })).body.state).toBe("bot");
    await say(c, "after", 2);
    expect(texts(c)).toEqual(["bot:hello", "bot:after"]); // the message during the pause never ran the flow

    for (const body of [{}, { action: "steal" }, { action: "pass", target: "inbox" }, { action: "pause", minutes: 0 }, { action: "take", extra: 1 }]) {
      const answer = await api(c, "POST", threadPath(), { body });
      expect(answer.status).toBe(400);
      expect(answer.body.message).toStartWith("invalid thread body");
    }
    expect((await api(c, "POST", "/api/endpoints/nope/users/1/thread", { body: { action: "take" } })).status).toBe(404);
    const endpoints = await api(c, "GET", "/api/endpoints");
    expect(endpoints.body.endpoints[0].threads).toEqual({ handover: 0, paused: 0 });
  });

  test("erasure deletes the thread state; the export shows it", async () => {
    const c = await conversation();
    await say(c, "human", 1);
    await until(async () => (await thread(c)).state === "handover");
    const exported = await api(c, "GET", `/api/endpoints/support/users/${PSID}/export`);
    expect(exported.body.handover).toEqual([
      expect.objectContaining({ page_id: PAGE_ID, state: "handover", owner_app_id: PAGE_INBOX_APP_ID, metadata: "refund question" }),
    ]);
    expect((await api(c, "DELETE", `/api/endpoints/support/users/${PSID}`)).status).toBe(200);
    expect(await rows(c, "SELECT * FROM threads")).toEqual([]);
    expect(c.app.threads.floor({ endpointId: "support", pageId: PAGE_ID, userId: PSID })).toBe("bot");
  });
});
