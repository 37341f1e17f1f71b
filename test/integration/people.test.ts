/**
 * People and memory (docs/people.md): Facebook profiles with their cache, contacts merged across
 * Pages, transcripts, analytics, mask_logging, contact_profiles = false and the retention purge,
 * through signed webhooks to the app and a fake Graph API.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { FakeGraph } from "../../src/simulator/fake-graph.ts";
import { APP_SECRET, PAGE_ID, PAGE_ID_2, PAGE_TOKEN, PAGE_TOKEN_2, PSID, PSID_2 } from "../helpers/config.ts";
import { api, WITH_KEYS } from "../helpers/admin.ts";
import { APP_ID, startConversation, userText, type Conversation, type ConversationOptions, until, rows } from "../helpers/conversation.ts";

/** A flow that answers with what it was given, as JSON. */
const REPORT_FLOW = {
  files: {
    "flows/report.ts": `export default async (input) => ({ outputs: [{ text: JSON.stringify({ text: input.text, profile: input.data.profile ?? null, contact: input.contact, contact_id: input.contact_id, session: input.session_id, source: input.source }) }] });`,
  },
  flow: 'kind = "script"\nmodule = "flows/report.ts"',
};

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function conversation(options: ConversationOptions & { endpointToml?: string }): Promise<Conversation> {
  const c = await startConversation({ ...REPORT_FLOW, ...options });
  open.push(c);
  return c;
}

/** Posts a message from `psid` and returns what the flow saw (the n-th reply to that user). */
async function say(c: Conversation, text: string, options: { psid?: string; pageId?: string } = {}) {
  const psid = options.psid ?? PSID;
  const before = c.graph.sends({ recipientId: psid }).filter((s) => s.type === "message").length;
  expect(await c.post([{ ...userText(text, { psid }), recipient: { id: options.pageId ?? PAGE_ID } }], { pageId: options.pageId })).toBe(200);
  const sends = await c.graph.waitForSends(before + 1, { recipientId: psid }, 10_000);
  return JSON.parse(sends.filter((s) => s.type === "message")[before]!.message.text);
}

const profileCalls = (c: Conversation, psid = PSID) => c.graph.calls.filter((call) => call.method === "GET" && call.path.endsWith(`/${psid}`));

