/**
 * The settings reload (config/live.ts) under traffic: signed webhooks from several users keep
 * coming while the file is changed and reloaded; none is refused, and each user's replies keep
 * the order of their messages.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { signBody } from "../../src/webhook/signature.ts";
import { KEY, api } from "../helpers/admin.ts";
import { APP_SECRET, PAGE_ID, PAGE_ID_2, PAGE_TOKEN, PAGE_TOKEN_2 } from "../helpers/config.ts";
import { type Conversation, type ConversationOptions, messageTexts, startConversation, until, userText } from "../helpers/conversation.ts";

const FLOWS = {
  "flows/a.ts": "export default async (input) => ({ outputs: [{ text: `a:${input.text}` }] });",
  "flows/b.ts": "export default async (input) => ({ outputs: [{ text: `b:${input.text}` }] });",
};
const FLOW_A = 'kind = "script"\nmodule = "flows/a.ts"';
const USERS = ["6300000000000001", "6300000000000002", "6300000000000003"];
const PER_USER = 6;

let open: Conversation[] = [];
afterEach(async () => {
  await Promise.all(open.map((c) => c.close()));
  open = [];
});

async function start(options: ConversationOptions = {}): Promise<Conversation> {
  const c = await startConversation({ settingsFile: true, files: FLOWS, flow: FLOW_A, ...options });
  open.push(c);
  return c;
}

/** Rewrites the settings file: `edit` gets the text the conversation started with. */
function rewrite(c: Conversation, edit: (toml: string) => string): void {
  writeFileSync(c.settingsFile!, edit(c.toml));
}

/**
 * Each user posts PER_USER messages one after the other while `reload` runs (once every user's
 * first reply was sent); every POST must be answered 200. Returns each user's texts.
 */
async function underTraffic(c: Conversation, reload: () => Promise<void>, options: { before?: number } = {}): Promise<Map<string, string[]>> {
  const statuses: number[] = [];
  const texts = new Map(USERS.map((u) => [u, Array.from({ length: PER_USER }, (_, i) => `${u.slice(-1)}-${i}`)]));
  const streams = USERS.map(async (psid) => {
    for (const text of texts.get(psid)!) statuses.push(await c.post([userText(text, { psid })]));
  });
  await until(() => USERS.every((u) => messageTexts(c.sends(u)).length >= (options.before ?? 1) || statuses.length === USERS.length * PER_USER));
  await reload();
  await Promise.all(streams);
  expect(statuses).toEqual(Array(USERS.length * PER_USER).fill(200));
  return texts;
}

/** Waits for every user's replies, and checks that they came in the order of the messages (`strip` takes the flow's mark off). */
async function inOrder(c: Conversation, texts: Map<string, string[]>, strip = (t: string) => t.replace(/^[ab]:/, "")): Promise<Map<string, string[]>> {
  const replies = new Map<string, string[]>();
  for (const [psid, sent] of texts) {
    await until(() => messageTexts(c.sends(psid)).length >= sent.length);
    const got = messageTexts(c.sends(psid));
    expect(got.map(strip)).toEqual(sent);
    replies.set(psid, got);
  }
  return replies;
}

const reloadOk = async (c: Conversation) => {
  const answer = await api(c, "POST", "/api/reload");
  expect(answer.status).toBe(200);
  return answer.body as { applied: string[]; needs_restart: string[]; unchanged: boolean };
};

const withKeys = (keys: string[]) => `[admin]\napi_keys = [${keys.map((k) => JSON.stringify(k)).join(", ")}]`;

