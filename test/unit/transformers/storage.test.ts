/**
 * Transformers' session storage (src/transformers/storage.ts): what a run reads, what it saves
 * (only its changes, key by key), and the erasure's second delete (src/transformers/user-data.ts)
 * once runs that started before the erasure are over.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import { silentLogger } from "../../../src/log/logger.ts";
import { TRANSFORMER_TIMEOUT_MS } from "../../../src/transformers/host.ts";
import { SessionStorage } from "../../../src/transformers/storage.ts";
import { transformerData } from "../../../src/transformers/user-data.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { tempDir } from "../../helpers/tmp.ts";

const dir = tempDir("transformer-storage");
let database: Database;
let writes: WriteQueue;
const clock = new ManualClock();

beforeAll(async () => {
  database = await openDatabase(`file:${dir.join("s.db")}`);
  await applyMigrations(database);
  writes = new WriteQueue(database.client, { durable: database.durable });
});
afterAll(async () => {
  await writes.drain();
  database.close();
  dir.remove();
});

const key = (userId: string, sessionId: string) => JSON.stringify([userId, sessionId]);
const stored = async (endpointId: string, storageKey: string) => {
  const result = await database.client.execute({
    sql: "SELECT value FROM transformer_storage WHERE endpoint_id = ? AND storage_key = ?",
    args: [endpointId, storageKey],
  });
  const row = result.rows[0] as unknown as { value: string } | undefined;
  return row ? JSON.parse(row.value) : undefined;
};

test("reading: {} for nothing stored, and for what is not a JSON object", async () => {
  const storage = new SessionStorage({ endpointId: "read", database, writes, clock });
  expect(await storage.read(key("u", "s"))).toEqual({});
  for (const [name, value] of [
    ["list", "[1]"],
    ["text", "not json"],
    ["number", "3"],
  ]) {
    await database.client.execute({
      sql: "INSERT INTO transformer_storage (endpoint_id, storage_key, value, updated_at) VALUES ('read', ?, ?, 0)",
      args: [key("u", name!), value!],
    });
    expect(await storage.read(key("u", name!))).toEqual({});
  }
  await storage.save(new Map(), [[key("u", "s"), { a: 1 }]]);
  expect(await storage.read(key("u", "s"))).toEqual({ a: 1 });
});

test("two runs that change different keys of one storage both keep their change; removed keys go; nothing changed writes nothing", async () => {
  const storage = new SessionStorage({ endpointId: "merge", database, writes, clock });
  const shared = key("shared", "s");
  await storage.save(new Map(), [[shared, { a: 1, b: 1, c: 1 }]]);
  const before = new Map([[shared, JSON.stringify({ a: 1, b: 1, c: 1 })]]);
  // Both read the same object; one changes a, the other b and removes c.
  await storage.save(before, [[shared, { a: 2, b: 1, c: 1 }]]);
  await storage.save(before, [[shared, { a: 1, b: 3 }]]);
  expect(await stored("merge", shared)).toEqual({ a: 2, b: 3 });
  const at = clock.now();
  await clock.advance(1_000);
  await storage.save(new Map([[shared, JSON.stringify({ a: 2, b: 3 })]]), [[shared, { a: 2, b: 3 }]]);
  const row = await database.client.execute({ sql: "SELECT updated_at FROM transformer_storage WHERE endpoint_id = 'merge'", args: [] });
  expect(Number((row.rows[0] as unknown as { updated_at: number }).updated_at)).toBe(at);
});

test("a key that cannot stand in a JSON path: the whole object is written", async () => {
  const storage = new SessionStorage({ endpointId: "whole", database, writes, clock });
  const k = key("u", "s");
  await storage.save(new Map(), [[k, { "a.b": 1, x: 1 }]]);
  await storage.save(new Map([[k, JSON.stringify({ "a.b": 1, x: 1 })]]), [[k, { "a.b": 2, x: 1 }]]);
  expect(await stored("whole", k)).toEqual({ "a.b": 2, x: 1 });
});

test("erasure: the user's storage is deleted again once every run that started before it is over", async () => {
  const storage = new SessionStorage({ endpointId: "gone", database, writes, clock });
  const part = transformerData({ database, writes, timers: clock });
  const subject = { keys: [{ endpointId: "gone", pageId: "p", userId: "u1" }], contact: null };
  await storage.save(new Map(), [
    [key("u1", "s"), { n: 1 }],
    [key("u10", "s"), { n: 10 }],
  ]);
  await writes.run(part.erase(subject));
  part.erased(subject, silentLogger);
  expect(await stored("gone", key("u1", "s"))).toBeUndefined();
  // A run that started before the erasure saves the user's storage after it.
  await storage.save(new Map(), [[key("u1", "s"), { n: 2 }]]);
  await clock.advance(TRANSFORMER_TIMEOUT_MS);
  expect(await stored("gone", key("u1", "s"))).toEqual({ n: 2 });
  await clock.advance(1_000);
  await writes.drain();
  expect(await stored("gone", key("u1", "s"))).toBeUndefined();
  expect(await stored("gone", key("u10", "s"))).toEqual({ n: 10 }); // another user whose id starts alike
  expect(clock.timers).toEqual([]);
});
