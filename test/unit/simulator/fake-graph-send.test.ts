import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { verifySignature } from "../../../src/webhook/signature.ts";
import { FakeGraph, type FakeGraphOptions } from "../../../src/simulator/fake-graph.ts";

const PAGE = "104857600012345";
const PAGE2 = "205030405060708";
const TOKEN = "EAAtestPageToken123";
const TOKEN2 = "EAAsecondPageToken456";
const SECRET = "test_app_secret_0123";
const APP_ID = "987654321098765";
const PSID = "6301234567890123";
const DAY = 86_400_000;

/** A controllable clock. */
function fakeClock(start = 1767225600000) {
  let now = start;
  return { now: () => now, set: (t: number) => void (now = t), advance: (ms: number) => void (now += ms) };
}

const clock = fakeClock();
const pages: FakeGraphOptions["pages"] = [
  { id: PAGE, token: TOKEN, appId: APP_ID, appSecret: SECRET, name: "Shop" },
  { id: PAGE2, token: TOKEN2, appId: APP_ID, appSecret: SECRET, name: "Second Shop" },
];

let graph: FakeGraph;
beforeAll(async () => {
  graph = await FakeGraph.start({ pages, clock });
});
afterAll(() => graph.stop());
afterEach(() => {
  graph.reset();
  clock.set(1767225600000);
});

