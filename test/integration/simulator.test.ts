/**
 * The simulator (docs/simulator.md) in process: the chat page's API, with the simulator switched on for a
 * real endpoint. A simulated user's event goes signed to the real webhook and the whole pipeline
 * runs; the replies reach the simulator's own Graph stand-in and the page's event stream, never
 * the Graph API of the settings (here a fake standing for Facebook, which records every call).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { PAGE_ID, PAGE_TOKEN, PSID } from "../helpers/config.ts";
import { KEY, api } from "../helpers/admin.ts";
import { messageTexts, rows, startConversation, until, userText, type Conversation, type ConversationOptions } from "../helpers/conversation.ts";

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function conversation(options: ConversationOptions = {}): Promise<Conversation> {
  const c = await startConversation({ extra: "[simulator]\nenabled = true", ...options });
  open.push(c);
  return c;
}

/** A call to the simulator's API (no admin key: the simulator has none). */
const call = (c: Conversation, method: string, path: string, body?: unknown) => api(c, method, path, { body, key: null });

/** The page's event stream for a user: every event as it comes, and a way to wait for one. */
async function events(c: Conversation, user: { endpoint_id: string; page_id: string; user_id: string }) {
  const controller = new AbortController();
  const response = await fetch(`${c.url}/simulator/api/events?${new URLSearchParams(user)}`, { signal: controller.signal });
  expect(response.headers.get("content-type")).toStartWith("text/event-stream");
  const seen: any[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let at: number;
        while ((at = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          if (chunk.startsWith("data: ")) seen.push(JSON.parse(chunk.slice(6)));
        }
      }
    } catch {
      // closed
    }
  })();
  return {
    seen,
    async next(predicate: (e: any) => boolean, timeoutMs = 10_000): Promise<any> {
      await until(() => seen.some(predicate), timeoutMs);
      return seen.find(predicate);
    },
    async close() {
      controller.abort();
      await pump;
    },
  };
}

const newUser = async (c: Conversation, name = "Ann Lee") => {
  const answer = await call(c, "POST", "/simulator/api/users", { endpoint_id: "support", page_id: PAGE_ID, name });
  expect(answer.status).toBe(201);
  const { endpoint_id, page_id, user_id } = answer.body as { endpoint_id: string; page_id: string; user_id: string };
  return { endpoint_id, page_id, user_id };
};

