/**
 * Admin actions while a user's turn is in flight (the flow is held open): an erasure keeps
 * nothing of the turn and sends nothing; a session reset is not undone by the turn; a retention
 * purge of the contact does not leave a PSID linked to a contact that no longer exists; an inject
 * whose session expired runs in a new one.
 */
import { afterEach, expect, test } from "bun:test";
import { PAGE_ID, PSID } from "../helpers/config.ts";
import { startConversation, userText, type Conversation } from "../helpers/conversation.ts";

const KEY = "test-admin-key-0123456789";

/** Counts turns in the session's context; "hold:<name>" waits for globalThis.__hold[name] to be released. */
const FLOW = {
  files: {
    "flows/held.ts": `export default async (input) => {
  const m = /^hold:(.+)$/.exec(input.text);
  if (m) { const h = globalThis.__hold[m[1]]; h.entered(); await h.released; }
  const n = (input.context.n ?? 0) + 1;
  return { outputs: [{ text: input.session_id + " " + n }], context: { n } };
};`,
  },
  flow: 'kind = "script"\nmodule = "flows/held.ts"',
  extra: `[admin]\napi_keys = ["${KEY}"]`,
};

interface Hold {
  entered: Promise<void>;
  release(): void;
}
function hold(name: string): Hold {
  const g = globalThis as unknown as { __hold?: Record<string, unknown> };
  g.__hold ??= {};
  let entered!: () => void;
  let release!: () => void;
  const h = { entered: new Promise<void>((r) => (entered = r)), released: new Promise<void>((r) => (release = r)) };
  g.__hold[name] = { entered, released: h.released };
  return { entered: h.entered, release };
}

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

async function start(options: Parameters<typeof startConversation>[0] = {}) {
  const c = await startConversation({ ...FLOW, ...options });
  open.push(c);
  return c;
}

async function api(c: Conversation, method: string, path: string, body?: unknown) {
  const response = await fetch(`${c.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any };
}

const replies = async (c: Conversation, n: number) => (await c.graph.waitForSends(n, { recipientId: PSID }, 10_000)).map((s) => String(s.message.text));

async function count(c: Conversation, sql: string, args: string[] = []) {
  await c.app.writes.drain();
  return Number((await c.database.client.execute({ sql, args })).rows[0]![0]);
}

test("an erasure while the user's turn runs: the turn keeps nothing and sends nothing", async () => {
  const c = await start();
  await c.post([userText("first")]);
  await replies(c, 1);
  const contact = await api(c, "GET", `/api/contacts?user_id=${PSID}`);
  const h = hold("erase");
  await c.post([userText("hold:erase")]);
  await h.entered;
  expect((await api(c, "DELETE", `/api/contacts/${contact.body.id}`)).status).toBe(200);
  h.release();
  // The held turn ends; then another user's message goes through, so the lanes have moved on.
  await c.post([userText("other", { psid: "6301234567890999" })]);
  await c.graph.waitForSends(1, { recipientId: "6301234567890999" }, 10_000);
  await c.app.writes.drain();
  expect(c.graph.sends({ recipientId: PSID })).toHaveLength(1);
  for (const table of ["inbox", "outbox", "sessions", "transcripts", "contact_users"]) {
    expect(await count(c, `SELECT count(*) FROM ${table} WHERE user_id = ?`, [PSID])).toBe(0);
  }
  expect(await count(c, "SELECT count(*) FROM contacts WHERE id = ?", [contact.body.id])).toBe(0);
});

test("a session reset while the user's turn runs is not undone by it", async () => {
  const c = await start();
  await c.post([userText("one")]);
  const [first] = await replies(c, 1);
  const session = first!.split(" ")[0]!;
  const h = hold("reset");
  await c.post([userText("hold:reset")]);
  await h.entered;
  expect((await api(c, "DELETE", `/api/sessions/${session}`)).status).toBe(200);
  h.release();
  await replies(c, 2);
  await c.post([userText("three")]);
  const third = (await replies(c, 3))[2]!;
  expect(third.split(" ")[0]).not.toBe(session);
  expect(third.split(" ")[1]).toBe("1"); // an empty context
});

test("the contact purged by retention while the user's turn runs is made again, not left dangling", async () => {
  let offset = 0;
  const c = await start({ clock: { now: () => Date.now() + offset }, endpointToml: "[endpoints.data_protection]\nretention_days = 30" });
  await c.post([userText("long ago")]);
  await replies(c, 1);
  offset = 31 * 86_400_000;
  const h = hold("purge");
  await c.post([userText("hold:purge", { timestamp: Date.now() + offset })]);
  await h.entered;
  const purged = await c.app.retention.runOnce();
  expect(purged.support!.contacts).toBe(1);
  h.release();
  await replies(c, 2);
  await c.app.writes.drain();
  const found = await api(c, "GET", `/api/contacts?user_id=${PSID}`);
  expect(found.status).toBe(200);
  expect(found.body.users).toEqual([expect.objectContaining({ page_id: PAGE_ID, user_id: PSID })]);
  expect(await count(c, "SELECT count(*) FROM contact_users u WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = u.contact_id)")).toBe(0);
});

test("an inject for a user whose session has expired runs in the new session it reported", async () => {
  let offset = 0;
  const c = await start({ clock: { now: () => Date.now() + offset }, expirationMinutes: 30 });
  await c.post([userText("hello")]);
  const [first] = await replies(c, 1);
  offset = 31 * 60_000;
  const injected = await api(c, "POST", "/api/endpoints/support/inject", { user_id: PSID, text: "from the CRM" });
  expect(injected.status).toBe(202);
  expect(injected.body.session_id).not.toBe(first!.split(" ")[0]);
  const second = (await replies(c, 2))[1]!;
  expect(second).toBe(`${injected.body.session_id} 1`);
});