function post(path: string, body: unknown, init: { token?: string | null; query?: Record<string, string>; signal?: AbortSignal } = {}) {
  const query = new URLSearchParams(init.query);
  if (init.token !== null) query.set("access_token", init.token ?? TOKEN);
  return fetch(`${graph.url}${path}?${query}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(init.signal ? { signal: init.signal } : {}),
  });
}

const textBody = (text = "hello", extra: Record<string, unknown> = {}) => ({
  recipient: { id: PSID },
  messaging_type: "RESPONSE",
  message: { text },
  ...extra,
});

async function errorOf(response: Response) {
  const json = (await response.json()) as { error: Record<string, unknown> };
  expect(Object.keys(json)).toEqual(["error"]);
  expect(typeof json.error.fbtrace_id).toBe("string");
  expect(response.headers.get("content-type")).toBe("application/json; charset=UTF-8");
  expect(response.headers.get("x-fb-trace-id")).toBe(json.error.fbtrace_id as string);
  expect(response.headers.get("x-fb-rev")).toMatch(/^\d+$/);
  return json.error;
}

describe("Send API success", () => {
  test("POST /v26.0/me/messages: answer, headers, recording", async () => {
    const response = await post("/v26.0/me/messages", textBody("hello", { message: { text: "hello", metadata: "out-1" } }));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json; charset=UTF-8");
    expect(response.headers.get("x-fb-trace-id")).toBeTruthy();
    expect(response.headers.get("x-fb-rev")).toMatch(/^\d+$/);
    const json = (await response.json()) as { recipient_id: string; message_id: string };
    expect(Object.keys(json).sort()).toEqual(["message_id", "recipient_id"]);
    expect(json.recipient_id).toBe(PSID);
    expect(json.message_id).toMatch(/^m_[A-Za-z0-9_-]{20,}$/);

    const [send] = graph.sends();
    expect(send).toMatchObject({
      pageId: PAGE,
      recipientId: PSID,
      type: "message",
      message: { text: "hello", metadata: "out-1" },
      messagingType: "RESPONSE",
      metadata: "out-1",
      messageId: json.message_id,
    });
    const [call] = graph.calls;
    expect(call).toMatchObject({ method: "POST", path: "/v26.0/me/messages", pageId: PAGE, status: 200, response: json, time: clock.now() });
    expect(call!.query.access_token).toBe(TOKEN);
    expect(call!.seq).toBe(send!.seq);
    expect(typeof call!.at).toBe("number");
  });

  test("/{PAGE_ID}/messages, unversioned, token in the body or a Bearer header", async () => {
    expect((await post(`/v25.0/${PAGE}/messages`, textBody())).status).toBe(200);
    expect((await post(`/me/messages`, textBody())).status).toBe(200);
    expect((await post(`/v26.0/me/messages`, { ...textBody(), access_token: TOKEN }, { token: null })).status).toBe(200);
    const bearer = await fetch(`${graph.url}/v26.0/me/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(textBody()),
    });
    expect(bearer.status).toBe(200);
    expect(graph.sends()).toHaveLength(4);
  });

  test("urlencoded body with JSON-string fields", async () => {
    const form = new URLSearchParams({
      access_token: TOKEN,
      recipient: JSON.stringify({ id: PSID }),
      messaging_type: "UPDATE",
      message: JSON.stringify({ text: "from a form" }),
    });
    const response = await fetch(`${graph.url}/v26.0/me/messages`, { method: "POST", body: form });
    expect(response.status).toBe(200);
    expect(graph.sends()[0]).toMatchObject({ recipientId: PSID, messagingType: "UPDATE", message: { text: "from a form" } });
  });

  test("multipart body with JSON-string fields", async () => {
    const form = new FormData();
    form.set("recipient", JSON.stringify({ id: PSID }));
    form.set("message", JSON.stringify({ attachment: { type: "image", payload: { attachment_id: "42" } } }));
    const response = await fetch(`${graph.url}/v26.0/me/messages?access_token=${TOKEN}`, { method: "POST", body: form });
    expect(response.status).toBe(200);
    expect(graph.sends()[0]!.message).toEqual({ attachment: { type: "image", payload: { attachment_id: "42" } } });
  });

  test("a sender action answers recipient_id only", async () => {
    const response = await post("/v26.0/me/messages", { recipient: { id: PSID }, sender_action: "typing_on" });
    expect(await response.json()).toEqual({ recipient_id: PSID });
    expect(graph.sends()[0]).toMatchObject({ type: "action", senderAction: "typing_on", recipientId: PSID });
    expect(graph.sends()[0]!.messageId).toBeUndefined();
  });

  test("a user_ref recipient gets no recipient_id", async () => {
    const json = await (await post("/v26.0/me/messages", { recipient: { user_ref: "ref-9" }, messaging_type: "RESPONSE", message: { text: "hi" } })).json();
    expect(Object.keys(json as object)).toEqual(["message_id"]);
  });

  test("sends() filters by page and recipient; the in-process handler is the same", async () => {
    await post("/v26.0/me/messages", textBody());
    await post("/v26.0/me/messages", textBody("x", { recipient: { id: "999" } }), { token: TOKEN2 });
    const inProcess = await graph.handle(
      new Request(`http://fake/v26.0/me/messages?access_token=${TOKEN}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(textBody("local")),
      }),
    );
    expect(inProcess.status).toBe(200);
    expect(graph.sends({ pageId: PAGE })).toHaveLength(2);
    expect(graph.sends({ pageId: PAGE2, recipientId: "999" })).toHaveLength(1);
    expect(graph.sends({ recipientId: PSID }).map((s) => s.message.text)).toEqual(["hello", "local"]);
  });
});

describe("validation", () => {
  test("invalid → 400 code 100, recorded in calls, not in sends", async () => {
    const response = await post("/v26.0/me/messages", { recipient: { id: PSID }, message: { text: "hi" }, sender_action: "typing_on" });
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error).toMatchObject({ message: "(#100) Cannot send both message and state at the same time.", type: "OAuthException", code: 100 });
    expect(graph.sends()).toHaveLength(0);
    expect(graph.calls[0]).toMatchObject({ status: 400, response: { error: { code: 100 } } });
  });

  test("text over 2000 characters", async () => {
    const error = await errorOf(await post("/v26.0/me/messages", textBody("a".repeat(2001))));
    expect(error.code).toBe(100);
    expect(error.message).toContain("2000");
  });

  test("requireMessagingType makes a missing messaging_type an error", async () => {
    const strict = await FakeGraph.start({ pages, requireMessagingType: true });
    try {
      const r = await fetch(`${strict.url}/v26.0/me/messages?access_token=${TOKEN}`, {
        method: "POST",
        body: JSON.stringify({ recipient: { id: PSID }, message: { text: "x" } }),
        headers: { "content-type": "application/json" },
      });
      expect(r.status).toBe(400);
      expect(((await r.json()) as any).error.message).toContain("messaging_type");
    } finally {
      await strict.stop();
    }
  });

  test("a body that is not JSON", async () => {
    const r = await fetch(`${graph.url}/v26.0/me/messages?access_token=${TOKEN}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{nope",
    });
    expect((await errorOf(r)).code).toBe(100);
  });
});

