/**
 * The admin API (docs/admin-api.md) end to end, in process: the app on a loopback port with a fake Graph
 * API, driven by signed webhooks and by `/api` calls with a bearer key. Every test has its own
 * app, database and fake, and closes them itself (parallel-safe).
 */
import { describe, expect, test } from "bun:test";
import { PAGE_ID, PSID, PSID_2 } from "../helpers/config.ts";
import { messageTexts, startConversation, userText, type Conversation } from "../helpers/conversation.ts";
import { KEY, WITH_KEYS, api } from "../helpers/admin.ts";

/** Runs the body with its own conversation set-up, closed whatever happens. */
async function withConversation(options: Parameters<typeof startConversation>[0], body: (c: Conversation) => Promise<void>): Promise<void> {
  const c = await startConversation(options);
  try {
    await body(c);
  } finally {
    await c.close();
  }
}

/** The user writes `text` and the echo flow's answer arrives: resolves with all sends to the user so far. */
async function say(c: Conversation, text: string, expectedSends: number, psid = PSID) {
  expect(await c.post([userText(text, { psid })])).toBe(200);
  const sends = await c.graph.waitForSends(expectedSends, { recipientId: psid }, 10_000);
  expect(messageTexts(sends)[expectedSends - 1]).toBe(`You said: ${text}`);
  return sends;
}

async function contactIdOf(c: Conversation, psid = PSID): Promise<string> {
  const found = await api(c, "GET", `/api/contacts?user_id=${psid}`);
  expect(found.status).toBe(200);
  return found.body.id as string;
}

/** Every `table.column` of every table whose value (as text) contains one of the needles. */
async function traces(c: Conversation, needles: string[]): Promise<string[]> {
  const tables = await c.database.client.execute("SELECT name FROM sqlite_master WHERE type = 'table'");
  const names = tables.rows.map((r) => String(r[0]));
  expect(names).toEqual(expect.arrayContaining(["inbox", "outbox", "sessions", "transcripts", "contacts", "contact_users", "analytics_daily"]));
  const found: string[] = [];
  for (const table of names) {
    const rows = await c.database.client.execute(`SELECT * FROM "${table.replaceAll('"', '""')}"`);
    for (const row of rows.rows) {
      rows.columns.forEach((column, i) => {
        const value = row[i];
        if (value === null || value === undefined) return;
        const text = value instanceof ArrayBuffer ? Buffer.from(value).toString("utf8") : String(value);
        for (const needle of needles) if (text.includes(needle)) found.push(`${table}.${column} holds ${JSON.stringify(needle)}`);
      });
    }
  }
  return found;
}

const today = () => new Date().toISOString().slice(0, 10);

