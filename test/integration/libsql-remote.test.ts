/**
 * The database on a libSQL server over HTTP (`storage.url = "http://…"`, @libsql/client's HTTP
 * client): opening it (whose it is, migrations), the write queue, reads, errors, and a whole app,
 * against the stand-in server (test/helpers/hrana-server.ts) or, when LIBSQL_TEST_URL is set, a
 * real one (test/helpers/libsql-target.ts). Faults (a server that is down, slow, failing or
 * answering nonsense) are injected into the stand-in only.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Client, InStatement } from "@libsql/client";
import { asc, like } from "drizzle-orm";
import { DatabaseError, openDatabase, type Database } from "../../src/db/client.ts";
import { isStorageError } from "../../src/db/health.ts";
import { knownMigrations } from "../../src/db/identity.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { meta } from "../../src/db/schema.ts";
import { WriteQueue } from "../../src/db/write-queue.ts";
import { closedPortUrl, libsqlTarget, REAL_SERVER, STAND_IN_ONLY, type LibsqlTarget } from "../helpers/libsql-target.ts";
import type { HranaServer } from "../helpers/hrana-server.ts";
import { PSID, PSID_2 } from "../helpers/config.ts";
import { messageTexts, startConversation, until, userText, type Conversation, type ConversationOptions } from "../helpers/conversation.ts";
import { countingFlow } from "../helpers/counting-flow.ts";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A test that needs the stand-in's faults: skipped, and named so, against a real server. */
const standInTest = (name: string, fn: () => Promise<void>) => (REAL_SERVER ? test.skip : test)(`${STAND_IN_ONLY} ${name}`, fn);

async function target(): Promise<LibsqlTarget> {
  const t = await libsqlTarget();
  cleanup.push(() => t.close());
  return t;
}

async function open(t: LibsqlTarget, options: { authToken?: string; requestTimeoutMs?: number } = {}): Promise<Database> {
  const database = await openDatabase(t.url, { authToken: t.authToken, ...options });
  cleanup.push(() => database.close());
  return database;
}

async function migrated(t: LibsqlTarget, options: { requestTimeoutMs?: number } = {}): Promise<Database> {
  const database = await open(t, options);
  await applyMigrations(database);
  return database;
}

async function openError(url: string, options: { authToken?: string } = {}): Promise<DatabaseError> {
  try {
    (await openDatabase(url, options)).close();
  } catch (error) {
    expect(error).toBeInstanceOf(DatabaseError);
    return error as DatabaseError;
  }
  throw new Error(`${url} was opened`);
}

/** A meta row's insert. */
const put = (key: string, value = "v"): InStatement => ({ sql: "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)", args: [key, value, 1] });

/** The client, counting the requests that reach it (each is one HTTP request, one transaction for a batch). */
function counting(client: Client): { client: Client; calls: string[] } {
  const calls: string[] = [];
  const wrapped = new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== "execute" && prop !== "batch") return typeof value === "function" ? value.bind(target) : value;
      return (...args: unknown[]) => {
        calls.push(prop);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { client: wrapped, calls };
}

async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error("it did not fail");
}

describe("opening a database on a libSQL server", () => {
  test("a new one is migrated; opened again, it is ours with nothing left to apply", async () => {
    const t = await target();
    const first = await open(t);
    expect(first.file).toBeNull();
    expect(first.durable).toBeUndefined(); // the server's commits are durable when they return
    expect(await applyMigrations(first)).toEqual({ applied: knownMigrations().length, total: knownMigrations().length, backup: null });
    first.close();
    const second = await open(t);
    expect(await applyMigrations(second)).toEqual({ applied: 0, total: knownMigrations().length, backup: null });
    const tables = await t.client.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN ('inbox', 'outbox', 'meta')");
    expect(tables.rows.map((r) => r.name).sort()).toEqual(["inbox", "meta", "outbox"]);
  });

  test("another program's database is refused untouched", async () => {
    const t = await target();
    await t.client.batch(["CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)", "INSERT INTO orders (total) VALUES (9.5)"], "write");
    const error = await openError(t.url, { authToken: t.authToken });
    expect(error.message).toContain("is another program's SQLite database (tables: orders)");
    expect(error.message).toContain("--adopt");
    const tables = await t.client.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'");
    expect(tables.rows.map((r) => r.name)).toEqual(["orders"]);
  });

  (REAL_SERVER && !process.env.LIBSQL_TEST_AUTH_TOKEN ? test.skip : test)("a wrong auth token: one line that names the setting to fix", async () => {
    const t = await target();
    const error = await openError(t.url, { authToken: "not-the-token-8d2e" });
    expect(error.message).toStartWith(`cannot open the database ${t.url}: the libSQL server refused the credentials (HTTP 401): set storage.auth_token`);
    expect(error.message).not.toContain("\n");
    expect(error.message).not.toContain("not-the-token-8d2e");
  });

  test("a server that is not running: one line that names the URL and what to check", async () => {
    const url = await closedPortUrl();
    const error = await openError(url, { authToken: "x" });
    expect(error.message).toStartWith(
      `cannot open the database ${url}: the libSQL server cannot be reached: check storage.url and that the server is running (`,
    );
    expect(error.message).toContain("ECONNREFUSED");
    expect(error.message).not.toContain("\n");
  });
});