describe("auth errors", () => {
  test("unknown token → 190", async () => {
    const response = await post("/v26.0/me/messages", textBody(), { token: "EAAwrong" });
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(Object.keys(error)).toEqual(["message", "type", "code", "fbtrace_id"]);
    expect(error).toMatchObject({ message: "Invalid OAuth access token.", type: "OAuthException", code: 190 });
    expect(graph.calls[0]!.pageId).toBeNull();
  });

  test("no token", async () => {
    const error = await errorOf(await post("/v26.0/me/messages", textBody(), { token: null }));
    expect(error.code).toBe(104);
  });

  test("expired token → 190 / 463", async () => {
    const g = await FakeGraph.start({ pages: [{ id: PAGE, token: TOKEN, tokenExpired: true }] });
    try {
      const r = await fetch(`${g.url}/v26.0/me/messages?access_token=${TOKEN}`, {
        method: "POST",
        body: JSON.stringify(textBody()),
        headers: { "content-type": "application/json" },
      });
      expect(((await r.json()) as any).error).toMatchObject({ code: 190, error_subcode: 463 });
    } finally {
      await g.stop();
    }
  });

  test("token without pages_messaging → 403 code 200", async () => {
    const g = await FakeGraph.start({ pages: [{ id: PAGE, token: TOKEN, scopes: ["pages_show_list"] }] });
    try {
      const r = await fetch(`${g.url}/v26.0/me/messages?access_token=${TOKEN}`, {
        method: "POST",
        body: JSON.stringify(textBody()),
        headers: { "content-type": "application/json" },
      });
      expect(r.status).toBe(403);
      expect(((await r.json()) as any).error).toMatchObject({ code: 200, message: "(#200) Permissions error" });
    } finally {
      await g.stop();
    }
  });

  test("appsecret_proof: required, wrong, right", async () => {
    const g = await FakeGraph.start({ pages: [{ id: PAGE, token: TOKEN, appSecret: SECRET, requireProof: true }] });
    const call = (query: string) =>
      fetch(`${g.url}/v26.0/me/messages?access_token=${TOKEN}${query}`, {
        method: "POST",
        body: JSON.stringify(textBody()),
        headers: { "content-type": "application/json" },
      });
    try {
      const missing = await call("");
      expect(missing.status).toBe(400);
      expect(((await missing.json()) as any).error).toMatchObject({
        code: 100,
        type: "GraphMethodException",
        message: "API calls from the server require an appsecret_proof argument",
      });
      const wrong = await call(`&appsecret_proof=${"0".repeat(64)}`);
      expect(((await wrong.json()) as any).error).toMatchObject({
        code: 100,
        type: "GraphMethodException",
        message: "Invalid appsecret_proof provided in the API argument",
      });
      const right = await call("&appsecret_proof=f05e1b92713dcd54355c00f9ad26ef9b180c43d47b28ed44174ea72852ee9ee6");
      expect(right.status).toBe(200);
    } finally {
      await g.stop();
    }
  });

  test("a wrong proof is rejected even when proofs are not required", async () => {
    const error = await errorOf(await post("/v26.0/me/messages", textBody(), { query: { appsecret_proof: "abc" } }));
    expect(error).toMatchObject({ code: 100, type: "GraphMethodException" });
  });

  test("another Page's node with this token → 100 / 33", async () => {
    const error = await errorOf(await post(`/v26.0/${PAGE2}/messages`, textBody()));
    expect(error).toMatchObject({ code: 100, error_subcode: 33 });
  });

  test("unknown edge → 2500", async () => {
    const error = await errorOf(await post("/v26.0/me/teleport", {}));
    expect(error).toMatchObject({ code: 2500, message: "Unknown path components: /teleport" });
  });
});