describe("access", () => {
  test("no api_keys configured: the API is off (404 admin_api_off), openapi.json too", async () => {
    await withConversation({}, async (c) => {
      const endpoints = await api(c, "GET", "/api/endpoints");
      expect(endpoints.status).toBe(404);
      expect(endpoints.body.error).toBe("admin_api_off");
      // A key does not switch it on either.
      const withKey = await api(c, "GET", "/api/endpoints", { key: KEY });
      expect(withKey.status).toBe(404);
      expect(withKey.body.error).toBe("admin_api_off");
      const openapi = await api(c, "GET", "/api/openapi.json", { key: null });
      expect(openapi.status).toBe(404);
      expect(openapi.body.error).toBe("admin_api_off");
      expect(openapi.body.openapi).toBeUndefined();
    });
  });

  test("with keys: no or wrong key is 401 (the key is never echoed), the right key lists the endpoints", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      const none = await api(c, "GET", "/api/endpoints", { key: null });
      expect(none.status).toBe(401);
      expect(none.body.error).toBe("unauthorized");
      expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(none.text).not.toContain(KEY);

      const wrong = await api(c, "GET", "/api/endpoints", { key: "test-admin-key-9999999999" });
      expect(wrong.status).toBe(401);
      expect(wrong.text).not.toContain(KEY);
      const prefix = await api(c, "GET", "/api/endpoints", { key: KEY.slice(0, -1) });
      expect(prefix.status).toBe(401);
      const basic = await api(c, "GET", "/api/endpoints", { authorization: `Basic ${KEY}` });
      expect(basic.status).toBe(401);

      const ok = await api(c, "GET", "/api/endpoints");
      expect(ok.status).toBe(200);
      expect(ok.headers.get("content-type")).toContain("application/json");
      expect(ok.body.endpoints).toHaveLength(1);
      const [support] = ok.body.endpoints;
      expect(support.id).toBe("support");
      expect(support.flow).toBe("agent");
      expect(support.enabled).toBe(true);
      expect(support.webhook_path).toBe("/webhooks/support");
      expect(support.pages).toHaveLength(1);
      expect(support.pages[0]).toMatchObject({ id: PAGE_ID, status: "active" });
      expect(typeof support.reply_queue_depth).toBe("number");
      expect(typeof support.inbound_pending).toBe("number");
      expect(support.reply_queue_depth).toBe(0);
      expect(support.inbound_pending).toBe(0);
    });
  });

  test("two keys (rotation): each one is accepted on its own; a third is refused", async () => {
    const OLD = "rotating-out-key-0123456789";
    const NEW = "rotating-in-key-9876543210";
    // Honouring only the first or only the last key would refuse one of them.
    await withConversation({ extra: `[admin]\napi_keys = ["${NEW}", "${OLD}"]` }, async (c) => {
      for (const key of [NEW, OLD]) {
        const answer = await api(c, "GET", "/api/endpoints", { key });
        expect([key, answer.status]).toEqual([key, 200]);
      }
      for (const key of [KEY, "rotating-retired-key-5555555", `${NEW} ${OLD}`, `${NEW},${OLD}`]) {
        const answer = await api(c, "GET", "/api/endpoints", { key });
        expect([key, answer.status]).toEqual([key, 401]);
      }
    });
  });

  test("GET /api/openapi.json describes the API (OpenAPI 3.1.0)", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      const doc = await api(c, "GET", "/api/openapi.json");
      expect(doc.status).toBe(200);
      expect(doc.body.openapi).toBe("3.1.0");
      const paths = Object.keys(doc.body.paths);
      for (const p of [
        "/api/endpoints/{id}/inject",
        "/api/endpoints/{id}/notify",
        "/api/contacts",
        "/api/contacts/{id}",
        "/api/contacts/{id}/export",
        "/api/sessions",
        "/api/sessions/{id}",
        "/api/conversations",
        "/api/endpoints",
        "/api/analytics",
      ]) {
        expect(paths).toContain(p);
      }
      const inject = doc.body.components.schemas.InjectBody;
      expect(inject).toBeDefined();
      expect(inject.type).toBe("object");
      expect(Object.keys(inject.properties)).toEqual(expect.arrayContaining(["user_id", "text", "data"]));
      expect(inject.required).toContain("user_id");
      expect(doc.body.components.schemas.NotifyBody).toBeDefined();
      // Served without a key: it holds no data.
      expect((await api(c, "GET", "/api/openapi.json", { key: null })).status).toBe(200);
    });
  });
});

/** The app's admin API routes: `/api/…`, and the transformers' `/webhooks/{endpointId}/inject` and `/notify`. */
function adminRoutes(c: Conversation): any[] {
  return c.app.server.routes.filter((r: any) => r.path.startsWith("/api/") || /^\/webhooks\/:endpointId\/(inject|notify)$/.test(r.path));
}
/** The admin routes that are not operations of the API, and so not in its document. */
const UNDOCUMENTED = ["ALL /api/*", "GET /api/openapi.json"];
const documented = (c: Conversation) => adminRoutes(c).filter((r) => !r.hooks.detail?.hide);
const openApiPath = (path: string) => path.replace(/:([^/]+)/g, "{$1}");
/** A schema as JSON shows it (TypeBox keeps its own marks under symbols). */
const asJson = (schema: unknown) => JSON.parse(JSON.stringify(schema));