describe("Facebook profiles", () => {
  test("input.data.profile carries the fields; the profile is fetched once and then cached", async () => {
    const c = await conversation({});
    c.graph.setUser(PAGE_ID, PSID, {
      profile: { first_name: "Amelie", last_name: "Laurent" },
      permissions: ["pages_user_locale", "pages_user_timezone", "pages_user_gender"],
    });
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie", last_name: "Laurent", locale: "fr_FR", timezone: 1, gender: "female" } });
    const first = await say(c, "hello");
    expect(first.profile).toMatchObject({ id: PSID, first_name: "Amelie", last_name: "Laurent", locale: "fr_FR", timezone: 1, gender: "female" });
    expect(first.profile.profile_pic).toContain("ext=");
    await say(c, "again");
    expect(profileCalls(c)).toHaveLength(1);
    expect(profileCalls(c)[0]!.query.fields).toBe("first_name,last_name,profile_pic,locale,timezone,gender");
  });

  test("without the App Review permissions the extra fields are dropped once per Page, not on every user", async () => {
    const c = await conversation({});
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie", last_name: "Laurent" } });
    c.graph.setUser(PAGE_ID, PSID_2, { profile: { first_name: "Bo", last_name: "Chen" } });
    const first = await say(c, "hello");
    expect(first.profile).toMatchObject({ first_name: "Amelie", last_name: "Laurent" });
    expect(first.profile.locale).toBeUndefined();
    const calls = profileCalls(c);
    expect(calls.map((x) => x.status)).toEqual([400, 200]); // 2018247, then the base fields
    const second = await say(c, "hi", { psid: PSID_2 });
    expect(second.profile.first_name).toBe("Bo");
    expect(profileCalls(c, PSID_2).map((x) => x.query.fields)).toEqual(["first_name,last_name,profile_pic"]);
  });

  test("a user without a profile (2018218) is asked once; the turn goes on with the id only", async () => {
    const c = await conversation({});
    c.graph.setUser(PAGE_ID, PSID, { phoneOnly: true });
    expect((await say(c, "one")).profile).toEqual({ id: PSID });
    expect((await say(c, "two")).profile).toEqual({ id: PSID });
    expect(profileCalls(c)).toHaveLength(1);
    const [row] = await rows(c, "SELECT profile_status FROM contact_users WHERE user_id = ?", [PSID]);
    expect(row![0]).toBe("unavailable");
  });

  test("a Graph API failure does not fail the turn, and is asked again after a short while", async () => {
    let offset = 0;
    const c = await conversation({ clock: { now: () => Date.now() + offset } });
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie" } });
    c.graph.setUser(PAGE_ID, PSID, { profileFailures: 1 });
    expect((await say(c, "one")).profile).toEqual({ id: PSID });
    expect((await say(c, "two")).profile).toEqual({ id: PSID }); // cached failure: not asked again at once
    offset = 11 * 60_000;
    expect((await say(c, "three")).profile.first_name).toBe("Amelie");
  });

  test("a profile is fetched again once its picture URL expires (ext=)", async () => {
    let offset = 0;
    const c = await conversation({ clock: { now: () => Date.now() + offset } });
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie" } });
    await say(c, "one");
    offset = 2 * 86_400_000; // the fake's pictures expire after a day
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amélie" } });
    expect((await say(c, "two")).profile.first_name).toBe("Amélie");
    expect(profileCalls(c).filter((x) => x.status === 200)).toHaveLength(2);
  });

  test("the cached profile expires at its picture URL's ext= (a few minutes early), not after the default day", async () => {
    let offset = 0;
    const c = await conversation({ clock: { now: () => Date.now() + offset } });
    const ext = Math.floor(Date.now() / 1000) + 3 * 3600; // three hours: well inside the default day
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie", profile_pic: `https://lookaside.example.test/pic.jpg?ext=${ext}&hash=abc` } });
    await say(c, "one");
    const [stored] = await rows(c, "SELECT profile_expires_at FROM contact_users WHERE user_id = ?", [PSID]);
    expect(Number(stored![0])).toBe(ext * 1000 - 5 * 60_000);
    offset = 3 * 3600_000 - 10 * 60_000; // before the expiry: still cached
    await say(c, "two");
    const answered = () => profileCalls(c).filter((call) => call.status === 200);
    expect(answered()).toHaveLength(1);
    offset = 3 * 3600_000; // past it: asked again
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amélie", profile_pic: "https://lookaside.example.test/pic.jpg" } });
    expect((await say(c, "three")).profile.first_name).toBe("Amélie");
    expect(answered()).toHaveLength(2);
  });

  test("request_profile_data = false: no profile call and no data.profile", async () => {
    const c = await conversation({ endpointToml: "[endpoints.profiles]\nrequest_profile_data = false\nupdate_contact_profiles = false" });
    const seen = await say(c, "hello");
    expect(seen.profile).toBeNull();
    expect(profileCalls(c)).toHaveLength(0);
  });
});

/** An endpoint with two Pages (merge_contact_profiles on) and one person with a PSID on each. */
async function samePersonOnTwoPages(business: Record<string, string>) {
  const graph = await FakeGraph.start({
    pages: [
      { id: PAGE_ID, token: PAGE_TOKEN, appSecret: APP_SECRET, appId: APP_ID },
      { id: PAGE_ID_2, token: PAGE_TOKEN_2, appSecret: APP_SECRET, appId: APP_ID },
    ],
    business,
  });
  const c = await conversation({
    graph,
    pages: [
      { id: PAGE_ID, token: PAGE_TOKEN },
      { id: PAGE_ID_2, token: PAGE_TOKEN_2 },
    ],
    endpointToml: "[endpoints.profiles]\nmerge_contact_profiles = true",
    ...WITH_KEYS,
  });
  graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie", last_name: "Laurent" }, person: "amelie" });
  graph.setUser(PAGE_ID_2, PSID_2, { profile: { first_name: "Amelie", last_name: "Laurent" }, person: "amelie" });
  return { graph, c };
}