describe("simulator", () => {
  test("is not there unless switched on", async () => {
    const c = await startConversation();
    open.push(c);
    for (const path of ["/simulator", "/simulator/api/setup", "/simulator/api/events?endpoint_id=support"])
      expect((await call(c, "GET", path)).status).toBe(404);
    expect((await call(c, "POST", "/simulator/api/users", { endpoint_id: "support", page_id: PAGE_ID, name: "x" })).status).toBe(404);
    // Nor between the Graph client and Facebook: with no simulated users stored, it gets the plain fetch.
    expect(c.app.simulator.routesGraphCalls).toBe(false);
  });

  test("serves the page, embedded, with nothing from elsewhere", async () => {
    const c = await conversation();
    const page = await fetch(`${c.url}/simulator`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    const html = await page.text();
    expect(html).toContain("Messenger simulator");
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href="(?!data:)|https?:\/\/(?!developers)/);
    // Its script is valid JavaScript (a template-literal escape can break it without any other test noticing quickly).
    const script = html.split("<script>")[1]!.split("</script>")[0]!;
    expect(() => new Function(script)).not.toThrow();
  });

  test("a simulated user's message runs the real pipeline; the reply reaches the page, never the settings' Graph API", async () => {
    const c = await conversation({ messenger: { typing: true, delayMs: 50 } });
    expect(c.app.simulator.routesGraphCalls).toBe(true);
    const user = await newUser(c);
    expect(user.user_id).toMatch(/^9\d{15}$/);
    const setup = await call(c, "GET", "/simulator/api/setup");
    expect(setup.body.endpoints[0]).toMatchObject({ id: "support", pages: [{ id: PAGE_ID }] });
    expect(setup.body.users).toEqual([{ ...user, name: "Ann Lee" }]);
    const stream = await events(c, user);
    expect(await stream.next((e) => e.type === "thread")).toEqual({ type: "thread", state: "bot" });
    expect((await call(c, "POST", "/simulator/api/send", { ...user, text: "hi there" })).status).toBe(202);
    const typing = await stream.next((e) => e.type === "action" && e.action === "typing_on");
    const reply = await stream.next((e) => e.type === "message");
    expect(stream.seen.indexOf(typing)).toBeLessThan(stream.seen.indexOf(reply));
    expect(reply.message).toMatchObject({
      text: "You said: hi there",
      quick_replies: [{ content_type: "text", title: "Buttons", payload: "SHOW_BUTTONS" }, { title: "Cards" }, { title: "Hello" }],
    });
    // Through the real webhook (signed: the endpoint has an app secret) and the inbox.
    const stored = await rows(c, "SELECT kind, event FROM inbox WHERE user_id = ? AND kind = 'message'", [user.user_id]);
    expect(JSON.parse(String(stored[0]!.event)).message.text).toBe("hi there");
    // The echo of the reply came back through the webhook and marked it sent.
    await until(
      async () => (await rows(c, "SELECT count(*) AS n FROM outbox WHERE user_id = ? AND status = 'sent' AND kind = 'message'", [user.user_id]))[0]!.n === 1,
    );
    // Nothing about the simulated user reached the Graph API of the settings.
    expect(c.graph.calls.filter((call) => JSON.stringify(call).includes(user.user_id))).toEqual([]);
    // A real user is served by it as before.
    expect(await c.post([userText("real person")])).toBe(200);
    await until(() => messageTexts(c.sends(PSID)).length === 1);
    expect(messageTexts(c.sends(PSID))).toEqual(["You said: real person"]);
    await stream.close();
  });

  test("quick replies and postbacks carry their payloads; templates and carousels arrive as Messenger would show them", async () => {
    const c = await conversation();
    const user = await newUser(c);
    const stream = await events(c, user);
    expect((await call(c, "POST", "/simulator/api/send", { ...user, quick_reply: { title: "Buttons", payload: "SHOW_BUTTONS" } })).status).toBe(202);
    const buttons = await stream.next((e) => e.type === "message");
    expect(buttons.message.attachment).toMatchObject({ type: "template", payload: { template_type: "button", text: "Here are some buttons." } });
    expect((await call(c, "POST", "/simulator/api/send", { ...user, postback: { title: "Show cards", payload: "SHOW_CARDS" } })).status).toBe(202);
    const cards = await stream.next((e) => e.type === "message" && e.message.attachment?.payload?.template_type === "generic");
    expect(cards.message.attachment.payload.elements.map((e: any) => e.title)).toEqual(["Card 1", "Card 2", "Card 3"]);
    const inbox = await rows(c, "SELECT kind, event FROM inbox WHERE user_id = ? ORDER BY id", [user.user_id]);
    expect(JSON.parse(String(inbox.find((r) => r.kind === "message")!.event)).message.quick_reply).toEqual({ payload: "SHOW_BUTTONS" });
    expect(JSON.parse(String(inbox.find((r) => r.kind === "postback")!.event)).postback).toMatchObject({ title: "Show cards", payload: "SHOW_CARDS" });
    await stream.close();
  });

  test("handover shows on the page, and 'Mark done' brings the bot back", async () => {
    const c = await conversation();
    const user = await newUser(c);
    const stream = await events(c, user);
    await call(c, "POST", "/simulator/api/send", { ...user, postback: { title: "Talk to a person", payload: "HUMAN" } });
    expect(await stream.next((e) => e.type === "thread" && e.state === "handover")).toBeTruthy();
    expect((await call(c, "POST", "/simulator/api/done", user)).status).toBe(202);
    await stream.next((e) => e.type === "thread" && e.state === "bot" && stream.seen.indexOf(e) > 1);
    const back = await stream.next((e) => e.type === "message" && String(e.message.text).startsWith("I'm back"));
    expect(back.message.text).toContain("completed");
    await stream.close();
  });

  test("bad requests are refused with a reason and change nothing", async () => {
    const c = await conversation();
    const user = await newUser(c);
    const cases: [string, unknown, number][] = [
      ["/simulator/api/send", { ...user, user_id: PSID, text: "x" }, 404], // a real user: never
      ["/simulator/api/send", { ...user, text: "x", postback: { title: "a", payload: "b" } }, 400],
      ["/simulator/api/send", { ...user }, 400],
      ["/simulator/api/send", "not json", 400],
      ["/simulator/api/users", { endpoint_id: "nope", page_id: PAGE_ID, name: "x" }, 404],
      ["/simulator/api/users", { endpoint_id: "support", page_id: "1", name: "x" }, 404],
      ["/simulator/api/users", { endpoint_id: "support", page_id: PAGE_ID }, 400],
    ];
    for (const [path, body, status] of cases) {
      const answer = await call(c, "POST", path, body);
      expect([path, answer.status]).toEqual([path, status]);
      expect(answer.body.message).toBeString();
    }
    expect(await rows(c, "SELECT count(*) AS n FROM inbox")).toEqual([expect.objectContaining({ n: 0 })]);
  });

  test("refusals name their code and the first problem", async () => {
    const c = await conversation({ extra: "[server]\nmax_body_bytes = 4096\n[simulator]\nenabled = true" });
    const user = await newUser(c);
    const cases: [string, string, unknown, number, string, string | RegExp][] = [
      ["POST", "/simulator/api/send", { ...user, text: "x", admin: true }, 400, "invalid_body", "invalid simulator request: unknown property /admin"],
      ["POST", "/simulator/api/users", { endpoint_id: "support", page_id: "12a", name: "x" }, 400, "invalid_body", /^invalid simulator request: \/page_id: /],
      ["POST", "/simulator/api/send", "not json", 400, "invalid_body", "invalid simulator request: the body is not JSON"],
      ["POST", "/simulator/api/send", { ...user, text: "x".repeat(5000) }, 413, "too_large", "the body is over 4096 bytes ([server] max_body_bytes)"],
      ["POST", "/simulator/api/done", { ...user, user_id: PSID }, 404, "unknown_user", /is not a simulated user/],
      [
        "GET",
        `/simulator/api/events?${new URLSearchParams({ endpoint_id: "support", page_id: PAGE_ID })}`,
        undefined,
        400,
        "invalid_query",
        "invalid simulator request: /user_id: Expected required property",
      ],
      ["GET", `/simulator/api/events?${new URLSearchParams({ ...user, user_id: PSID })}`, undefined, 404, "unknown_user", /is not a simulated user/],
    ];
    for (const [method, path, body, status, error, message] of cases) {
      const answer = await fetch(`${c.url}${path}`, {
        method,
        ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) }),
      });
      const refusal = (await answer.json()) as { error: string; message: string };
      expect([path, answer.status, refusal.error]).toEqual([path, status, error]);
      expect(refusal.message).toMatch(message);
    }
    expect(await rows(c, "SELECT count(*) AS n FROM inbox")).toEqual([expect.objectContaining({ n: 0 })]);
  });

  test("only JSON from the page's own origin is taken", async () => {
    const c = await conversation();
    const plain = await fetch(`${c.url}/simulator/api/users`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ endpoint_id: "support", page_id: PAGE_ID, name: "x" }),
    });
    expect([plain.status, ((await plain.json()) as { error: string }).error]).toEqual([415, "json_only"]);
    const crossSite = await fetch(`${c.url}/simulator/api/users`, {
      method: "POST",
      headers: { "content-type": "application/json", "sec-fetch-site": "cross-site" },
      body: JSON.stringify({ endpoint_id: "support", page_id: PAGE_ID, name: "x" }),
    });
    expect(crossSite.status).toBe(403);
    expect(((await crossSite.json()) as { error: string }).error).toBe("cross_site");
    // Another Host is refused before anything else is looked at.
    const elsewhere = await fetch(`${c.url}/simulator/api/users`, {
      method: "POST",
      headers: { host: "evil.example", "content-type": "text/plain" },
      body: "x",
    });
    expect([elsewhere.status, ((await elsewhere.json()) as { error: string }).error]).toEqual([403, "host_not_allowed"]);
    expect((await call(c, "GET", "/simulator/api/setup")).body.users).toEqual([]);
  });

  test("answers only its own host names: another Host (DNS rebinding) is refused with 403 and changes nothing", async () => {
    const c = await conversation({ extra: '[simulator]\nenabled = true\nallowed_hosts = ["Sim.Example.test:8443"]' });
    const user = await newUser(c);
    const withHost = (host: string, method: string, path: string, body?: unknown) =>
      fetch(`${c.url}${path}`, {
        method,
        headers: { host, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    const requests: [string, string, unknown?][] = [
      ["GET", "/simulator"],
      ["GET", "/simulator/api/setup"],
      ["POST", "/simulator/api/users", { endpoint_id: "support", page_id: PAGE_ID, name: "Mallory" }],
      ["POST", "/simulator/api/send", { ...user, text: "sent by another site" }],
      ["POST", "/simulator/api/done", user],
      ["GET", `/simulator/api/events?${new URLSearchParams(user)}`],
    ];
    for (const host of ["evil.example", "evil.example:8080", "EVIL.example.", "127.0.0.1.evil.example", "localhost.evil.example:80"]) {
      for (const [method, path, body] of requests) {
        const answer = await withHost(host, method, path, body);
        expect([host, method, path, answer.status]).toEqual([host, method, path, 403]);
        expect(answer.headers.get("content-type")).toContain("application/json");
        const refusal = (await answer.json()) as { error: string; message: string };
        expect(refusal.message).toContain("[simulator] allowed_hosts");
      }
    }
    // Nothing changed: no new user, nothing sent to the webhook, the thread untouched.
    expect((await call(c, "GET", "/simulator/api/setup")).body.users).toEqual([{ ...user, name: "Ann Lee" }]);
    expect(await rows(c, "SELECT count(*) AS n FROM inbox")).toEqual([expect.objectContaining({ n: 0 })]);
    // The server's own names and the configured one are answered, whatever the case and the port.
    for (const host of ["localhost", `LOCALHOST:${new URL(c.url).port}`, "127.0.0.1:1", "[::1]:8080", "sim.example.TEST", "sim.example.test:80"]) {
      const setup = await withHost(host, "GET", "/simulator/api/setup");
      expect([host, setup.status]).toEqual([host, 200]);
    }
    const page = await withHost("sim.example.test", "GET", "/simulator");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Messenger simulator");
    expect((await withHost("sim.example.test", "POST", "/simulator/api/send", { ...user, text: "from the allowed name" })).status).toBe(202);
    await until(async () => (await rows(c, "SELECT count(*) AS n FROM inbox WHERE kind = 'message'"))[0]!.n === 1);
    // The rest of the server is not the simulator's business.
    expect((await withHost("evil.example", "GET", "/healthz")).status).toBe(200);
    // serve tells the simulator the address it listens on (here as if given --host 192.168.1.5).
    expect((await withHost("192.168.1.5:8080", "GET", "/simulator/api/setup")).status).toBe(403);
    c.app.simulator.listening(c.url, "192.168.1.5");
    expect((await withHost("192.168.1.5:8080", "GET", "/simulator/api/setup")).status).toBe(200);
  });

  test("a Page served by two endpoints: each endpoint's simulated users reach their own webhook", async () => {
    const c = await conversation({
      endpointToml: `[[endpoints]]\nid = "sales"\nflow = "agent"\nverify_token = "sales-verify-token"\napp_secret = "sales_app_secret_0123"\npages = [ { id = "${PAGE_ID}", access_token = "${PAGE_TOKEN}" } ]`,
    });
    const support = await newUser(c);
    const salesAnswer = await call(c, "POST", "/simulator/api/users", { endpoint_id: "sales", page_id: PAGE_ID, name: "Cy" });
    const sales = { endpoint_id: "sales", page_id: PAGE_ID, user_id: salesAnswer.body.user_id };
    const [a, b] = [await events(c, support), await events(c, sales)];
    await call(c, "POST", "/simulator/api/send", { ...support, text: "to support" });
    await call(c, "POST", "/simulator/api/send", { ...sales, text: "to sales" });
    expect((await a.next((e) => e.type === "message")).message.text).toBe("You said: to support");
    expect((await b.next((e) => e.type === "message")).message.text).toBe("You said: to sales");
    const stored = await rows(c, "SELECT endpoint_id, user_id FROM inbox WHERE kind = 'message' ORDER BY id");
    expect(stored.map((r) => `${r.endpoint_id}:${r.user_id}`)).toEqual([`support:${support.user_id}`, `sales:${sales.user_id}`]);
    await a.close();
    await b.close();
  });

  test("switched off after use: what is queued for a simulated user is dropped, never sent to Facebook", async () => {
    const first = await startConversation({ extra: "[simulator]\nenabled = true" });
    const answer = await call(first, "POST", "/simulator/api/users", { endpoint_id: "support", page_id: PAGE_ID, name: "Di" });
    const userId = answer.body.user_id as string;
    await call(first, "POST", "/simulator/api/send", { endpoint_id: "support", page_id: PAGE_ID, user_id: userId, text: "hello" });
    await until(async () => (await rows(first, "SELECT count(*) AS n FROM outbox WHERE user_id = ? AND status = 'sent'", [userId]))[0]!.n === 1);
    await first.close({ keepDir: true, keepGraph: true });
    const c = await startConversation({ extra: `[admin]\napi_keys = ["${KEY}"]`, dir: first.dir, graph: first.graph });
    open.push(c);
    expect((await call(c, "GET", "/simulator")).status).toBe(404);
    // Off, but with a simulated user stored: the Graph client's calls pass through the simulator, which refuses theirs.
    expect(c.app.simulator.routesGraphCalls).toBe(true);
    expect((await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: userId, text: "are you still there?" } })).status).toBe(202);
    await until(async () => (await rows(c, "SELECT status FROM outbox WHERE user_id = ? AND source = 'notify'", [userId]))[0]?.status === "dropped");
    const [dropped] = await rows(c, "SELECT last_error FROM outbox WHERE user_id = ? AND source = 'notify'", [userId]);
    expect(String(dropped!.last_error)).toContain("simulator is off");
    expect(c.graph.calls.filter((call) => JSON.stringify(call).includes(userId))).toEqual([]);
  });

  test("simulated users survive a restart: their replies still go to the stand-in", async () => {
    const first = await startConversation({ extra: "[simulator]\nenabled = true" });
    const user = await (async () => {
      const answer = await call(first, "POST", "/simulator/api/users", { endpoint_id: "support", page_id: PAGE_ID, name: "Bo" });
      const { endpoint_id, page_id, user_id } = answer.body;
      return { endpoint_id, page_id, user_id };
    })();
    await first.close({ keepDir: true, keepGraph: true });
    const c = await conversation({ dir: first.dir, graph: first.graph });
    expect((await call(c, "GET", "/simulator/api/setup")).body.users).toEqual([{ ...user, name: "Bo" }]);
    const stream = await events(c, user);
    await call(c, "POST", "/simulator/api/send", { ...user, text: "again" });
    expect((await stream.next((e) => e.type === "message")).message.text).toBe("You said: again");
    expect(c.graph.calls.filter((call) => JSON.stringify(call).includes(user.user_id))).toEqual([]);
    await stream.close();
  });

  test("after a restart on the same database, the users keep talking: new message ids, answered (an old user and a new one)", async () => {
    const first = await startConversation({ extra: "[simulator]\nenabled = true" });
    const old = await newUser(first, "Eve");
    const before = await events(first, old);
    for (const text of ["one", "two"]) {
      await call(first, "POST", "/simulator/api/send", { ...old, text });
      await before.next((e) => e.type === "message" && e.message.text === `You said: ${text}`);
    }
    await before.close();
    await first.close({ keepDir: true, keepGraph: true });
    const c = await conversation({ dir: first.dir, graph: first.graph });
    const fresh = await newUser(c, "Finn");
    const [a, b] = [await events(c, old), await events(c, fresh)];
    await call(c, "POST", "/simulator/api/send", { ...old, text: "three" });
    await call(c, "POST", "/simulator/api/send", { ...fresh, text: "first words" });
    expect((await a.next((e) => e.type === "message")).message.text).toBe("You said: three");
    expect((await b.next((e) => e.type === "message")).message.text).toBe("You said: first words");
    const mids = (await rows(c, "SELECT event FROM inbox WHERE kind = 'message'")).map((r) => JSON.parse(String(r.event)).message.mid);
    expect(mids).toHaveLength(4);
    expect(new Set(mids).size).toBe(4);
    await a.close();
    await b.close();
  });

  test("GET / leads to the page while the simulator is on, and is what it was otherwise", async () => {
    const on = await conversation();
    const answer = await fetch(`${on.url}/`, { redirect: "manual" });
    expect([answer.status, answer.headers.get("location")]).toEqual([302, "/simulator"]);
    const off = await startConversation();
    open.push(off);
    expect((await fetch(`${off.url}/`, { redirect: "manual" })).status).toBe(404);
  });

  test("a stream begins with the conversation so far, in order; a reply still to be sent comes live, once", async () => {
    const c = await conversation({ messenger: { typing: true, delayMs: 300 } });
    const user = await newUser(c);
    const first = await events(c, user);
    expect((await first.next((e) => e.type === "history")).lines).toEqual([]);
    for (const text of ["one", "two"]) {
      await call(c, "POST", "/simulator/api/send", { ...user, text });
      await first.next((e) => e.type === "message" && e.message.text === `You said: ${text}`);
    }
    await first.close();
    // "three" is answered after the delay: the page reopened meanwhile gets its reply live, not in the history.
    await call(c, "POST", "/simulator/api/send", { ...user, text: "three" });
    await until(async () => (await rows(c, "SELECT count(*) AS n FROM transcripts WHERE user_id = ? AND direction = 'out'", [user.user_id]))[0]!.n === 3);
    const again = await events(c, user);
    const history = await again.next((e) => e.type === "history");
    expect(history.lines.map((l: any) => `${l.direction}:${l.source}:${l.text}`)).toEqual([
      "in:user:one",
      "out:flow:You said: one",
      "in:user:two",
      "out:flow:You said: two",
      "in:user:three",
    ]);
    expect(history.lines[1].data).toMatchObject({ text: "You said: one", quick_replies: [{ title: "Buttons" }, { title: "Cards" }, { title: "Hello" }] });
    await again.next((e) => e.type === "message" && e.message.text === "You said: three");
    expect(again.seen.map((e) => e.type).filter((t) => t !== "action")).toEqual(["thread", "history", "message"]);
    // Every reply sent: a page opened now has them all, and nothing comes live.
    await until(async () => (await rows(c, "SELECT count(*) AS n FROM outbox WHERE user_id = ? AND status = 'sent'", [user.user_id]))[0]!.n === 3);
    const later = await events(c, user);
    expect((await later.next((e) => e.type === "history")).lines.filter((l: any) => l.direction === "out")).toHaveLength(3);
    await call(c, "POST", "/simulator/api/send", { ...user, text: "four" });
    await later.next((e) => e.type === "message" && e.message.text === "You said: four");
    expect(later.seen.filter((e) => e.type === "message").map((e) => e.message.text)).toEqual(["You said: four"]);
    for (const s of [again, later]) await s.close();
  });

  test("without collect_conversations, the stream says no conversation is kept", async () => {
    const c = await conversation({ endpointToml: "[endpoints.data_protection]\ncollect_conversations = false" });
    const user = await newUser(c);
    const first = await events(c, user);
    await call(c, "POST", "/simulator/api/send", { ...user, text: "one" });
    await first.next((e) => e.type === "message");
    await first.close();
    const again = await events(c, user);
    expect(await again.next((e) => e.type === "history")).toEqual({ type: "history", kept: false, lines: [] });
    await again.close();
  });
});