describe("the routes, their schemas and their document", () => {
  test("every admin route is in /api/openapi.json with its path, query and body schemas", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      const doc = (await api(c, "GET", "/api/openapi.json")).body;
      const routes = adminRoutes(c);
      expect(
        routes
          .filter((r) => r.hooks.detail?.hide)
          .map((r) => `${r.method} ${r.path}`)
          .sort(),
      ).toEqual(UNDOCUMENTED);
      // The document holds these routes, and nothing else.
      const operations = Object.entries(doc.paths as Record<string, object>).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      );
      const shown = documented(c);
      expect(operations.sort()).toEqual(shown.map((r) => `${r.method} ${openApiPath(r.path)}`).sort());
      expect(shown.length).toBeGreaterThanOrEqual(18);

      const resolve = (schema: any) => (schema.$ref ? doc.components.schemas[schema.$ref.split("/").pop()] : schema);
      for (const route of shown) {
        const label = `${route.method} ${route.path}`;
        const op = doc.paths[openApiPath(route.path)][route.method.toLowerCase()];
        expect([label, typeof op.summary, Object.keys(op.responses)]).toEqual([label, "string", expect.arrayContaining(["401", "404"])]);
        const parameters = (where: string) => (op.parameters ?? []).filter((p: any) => p.in === where);
        // Every segment of the path is a declared, described parameter.
        const segments = [...route.path.matchAll(/:([^/]+)/g)].map((m) => m[1]).sort();
        expect([
          label,
          parameters("path")
            .map((p: any) => p.name)
            .sort(),
        ]).toEqual([label, segments]);
        expect(Object.keys(route.hooks.params?.properties ?? {}).sort()).toEqual(segments);
        for (const p of parameters("path")) expect([label, p.name, typeof p.description]).toEqual([label, p.name, "string"]);
        // The query's parameters, as the route's schema has them.
        const query = route.hooks.query;
        for (const [name, schema] of Object.entries<any>(query?.properties ?? {})) {
          const { description, ...rest } = asJson(schema);
          const documentedAs = parameters("query").find((p: any) => p.name === name);
          expect([label, name, documentedAs]).toEqual([
            label,
            name,
            { name, in: "query", required: (query.required ?? []).includes(name), ...(description ? { description } : {}), schema: rest },
          ]);
        }
        expect([label, parameters("query").length]).toEqual([label, Object.keys(query?.properties ?? {}).length]);
        // The body: the very schema the route checks.
        if (route.hooks.body) expect([label, resolve(op.requestBody.content["application/json"].schema)]).toEqual([label, asJson(route.hooks.body)]);
        // A route that may be sent a body reads it itself (under the size limit, after the key is checked), or says it takes none.
        if (route.method !== "GET") expect([label, route.hooks.parse?.length ?? 0]).toEqual([label, 1]);
      }
      expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
      expect(doc.security).toEqual([{ bearer: [] }]);
      expect(doc.components.schemas.Error.required).toEqual(["error", "message"]);
    });
  });

  test("every admin route asks for the key before it reads or checks anything", async () => {
    for (const [options, status, error] of [
      [WITH_KEYS, 401, "unauthorized"],
      [{}, 404, "admin_api_off"],
    ] as const) {
      await withConversation(options, async (c) => {
        for (const route of documented(c)) {
          // A body that is not JSON and a query that breaks its schema: neither is looked at.
          const path = `${route.path.replace(/:[^/]+/g, "1")}?limit=none&from=never`;
          const answer = await api(c, route.method, path, { key: null, ...(route.method === "GET" ? {} : { body: "{not json" }) });
          expect([route.method, route.path, answer.status, answer.body?.error]).toEqual([route.method, route.path, status, error]);
          expect(answer.headers.get("x-request-id")).toBeTruthy();
          if (status === 401) expect(answer.headers.get("www-authenticate")).toMatch(/^Bearer/);
        }
      });
    }
  });

  test("each request has its own id, answered as x-request-id and on its log lines with the route", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const injected = await api(c, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "from the CRM" } });
      expect(injected.status).toBe(202);
      const id = injected.headers.get("x-request-id");
      expect(id).toBeTruthy();
      expect(c.logs.records().filter((r) => r.msg === "input injected")).toEqual([
        expect.objectContaining({ request_id: id, api: "POST /api/endpoints/:id/inject" }),
      ]);
      const refused = await api(c, "POST", "/api/endpoints/support/inject", { body: "{not json" });
      expect(refused.status).toBe(400);
      expect(refused.headers.get("x-request-id")).toBeTruthy();
      expect(refused.headers.get("x-request-id")).not.toBe(id);
    });
  });

  test("a request wrong in several ways gets the first refusal: key, body, schemas, then what it names", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const thread = (endpoint: string, body: unknown) => api(c, "POST", `/api/endpoints/${endpoint}/users/${PSID}/thread`, { body });
      expect((await thread("nope", "{not json")).body.error).toBe("invalid_body");
      expect((await thread("nope", { action: "fly" })).body.error).toBe("invalid_body");
      expect((await thread("nope", { action: "take" })).body.error).toBe("unknown_endpoint");
      expect((await api(c, "GET", "/api/conversations?limit=0")).body.error).toBe("invalid_limit");
      expect((await api(c, "GET", "/api/conversations?limit=10")).body.error).toBe("missing_filter");
    });
  });
});

