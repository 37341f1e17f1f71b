/**
 * The session store: current session per (endpoint, Page, user), expiry, and the in-memory copy
 * that saves a read per turn without ever getting ahead of the database.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { SessionStore } from "../../../src/conversations/sessions.ts";
import { tempDir, type TempDir } from "../../helpers/tmp.ts";

let dir: TempDir;
let database: Database;
let users = 0;
const MINUTE = 60_000;
const T0 = 1_767_225_700_000;

beforeAll(async () => {
  dir = tempDir("sessions");
  database = await openDatabase(`file:${dir.join("s.db")}`);
  await applyMigrations(database);
});
afterAll(() => {
  database.close();
  dir.remove();
});

const newKey = () => ({ endpointId: "support", pageId: "104857600012345", userId: String(6300000000000000 + ++users) });

/** Counts the statements the store sends to the database. */
function counted(): { store: (capacity?: number) => SessionStore; reads: () => number } {
  let reads = 0;
  const client = new Proxy(database.client, {
    get(target, prop, receiver) {
      if (prop === "execute") {
        return (...args: Parameters<typeof target.execute>) => {
          reads++;
          return target.execute(...args);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  const wrapped = { ...database, client } as Database;
  return { store: (capacity) => new SessionStore(wrapped, capacity), reads: () => reads };
}

async function commit(store: SessionStore, key: ReturnType<typeof newKey>, now: number, context: Record<string, unknown>, expiration = 30) {
  const session = await store.current(key, now, expiration);
  const saved = store.save(key, session, context, now);
  await database.client.batch(saved.statements, "write");
  saved.committed();
  return session;
}

describe("SessionStore", () => {
  test("a new user starts a session; its context comes back on the next input", async () => {
    const store = new SessionStore(database);
    const key = newKey();
    const first = await commit(store, key, T0, { step: 1 });
    expect(first.isNew).toBe(true);
    const second = await store.current(key, T0 + MINUTE, 30);
    expect(second).toEqual({ id: first.id, context: { step: 1 }, isNew: false, endsId: null, lastActiveAt: expect.any(Number) });
    // A fresh store (a restart) reads the same from the database.
    expect(await new SessionStore(database).current(key, T0 + MINUTE, 30)).toEqual(second);
  });

  test("after expiration_minutes without input a new session with an empty context starts; 0 never expires", async () => {
    const store = new SessionStore(database);
    const key = newKey();
    const first = await commit(store, key, T0, { step: 1 });
    const later = await store.current(key, T0 + 31 * MINUTE, 30);
    expect(later).toMatchObject({ isNew: true, context: {}, endsId: first.id });
    expect(later.id).not.toBe(first.id);
    expect(await store.current(key, T0 + 10_000 * MINUTE, 0)).toMatchObject({ id: first.id, isNew: false });
  });

  test("the session of a recent user is read from memory, not the database", async () => {
    const { store: make, reads } = counted();
    const store = make();
    const key = newKey();
    await commit(store, key, T0, { n: 1 });
    const before = reads();
    for (let i = 0; i < 5; i++) await store.current(key, T0 + i, 30);
    expect(reads()).toBe(before);
  });

  test("nothing is remembered until the commit: a failed turn leaves the stored context", async () => {
    const store = new SessionStore(database);
    const key = newKey();
    await commit(store, key, T0, { n: 1 });
    const session = await store.current(key, T0 + 1, 30);
    store.save(key, session, { n: 2 }, T0 + 1); // never committed
    expect((await store.current(key, T0 + 2, 30)).context).toEqual({ n: 1 });
  });

  test("a flow that changes the context object it was given changes nothing that was not saved", async () => {
    const store = new SessionStore(database);
    const key = newKey();
    await commit(store, key, T0, { list: [1] });
    const session = await store.current(key, T0 + 1, 30);
    (session.context.list as number[]).push(2);
    expect((await store.current(key, T0 + 2, 30)).context).toEqual({ list: [1] });
  });

  test("forget: a change made elsewhere (a reset) is seen at the next input", async () => {
    const store = new SessionStore(database);
    const key = newKey();
    const first = await commit(store, key, T0, { n: 1 });
    await database.client.execute({ sql: "DELETE FROM sessions WHERE id = ?", args: [first.id] });
    store.forget(key);
    expect(await store.current(key, T0 + 1, 30)).toMatchObject({ isNew: true, context: {}, endsId: null });
  });

  test("end: the session is stored ended with the turn's context; the next input starts a new one, empty", async () => {
    const store = new SessionStore(database);
    const key = newKey();
    const first = await commit(store, key, T0, { n: 1 });
    const session = await store.current(key, T0 + MINUTE, 30);
    const saved = store.save(key, session, { n: 2, done: true }, T0 + MINUTE, { end: true });
    await database.client.batch(saved.statements, "write");
    saved.committed();
    const row = (await database.client.execute({ sql: "SELECT context, ended_at FROM sessions WHERE id = ?", args: [first.id] })).rows[0]!;
    expect([JSON.parse(String(row[0])), Number(row[1])]).toEqual([{ n: 2, done: true }, T0 + MINUTE]);
    const next = await store.current(key, T0 + 2 * MINUTE, 30);
    expect(next).toEqual({ id: expect.stringMatching(/^s_/), context: {}, isNew: true, endsId: null, lastActiveAt: T0 + MINUTE });
    expect(next.id).not.toBe(first.id);
    // After a restart too.
    expect(await new SessionStore(database).current(key, T0 + 2 * MINUTE, 30)).toMatchObject({ isNew: true, context: {}, endsId: null });
    // The new session is stored as any new one, and is the user's current session from then on.
    await commit(store, key, T0 + 2 * MINUTE, { n: 1 });
    expect(await new SessionStore(database).current(key, T0 + 3 * MINUTE, 30)).toMatchObject({ isNew: false, context: { n: 1 } });
  });

  test("end on the first turn of a session (a new user, or after an expired one): stored ended at once", async () => {
    const store = new SessionStore(database);
    const key = newKey();
    const old = await commit(store, key, T0, {});
    const session = await store.current(key, T0 + 31 * MINUTE, 30); // expired: a new session replaces it
    const saved = store.save(key, session, { bye: true }, T0 + 31 * MINUTE, { end: true });
    await database.client.batch(saved.statements, "write");
    saved.committed();
    const ended = await database.client.execute({ sql: "SELECT id, ended_at FROM sessions WHERE user_id = ? ORDER BY created_at", args: [key.userId] });
    expect(ended.rows.map((r) => [String(r[0]), Number(r[1])])).toEqual([
      [old.id, T0 + 31 * MINUTE],
      [session.id, T0 + 31 * MINUTE],
    ]);
    expect(await store.current(key, T0 + 32 * MINUTE, 30)).toMatchObject({ isNew: true, context: {}, endsId: null });
  });

  test("end not committed (the turn failed): the session goes on", async () => {
    const store = new SessionStore(database);
    const key = newKey();
    const first = await commit(store, key, T0, { n: 1 });
    store.save(key, await store.current(key, T0 + 1, 30), { n: 2 }, T0 + 1, { end: true }); // never committed
    expect(await store.current(key, T0 + 2, 30)).toMatchObject({ id: first.id, isNew: false, context: { n: 1 } });
  });

  test("at most `capacity` users are kept in memory; the least recently active go first", async () => {
    const { store: make, reads } = counted();
    const store = make(2);
    const [a, b, c] = [newKey(), newKey(), newKey()];
    for (const k of [a, b, c]) await commit(store, k, T0, {});
    let before = reads();
    await store.current(c, T0, 30);
    await store.current(b, T0, 30);
    expect(reads()).toBe(before); // b and c are in memory
    before = reads();
    expect((await store.current(a, T0, 30)).isNew).toBe(false); // a was evicted: read again
    expect(reads()).toBe(before + 1);
  });
});