describe("a settings reload under traffic", () => {
  test("a rotated Page token is used by the next send, and resumes a Page paused for the refused one", async () => {
    const c = await start({ pageToken: "EAAGrevokedToken0000", extra: withKeys([KEY]) });
    await c.post([userText("first", { psid: USERS[0] })]);
    await until(() => c.app.pages.paused().length > 0);
    expect((await c.app.http.handle(new Request("http://localhost/readyz"))).status).toBe(503);
    expect(c.sends()).toHaveLength(0);

    rewrite(c, (t) => t.replace("EAAGrevokedToken0000", PAGE_TOKEN).replace("max_retry_delay_ms = 200", "max_retry_delay_ms = 300"));
    const statuses: number[] = [];
    const more = USERS.map(async (psid, u) => {
      for (let i = 0; i < 3; i++) statuses.push(await c.post([userText(`${u}-${i}`, { psid })]));
    });
    const answer = await reloadOk(c);
    await Promise.all(more);
    expect(statuses).toEqual(Array(9).fill(200));
    expect(answer).toEqual({
      applied: [`endpoints[id="support"].pages[id="${PAGE_ID}"].access_token`],
      needs_restart: ["graph.max_retry_delay_ms"],
      unchanged: false,
    });
    expect(c.app.pages.paused()).toEqual([]);
    expect((await c.app.http.handle(new Request("http://localhost/readyz"))).status).toBe(200);
    // The queued reply and the new ones are sent with the new token (the fake answers 190 to any other), in order.
    await until(() => messageTexts(c.sends(USERS[0])).length >= 4);
    expect(messageTexts(c.sends(USERS[0]))).toEqual(["a:first", "a:0-0", "a:0-1", "a:0-2"]);
    for (const [u, psid] of USERS.entries()) {
      await until(() => messageTexts(c.sends(psid)).length >= (u === 0 ? 4 : 3));
      expect(messageTexts(c.sends(psid)).slice(u === 0 ? 1 : 0)).toEqual([0, 1, 2].map((i) => `a:${u}-${i}`));
    }
    expect(c.logs.records().some((r) => r.msg === "Page resumed: its access token was replaced")).toBe(true);
  });

  test("the log level changes at once", async () => {
    const c = await start({ extra: withKeys([KEY]) });
    const texts = await underTraffic(c, async () => {
      rewrite(c, (t) => t.replace('level = "debug"', 'level = "warn"'));
      expect(await reloadOk(c)).toEqual({ applied: ["log.level"], needs_restart: [], unchanged: false });
      c.logs.clear();
    });
    await inOrder(c, texts);
    expect(c.logs.records().filter((r) => r.level === "debug" || r.level === "info")).toEqual([]);
    expect(c.logs.records().length).toBe(0);
  });

  test("admin keys: after the reload the old key is refused and the new one works", async () => {
    const c = await start({ extra: withKeys([KEY]) });
    const next = "the-new-admin-key-0987654321";
    const texts = await underTraffic(c, async () => {
      rewrite(c, (t) => t.replace(withKeys([KEY]), withKeys([next])));
      expect(await reloadOk(c)).toEqual({ applied: ["admin.api_keys"], needs_restart: [], unchanged: false });
    });
    await inOrder(c, texts);
    expect((await api(c, "GET", "/api/endpoints")).status).toBe(401);
    expect((await api(c, "GET", "/api/endpoints", { key: next })).status).toBe(200);
    // Reloading the same file again: nothing changed.
    expect((await api(c, "POST", "/api/reload", { key: next })).body).toEqual({ applied: [], needs_restart: [], unchanged: true });
  });

  test("an endpoint setting (typing indicators) applies to the next replies", async () => {
    const c = await start({ extra: withKeys([KEY]) });
    const texts = await underTraffic(c, async () => {
      rewrite(c, (t) => t.replace("typing_indicators = false", "typing_indicators = true"));
      expect(await reloadOk(c)).toEqual({ applied: ['endpoints[id="support"].messenger.typing_indicators'], needs_restart: [], unchanged: false });
    });
    await inOrder(c, texts);
    expect(c.sends().some((s) => s.type === "action")).toBe(true);
    await c.post([userText("after", { psid: USERS[0] })]);
    await until(() => messageTexts(c.sends(USERS[0])).length === PER_USER + 1);
    expect(
      c
        .sends(USERS[0])
        .slice(-2)
        .map((s) => s.senderAction ?? s.message?.text),
    ).toEqual(["typing_on", "a:after"]);
  });

  test("a flow change: the next turns run the new flow, none before the old one's", async () => {
    const c = await start({ extra: withKeys([KEY]) });
    const texts = await underTraffic(c, async () => {
      rewrite(c, (t) => t.replace('module = "flows/a.ts"', 'module = "flows/b.ts"'));
      expect(await reloadOk(c)).toEqual({ applied: ["flows.agent.module"], needs_restart: [], unchanged: false });
    });
    const replies = await inOrder(c, texts);
    for (const got of replies.values()) {
      const marks = got.map((t) => t[0]).join("");
      expect(marks).toMatch(/^a+b*$/);
    }
    await c.post([userText("after", { psid: USERS[0] })]);
    await until(() => messageTexts(c.sends(USERS[0])).length === PER_USER + 1);
    expect(messageTexts(c.sends(USERS[0])).at(-1)).toBe("b:after");
  });

  test("an endpoint added takes webhooks and runs its lanes; removed, its webhooks answer 404", async () => {
    const pages = [
      { id: PAGE_ID, token: PAGE_TOKEN, appSecret: APP_SECRET },
      { id: PAGE_ID_2, token: PAGE_TOKEN_2, appSecret: APP_SECRET },
    ];
    const c = await start({ extra: withKeys([KEY]), fakeGraph: { pages } });
    const shopPost = async (text: string) => {
      const body = JSON.stringify({
        object: "page",
        entry: [{ id: PAGE_ID_2, time: Date.now(), messaging: [{ ...userText(text, { psid: USERS[2] }), recipient: { id: PAGE_ID_2 } }] }],
      });
      const response = await fetch(`${c.url}/webhooks/shop`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-hub-signature-256": signBody(APP_SECRET, body) },
        body,
      });
      await response.arrayBuffer();
      return response.status;
    };
    expect(await shopPost("too early")).toBe(404);
    const shop = `[[endpoints]]\nid = "shop"\nflow = "agent"\nverify_token = "shop-verify-token-01"\napp_secret = "${APP_SECRET}"\npages = [ { id = "${PAGE_ID_2}", access_token = "${PAGE_TOKEN_2}" } ]\n`;
    const texts = await underTraffic(c, async () => {
      rewrite(c, (t) => `${t}\n${shop}`);
      expect(await reloadOk(c)).toEqual({ applied: ['endpoints[id="shop"]'], needs_restart: [], unchanged: false });
    });
    await inOrder(c, texts);
    expect(await shopPost("hello shop")).toBe(200);
    await until(() => messageTexts(c.graph.sends({ pageId: PAGE_ID_2 })).length > 0);
    expect(messageTexts(c.graph.sends({ pageId: PAGE_ID_2 }))).toEqual(["a:hello shop"]);

    rewrite(c, (t) => t);
    expect(await reloadOk(c)).toEqual({ applied: ['endpoints[id="shop"]'], needs_restart: [], unchanged: false });
    expect(await shopPost("too late")).toBe(404);
    expect((await api(c, "GET", "/api/endpoints")).body.endpoints.map((e: { id: string }) => e.id)).toEqual(["support"]);
  });

  test("an invalid file changes nothing: 400 invalid_settings with every problem, each logged with its key path", async () => {
    const c = await start({ extra: withKeys([KEY]) });
    let answer: Awaited<ReturnType<typeof api>> | undefined;
    const texts = await underTraffic(c, async () => {
      rewrite(c, (t) =>
        t
          .replace('module = "flows/a.ts"', 'module = "flows/b.ts"')
          .replace('level = "debug"', 'level = "loud"')
          .replace("message_delay_ms = 0", "message_delay_ms = -5"),
      );
      answer = await api(c, "POST", "/api/reload");
    });
    expect(answer!.status).toBe(400);
    expect(answer!.body.error).toBe("invalid_settings");
    const paths = (answer!.body.problems as { path: string }[]).map((p) => p.path).sort();
    expect(paths).toEqual(["endpoints[0].messenger.message_delay_ms", "log.level"]);
    const logged = c.logs.records().filter((r) => r.level === "error" && r.msg.startsWith("settings reload refused: ") && typeof r.path === "string");
    expect(logged.map((r) => r.path).sort()).toEqual(paths);
    // Nothing changed: the old flow answers, at the old log level.
    const replies = await inOrder(c, texts);
    for (const got of replies.values()) expect(got.every((t) => t.startsWith("a:"))).toBe(true);
    expect(c.logs.records().some((r) => r.level === "debug")).toBe(true);
  });

  test("a flow module that does not load refuses the reload: nothing changes", async () => {
    const c = await start({ extra: withKeys([KEY]) });
    c.dir.write("flows/broken.ts", "export default async (input) => {");
    rewrite(c, (t) => t.replace('module = "flows/a.ts"', 'module = "flows/broken.ts"').replace('level = "debug"', 'level = "warn"'));
    const answer = await api(c, "POST", "/api/reload");
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe("invalid_settings");
    expect(answer.body.problems).toHaveLength(1);
    expect(answer.body.problems[0].message).toStartWith("the new settings were not applied: ");
    expect(c.app.live.current.log.level).toBe("debug");
    await c.post([userText("still a", { psid: USERS[0] })]);
    await until(() => messageTexts(c.sends(USERS[0])).length === 1);
    expect(messageTexts(c.sends(USERS[0]))).toEqual(["a:still a"]);
  });
});