describe("inject", () => {
  test("refused: unknown user, nothing to say, bad JSON, unknown property, unknown endpoint", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const inject = (body: unknown, endpoint = "support") => api(c, "POST", `/api/endpoints/${endpoint}/inject`, { body });

      const unknownUser = await inject({ user_id: PSID_2, text: "hello" });
      expect(unknownUser.status).toBe(404);
      expect(unknownUser.body.error).toBe("unknown_user");

      const empty = await inject({ user_id: PSID });
      expect(empty.status).toBe(400);

      const notJson = await inject("{ user_id: ");
      expect(notJson.status).toBe(400);
      expect(notJson.body.error).toBe("invalid_body");

      const extra = await inject({ user_id: PSID, text: "x", colour: "red" });
      expect(extra.status).toBe(400);
      expect(extra.body.message).toContain("colour");

      const badUserId = await inject({ user_id: "not-a-psid", text: "x" });
      expect(badUserId.status).toBe(400);

      const unknownEndpoint = await inject({ user_id: PSID, text: "x" }, "nope");
      expect(unknownEndpoint.status).toBe(404);
      expect(unknownEndpoint.body.error).toBe("unknown_endpoint");

      // None of these ran the flow.
      const entries = (await api(c, "GET", `/api/conversations?user_id=${PSID}`)).body.entries;
      expect(entries.filter((e: any) => e.direction === "in")).toHaveLength(1);
    });
  });

  test("runs the flow in the user's current session with source inject; the reply follows in order", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const sessions = await api(c, "GET", `/api/sessions?user_id=${PSID}`);
      expect(sessions.status).toBe(200);
      const current = sessions.body.sessions.find((s: any) => s.current);
      expect(current).toBeDefined();

      const injected = await api(c, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "from the CRM" } });
      expect(injected.status).toBe(202);
      expect(injected.body.session_id).toBe(current.id);
      expect(injected.body).toMatchObject({ endpoint_id: "support", page_id: PAGE_ID, user_id: PSID });

      const sends = await c.graph.waitForSends(2, { recipientId: PSID }, 10_000);
      expect(messageTexts(sends)).toEqual(["You said: hi", "You said: from the CRM"]);
      expect(sends[1]!.seq).toBeGreaterThan(sends[0]!.seq);

      const entries = (await api(c, "GET", `/api/conversations?user_id=${PSID}`)).body.entries as any[];
      const inIn = entries.find((e) => e.direction === "in" && e.source === "inject");
      expect(inIn).toBeDefined();
      expect(inIn.text).toBe("from the CRM");
      expect(inIn.session_id).toBe(current.id);
      const reply = entries.find((e) => e.direction === "out" && e.text === "You said: from the CRM");
      expect(reply).toBeDefined();
      expect(reply.session_id).toBe(current.id);
      // Oldest first: the user's turn, then the injected one.
      expect(entries.map((e) => [e.direction, e.source, e.text])).toEqual([
        ["in", "user", "hi"],
        ["out", "flow", "You said: hi"],
        ["in", "inject", "from the CRM"],
        ["out", "inject", "You said: from the CRM"],
      ]);
      // Still one session.
      expect((await api(c, "GET", `/api/sessions?user_id=${PSID}`)).body.sessions).toHaveLength(1);
    });
  });

  test("an inject right after a user message waits for that message's turn", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      expect(await c.post([userText("second")])).toBe(200);
      const injected = await api(c, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "third" } });
      expect(injected.status).toBe(202);
      const sends = await c.graph.waitForSends(3, { recipientId: PSID }, 10_000);
      expect(messageTexts(sends)).toEqual(["You said: hi", "You said: second", "You said: third"]);
    });
  });
});

