import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { FakeGraph } from "../../../src/simulator/fake-graph.ts";

const PAGE = "104857600012345";
const PAGE2 = "205030405060708";
const PAGE3 = "306070809101112";
const OTHER_BIZ_PAGE = "407080910111213";
const TOKEN = "EAAtestPageToken123";
const SECRET = "test_app_secret_0123";
const PROOF = "f05e1b92713dcd54355c00f9ad26ef9b180c43d47b28ed44174ea72852ee9ee6";
const APP_ID = "987654321098765";
const PSID = "6301234567890123";
const NOW = 1767225600000;

let graph: FakeGraph;
beforeAll(async () => {
  graph = await FakeGraph.start({
    clock: { now: () => NOW },
    pages: [
      { id: PAGE, token: TOKEN, appId: APP_ID, appSecret: SECRET, name: "Shop" },
      { id: PAGE2, token: "T2", appId: APP_ID, appSecret: SECRET, name: "Our Second Shop" },
      { id: PAGE3, token: "T3", appId: APP_ID, appSecret: SECRET },
      { id: OTHER_BIZ_PAGE, token: "T4", appId: APP_ID, appSecret: SECRET, conversationRouting: true },
    ],
    business: { [PAGE]: "biz-1", [PAGE2]: "biz-1", [PAGE3]: "biz-1", [OTHER_BIZ_PAGE]: "biz-2" },
  });
});
afterAll(() => graph.stop());
afterEach(() => graph.reset());

async function call(method: string, path: string, options: { query?: Record<string, string>; body?: unknown; token?: string } = {}) {
  const query = new URLSearchParams({ access_token: options.token ?? TOKEN, ...options.query });
  const response = await fetch(`${graph.url}${path}?${query}`, {
    method,
    ...(options.body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(options.body) }),
  });
  return { status: response.status, json: (await response.json()) as any, headers: response.headers };
}

describe("User Profile", () => {
  test("configured fields, id last, profile_pic with ext= a day ahead", async () => {
    graph.setUser(PAGE, PSID, { profile: { first_name: "Amelie", last_name: "Laurent" } });
    const { status, json } = await call("GET", `/v26.0/${PSID}`, { query: { fields: "first_name,last_name,profile_pic" } });
    expect(status).toBe(200);
    expect(Object.keys(json)).toEqual(["first_name", "last_name", "profile_pic", "id"]);
    expect(json).toMatchObject({ first_name: "Amelie", last_name: "Laurent", id: PSID });
    const pic = new URL(json.profile_pic);
    expect(pic.searchParams.get("ext")).toBe(String(NOW / 1000 + 86_400));
    expect(pic.searchParams.get("psid")).toBe(PSID);
  });

  test("a configured profile_pic keeps its own ext", async () => {
    graph.setUser(PAGE, PSID, { profile: { profile_pic: "https://cdn.example.test/p.jpg?ext=123&hash=x" } });
    const { json } = await call("GET", `/${PSID}`, { query: { fields: "profile_pic" } });
    expect(json.profile_pic).toBe("https://cdn.example.test/p.jpg?ext=123&hash=x");
  });

  test("default fields; name derived from first and last", async () => {
    graph.setUser(PAGE, PSID, { profile: { first_name: "Amelie", last_name: "Laurent", locale: "fr_FR" } });
    const { json } = await call("GET", `/v26.0/${PSID}`);
    expect(json.name).toBe("Amelie Laurent");
    expect(json.locale).toBeUndefined();
  });

  test("locale / timezone / gender need their permission → 100 / 2018247", async () => {
    graph.setUser(PAGE, PSID, { profile: { first_name: "A", locale: "fr_FR", timezone: 2, gender: "female" } });
    for (const field of ["locale", "timezone", "gender"]) {
      const { status, json } = await call("GET", `/v26.0/${PSID}`, { query: { fields: `first_name,${field}` } });
      expect(status).toBe(400);
      expect(json.error).toMatchObject({
        code: 100,
        error_subcode: 2018247,
        message: "(#100) Insufficient permission to access user profile",
        type: "OAuthException",
      });
    }
    graph.setUser(PAGE, PSID, { permissions: ["pages_user_locale", "pages_user_timezone"] });
    const { json } = await call("GET", `/v26.0/${PSID}`, { query: { fields: "locale,timezone" } });
    expect(json).toEqual({ locale: "fr_FR", timezone: 2, id: PSID });
  });

  test("phone-only user → 2018218; unknown PSID → 100; unknown field → 100", async () => {
    graph.setUser(PAGE, PSID, { phoneOnly: true });
    const phone = await call("GET", `/v26.0/${PSID}`, { query: { fields: "first_name" } });
    expect(phone.json.error).toMatchObject({ code: 100, error_subcode: 2018218 });
    expect(phone.json.error.message).toContain("No profile available for this user");
    const unknown = await call("GET", `/v26.0/555`, { query: { fields: "first_name" } });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toMatchObject({ code: 100, error_subcode: 33 });
    graph.setUser(PAGE, PSID, { phoneOnly: false });
    const badField = await call("GET", `/v26.0/${PSID}`, { query: { fields: "email" } });
    expect(badField.json.error).toMatchObject({ code: 100, message: "(#100) Tried accessing nonexisting field (email) on node type (User)" });
  });
});

