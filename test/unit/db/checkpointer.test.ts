/**
 * Checkpoints off the event loop (db/checkpointer.ts): a second connection copies the WAL into the
 * database file after writes, while the event loop's connection keeps SQLite's own checkpoint only
 * as a backstop; failures are reported once and never thrown.
 */
import { afterAll, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { BACKSTOP_FRAMES, Checkpointer } from "../../../src/db/checkpointer.ts";
import { openDatabase } from "../../../src/db/client.ts";
import { tempDir } from "../../helpers/tmp.ts";

const dir = tempDir("checkpointer");
afterAll(() => dir.remove());

const PAGE = 4096;
const ROWS = 200; // ~200 pages of WAL: far below the backstop, so only the checkpointer copies them

async function fill(database: Awaited<ReturnType<typeof openDatabase>>): Promise<void> {
  await database.client.execute("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, blob BLOB NOT NULL)");
  for (let i = 0; i < ROWS; i++) {
    await database.client.execute({ sql: "INSERT INTO filler (blob) VALUES (?)", args: [new Uint8Array(PAGE).fill(i % 251)] });
  }
}

test("after writes, the second connection copies the WAL into the database file; the event loop's connection would not have yet", async () => {
  const file = dir.join("copied.db");
  const database = await openDatabase(`file:${file}`);
  expect(Number((await database.client.execute("PRAGMA wal_autocheckpoint")).rows[0]![0])).toBe(BACKSTOP_FRAMES);
  await fill(database);
  const before = statSync(file).size;
  expect(before).toBeLessThan(ROWS * PAGE); // the rows are in the WAL only
  const checkpointer = database.checkpointer!;
  await checkpointer.idle();
  expect(checkpointer.runs).toBeGreaterThanOrEqual(1);
  expect(statSync(file).size).toBeGreaterThanOrEqual(ROWS * PAGE);
  // Every frame was copied: the next write starts the WAL again from its beginning.
  const log = (await database.client.execute("PRAGMA wal_checkpoint(PASSIVE)")).rows[0]!;
  expect(Number(log[1])).toBe(Number(log[2]));
  expect((await database.client.execute("SELECT count(*) FROM filler")).rows[0]![0]).toBe(ROWS);
  database.close();
});

test("writes go on while checkpoints run, and all of them land", async () => {
  const file = dir.join("concurrent.db");
  const database = await openDatabase(`file:${file}`);
  await fill(database);
  for (let round = 0; round < 5; round++) {
    // A checkpoint starts after the delay; these writes overlap it.
    await new Promise((resolve) => setTimeout(resolve, 250));
    for (let i = 0; i < 50; i++) await database.client.execute({ sql: "INSERT INTO filler (blob) VALUES (?)", args: [new Uint8Array(PAGE)] });
  }
  await database.checkpointer!.idle();
  expect(database.checkpointer!.runs).toBeGreaterThanOrEqual(2);
  expect((await database.client.execute("SELECT count(*) FROM filler")).rows[0]![0]).toBe(ROWS + 250);
  await database.checkpoint();
  database.close();
  const reopened = await openDatabase(`file:${file}`);
  expect((await reopened.client.execute("SELECT count(*) FROM filler")).rows[0]![0]).toBe(ROWS + 250);
  reopened.close();
});

test("an INSERT … RETURNING schedules a checkpoint like any write; a SELECT does not", async () => {
  const database = await openDatabase(`file:${dir.join("returning.db")}`);
  await database.client.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  const checkpointer = database.checkpointer!;
  await checkpointer.idle();
  const runs = checkpointer.runs;
  await database.client.execute("SELECT count(*) FROM t");
  await checkpointer.idle();
  expect(checkpointer.runs).toBe(runs);
  const inserted = await database.client.execute({ sql: "INSERT INTO t (v) VALUES (?) RETURNING id", args: ["x"] });
  expect(inserted.rows).toHaveLength(1);
  await checkpointer.idle();
  expect(checkpointer.runs).toBe(runs + 1);
  database.close();
});

test("a checkpoint that fails is reported once until one succeeds, and never thrown", async () => {
  const errors: unknown[] = [];
  const checkpointer = new Checkpointer(dir.join("no-such-folder", "x.db"), { delayMs: 1, onError: (e) => errors.push(e) });
  checkpointer.written();
  await checkpointer.idle();
  checkpointer.written();
  await checkpointer.idle();
  expect(checkpointer.runs).toBe(0);
  expect(errors).toHaveLength(1);
  await checkpointer.close();
});

test("skip() leaves checkpoints out (Litestream started after the server); after close() nothing is scheduled", async () => {
  const file = dir.join("skipped.db");
  const database = await openDatabase(`file:${file}`);
  await fill(database);
  database.close();
  let skip = true;
  const checkpointer = new Checkpointer(file, { delayMs: 1, skip: () => skip });
  checkpointer.written();
  await checkpointer.idle();
  expect(checkpointer.runs).toBe(0);
  skip = false;
  checkpointer.written();
  await checkpointer.idle();
  expect(checkpointer.runs).toBe(1);
  await checkpointer.close();
  checkpointer.written();
  await checkpointer.idle();
  expect(checkpointer.runs).toBe(1);
});

test("an in-memory database has no checkpointer", async () => {
  const database = await openDatabase(":memory:");
  expect(database.checkpointer).toBeNull();
  database.close();
});