describe("notify", () => {
  test("sends directly (messaging_type UPDATE) without running the flow", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const notified = await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: PSID, text: "Your order shipped" } });
      expect(notified.status).toBe(202);
      expect(notified.body.messages).toBe(1);
      const sends = await c.graph.waitForSends(2, { recipientId: PSID }, 10_000);
      expect(messageTexts(sends)).toEqual(["You said: hi", "Your order shipped"]);
      expect(sends[1]!.type).toBe("message");
      expect(sends[1]!.messagingType).toBe("UPDATE");
      expect(sends[1]!.pageId).toBe(PAGE_ID);

      // No flow run: the transcript has the one user input; the notify is an outgoing entry.
      const entries = (await api(c, "GET", `/api/conversations?user_id=${PSID}`)).body.entries as any[];
      expect(entries.map((e) => [e.direction, e.source, e.text])).toEqual([
        ["in", "user", "hi"],
        ["out", "flow", "You said: hi"],
        ["out", "notify", "Your order shipped"],
      ]);
      const analytics = await api(c, "GET", "/api/analytics?endpoint_id=support");
      expect(analytics.body.days.find((d: any) => d.day === today()).inputs).toBe(1);
      const inbox = await c.database.client.execute("SELECT kind FROM inbox");
      expect(inbox.rows.map((r) => String(r[0]))).toEqual(["message"]);
    });
  });

  test("output with quick replies, and MESSAGE_TAG with its tag", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const withQuickReplies = await api(c, "POST", "/api/endpoints/support/notify", {
        body: { user_id: PSID, output: { text: "Is that fine?", quick_replies: [{ title: "OK", payload: "OK" }] } },
      });
      expect(withQuickReplies.status).toBe(202);
      const sends = await c.graph.waitForSends(2, { recipientId: PSID }, 10_000);
      expect(sends[1]!.message.text).toBe("Is that fine?");
      expect(sends[1]!.message.quick_replies).toHaveLength(1);
      expect(sends[1]!.message.quick_replies[0]).toMatchObject({ content_type: "text", title: "OK", payload: "OK" });

      const tagged = await api(c, "POST", "/api/endpoints/support/notify", {
        body: { user_id: PSID, text: "Your account changed", messaging_type: "MESSAGE_TAG", tag: "ACCOUNT_UPDATE" },
      });
      expect(tagged.status).toBe(202);
      const all = await c.graph.waitForSends(3, { recipientId: PSID }, 10_000);
      expect(all[2]!.message.text).toBe("Your account changed");
      expect(all[2]!.messagingType).toBe("MESSAGE_TAG");
      expect(all[2]!.tag).toBe("ACCOUNT_UPDATE");
    });
  });

  test("refused: nothing to send, MESSAGE_TAG without tag, unknown user", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const notify = (body: unknown) => api(c, "POST", "/api/endpoints/support/notify", { body });

      const empty = await notify({ user_id: PSID });
      expect(empty.status).toBe(400);
      const noTag = await notify({ user_id: PSID, text: "x", messaging_type: "MESSAGE_TAG" });
      expect(noTag.status).toBe(400);
      expect(noTag.body.message).toContain("tag");
      const unknownUser = await notify({ user_id: PSID_2, text: "x" });
      expect(unknownUser.status).toBe(404);
      expect(unknownUser.body.error).toBe("unknown_user");
      const badType = await notify({ user_id: PSID, text: "x", messaging_type: "SOMETIMES" });
      expect(badType.status).toBe(400);

      // Nothing of these was queued.
      const outbox = await c.database.client.execute("SELECT count(*) FROM outbox WHERE source = 'notify'");
      expect(Number(outbox.rows[0]![0])).toBe(0);
    });
  });
});

describe("contacts", () => {
  test("by PSID and by id; unknown id 404; missing user_id 400", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const byUser = await api(c, "GET", `/api/contacts?user_id=${PSID}`);
      expect(byUser.status).toBe(200);
      expect(byUser.body.id).toMatch(/^c_/);
      expect(byUser.body.endpoint_id).toBe("support");
      expect(byUser.body.users).toEqual([expect.objectContaining({ page_id: PAGE_ID, user_id: PSID })]);

      const byId = await api(c, "GET", `/api/contacts/${byUser.body.id}`);
      expect(byId.status).toBe(200);
      expect(byId.body).toEqual(byUser.body);

      const unknown = await api(c, "GET", "/api/contacts/c_doesnotexist");
      expect(unknown.status).toBe(404);
      expect(unknown.body.error).toBe("unknown_contact");
      expect((await api(c, "GET", "/api/contacts/c_doesnotexist/export")).status).toBe(404);

      const missing = await api(c, "GET", "/api/contacts");
      expect(missing.status).toBe(400);
      const unknownUser = await api(c, "GET", `/api/contacts?user_id=${PSID_2}`);
      expect(unknownUser.status).toBe(404);
    });
  });

  test("export holds the contact, sessions, transcript, events received and messages sent", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const id = await contactIdOf(c);
      const exported = await api(c, "GET", `/api/contacts/${id}/export`);
      expect(exported.status).toBe(200);
      const x = exported.body;
      expect(x.contact.id).toBe(id);
      expect(x.contact.users).toEqual([expect.objectContaining({ page_id: PAGE_ID, user_id: PSID })]);
      expect(x.sessions).toHaveLength(1);
      expect(x.sessions[0]).toMatchObject({ user_id: PSID, page_id: PAGE_ID, current: true });
      expect(x.transcript.map((e: any) => [e.direction, e.text])).toEqual([
        ["in", "hi"],
        ["out", "You said: hi"],
      ]);
      expect(x.events_received).toHaveLength(1);
      expect(x.events_received[0].kind).toBe("message");
      expect(JSON.stringify(x.events_received[0].event)).toContain('"hi"');
      expect(x.messages_sent.length).toBeGreaterThanOrEqual(1);
      expect(x.messages_sent.some((m: any) => m.body?.message?.text === "You said: hi")).toBe(true);
      expect(typeof x.exported_at).toBe("string");
    });
  });
});

