/**
 * The flow result's `end_session` and `contact` (docs/flows.md, "The result"), through signed
 * webhooks to the app, a script flow and a fake Graph API: a session the flow ends, also with a
 * handover in the same result; contact fields written, seen by the next turn and after a restart,
 * deleted with null, kept by a merge of contacts; invalid values refused like any invalid result.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { WITH_KEYS, api } from "../helpers/admin.ts";
import { APP_SECRET, PAGE_ID, PAGE_ID_2, PAGE_TOKEN, PAGE_TOKEN_2, PSID, PSID_2 } from "../helpers/config.ts";
import { APP_ID, rows, startConversation, until, userText, type Conversation, type ConversationOptions } from "../helpers/conversation.ts";

/**
 * Answers with what it was given, as JSON, and counts turns in the context. Words of the text ask
 * for parts of the result: `bye` (end_session), `badend` (end_session: "yes"), `human` (handover),
 * `set:<field>=<value>` and `del:<field>` (contact).
 */
const FLOW = {
  files: {
    "flows/result.ts": `export default async (input) => {
  const seen = { session: input.session_id, context: input.context, contact: input.contact, contact_id: input.contact_id, source: input.source, handover: input.handover ?? null };
  const result = { outputs: [{ text: JSON.stringify(seen) }], context: { n: (input.context.n ?? 0) + 1 } };
  for (const word of input.text.split(" ")) {
    if (word === "bye") result.end_session = true;
    if (word === "badend") result.end_session = "yes";
    if (word === "human") result.handover = { target: "page_inbox" };
    const set = /^set:(\\w+)=(.*)$/.exec(word);
    if (set) (result.contact ??= {})[set[1]] = set[2];
    const del = /^del:(\\w+)$/.exec(word);
    if (del) (result.contact ??= {})[del[1]] = null;
  }
  return result;
};`,
  },
  flow: 'kind = "script"\nmodule = "flows/result.ts"',
};

interface Seen {
  session: string;
  context: Record<string, unknown>;
  contact: Record<string, unknown>;
  contact_id: string | null;
  source: string;
  handover: { status: string } | null;
}

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function conversation(options: ConversationOptions = {}): Promise<Conversation> {
  const c = await startConversation({ ...FLOW, ...options });
  open.push(c);
  return c;
}

const answers = (c: Conversation, psid = PSID) => c.graph.sends({ recipientId: psid }).filter((s) => s.type === "message");

/** Posts a message and returns what the flow saw (its answer). */
async function say(c: Conversation, text: string, options: { psid?: string; pageId?: string } = {}): Promise<Seen> {
  const psid = options.psid ?? PSID;
  const before = answers(c, psid).length;
  expect(await c.post([{ ...userText(text, { psid }), recipient: { id: options.pageId ?? PAGE_ID } }], { pageId: options.pageId })).toBe(200);
  await until(() => answers(c, psid).length > before);
  return JSON.parse(String(answers(c, psid)[before]!.message.text));
}

describe("end_session", () => {
  test("the session ends with the turn: the next input starts a new session with an empty context", async () => {
    const c = await conversation();
    const first = await say(c, "hello");
    const second = await say(c, "bye");
    expect(second.session).toBe(first.session);
    expect(second.context).toEqual({ n: 1 });
    const third = await say(c, "again");
    expect(third.context).toEqual({});
    expect(third.session).not.toBe(first.session);
    const fourth = await say(c, "and again");
    expect(fourth).toMatchObject({ session: third.session, context: { n: 1 } });

    // The ended session keeps the context of its last turn; its turn is in the transcript; two sessions counted.
    const sessions = await rows(c, "SELECT id, context, ended_at FROM sessions WHERE user_id = ? ORDER BY created_at", [PSID]);
    expect(sessions.map((r) => [r.id, JSON.parse(String(r.context)), r.ended_at === null])).toEqual([
      [first.session, { n: 2 }, false],
      [third.session, { n: 2 }, true],
    ]);
    const lines = await rows(c, "SELECT session_id, text FROM transcripts WHERE user_id = ? AND direction = 'in' ORDER BY id", [PSID]);
    expect(lines.map((r) => [r.session_id, r.text])).toEqual([
      [first.session, "hello"],
      [first.session, "bye"],
      [third.session, "again"],
      [third.session, "and again"],
    ]);
    const [counts] = await rows(c, "SELECT sum(sessions) AS sessions, sum(inputs) AS inputs FROM analytics_daily WHERE endpoint_id = 'support'");
    expect([Number(counts!.sessions), Number(counts!.inputs)]).toEqual([2, 4]);
  });

  test("after a restart too; an inject reports the new session it runs in", async () => {
    const c = await conversation(WITH_KEYS);
    const first = await say(c, "bye");
    await c.close({ keepDir: true, keepGraph: true });
    const again = await conversation({ ...WITH_KEYS, dir: c.dir, graph: c.graph });
    const injected = await api(again, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "injected" } });
    expect(injected.status).toBe(202);
    expect(injected.body.session_id).not.toBe(first.session);
    await until(() => answers(again).length >= 2);
    expect(JSON.parse(String(answers(again)[1]!.message.text))).toMatchObject({ session: injected.body.session_id, context: {}, source: "inject" });
  });

  test("with a handover in the same result: the outputs, then the pass; the turn when the thread comes back starts the new session", async () => {
    const c = await conversation({ ...WITH_KEYS, echoes: true });
    const first = await say(c, "hello");
    await say(c, "human bye");
    await c.graph.waitForCalls((call) => call.path.endsWith("/pass_thread_control"));
    await until(async () => (await api(c, "GET", `/api/endpoints/support/users/${PSID}/thread`)).body.state === "handover");
    // What the user says while people have the thread belongs to no session.
    c.graph.userMessage(PAGE_ID, PSID, "are you there?");
    await c.graph.flushWebhooks();
    await until(async () => (await rows(c, "SELECT count(*) AS n FROM transcripts WHERE source = 'standby'"))[0]!.n === 1);
    c.graph.inboxDone(PAGE_ID, PSID, "done");
    await until(() => answers(c).length >= 3);
    const back = JSON.parse(String(answers(c)[2]!.message.text)) as Seen;
    expect(back).toMatchObject({ source: "handover", context: {}, handover: { status: "completed" } });
    expect(back.session).not.toBe(first.session);
    const [standby] = await rows(c, "SELECT session_id FROM transcripts WHERE source = 'standby'");
    expect(standby!.session_id).toBeNull();
  });

  test("an invalid end_session is refused like any invalid result: nothing sent, the session goes on", async () => {
    const c = await conversation();
    const first = await say(c, "hello");
    expect(await c.post([userText("badend")])).toBe(200);
    await until(() => c.logs.records().some((r) => r.level === "error" && r.msg.includes("invalid result")));
    expect(c.logs.records().find((r) => r.msg.includes("invalid result"))!.msg).toContain("/end_session: Expected boolean");
    const next = await say(c, "next");
    expect(next).toMatchObject({ session: first.session, context: { n: 1 } });
    expect(answers(c)).toHaveLength(2);
  });
});

