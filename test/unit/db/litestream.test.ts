/**
 * With Litestream's folder beside the database (`.<name>-litestream`, db/client.ts), checkpoints
 * are left to Litestream: no autocheckpoint, no TRUNCATE at our shutdown. Without it, checkpoints
 * off the event loop (db/checkpointer.ts), SQLite's own as a backstop, and our TRUNCATE at shutdown.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, statSync } from "node:fs";
import { createClient } from "@libsql/client";
import { BACKSTOP_FRAMES } from "../../../src/db/checkpointer.ts";
import { litestreamFolder, openDatabase } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { identify, inspectDatabase } from "../../../src/db/identity.ts";
import { tempDir } from "../../helpers/tmp.ts";

const dir = tempDir("litestream-unit");
afterAll(() => dir.remove());

async function opened(name: string, withLitestream: boolean) {
  const file = dir.join(name);
  if (withLitestream) mkdirSync(litestreamFolder(file), { recursive: true });
  const database = await openDatabase(`file:${file}`);
  await applyMigrations(database);
  await database.client.execute("INSERT INTO meta (key, value, updated_at) VALUES ('k', 'v', 1)");
  return { file, database };
}

async function autocheckpoint(database: Awaited<ReturnType<typeof openDatabase>>): Promise<number> {
  return Number((await database.client.execute("PRAGMA wal_autocheckpoint")).rows[0]![0]);
}

test("the folder is Litestream's: .<name>-litestream beside the file", () => {
  expect(litestreamFolder("/srv/data/bot.db")).toBe("/srv/data/.bot.db-litestream");
});

test("Litestream replicates the file: no autocheckpoint, and checkpoint() leaves the WAL to it", async () => {
  const { file, database } = await opened("replicated.db", true);
  expect(database.litestream).toBe(litestreamFolder(file));
  expect(await autocheckpoint(database)).toBe(0);
  expect(database.checkpointer).toBeNull();
  // A reader, as Litestream's read transaction: our checkpoint must not wait for it.
  const reader = createClient({ url: `file:${file}` });
  const read = await reader.transaction("read");
  await read.execute("SELECT count(*) FROM meta");
  const started = performance.now();
  await database.checkpoint();
  expect(performance.now() - started).toBeLessThan(1000); // TRUNCATE would wait the busy timeout (5 s)
  expect(statSync(`${file}-wal`).size).toBeGreaterThan(0);
  await read.rollback();
  reader.close();
  database.close();
});

test("no Litestream: checkpoints off the event loop, SQLite's own as a backstop, and checkpoint() truncates the WAL", async () => {
  const { file, database } = await opened("plain.db", false);
  expect(database.litestream).toBeNull();
  expect(database.checkpointer).not.toBeNull();
  expect(await autocheckpoint(database)).toBe(BACKSTOP_FRAMES);
  await database.checkpoint();
  expect(statSync(`${file}-wal`).size).toBe(0);
  database.close();
});

test("Litestream's tables do not make a new database someone else's", async () => {
  const file = dir.join("seen-by-litestream.db");
  const client = createClient({ url: `file:${file}` });
  // What `litestream replicate` creates in a file it finds.
  await client.execute("CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)");
  await client.execute("CREATE TABLE _litestream_lock (id INTEGER)");
  expect(identify(await inspectDatabase(client, { applicationId: true }))).toBe("new");
  client.close();
  const database = await openDatabase(`file:${file}`);
  expect((await applyMigrations(database)).applied).toBeGreaterThan(0);
  database.close();
});