describe("sessions", () => {
  test("list, reset, the next message runs in a new session; unknown session 404", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const listed = await api(c, "GET", `/api/sessions?user_id=${PSID}`);
      expect(listed.status).toBe(200);
      expect(listed.body.sessions).toHaveLength(1);
      const old = listed.body.sessions[0];
      expect(old).toMatchObject({ endpoint_id: "support", page_id: PAGE_ID, user_id: PSID, current: true, ended_at: null });
      expect(old.context.count).toBe(1);

      const reset = await api(c, "DELETE", `/api/sessions/${old.id}`);
      expect(reset.status).toBe(200);
      expect(reset.body).toMatchObject({ reset: old.id, was_current: true });

      await say(c, "again", 2);
      const entries = (await api(c, "GET", `/api/conversations?user_id=${PSID}`)).body.entries as any[];
      const first = entries.find((e) => e.direction === "in" && e.text === "hi");
      const second = entries.find((e) => e.direction === "in" && e.text === "again");
      expect(first.session_id).toBe(old.id);
      expect(second.session_id).not.toBe(old.id);

      const after = (await api(c, "GET", `/api/sessions?user_id=${PSID}`)).body.sessions as any[];
      expect(after).toHaveLength(2);
      const ended = after.find((s) => s.id === old.id);
      const fresh = after.find((s) => s.id !== old.id);
      expect(ended.current).toBe(false);
      expect(ended.ended_at).not.toBeNull();
      expect(fresh.current).toBe(true);
      expect(fresh.id).toBe(second.session_id);
      expect(fresh.context.count).toBe(1); // a new session starts with an empty context

      const unknown = await api(c, "DELETE", "/api/sessions/s_doesnotexist");
      expect(unknown.status).toBe(404);
      expect(unknown.body.error).toBe("unknown_session");
      expect((await api(c, "GET", "/api/sessions")).status).toBe(400);
    });
  });
});

describe("sessions after a reset", () => {
  test("an inject after a reset announces the new session and runs in it", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const old = (await api(c, "GET", `/api/sessions?user_id=${PSID}`)).body.sessions[0];
      expect((await api(c, "DELETE", `/api/sessions/${old.id}`)).status).toBe(200);
      const injected = await api(c, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "after reset" } });
      expect(injected.status).toBe(202);
      expect(injected.body.session_id).not.toBe(old.id);
      const sends = await c.graph.waitForSends(2, { recipientId: PSID }, 10_000);
      expect(messageTexts(sends)[1]).toBe("You said: after reset");
      const sessions = (await api(c, "GET", `/api/sessions?user_id=${PSID}`)).body.sessions as any[];
      expect(sessions.find((s) => s.current).id).toBe(injected.body.session_id);
      const entry = ((await api(c, "GET", `/api/conversations?user_id=${PSID}`)).body.entries as any[]).find(
        (e) => e.source === "inject" && e.direction === "in",
      );
      expect(entry.session_id).toBe(injected.body.session_id);
    });
  });

  test("analytics: a user whose session was reset is still one user today, in two sessions", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "one", 1);
      const old = (await api(c, "GET", `/api/sessions?user_id=${PSID}`)).body.sessions[0];
      expect((await api(c, "DELETE", `/api/sessions/${old.id}`)).status).toBe(200);
      await say(c, "two", 2);
      const row = ((await api(c, "GET", "/api/analytics?endpoint_id=support")).body.days as any[]).find((d) => d.day === today());
      expect(row).toMatchObject({ inputs: 2, sessions: 2, failed_sends: 0 });
      expect(row.users).toBe(1);
    });
  });
});