describe("contact", () => {
  test("the fields are merged into the contact: the next turn sees them, after a restart too; null deletes one", async () => {
    const c = await conversation();
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie", last_name: "Laurent" } });
    const first = await say(c, "set:plan=gold set:tier=2");
    expect(first.contact).toEqual({ first_name: "Amelie", last_name: "Laurent", profile_pic: expect.any(String) });
    expect((await say(c, "hello")).contact).toMatchObject({ first_name: "Amelie", plan: "gold", tier: "2" });
    // A field Facebook gives (update_contact_profiles) is copied again at the next turn.
    await say(c, "set:first_name=Bob");
    expect((await say(c, "hello")).contact).toMatchObject({ first_name: "Amelie", plan: "gold" });
    await c.close({ keepDir: true, keepGraph: true });

    const again = await conversation({ ...WITH_KEYS, dir: c.dir, graph: c.graph });
    const restarted = await say(again, "del:tier");
    expect(restarted.contact).toMatchObject({ plan: "gold", tier: "2" });
    const after = await say(again, "hello");
    expect(after.contact.plan).toBe("gold");
    expect(after.contact).not.toHaveProperty("tier");
    const [stored] = await rows(again, "SELECT profile FROM contacts WHERE id = ?", [after.contact_id!]);
    expect(JSON.parse(String(stored!.profile))).toEqual({ first_name: "Amelie", last_name: "Laurent", profile_pic: expect.any(String), plan: "gold" });

    // The GDPR export has them (they are the contact's profile).
    const answer = await api(again, "GET", `/api/contacts/${after.contact_id}/export`);
    expect(answer.status).toBe(200);
    expect(JSON.stringify(answer.body)).toContain('"plan":"gold"');
  });

  test("with end_session in the same result: the new session starts empty, the contact keeps the fields", async () => {
    const c = await conversation();
    const first = await say(c, "set:plan=gold bye");
    const next = await say(c, "hello");
    expect(next.session).not.toBe(first.session);
    expect(next.context).toEqual({});
    expect(next.contact.plan).toBe("gold");
  });

  test("data_protection.contact_profiles = false: nothing is written", async () => {
    const c = await conversation({ endpointToml: "[endpoints.data_protection]\ncontact_profiles = false" });
    await say(c, "set:plan=gold");
    expect((await say(c, "hello")).contact).toEqual({});
    expect(await rows(c, "SELECT * FROM contacts")).toHaveLength(0);
    expect(c.logs.records().some((r) => r.level === "debug" && r.msg.includes("contact_profiles is off"))).toBe(true);
  });

  test("merge_contact_profiles: two contacts of one person become one with the fields flows wrote on both Pages", async () => {
    const graph = await FakeGraph.start({
      pages: [
        { id: PAGE_ID, token: PAGE_TOKEN, appSecret: APP_SECRET, appId: APP_ID },
        { id: PAGE_ID_2, token: PAGE_TOKEN_2, appSecret: APP_SECRET, appId: APP_ID },
      ],
      business: {},
    });
    const c = await conversation({
      graph,
      pages: [
        { id: PAGE_ID, token: PAGE_TOKEN },
        { id: PAGE_ID_2, token: PAGE_TOKEN_2 },
      ],
      endpointToml: "[endpoints.profiles]\nmerge_contact_profiles = true",
    });
    graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie" }, person: "amelie" });
    graph.setUser(PAGE_ID_2, PSID_2, { profile: { first_name: "Amelie" }, person: "amelie" });
    const a = await say(c, "set:plan=gold", { psid: PSID });
    const b = await say(c, "set:shop=paris", { psid: PSID_2, pageId: PAGE_ID_2 });
    expect(b.contact_id).not.toBe(a.contact_id);
    // The Pages are linked to one business; the link check is due again.
    graph.setBusiness({ [PAGE_ID]: "biz1", [PAGE_ID_2]: "biz1" });
    await c.database.client.execute("UPDATE contact_users SET linked_at = 0");
    c.app.contacts.forgetAll();
    const merged = await say(c, "set:visits=3", { psid: PSID });
    expect(merged.contact_id).toBe(a.contact_id);
    expect(merged.contact).toMatchObject({ plan: "gold", shop: "paris" });
    expect((await say(c, "hello", { psid: PSID_2, pageId: PAGE_ID_2 })).contact).toMatchObject({ plan: "gold", shop: "paris", visits: "3" });
  });
});