describe("user state and the messaging window", () => {
  test("unavailable → 551 / 1545041", async () => {
    graph.setUser(PAGE, PSID, { unavailable: true });
    const response = await post("/v26.0/me/messages", textBody());
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({
      code: 551,
      error_subcode: 1545041,
      message: "(#551) This person isn't available right now.",
      type: "OAuthException",
    });
    expect(graph.sends()).toHaveLength(0);
  });

  test("blocked (code 2), with a configurable status", async () => {
    graph.setUser(PAGE, PSID, { blockedCode2: true });
    const response = await post("/v26.0/me/messages", textBody());
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({
      code: 2,
      message: "An unexpected error has occurred. Please retry your request later.",
      is_transient: true,
    });
    graph.setUser(PAGE, PSID, { blockedStatus: 500 });
    expect((await post("/v26.0/me/messages", textBody())).status).toBe(500);
  });

  test("strictRecipients: unknown PSID → 100 No matching user found", async () => {
    const g = await FakeGraph.start({ pages, strictRecipients: true });
    try {
      g.setUser(PAGE, "known", {});
      const send = (id: string) =>
        fetch(`${g.url}/v26.0/me/messages?access_token=${TOKEN}`, {
          method: "POST",
          body: JSON.stringify(textBody("x", { recipient: { id } })),
          headers: { "content-type": "application/json" },
        });
      expect(((await (await send("stranger")).json()) as any).error).toMatchObject({
        code: 100,
        error_subcode: 2018001,
        message: "(#100) No matching user found",
      });
      expect((await send("known")).status).toBe(200);
    } finally {
      await g.stop();
    }
  });

  test("outside 24 h → 10 / 2018278; tags and HUMAN_AGENT (7 days) pass", async () => {
    graph.setUser(PAGE, PSID, { lastInboundAt: clock.now() - DAY - 1 });
    const outside = await post("/v26.0/me/messages", textBody());
    expect(outside.status).toBe(400);
    const error = await errorOf(outside);
    expect(error).toMatchObject({ code: 10, error_subcode: 2018278, type: "OAuthException" });
    expect(error.message as string).toStartWith("(#10) This message is sent outside of allowed window.");
    expect((await post("/v26.0/me/messages", { recipient: { id: PSID }, sender_action: "typing_on" })).status).toBe(400);

    expect((await post("/v26.0/me/messages", textBody("x", { messaging_type: "MESSAGE_TAG", tag: "POST_PURCHASE_UPDATE" }))).status).toBe(200);
    expect((await post("/v26.0/me/messages", textBody("x", { messaging_type: "MESSAGE_TAG", tag: "HUMAN_AGENT" }))).status).toBe(200);
    clock.advance(6 * DAY);
    expect((await post("/v26.0/me/messages", textBody("x", { messaging_type: "MESSAGE_TAG", tag: "HUMAN_AGENT" }))).status).toBe(400);
    expect((await post("/v26.0/me/messages", textBody("x", { messaging_type: "MESSAGE_TAG", tag: "ACCOUNT_UPDATE" }))).status).toBe(200);

    graph.userMessaged(PAGE, PSID);
    expect((await post("/v26.0/me/messages", textBody())).status).toBe(200);
    clock.advance(DAY);
    expect((await post("/v26.0/me/messages", textBody())).status).toBe(200); // exactly 24 h: still inside
    clock.advance(1);
    expect((await post("/v26.0/me/messages", textBody())).status).toBe(400);
  });

  test("users without lastInboundAt are not window-checked", async () => {
    graph.setUser(PAGE, PSID, { profile: { first_name: "A" } });
    clock.advance(100 * DAY);
    expect((await post("/v26.0/me/messages", textBody())).status).toBe(200);
  });
});