describe("conversations", () => {
  test("oldest first; limit=1 is the last entry; limit=0 and no filter are 400", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "one", 1);
      await say(c, "two", 2);
      const all = await api(c, "GET", `/api/conversations?user_id=${PSID}`);
      expect(all.status).toBe(200);
      const entries = all.body.entries as any[];
      expect(entries.map((e) => [e.direction, e.text])).toEqual([
        ["in", "one"],
        ["out", "You said: one"],
        ["in", "two"],
        ["out", "You said: two"],
      ]);
      const ids = entries.map((e) => e.id);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      for (const e of entries) expect(e).toMatchObject({ endpoint_id: "support", page_id: PAGE_ID, user_id: PSID });

      const last = await api(c, "GET", `/api/conversations?user_id=${PSID}&limit=1`);
      expect(last.status).toBe(200);
      expect(last.body.entries).toHaveLength(1);
      expect(last.body.entries[0]).toMatchObject({ direction: "out", text: "You said: two", id: ids[3] });

      const lastTwo = await api(c, "GET", `/api/conversations?user_id=${PSID}&limit=2`);
      expect(lastTwo.body.entries.map((e: any) => e.text)).toEqual(["two", "You said: two"]);

      const zero = await api(c, "GET", `/api/conversations?user_id=${PSID}&limit=0`);
      expect(zero.status).toBe(400);
      expect(zero.body.error).toBe("invalid_limit");
      const noFilter = await api(c, "GET", "/api/conversations");
      expect(noFilter.status).toBe(400);
      expect(noFilter.body.error).toBe("missing_filter");

      const bySession = await api(c, "GET", `/api/conversations?session_id=${entries[0].session_id}`);
      expect(bySession.body.entries).toHaveLength(4);
    });
  });
});

describe("GDPR erasure", () => {
  test("DELETE /api/contacts/{id} leaves nothing of the person in any table", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      const said = ["my secret alpha words", "my secret bravo words"];
      await say(c, said[0]!, 1);
      await say(c, said[1]!, 2);
      await say(c, "someone else", 1, PSID_2);
      const notified = await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: PSID, text: "Your invoice zulu is ready" } });
      expect(notified.status).toBe(202);
      await c.graph.waitForSends(3, { recipientId: PSID }, 10_000);
      await c.app.writes.drain();

      const id = await contactIdOf(c);
      const needles = [PSID, id, ...said, "Your invoice zulu is ready"];
      // Before: the scan does find the person (in every table that holds them).
      const before = await traces(c, needles);
      for (const table of ["inbox", "outbox", "sessions", "transcripts", "contacts", "contact_users"]) {
        expect(before.some((t) => t.startsWith(`${table}.`))).toBe(true);
      }
      for (const needle of needles) expect(before.some((t) => t.endsWith(JSON.stringify(needle)))).toBe(true);

      const erased = await api(c, "DELETE", `/api/contacts/${id}`);
      expect(erased.status).toBe(200);
      expect(erased.body).toMatchObject({ erased: id, users: 1 });
      expect(erased.body.rows_deleted).toBeGreaterThan(0);
      await c.app.writes.drain();

      const leftovers = await traces(c, needles);
      expect(leftovers).toEqual([]);

      const contact = await api(c, "GET", `/api/contacts?user_id=${PSID}`);
      expect(contact.status).toBe(404);
      expect((await api(c, "GET", `/api/contacts/${id}`)).status).toBe(404);
      // The user is unknown now (404, as for a user who never wrote).
      expect((await api(c, "GET", `/api/conversations?user_id=${PSID}`)).status).toBe(404);
      expect((await api(c, "GET", `/api/sessions?user_id=${PSID}`)).status).toBe(404);
      // Erased twice: the contact is unknown now.
      expect((await api(c, "DELETE", `/api/contacts/${id}`)).status).toBe(404);
      // The other user is untouched.
      const other = (await api(c, "GET", `/api/conversations?user_id=${PSID_2}`)).body.entries as any[];
      expect(other.map((e) => e.text)).toEqual(["someone else", "You said: someone else"]);
      expect((await api(c, "GET", `/api/contacts?user_id=${PSID_2}`)).status).toBe(200);
    });
  });

  test("after erasure the person is unknown to inject and notify; writing again starts afresh", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const id = await contactIdOf(c);
      expect((await api(c, "DELETE", `/api/contacts/${id}`)).status).toBe(200);

      const inject = await api(c, "POST", "/api/endpoints/support/inject", { body: { user_id: PSID, text: "x" } });
      expect(inject.status).toBe(404);
      expect(inject.body.error).toBe("unknown_user");
      const notify = await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: PSID, text: "x" } });
      expect(notify.status).toBe(404);

      await say(c, "back again", 2);
      const fresh = await contactIdOf(c);
      expect(fresh).not.toBe(id);
      const entries = (await api(c, "GET", `/api/conversations?user_id=${PSID}`)).body.entries as any[];
      expect(entries.map((e) => e.text)).toEqual(["back again", "You said: back again"]);
      const sessions = (await api(c, "GET", `/api/sessions?user_id=${PSID}`)).body.sessions as any[];
      expect(sessions).toHaveLength(1);
      expect(sessions[0].context.count).toBe(1);
    });
  });
});

