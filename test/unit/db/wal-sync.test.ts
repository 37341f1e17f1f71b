/** WalSync: callers share fsyncs that start after their call; the WAL file is found anew if replaced. */
import { afterAll, expect, test } from "bun:test";
import { renameSync, statSync, writeFileSync } from "node:fs";
import { WalSync } from "../../../src/db/wal-sync.ts";
import { tempDir } from "../../helpers/tmp.ts";

const dir = tempDir("wal-sync");
afterAll(() => dir.remove());

test("calls made while a sync runs share the next one; each resolves", async () => {
  const wal = dir.write("a.db-wal", "frames");
  const sync = new WalSync(wal, dir.write("a.db", "db"));
  const first = sync.sync();
  expect(sync.sync()).toBe(first); // not started yet: it covers this caller too
  for (let i = 0; i < 5; i++) await Promise.resolve(); // the sync has started (it is opening the file)
  const second = sync.sync();
  const third = sync.sync();
  expect(second).toBe(third); // both wait for the sync that starts after the running one
  expect(second).not.toBe(first);
  await Promise.all([first, second, third]);
  await sync.sync(); // nothing running: a new one
  await sync.close();
});

test("a replaced WAL file is reopened; without a WAL file the database file is synced", async () => {
  const db = dir.write("b.db", "db");
  const wal = dir.write("b.db-wal", "old");
  const sync = new WalSync(wal, db);
  await sync.sync();
  expect(sync.lastSynced).toEqual({ path: wal, inode: statSync(wal).ino });
  writeFileSync(`${wal}.new`, "new");
  renameSync(`${wal}.new`, wal); // another inode under the same name
  const replaced = statSync(wal).ino;
  await sync.sync();
  expect(sync.lastSynced).toEqual({ path: wal, inode: replaced }); // not the old, unlinked file
  renameSync(wal, `${wal}.gone`);
  await sync.sync(); // falls back to the database file
  expect(sync.lastSynced).toEqual({ path: db, inode: statSync(db).ino });
  await sync.close();
});

test("a sync that cannot find any file rejects", async () => {
  const sync = new WalSync(dir.join("missing.db-wal"), dir.join("missing.db"));
  await expect(sync.sync()).rejects.toThrow();
  await sync.close();
});