describe("contacts", () => {
  test("update_contact_profiles copies the profile into the contact; the contact id is stable", async () => {
    const c = await conversation({});
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie", last_name: "Laurent" } });
    const first = await say(c, "one");
    expect(first.contact_id).toMatch(/^c_/);
    expect(first.contact).toMatchObject({ first_name: "Amelie", last_name: "Laurent" });
    const second = await say(c, "two");
    expect(second.contact_id).toBe(first.contact_id);
    const contacts = await rows(c, "SELECT id, profile FROM contacts");
    expect(contacts).toHaveLength(1);
    expect(JSON.parse(String(contacts[0]![1]))).toMatchObject({ first_name: "Amelie" });
  });

  test("merge_contact_profiles: the same person on two Pages of one business is one contact; sessions stay per Page", async () => {
    const { graph, c } = await samePersonOnTwoPages({ [PAGE_ID]: "biz1", [PAGE_ID_2]: "biz1" });
    const onFirst = await say(c, "hello", { psid: PSID });
    const onSecond = await say(c, "bonjour", { psid: PSID_2, pageId: PAGE_ID_2 });
    expect(onSecond.contact_id).toBe(onFirst.contact_id);
    expect(onSecond.session).not.toBe(onFirst.session);
    const links = await rows(c, "SELECT page_id, user_id FROM contact_users WHERE contact_id = ? ORDER BY page_id", [onFirst.contact_id]);
    expect(links.map((r) => [String(r[0]), String(r[1])])).toEqual([
      [PAGE_ID, PSID],
      [PAGE_ID_2, PSID_2],
    ]);
    // ids_for_pages was asked with appsecret_proof
    const idCalls = graph.calls.filter((x) => x.path.endsWith("/ids_for_pages"));
    expect(idCalls.length).toBeGreaterThan(0);
    expect(idCalls.every((x) => x.status === 200 && typeof x.query.appsecret_proof === "string")).toBe(true);
  });

  test("merge: the person writes on both Pages at the same moment; no contact is left without a PSID", async () => {
    const { c } = await samePersonOnTwoPages({ [PAGE_ID]: "biz1", [PAGE_ID_2]: "biz1" });
    await Promise.all([say(c, "a", { psid: PSID }), say(c, "b", { psid: PSID_2, pageId: PAGE_ID_2 })]);
    expect(await rows(c, "SELECT id FROM contacts c WHERE NOT EXISTS (SELECT 1 FROM contact_users u WHERE u.contact_id = c.id)")).toEqual([]);
    const [one, two] = await Promise.all([say(c, "c", { psid: PSID }), say(c, "d", { psid: PSID_2, pageId: PAGE_ID_2 })]);
    expect(two.contact_id).toBe(one.contact_id);
    expect(await rows(c, "SELECT id FROM contacts")).toHaveLength(1);
  });

  test("merge: two existing contacts of one person become one, keeping the older id and every field", async () => {
    const { graph, c } = await samePersonOnTwoPages({});
    // Not one business yet: two contacts.
    const a = await say(c, "one", { psid: PSID });
    const b = await say(c, "two", { psid: PSID_2, pageId: PAGE_ID_2 });
    expect(b.contact_id).not.toBe(a.contact_id);
    await c.database.client.execute({ sql: "UPDATE contacts SET profile = json_set(profile, '$.vip', 1) WHERE id = ?", args: [b.contact_id] });
    // The Pages are linked to one business; the link check is due again.
    graph.setBusiness({ [PAGE_ID]: "biz1", [PAGE_ID_2]: "biz1" });
    await c.database.client.execute({ sql: "UPDATE contact_users SET linked_at = 0", args: [] });
    c.app.contacts.forgetAll();
    const merged = await say(c, "three", { psid: PSID });
    expect(merged.contact_id).toBe(a.contact_id);
    expect(merged.contact).toMatchObject({ first_name: "Amelie", vip: 1 });
    expect(await rows(c, "SELECT id FROM contacts")).toHaveLength(1);
    // The other contact's lines moved with its PSID; the conversations API reads the contact's lines through its PSIDs.
    expect((await rows(c, "SELECT DISTINCT contact_id FROM transcripts")).map((r) => String(r[0]))).toEqual([a.contact_id]);
    const byContact = (await api(c, "GET", `/api/conversations?contact_id=${a.contact_id}`)).body.entries as any[];
    expect(byContact.map((e) => [e.user_id, e.direction, e.text])).toEqual([
      [PSID, "in", "one"],
      [PSID, "out", expect.any(String)],
      [PSID_2, "in", "two"],
      [PSID_2, "out", expect.any(String)],
      [PSID, "in", "three"],
      [PSID, "out", expect.any(String)],
    ]);
    const lastThree = (await api(c, "GET", `/api/conversations?contact_id=${a.contact_id}&limit=3`)).body.entries as any[];
    expect(lastThree.map((e) => e.id)).toEqual(byContact.slice(-3).map((e) => e.id));
    const onSecondPage = (await api(c, "GET", `/api/conversations?contact_id=${a.contact_id}&session_id=${b.session}`)).body.entries as any[];
    expect(onSecondPage.map((e) => e.text)).toEqual(["two", expect.any(String)]);
    const bySession = (await api(c, "GET", `/api/conversations?session_id=${a.session}`)).body.entries as any[];
    expect(bySession.map((e) => [e.user_id, e.text])).toEqual([
      [PSID, "one"],
      [PSID, expect.any(String)],
      [PSID, "three"],
      [PSID, expect.any(String)],
    ]);
    expect((await api(c, "GET", `/api/conversations?contact_id=${b.contact_id}`)).body.entries).toEqual([]);
    expect((await api(c, "GET", "/api/conversations?session_id=s_none")).body.entries).toEqual([]);
  });

  test("a known user's turn writes no contact rows unless an hour has passed or something changed", async () => {
    let offset = 0;
    const c = await conversation({ clock: { now: () => Date.now() + offset } });
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie" } });
    await say(c, "one");
    const seen = async () => Number((await rows(c, "SELECT last_seen_at FROM contact_users WHERE user_id = ?", [PSID]))[0]![0]);
    const first = await seen();
    offset = 10 * 60_000;
    await say(c, "two");
    expect(await seen()).toBe(first);
    offset = 61 * 60_000;
    await say(c, "three");
    expect(await seen()).toBeGreaterThan(first + 60 * 60_000);
  });

  test("contact_profiles = false: nothing about the person is stored in contacts; contact_id is null", async () => {
    const c = await conversation({ endpointToml: "[endpoints.data_protection]\ncontact_profiles = false" });
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie" } });
    const seen = await say(c, "hello");
    expect(seen.contact_id).toBeNull();
    expect(seen.profile.first_name).toBe("Amelie"); // the profile still reaches the flow
    await say(c, "again");
    expect(profileCalls(c).filter((x) => x.status === 200)).toHaveLength(1); // cached in memory
    expect(await rows(c, "SELECT * FROM contacts")).toHaveLength(0);
    expect(await rows(c, "SELECT * FROM contact_users")).toHaveLength(0);
  });
});