describe("analytics", () => {
  test("today's counts after two messages from one user; a bad day is 400", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "one", 1);
      await say(c, "two", 2);
      const analytics = await api(c, "GET", "/api/analytics?endpoint_id=support");
      expect(analytics.status).toBe(200);
      const row = (analytics.body.days as any[]).find((d) => d.day === today() && d.endpoint_id === "support");
      expect(row).toBeDefined();
      expect(row.inputs).toBe(2);
      expect(row.outputs).toBeGreaterThanOrEqual(2);
      expect(row.sessions).toBe(1);
      expect(row.users).toBe(1);
      expect(row.failed_sends).toBe(0);

      const bad = await api(c, "GET", "/api/analytics?from=yesterday");
      expect(bad.status).toBe(400);
      expect(bad.body.error).toBe("invalid_day");
      expect((await api(c, "GET", "/api/analytics?endpoint_id=nope")).status).toBe(404);
    });
  });
});

describe("erasure and export by PSID", () => {
  test("with contact_profiles = false a user is still exported and erased by PSID, leaving nothing", async () => {
    await withConversation({ ...WITH_KEYS, endpointToml: "[endpoints.data_protection]\ncontact_profiles = false" }, async (c) => {
      c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Zoé", last_name: "Quill" } });
      await say(c, "remember me", 1);
      await c.app.writes.drain();
      expect((await api(c, "GET", `/api/contacts?user_id=${PSID}`)).status).toBe(404); // no contact kept
      const exported = await api(c, "GET", `/api/endpoints/support/users/${PSID}/export`);
      expect(exported.status).toBe(200);
      expect(exported.body.contact).toBeNull();
      expect(exported.body.transcript.map((e: any) => e.text)).toContain("remember me");
      expect(await traces(c, [PSID, "remember me", "Quill"])).not.toEqual([]);
      const erased = await api(c, "DELETE", `/api/endpoints/support/users/${PSID}`);
      expect(erased.status).toBe(200);
      await c.app.writes.drain();
      expect(await traces(c, [PSID, "remember me", "Quill"])).toEqual([]);
      expect((await api(c, "DELETE", `/api/endpoints/support/users/${PSID}`)).status).toBe(404);
    });
  });

  test("the export holds the Facebook profile cached for each PSID", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      c.graph.setUser(PAGE_ID, PSID, { profile: { first_name: "Zoé", last_name: "Quill" } });
      await say(c, "hi", 1);
      await c.app.writes.drain();
      const exported = await api(c, "GET", `/api/contacts/${await contactIdOf(c)}/export`);
      expect(exported.body.facebook_profiles).toEqual([
        expect.objectContaining({ page_id: PAGE_ID, user_id: PSID, profile_status: "ok", profile: expect.objectContaining({ last_name: "Quill" }) }),
      ]);
    });
  });

  test("notify with data that is not output fields is 400, naming the problem", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      await say(c, "hi", 1);
      const answer = await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: PSID, data: { quick_replies: "x" } } });
      expect(answer.status).toBe(400);
      expect(answer.body.message).toContain("/quick_replies");
    });
  });

  test("conversations of a user the server never saw: 404", async () => {
    await withConversation(WITH_KEYS, async (c) => {
      expect((await api(c, "GET", "/api/conversations?user_id=6301234567899999")).status).toBe(404);
    });
  });
});