describe("scripted failures", () => {
  test("613 twice, then success", async () => {
    graph.failNext({ code: 613 }, { times: 2 });
    const statuses: number[] = [];
    const bodies: any[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await post("/v26.0/me/messages", textBody(`try ${i}`));
      statuses.push(r.status);
      bodies.push(await r.json());
    }
    expect(statuses).toEqual([400, 400, 200]);
    expect(bodies[0].error).toMatchObject({
      code: 613,
      message: "(#613) Calls to this api have exceeded the rate limit.",
      is_transient: true,
      type: "OAuthException",
    });
    expect(bodies[0].error.fbtrace_id).not.toBe(bodies[1].error.fbtrace_id);
    expect(graph.sends().map((s) => s.message.text)).toEqual(["try 2"]);
    expect(graph.calls.map((c) => c.status)).toEqual([400, 400, 200]);
  });

  test("queued failures are used in order; filters choose the calls", async () => {
    graph.failNext({ code: 4 });
    graph.failNext({ code: 2, status: 500 });
    graph.failNext({ code: 551 }, { recipientId: "other" });
    graph.failNext({ code: 100, message: "Custom thing" }, { when: (body) => body.message?.text === "special" });
    const codes: (number | null)[] = [];
    for (const [text, id] of [
      ["a", PSID],
      ["b", PSID],
      ["special", PSID],
      ["c", PSID],
      ["d", "other"],
    ] as const) {
      const r = await post("/v26.0/me/messages", textBody(text, { recipient: { id } }));
      const json = (await r.json()) as any;
      codes.push(json.error ? json.error.code : null);
      if (json.error?.code === 2) expect(r.status).toBe(500);
      if (json.error?.code === 4) expect(json.error.is_transient).toBe(true);
      if (json.error?.code === 100) expect(json.error.message).toBe("(#100) Custom thing");
      if (json.error?.code === 551) expect(json.error.error_subcode).toBe(1545041);
    }
    expect(codes).toEqual([4, 2, 100, null, 551]);
  });

  test("page filter, explicit subcode, type, isTransient and headers", async () => {
    graph.failNext(
      {
        code: 80006,
        subcode: 2446079,
        type: "OAuthException",
        isTransient: true,
        message: "There have been too many messages",
        headers: { "x-business-use-case-usage": "{}" },
      },
      { pageId: PAGE2 },
    );
    expect((await post("/v26.0/me/messages", textBody())).status).toBe(200);
    const r = await post("/v26.0/me/messages", textBody(), { token: TOKEN2 });
    expect(r.headers.get("x-business-use-case-usage")).toBe("{}");
    expect(await errorOf(r)).toMatchObject({ code: 80006, error_subcode: 2446079, is_transient: true, message: "(#80006) There have been too many messages" });
  });

  test("a permission error is 403; code 1 with status 500", async () => {
    graph.failNext({ code: 200 });
    graph.failNext({ code: 1, status: 500 });
    const a = await post("/v26.0/me/messages", textBody());
    expect(a.status).toBe(403);
    expect((await errorOf(a)).message).toBe("(#200) Permissions error");
    const b = await post("/v26.0/me/messages", textBody());
    expect(b.status).toBe(500);
    expect(await errorOf(b)).toMatchObject({ code: 1, message: "An unknown error has occurred." });
  });

  test("scripted failures come before validation", async () => {
    graph.failNext({ code: 613 });
    const error = await errorOf(await post("/v26.0/me/messages", { recipient: { id: PSID } }));
    expect(error.code).toBe(613);
  });

  test("timeout: the client gives up, nothing is sent, the next call works", async () => {
    graph.failNext({ timeoutMs: 60_000 });
    const error = await post("/v26.0/me/messages", textBody("lost"), { signal: AbortSignal.timeout(100) }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe("TimeoutError");
    const [dropped] = await graph.waitForCalls((c) => c.status === 0);
    expect(dropped!.response).toBeNull();
    expect(graph.sends()).toHaveLength(0);
    expect((await post("/v26.0/me/messages", textBody("next"))).status).toBe(200);
  });

  test("timeout shorter than the client's: a slow success", async () => {
    graph.failNext({ timeoutMs: 30 });
    const started = performance.now();
    const r = await post("/v26.0/me/messages", textBody("slow"), { signal: AbortSignal.timeout(5000) });
    expect(r.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    expect(graph.sends()).toHaveLength(1);
  });

  test("timeout with deliver: sent, but the answer is lost (a retry double-sends)", async () => {
    graph.failNext({ timeoutMs: 60_000, deliver: true });
    const error = await post("/v26.0/me/messages", textBody("twice"), { signal: AbortSignal.timeout(100) }).catch((e: Error) => e);
    expect((error as Error).name).toBe("TimeoutError");
    expect((await post("/v26.0/me/messages", textBody("twice"))).status).toBe(200);
    expect(graph.sends().map((s) => s.message.text)).toEqual(["twice", "twice"]);
  });

  test("network error: fetch rejects, the next call works", async () => {
    graph.failNext({ networkError: true });
    const error = await post("/v26.0/me/messages", textBody(), { signal: AbortSignal.timeout(5000) }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).name).not.toBe("TimeoutError");
    expect(graph.calls[0]!.status).toBe(0);
    expect(graph.sends()).toHaveLength(0);
    expect((await post("/v26.0/me/messages", textBody())).status).toBe(200);
  });

  test("network error and timeout in process", async () => {
    const request = (signal?: AbortSignal) =>
      new Request(`http://fake/v26.0/me/messages?access_token=${TOKEN}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(textBody()),
        ...(signal ? { signal } : {}),
      });
    graph.failNext({ networkError: true });
    await expect(graph.handle(request())).rejects.toBeInstanceOf(TypeError);
    graph.failNext({ timeoutMs: 60_000 });
    const error = await graph.handle(request(AbortSignal.timeout(50))).catch((e: Error) => e);
    expect((error as Error).name).toBe("TimeoutError");
  });

  test("stop() releases held answers", async () => {
    const g = await FakeGraph.start({ pages });
    g.failNext({ timeoutMs: 60_000, deliver: true });
    const pending = fetch(`${g.url}/v26.0/me/messages?access_token=${TOKEN}`, {
      method: "POST",
      body: JSON.stringify(textBody()),
      headers: { "content-type": "application/json" },
    }).catch((e: Error) => e);
    await g.waitForSends(1); // sent; the answer is held
    const stopped = performance.now();
    await g.stop();
    expect(await pending).toBeInstanceOf(Error);
    expect(performance.now() - stopped).toBeLessThan(5000);
  });
});

describe("waiting", () => {
  test("waitForSends resolves when the sends arrive", async () => {
    const waiting = graph.waitForSends(2, { recipientId: PSID });
    await post("/v26.0/me/messages", textBody("1"));
    await post("/v26.0/me/messages", textBody("x", { recipient: { id: "someone-else" } }));
    await post("/v26.0/me/messages", textBody("2"));
    expect((await waiting).map((s) => s.message.text)).toEqual(["1", "2"]);
  });

  test("waitForSends times out with what it saw", async () => {
    await post("/v26.0/me/messages", textBody("1"));
    await expect(graph.waitForSends(2, {}, 20)).rejects.toThrow("saw 1");
  });

  test("waitForCalls counts answered calls", async () => {
    const waiting = graph.waitForCalls((c) => c.status === 400, 2);
    await post("/v26.0/me/messages", {});
    await post("/v26.0/me/messages", textBody());
    await post("/v26.0/me/messages", {});
    expect((await waiting).map((c) => c.seq)).toEqual([graph.calls[0]!.seq, graph.calls[2]!.seq]);
  });
});

describe("echo, delivery and read webhooks", () => {
  interface Received {
    bytes: Uint8Array;
    headers: Headers;
    json: any;
  }
  let receiver: ReturnType<typeof Bun.serve>;
  const received: Received[] = [];
  let arrived: (() => void) | null = null;
  let gate: Promise<void> = Promise.resolve();

  beforeAll(() => {
    receiver = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request) {
        const bytes = new Uint8Array(await request.arrayBuffer());
        received.push({ bytes, headers: request.headers, json: JSON.parse(new TextDecoder().decode(bytes)) });
        arrived?.();
        await gate;
        return new Response("EVENT_RECEIVED");
      },
    });
  });
  afterAll(() => receiver.stop(true));
  afterEach(() => {
    received.length = 0;
  });

  /** Resolves once `n` webhook POSTs have arrived. */
  function receivedCount(n: number): Promise<Received[]> {
    return new Promise((resolve) => {
      const check = () => {
        if (received.length >= n) {
          arrived = null;
          resolve(received.slice());
        }
      };
      arrived = check;
      check();
    });
  }

  async function withWebhooks(options: Partial<FakeGraphOptions>, run: (g: FakeGraph) => Promise<void>) {
    const g = await FakeGraph.start({ pages, clock, webhook: { url: `http://127.0.0.1:${receiver.port}/webhooks/main`, appSecret: SECRET }, ...options });
    try {
      await run(g);
    } finally {
      await g.stop();
    }
  }

  const send = (g: FakeGraph, body: unknown) =>
    fetch(`${g.url}/v26.0/me/messages?access_token=${TOKEN}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

  test("an echo is POSTed, signed over the exact bytes, escaped like Meta", async () => {
    await withWebhooks({ echoes: true }, async (g) => {
      const response = await send(g, { recipient: { id: PSID }, messaging_type: "RESPONSE", message: { text: "café / ok", metadata: "out-7" } });
      const { message_id } = (await response.json()) as { message_id: string };
      const [hook] = await receivedCount(1);
      const raw = new TextDecoder().decode(hook!.bytes);
      expect(raw).toContain(String.raw`caf\u00e9 \/ ok`);
      expect(hook!.headers.get("content-type")).toBe("application/json");
      expect(verifySignature(SECRET, hook!.bytes, hook!.headers.get("x-hub-signature-256"))).toBe(true);
      expect(hook!.headers.get("x-hub-signature")).toMatch(/^sha1=[0-9a-f]{40}$/);
      expect(hook!.json).toEqual({
        object: "page",
        entry: [
          {
            id: PAGE,
            time: clock.now(),
            messaging: [
              {
                sender: { id: PAGE },
                recipient: { id: PSID },
                timestamp: clock.now(),
                message: { is_echo: true, app_id: Number(APP_ID), metadata: "out-7", mid: message_id, text: "café / ok" },
              },
            ],
          },
        ],
      });
      expect(raw).toContain(`"app_id":${APP_ID}`);
      await g.flushWebhooks();
      expect(g.webhookDeliveries.map((d) => d.status)).toEqual([200]);
    });
  });

  test("attachments echo as attachments; sender actions and failed sends emit nothing", async () => {
    await withWebhooks({ echoes: true }, async (g) => {
      await send(g, { recipient: { id: PSID }, sender_action: "typing_on" });
      await send(g, { recipient: { id: PSID }, message: { text: "" } });
      await send(g, {
        recipient: { id: PSID },
        messaging_type: "RESPONSE",
        message: { attachment: { type: "image", payload: { url: "https://x.test/a.png" } } },
      });
      const hooks = await receivedCount(1);
      expect(hooks[0]!.json.entry[0].messaging[0].message.attachments).toEqual([{ type: "image", payload: { url: "https://x.test/a.png" } }]);
      await g.flushWebhooks();
      expect(received).toHaveLength(1);
    });
  });

  test("echo, delivery and read arrive in order; watermark = send time", async () => {
    await withWebhooks({ echoes: true, deliveries: true, reads: true }, async (g) => {
      const { message_id } = (await (await send(g, { recipient: { id: PSID }, messaging_type: "RESPONSE", message: { text: "hi" } })).json()) as {
        message_id: string;
      };
      const hooks = await receivedCount(3);
      const events = hooks.map((h) => h.json.entry[0].messaging[0]);
      expect(Object.keys(events[0].message)).toContain("is_echo");
      expect(events[1]).toEqual({ sender: { id: PSID }, recipient: { id: PAGE }, delivery: { mids: [message_id], watermark: clock.now() } });
      expect(events[2]).toEqual({ sender: { id: PSID }, recipient: { id: PAGE }, timestamp: clock.now(), read: { watermark: clock.now() } });
      for (const h of hooks) expect(verifySignature(SECRET, h.bytes, h.headers.get("x-hub-signature-256"))).toBe(true);
    });
  });

  test("the Send API answers without waiting for the webhook", async () => {
    let release!: () => void;
    gate = new Promise<void>((resolve) => (release = resolve));
    try {
      await withWebhooks({ echoes: true }, async (g) => {
        const arrivedOne = receivedCount(1);
        const response = await send(g, { recipient: { id: PSID }, messaging_type: "RESPONSE", message: { text: "quick" } });
        expect(response.status).toBe(200); // answered while the receiver still holds the echo
        await arrivedOne;
        expect(g.webhookDeliveries[0]!.status).toBeNull();
        release();
        await g.flushWebhooks();
        expect(g.webhookDeliveries[0]!.status).toBe(200);
      });
    } finally {
      release();
      gate = Promise.resolve();
    }
  });

  test("inboxDone passes control back with a pass_thread_control event", async () => {
    await withWebhooks({}, async (g) => {
      g.setThreadOwner(PAGE, PSID, "263902037430900");
      g.inboxDone(PAGE, PSID, "resolved");
      const [hook] = await receivedCount(1);
      expect(hook!.json.entry[0].messaging[0].pass_thread_control).toEqual({
        previous_owner_app_id: "263902037430900",
        new_owner_app_id: APP_ID,
        metadata: "resolved",
      });
      expect(g.threadOwner(PAGE, PSID)).toBe(APP_ID);
    });
  });

  test("userMessage and inboxReply come in messaging[] while our app owns the thread, in standby[] while the Page Inbox does", async () => {
    await withWebhooks({}, async (g) => {
      g.userMessage(PAGE, PSID, "hi");
      g.inboxReply(PAGE, PSID, "a person");
      g.setThreadOwner(PAGE, PSID, "263902037430900");
      g.userMessage(PAGE, PSID, "still there?");
      g.inboxReply(PAGE, PSID, "yes");
      const hooks = await receivedCount(4);
      const lists = hooks.map((h) => Object.keys(h.json.entry[0]).find((k) => k === "messaging" || k === "standby"));
      expect(lists).toEqual(["messaging", "messaging", "standby", "standby"]);
      expect(hooks[0]!.json.entry[0].messaging[0]).toMatchObject({ sender: { id: PSID }, recipient: { id: PAGE }, message: { text: "hi" } });
      expect(hooks[3]!.json.entry[0].standby[0]).toMatchObject({
        sender: { id: PAGE },
        recipient: { id: PSID },
        message: { is_echo: true, app_id: 263902037430900, text: "yes" },
      });
      expect(g.user(PAGE, PSID)?.lastInboundAt).toBe(clock.now());
    });
  });

  test("inboxTake takes the thread and tells the previous owner; inboxRequest asks our app", async () => {
    await withWebhooks({}, async (g) => {
      g.inboxRequest(PAGE, PSID, "may I?");
      g.inboxTake(PAGE, PSID, "taking it");
      g.inboxTake(PAGE, PSID, "again"); // the Page Inbox owns it already: nobody to tell
      const hooks = await receivedCount(2);
      await g.flushWebhooks();
      expect(received).toHaveLength(2);
      expect(hooks[0]!.json.entry[0].messaging[0].request_thread_control).toEqual({ requested_owner_app_id: 263902037430900, metadata: "may I?" });
      expect(hooks[1]!.json.entry[0].messaging[0].take_thread_control).toEqual({
        previous_owner_app_id: APP_ID,
        new_owner_app_id: "263902037430900",
        metadata: "taking it",
      });
      expect(g.threadOwner(PAGE, PSID)).toBe("263902037430900");
    });
  });

  test("failNext with an edge fails that handover call only", async () => {
    await withWebhooks({}, async (g) => {
      g.failNext({ code: 100, message: "(#100) nope" }, { edge: "pass_thread_control" });
      const pass = () =>
        fetch(`${g.url}/v26.0/me/pass_thread_control?access_token=${TOKEN}`, {
          method: "POST",
          body: JSON.stringify({ recipient: { id: PSID }, target_app_id: "263902037430900" }),
          headers: { "content-type": "application/json" },
        });
      expect((await send(g, { recipient: { id: PSID }, messaging_type: "RESPONSE", message: { text: "not this one" } })).status).toBe(200);
      expect(((await (await pass()).json()) as any).error).toMatchObject({ code: 100, message: "(#100) nope" });
      expect(await (await pass()).json()).toEqual({ success: true });
    });
  });
});