describe("ids_for_pages", () => {
  function linkPeople() {
    graph.setUser(PAGE, PSID, { person: "amelie" });
    graph.setUser(PAGE2, "7409876543210987", { person: "amelie" });
    graph.setUser(PAGE3, "7500000000000001", { person: "amelie" });
    graph.setUser(PAGE3, "7500000000000002", { person: "bob" });
    graph.setUser(OTHER_BIZ_PAGE, "7600000000000001", { person: "amelie" });
  }

  test("requires appsecret_proof, always", async () => {
    linkPeople();
    const missing = await call("GET", `/v26.0/${PSID}/ids_for_pages`);
    expect(missing.status).toBe(400);
    expect(missing.json.error).toMatchObject({
      code: 100,
      type: "GraphMethodException",
      message: "API calls from the server require an appsecret_proof argument",
    });
    const wrong = await call("GET", `/v26.0/${PSID}/ids_for_pages`, { query: { appsecret_proof: "00" } });
    expect(wrong.json.error.message).toBe("Invalid appsecret_proof provided in the API argument");
  });

  test("the same person's PSIDs on the business's other Pages", async () => {
    linkPeople();
    const { status, json } = await call("GET", `/v26.0/${PSID}/ids_for_pages`, { query: { appsecret_proof: PROOF } });
    expect(status).toBe(200);
    expect(json.data).toEqual([
      { id: "7409876543210987", page: { id: PAGE2, name: "Our Second Shop", category: "Business", link: `https://www.facebook.com/${PAGE2}` } },
      { id: "7500000000000001", page: { id: PAGE3, name: `Page ${PAGE3}`, category: "Business", link: `https://www.facebook.com/${PAGE3}` } },
    ]);
    expect(json.paging.cursors.before).toBeString();
    expect(json.paging.cursors.after).toBeString();
    expect(json.paging.next).toBeUndefined();
  });

  test("page= filter and cursor paging", async () => {
    linkPeople();
    const filtered = await call("GET", `/v26.0/${PSID}/ids_for_pages`, { query: { appsecret_proof: PROOF, page: PAGE3 } });
    expect(filtered.json.data.map((d: any) => d.id)).toEqual(["7500000000000001"]);

    const first = await call("GET", `/v26.0/${PSID}/ids_for_pages`, { query: { appsecret_proof: PROOF, limit: "1" } });
    expect(first.json.data.map((d: any) => d.id)).toEqual(["7409876543210987"]);
    expect(first.json.paging.next).toContain("after=");
    const next = new URL(first.json.paging.next);
    const second = await fetch(`${graph.url}${next.pathname}${next.search}`).then((r) => r.json() as any);
    expect(second.data.map((d: any) => d.id)).toEqual(["7500000000000001"]);
    expect(second.paging.next).toBeUndefined();
  });

  test("a user without linked identities gets empty data", async () => {
    graph.setUser(PAGE, PSID, {});
    const { json } = await call("GET", `/v26.0/${PSID}/ids_for_pages`, { query: { appsecret_proof: PROOF } });
    expect(json).toEqual({ data: [] });
  });
});