describe("the write queue on a libSQL server", () => {
  test("groups queued together share one transaction, each gets its own results, and drizzle reads them", async () => {
    const t = await target();
    const database = await migrated(t);
    const { client, calls } = counting(database.client);
    const writes = new WriteQueue(client);
    const [a, b, c] = await Promise.all([
      writes.run([put("remote:a", "1")]),
      writes.run([put("remote:b", "2"), { sql: "UPDATE meta SET value = value || '+' WHERE key LIKE 'remote:%'", args: [] }]),
      writes.run([{ sql: "SELECT value FROM meta WHERE key = ?", args: ["remote:a"] }]),
    ]);
    expect(calls).toEqual(["batch"]); // one request, one transaction
    expect(a!.map((r) => r.rowsAffected)).toEqual([1]);
    expect(b!.map((r) => r.rowsAffected)).toEqual([1, 2]);
    expect(c![0]!.rows.map((r) => r.value)).toEqual(["1+"]);
    const read = await database.db.select({ key: meta.key, value: meta.value }).from(meta).where(like(meta.key, "remote:%")).orderBy(asc(meta.key));
    expect(read).toEqual([
      { key: "remote:a", value: "1+" },
      { key: "remote:b", value: "2+" },
    ]);
  });

  test("a group that breaks a constraint fails alone, with SQLite's code; the others commit", async () => {
    const t = await target();
    const database = await migrated(t);
    const writes = new WriteQueue(database.client);
    await writes.run([put("remote:taken")]);
    const outcomes = await Promise.allSettled([
      writes.run([put("remote:1")]),
      writes.run([put("remote:2"), put("remote:taken")]),
      writes.run([put("remote:3")]),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const error = (outcomes[1] as PromiseRejectedResult).reason;
    expect(error.code).toBe("SQLITE_CONSTRAINT");
    expect(error.message).toContain("UNIQUE constraint failed: meta.key");
    expect(isStorageError(error)).toBe(false); // the statement's fault: processing does not pause
    const keys = await t.client.execute("SELECT key FROM meta WHERE key LIKE 'remote:%' ORDER BY key");
    expect(keys.rows.map((r) => r.key)).toEqual(["remote:1", "remote:3", "remote:taken"]); // remote:2 rolled back with its group
  });
});

describe("a libSQL server that fails", () => {
  async function failing(options: { requestTimeoutMs?: number } = {}): Promise<{ server: HranaServer; writes: WriteQueue; t: LibsqlTarget }> {
    const t = await target();
    const database = await migrated(t, options);
    return { server: t.standIn!, writes: new WriteQueue(database.client), t };
  }

  standInTest("down while running: writes fail with a storage error (processing would pause), and work once it is back", async () => {
    const { server, writes } = await failing();
    await server.down();
    const error = await rejection(writes.run([put("remote:down")]));
    expect(error.code).toBe("ECONNREFUSED");
    expect(isStorageError(error)).toBe(true);
    server.up();
    await writes.run([put("remote:back")]);
    expect((await writes.run([{ sql: "SELECT count(*) AS n FROM meta WHERE key LIKE 'remote:%'", args: [] }]))[0]!.rows[0]!.n).toBe(1);
  });

  standInTest("an answer that does not come in time is a storage error (ETIMEDOUT), and the queue goes on", async () => {
    const { server, writes, t } = await failing({ requestTimeoutMs: 300 });
    server.fail({ kind: "hold" });
    const error = await rejection(writes.run([put("remote:late")]));
    expect(error.code).toBe("ETIMEDOUT");
    expect(error.message).toBe("the libSQL server did not answer within 300 ms");
    expect(isStorageError(error)).toBe(true);
    expect(server.held).toBe(1);
    await server.heal(); // the late request still runs: what timed out may have been committed
    await writes.run([put("remote:after")]);
    const keys = await t.client.execute("SELECT key FROM meta WHERE key LIKE 'remote:%' ORDER BY key");
    expect(keys.rows.map((r) => r.key)).toEqual(["remote:after", "remote:late"]);
  });

  for (const [fault, code] of [
    [{ kind: "status", status: 503, body: "upstream unavailable" }, "SERVER_ERROR"],
    [{ kind: "status", status: 401, body: "" }, "SERVER_ERROR"],
    [{ kind: "garbage" }, "HRANA_PROTO_ERROR"],
    [{ kind: "hang-up" }, "ECONNRESET"],
  ] as const) {
    standInTest(`an answer of ${JSON.stringify(fault)} is a storage error (${code}); the next write works`, async () => {
      const { server, writes } = await failing();
      server.fail(fault, { times: 1 });
      const error = await rejection(writes.run([put("remote:faulted")]));
      expect(error.code).toBe(code);
      expect(isStorageError(error)).toBe(true);
      await writes.run([put("remote:next")]);
    });
  }
});

describe("an app on a libSQL server", () => {
  async function conversation(t: LibsqlTarget, options: ConversationOptions = {}): Promise<Conversation> {
    const c = await startConversation({
      storage: { url: t.url, authToken: t.authToken, requestTimeoutMs: 2_000 },
      storageHealth: { minDelayMs: 20, maxDelayMs: 100 },
      ...options,
    });
    cleanup.push(() => c.close());
    return c;
  }

  async function ready(c: Conversation): Promise<{ status: number; database: string }> {
    const response = await fetch(`${c.url}/readyz`);
    return { status: response.status, database: ((await response.json()) as { checks: Record<string, string> }).checks.database! };
  }

  test("a signed message is stored on the server and answered through the Send API", async () => {
    const t = await target();
    const c = await conversation(t);
    expect(await c.post([userText("hello")])).toBe(200);
    const [send] = await c.graph.waitForSends(1, { recipientId: PSID });
    expect(send!.message.text).toBe("You said: hello");
    await c.app.writes.drain();
    const stored = await t.client.execute("SELECT kind, status FROM inbox");
    expect(stored.rows.map((r) => [r.kind, r.status])).toEqual([["message", "done"]]);
    await until(async () => (await t.client.execute("SELECT status FROM outbox")).rows.every((r) => r.status === "sent"));
  });

  standInTest("a turn whose commit timed out but went through on the server is not committed twice: its reply is sent once", async () => {
    const t = await target();
    const agent = countingFlow();
    const c = await conversation(t, { flows: agent.flows, storage: { url: t.url, authToken: t.authToken, requestTimeoutMs: 300 } });
    agent.hold();
    expect(await c.post([userText("first")])).toBe(200);
    await until(() => agent.calls.get("first") === 1);
    // The turn's commit reaches the server but its answer does not come in time.
    t.standIn!.fail({ kind: "hold" });
    agent.release();
    await until(() => t.standIn!.held >= 1);
    await until(() => c.app.health.failedWrites >= 1);
    await t.standIn!.heal(); // the held commit runs now: the turn is committed, the app does not know
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }))).toEqual(["re: first"]);
    await until(async () => (await t.client.execute("SELECT count(*) AS n FROM outbox WHERE status IN ('pending', 'sending')")).rows[0]!.n === 0);
    await c.app.writes.drain();
    expect(messageTexts(c.sends(PSID))).toEqual(["re: first"]);
    expect((await t.client.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'message'")).rows[0]!.n).toBe(1);
    expect(agent.calls.get("first")).toBe(1);
  });

  standInTest("while the server is down webhooks are answered 503 and the lanes wait; once it is back the pending work goes through, once", async () => {
    const t = await target();
    const agent = countingFlow();
    const c = await conversation(t, { flows: agent.flows });
    expect(await c.post([userText("hello")])).toBe(200);
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID }))).toEqual(["re: hello"]);

    // A message is stored; the server goes away while the agent thinks about it.
    agent.hold();
    expect(await c.post([userText("first")])).toBe(200);
    await until(() => agent.calls.get("first") === 1);
    await t.standIn!.down();
    agent.release();
    const second = userText("second", { psid: PSID_2 });
    expect(await c.post([second])).toBe(503); // not stored: Facebook sends it again
    await until(() => c.app.health.failedWrites >= 3); // the turn's commit and the probes after it
    expect(c.app.health.healthy).toBe(false);
    const during = await ready(c);
    expect(during.status).toBe(503);
    expect(during.database).toContain("check that the libSQL server is reachable and accepts writes");
    expect(messageTexts(c.sends(PSID))).toEqual(["re: hello"]); // the lanes wait
    expect(agent.calls.get("first")).toBe(1);

    t.standIn!.up();
    expect(messageTexts(await c.graph.waitForSends(2, { recipientId: PSID }))).toEqual(["re: hello", "re: first"]);
    expect(agent.calls.get("first")).toBe(1); // the agent was not asked again
    expect(await c.post([second])).toBe(200); // Facebook's redelivery
    expect(messageTexts(await c.graph.waitForSends(1, { recipientId: PSID_2 }))).toEqual(["re: second"]);
    expect((await ready(c)).status).toBe(200);
  });
});