describe("sessions", () => {
  test("the flow's context comes back on the next input; a new session after expiration_minutes starts empty", async () => {
    let offset = 0;
    const c = await startConversation({
      files: {
        "flows/count.ts": `export default async (input) => { const n = (input.context.n ?? 0) + 1; return { outputs: [{ text: input.session_id + " " + n }], context: { n } }; };`,
      },
      flow: 'kind = "script"\nmodule = "flows/count.ts"',
      expirationMinutes: 30,
      clock: { now: () => Date.now() + offset },
    });
    open.push(c);
    const texts = async (n: number) => (await c.graph.waitForSends(n, { recipientId: PSID }, 10_000)).map((s) => s.message.text as string);
    await c.post([userText("a")]);
    await c.post([userText("b")]);
    const [first, second] = await texts(2);
    expect(first!.split(" ")[1]).toBe("1");
    expect(second).toBe(`${first!.split(" ")[0]} 2`);
    offset = 31 * 60_000;
    await c.post([userText("c", { timestamp: Date.now() + offset })]);
    const third = (await texts(3))[2]!;
    expect(third.split(" ")[0]).not.toBe(first!.split(" ")[0]);
    expect(third.split(" ")[1]).toBe("1");
  });
});

describe("transcripts, analytics, masking", () => {
  test("collect_conversations stores each turn's input and outputs; analytics count inputs, outputs, sessions, users", async () => {
    const c = await conversation({});
    await say(c, "hello");
    await say(c, "again");
    const entries = await rows(c, "SELECT direction, source, text, contact_id, session_id FROM transcripts ORDER BY id");
    expect(entries.map((r) => [r[0], r[1]])).toEqual([
      ["in", "user"],
      ["out", "flow"],
      ["in", "user"],
      ["out", "flow"],
    ]);
    expect(entries[0]![2]).toBe("hello");
    expect(String(entries[0]![3])).toMatch(/^c_/);
    const [day] = await rows(c, "SELECT inputs, outputs, sessions, users, failed_sends FROM analytics_daily WHERE endpoint_id = 'support'");
    expect(Array.from(day!, Number)).toEqual([2, 2, 1, 1, 0]);
  });

  test("collect_conversations and collect_analytics off: nothing recorded", async () => {
    const c = await conversation({ endpointToml: "[endpoints.data_protection]\ncollect_conversations = false\ncollect_analytics = false" });
    await say(c, "hello");
    expect(await rows(c, "SELECT * FROM transcripts")).toHaveLength(0);
    expect(await rows(c, "SELECT * FROM analytics_daily")).toHaveLength(0);
  });

  test("a send given up counts as a failed send", async () => {
    const c = await conversation({});
    c.graph.setUser(PAGE_ID, PSID, { unavailable: true });
    expect(await c.post([userText("hello")])).toBe(200);
    const failedSends = async () => Number((await rows(c, "SELECT failed_sends FROM analytics_daily WHERE endpoint_id = 'support'"))[0]?.[0] ?? 0);
    await until(async () => (await failedSends()) > 0);
    expect(await failedSends()).toBe(1);
  });

  test("mask_logging: no user id or text in any log line; without it, the user id is there", async () => {
    const secretText = "my card number is 4242";
    const failing = {
      files: { "flows/fail.ts": `export default async (input) => { throw new Error("cannot handle \\"" + input.text + "\\""); };` },
      flow: 'kind = "script"\nmodule = "flows/fail.ts"',
    };
    const masked = await conversation({ ...failing, endpointToml: "[endpoints.data_protection]\nmask_logging = true" });
    masked.graph.setUser(PAGE_ID, PSID, { profileFailures: 2 }); // Graph's error names the PSID
    await masked.post([userText(secretText)]);
    await until(() => masked.logs.lines.some((l) => l.includes("failed; nothing was sent")));
    const lines = masked.logs.lines;
    expect(lines.some((l) => l.includes("could not fetch the user's Facebook profile"))).toBe(true);
    expect(lines.some((l) => l.includes('"user":"*****"'))).toBe(true);
    expect(lines.filter((l) => l.includes(PSID) || l.includes("4242"))).toEqual([]);

    const plain = await conversation({ ...failing });
    await plain.post([userText(secretText)]);
    await until(() => plain.logs.lines.some((l) => l.includes("failed; nothing was sent")));
    expect(plain.logs.lines.some((l) => l.includes(PSID))).toBe(true);
  });

  test("/metrics counts inputs, outputs and sessions, today's analytics, and Graph API calls by operation", async () => {
    const c = await conversation({});
    c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Amelie" } });
    await say(c, "hello");
    // The fake records a send before its answer reaches the app, which then counts it.
    let text = "";
    await until(async () => /operation="send",result="ok"/.test((text = await (await fetch(`${c.url}/metrics`)).text())));
    expect(text).toMatch(/messenger_graph_requests_total\{operation="profile",result="ok"\} 1/);
    expect(text).toMatch(/messenger_graph_requests_total\{operation="send",result="ok"\} 1/);
    expect(text).toMatch(/messenger_graph_request_seconds_count\{operation="profile"\} \d/);
    expect(text).toMatch(/messenger_analytics_today\{endpoint="support",measure="users"\} 1/);
    expect(text).toMatch(/messenger_inputs_total\{[^}]*endpoint="support"[^}]*\} 1/);
    expect(text).toMatch(/messenger_outputs_total\{endpoint="support"\} 1/);
    expect(text).toMatch(/messenger_sessions_started_total\{endpoint="support"\} 1/);
  });
});