describe("handover", () => {
  test("pass / take / release, and thread_owner", async () => {
    const owner = async () => (await call("GET", "/v26.0/me/thread_owner", { query: { recipient: PSID } })).json;
    expect(await owner()).toEqual({ data: [{ thread_owner: { app_id: APP_ID } }] });

    const pass = await call("POST", "/v26.0/me/pass_thread_control", {
      body: { recipient: { id: PSID }, target_app_id: 263902037430900, metadata: "escalated" },
    });
    expect(pass.json).toEqual({ success: true });
    expect(await owner()).toEqual({ data: [{ thread_owner: { app_id: "263902037430900" } }] });

    expect((await call("POST", "/v26.0/me/take_thread_control", { body: { recipient: { id: PSID } } })).json).toEqual({ success: true });
    expect(graph.threadOwner(PAGE, PSID)).toBe(APP_ID);
    expect((await call("POST", "/v26.0/me/request_thread_control", { body: { recipient: { id: PSID } } })).json).toEqual({ success: true });
    expect((await call("POST", "/v26.0/me/release_thread_control", { body: { recipient: { id: PSID } } })).json).toEqual({ success: true });
    expect(await owner()).toEqual({ data: [] });
  });

  test("missing recipient / target → 100", async () => {
    expect((await call("POST", "/v26.0/me/pass_thread_control", { body: { target_app_id: 1 } })).json.error.code).toBe(100);
    expect((await call("POST", "/v26.0/me/pass_thread_control", { body: { recipient: { id: PSID } } })).json.error.code).toBe(100);
  });

  test("conversation routing: take and request are disabled, pass still works", async () => {
    const take = await call("POST", `/v26.0/me/take_thread_control`, { token: "T4", body: { recipient: { id: PSID } } });
    expect(take.status).toBe(400);
    expect(take.json.error.message).toContain("Handover Protocol APIs disabled for this page.");
    const request = await call("POST", `/v26.0/me/request_thread_control`, { token: "T4", body: { recipient: { id: PSID } } });
    expect(request.json.error.message).toContain("Handover Protocol APIs disabled for this page.");
    const pass = await call("POST", `/v26.0/me/pass_thread_control`, { token: "T4", body: { recipient: { id: PSID }, target_app_id: "263902037430900" } });
    expect(pass.json).toEqual({ success: true });
  });

  test("threadOwnerError: sends fail while another app owns the thread", async () => {
    const g = await FakeGraph.start({
      pages: [{ id: PAGE, token: TOKEN, appId: APP_ID }],
      threadOwnerError: { code: 10, message: "(#10) This app is not the thread owner" },
    });
    try {
      const send = () =>
        fetch(`${g.url}/v26.0/me/messages?access_token=${TOKEN}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ recipient: { id: PSID }, messaging_type: "RESPONSE", message: { text: "hi" } }),
        });
      expect((await send()).status).toBe(200);
      g.setThreadOwner(PAGE, PSID, "263902037430900");
      expect(((await (await send()).json()) as any).error).toMatchObject({ code: 10, message: "(#10) This app is not the thread owner" });
    } finally {
      await g.stop();
    }
  });
});

describe("Messenger Profile", () => {
  const profile = {
    get_started: { payload: "GET_STARTED" },
    greeting: [
      { locale: "default", text: "Hi {{user_first_name}}, ask us anything." },
      { locale: "fr_FR", text: "Bonjour {{user_first_name}} !" },
    ],
    persistent_menu: [
      {
        locale: "default",
        composer_input_disabled: false,
        call_to_actions: [
          { type: "postback", title: "Talk to a human", payload: "HUMAN" },
          { type: "web_url", title: "Our site", url: "https://shop.example.test", webview_height_ratio: "full" },
        ],
      },
    ],
    ice_breakers: [{ locale: "default", call_to_actions: [{ question: "Where is my order?", payload: "ORDER_STATUS" }] }],
    whitelisted_domains: ["https://shop.example.test"],
  };

  test("POST stores, GET returns the requested fields, DELETE removes", async () => {
    expect((await call("POST", "/v26.0/me/messenger_profile", { body: profile })).json).toEqual({ result: "success" });
    const got = await call("GET", "/v26.0/me/messenger_profile", { query: { fields: "get_started,greeting,account_linking_url" } });
    expect(got.json).toEqual({ data: [{ get_started: profile.get_started, greeting: profile.greeting }] });

    expect((await call("DELETE", "/v26.0/me/messenger_profile", { body: { fields: ["persistent_menu", "greeting"] } })).json).toEqual({ result: "success" });
    expect(graph.messengerProfile(PAGE)).toEqual({
      get_started: profile.get_started,
      ice_breakers: profile.ice_breakers,
      whitelisted_domains: profile.whitelisted_domains,
    });
    expect((await call("GET", "/v26.0/me/messenger_profile", { query: { fields: "greeting" } })).json).toEqual({ data: [] });
  });

  test("only the given properties are overwritten", async () => {
    await call("POST", "/v26.0/me/messenger_profile", { body: { get_started: { payload: "A" } } });
    await call("POST", "/v26.0/me/messenger_profile", { body: { whitelisted_domains: ["https://a.test"] } });
    expect(graph.messengerProfile(PAGE)).toEqual({ get_started: { payload: "A" }, whitelisted_domains: ["https://a.test"] });
  });

  test("validation", async () => {
    const rejects = async (body: unknown, fragment: string) => {
      const { status, json } = await call("POST", "/v26.0/me/messenger_profile", { body });
      expect(status).toBe(400);
      expect(json.error.code).toBe(100);
      expect(json.error.message).toContain(fragment);
    };
    await rejects({ persistent_menu: profile.persistent_menu }, "Get Started");
    await rejects({ greeting: [{ locale: "fr_FR", text: "Bonjour" }] }, "default");
    await rejects({ greeting: [{ locale: "default", text: "x".repeat(161) }] }, "160");
    await rejects({ whitelisted_domains: ["http://shop.example.test"] }, "https");
    const many = Array.from({ length: 21 }, (_, i) => ({ type: "postback", title: `Item ${i}`, payload: `P${i}` }));
    await rejects({ get_started: { payload: "G" }, persistent_menu: [{ locale: "default", call_to_actions: many }] }, "20");
    await rejects({ get_started: { payload: "G" }, persistent_menu: [{ locale: "en_US", call_to_actions: many.slice(0, 2) }] }, "default");
    await rejects({ get_started: {} }, "get_started");
    await rejects({ nothing: true }, "Requires one of the params");
    expect(graph.messengerProfile(PAGE)).toEqual({});
  });

  test("GET without fields and DELETE of get_started under a menu are errors", async () => {
    expect((await call("GET", "/v26.0/me/messenger_profile")).json.error.code).toBe(100);
    await call("POST", "/v26.0/me/messenger_profile", { body: profile });
    const del = await call("DELETE", "/v26.0/me/messenger_profile", { body: { fields: ["get_started"] } });
    expect(del.json.error.message).toContain("persistent menu");
  });
});

describe("other endpoints", () => {
  test("GET /me, message_attachments, reset()", async () => {
    expect((await call("GET", "/v26.0/me")).json).toEqual({ name: "Shop", id: PAGE });
    const upload = await call("POST", "/v26.0/me/message_attachments", {
      body: { message: { attachment: { type: "image", payload: { url: "https://x.test/a.png", is_reusable: true } } } },
    });
    expect(upload.json.attachment_id).toMatch(/^\d+$/);
    expect(graph.calls).toHaveLength(2);
    graph.reset();
    expect(graph.calls).toHaveLength(0);
  });

  test("a proof computed like the product's client is accepted", async () => {
    const proof = createHmac("sha256", SECRET).update(TOKEN).digest("hex");
    expect(proof).toBe(PROOF);
    expect((await call("GET", "/v26.0/me", { query: { appsecret_proof: proof } })).status).toBe(200);
  });
});