describe("sanitize_input and hide_external_references", () => {
  test("sanitize_input: the flow gets the user's text without HTML; off, it gets it as typed", async () => {
    const on = await conversation({ endpointToml: "[endpoints.data_protection]\nsanitize_input = true" });
    expect((await say(on, 'Hi <b>there</b><script>alert("x")</script>')).text).toBe("Hi there");
    const off = await conversation({});
    expect((await say(off, "Hi <b>there</b>")).text).toBe("Hi <b>there</b>");
  });

  test("hide_external_references: a user's links and images are kept as text in the transcript; off, as they came", async () => {
    const image = (psid: string) => ({
      sender: { id: psid },
      recipient: { id: PAGE_ID },
      timestamp: Date.now(),
      message: {
        mid: `m_img_${psid}`,
        text: 'look <img src="https://t.example/p.gif">',
        attachments: [{ type: "image", payload: { url: "https://cdn.example/photo.jpg" } }],
      },
    });
    const transcriptIn = async (c: Conversation) => {
      const [line] = await rows(c, "SELECT text, data FROM transcripts WHERE direction = 'in'");
      return { text: line!.text, data: JSON.parse(String(line!.data)) };
    };
    const on = await conversation({ endpointToml: "[endpoints.data_protection]\nhide_external_references = true" });
    expect(await on.post([image(PSID)])).toBe(200);
    await on.graph.waitForSends(1, { recipientId: PSID });
    await until(async () => (await rows(on, "SELECT 1 FROM transcripts WHERE direction = 'in'")).length > 0);
    const hidden = await transcriptIn(on);
    expect(hidden.text).toBe('look &lt;img src="https://t.example/p.gif"&gt;');
    expect(hidden.data.attachments).toEqual([{ type: "image", reference: "https://cdn.example/photo.jpg" }]);

    const off = await conversation({});
    expect(await off.post([image(PSID)])).toBe(200);
    await off.graph.waitForSends(1, { recipientId: PSID });
    await until(async () => (await rows(off, "SELECT 1 FROM transcripts WHERE direction = 'in'")).length > 0);
    const shown = await transcriptIn(off);
    expect(shown.text).toBe('look <img src="https://t.example/p.gif">');
    expect(shown.data.attachments).toEqual([{ type: "image", url: "https://cdn.example/photo.jpg" }]);
  });
});

describe("retention", () => {
  test("retention_days purges old transcripts, idle contacts, ended sessions and finished events; recent ones stay", async () => {
    let offset = 0;
    const c = await conversation({ clock: { now: () => Date.now() + offset }, endpointToml: "[endpoints.data_protection]\nretention_days = 30" });
    await say(c, "old news", { psid: PSID });
    offset = 31 * 86_400_000;
    await say(c, "fresh", { psid: PSID_2 });
    const result = await c.app.retention.runOnce();
    expect(result.support!.transcripts).toBe(2);
    expect(result.support!.contacts).toBe(1);
    const left = await rows(c, "SELECT DISTINCT user_id FROM transcripts");
    expect(left.map((r) => String(r[0]))).toEqual([PSID_2]);
    expect((await rows(c, "SELECT user_id FROM contact_users")).map((r) => String(r[0]))).toEqual([PSID_2]);
    expect((await rows(c, "SELECT count(*) FROM inbox WHERE user_id = ?", [PSID]))[0]![0]).toBe(0);
  });
});
