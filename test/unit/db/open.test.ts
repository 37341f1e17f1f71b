/**
 * openDatabase before it writes anything: another program's file is refused untouched, a file that
 * is not SQLite is refused clearly, ours (marked or from before the mark) is accepted and marked,
 * and what it creates is private (0600 files, 0700 folder).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createClient } from "@libsql/client";
import { DatabaseError, openDatabase } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { acquireInstanceLock } from "../../../src/db/lock.ts";
import { APPLICATION_ID, APP_VERSION_KEY, knownMigrations } from "../../../src/db/identity.ts";
import { VERSION } from "../../../src/version.ts";
import { tempDir } from "../../helpers/tmp.ts";

const root = tempDir("open");
afterAll(() => root.remove());
let n = 0;
const fresh = () => root.sub(`d${++n}`);

const mode = (path: string) => statSync(path).mode & 0o777;

async function query(file: string, sql: string): Promise<unknown[][]> {
  const client = createClient({ url: `file:${file}` });
  try {
    return (await client.execute(sql)).rows.map((r) => Array.from(r as unknown as unknown[]));
  } finally {
    client.close();
  }
}

/** A SQLite file of another program, in SQLite's default rollback-journal mode. */
async function foreignFile(file: string, applicationId = 0): Promise<void> {
  const client = createClient({ url: `file:${file}` });
  await client.executeMultiple(
    `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE orders (id INTEGER PRIMARY KEY);
     CREATE TABLE invoices (id INTEGER); INSERT INTO users (name) VALUES ('ada'); PRAGMA application_id = ${applicationId};`,
  );
  client.close();
}

async function openError(url: string, options = {}): Promise<DatabaseError> {
  try {
    const database = await openDatabase(url, options);
    database.close();
  } catch (error) {
    expect(error).toBeInstanceOf(DatabaseError);
    return error as DatabaseError;
  }
  throw new Error(`${url} was opened`);
}

async function migrated(file: string): Promise<void> {
  const database = await openDatabase(`file:${file}`);
  try {
    await applyMigrations(database);
  } finally {
    database.close();
  }
}

describe("a new database", () => {
  test("its folder is created 0700, the file and its -wal and -shm 0600, and it is marked", async () => {
    const dir = fresh();
    const file = dir.join("data", "nested", "bot.db");
    const database = await openDatabase(`file:${file}`);
    try {
      await applyMigrations(database);
      expect(mode(dir.join("data"))).toBe(0o700);
      expect(mode(dir.join("data", "nested"))).toBe(0o700);
      for (const f of [file, `${file}-wal`, `${file}-shm`]) expect([f, mode(f)]).toEqual([f, 0o600]);
      expect((await database.client.execute("PRAGMA application_id")).rows[0]?.[0]).toBe(APPLICATION_ID);
      // The version that migrated it, for the message an older binary gives.
      expect((await database.client.execute({ sql: "SELECT value FROM meta WHERE key = ?", args: [APP_VERSION_KEY] })).rows[0]?.[0]).toBe(VERSION);
    } finally {
      database.close();
    }
  });

  test("a zero-length file is a new database", async () => {
    const file = fresh().write("empty.db", "");
    await migrated(file);
    expect((await query(file, "SELECT count(*) FROM __drizzle_migrations"))[0]![0]).toBe(knownMigrations().length);
  });

  test("the instance lock file is created 0600", async () => {
    const file = fresh().join("bot.db");
    const lock = await acquireInstanceLock(file, "test");
    try {
      expect(mode(`${file}.lock`)).toBe(0o600);
    } finally {
      lock.release();
    }
  });
});

describe("another program's SQLite file", () => {
  test("is refused before anything is written: same bytes, not WAL, no tables added", async () => {
    const file = fresh().join("theirs.db");
    await foreignFile(file);
    const before = readFileSync(file);
    const error = await openError(`file:${file}`);
    expect(error.message).toBe(
      `the database ${file} is another program's SQLite database (tables: invoices, orders, users): ` +
        "point storage.url at a new database, or pass --adopt to add messenger-endpoint's tables to this one",
    );
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(existsSync(`${file}-wal`)).toBe(false);
    expect(await query(file, "PRAGMA journal_mode")).toEqual([["delete"]]);
    expect(await query(file, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")).toEqual([["invoices"], ["orders"], ["users"]]);
  });

  test("names a few of many tables", async () => {
    const file = fresh().join("many.db");
    const client = createClient({ url: `file:${file}` });
    await client.executeMultiple(Array.from({ length: 8 }, (_, i) => `CREATE TABLE t${i} (x);`).join(""));
    client.close();
    expect((await openError(`file:${file}`)).message).toContain("(tables: t0, t1, t2, t3, t4, … (8 tables))");
  });

  test("is used with adopt: our tables beside theirs, marked, and accepted without adopt afterwards", async () => {
    const file = fresh().join("theirs.db");
    await foreignFile(file);
    const database = await openDatabase(`file:${file}`, { adopt: true });
    try {
      await applyMigrations(database);
    } finally {
      database.close();
    }
    const tables = (await query(file, "SELECT name FROM sqlite_schema WHERE type = 'table'")).map((r) => r[0]);
    expect(tables).toContain("users");
    expect(tables).toContain("meta");
    expect(await query(file, "SELECT name FROM users")).toEqual([["ada"]]);
    expect(await query(file, "PRAGMA application_id")).toEqual([[APPLICATION_ID]]);
    await migrated(file);
  });

  test("marked with another application_id: refused even with adopt", async () => {
    const file = fresh().join("marked.db");
    await foreignFile(file, 0x0f055112);
    const error = await openError(`file:${file}`, { adopt: true });
    expect(error.message).toBe(
      `the database ${file} belongs to another program (its SQLite application_id is 0xf055112; tables: invoices, orders, users): ` +
        "point storage.url at a file of messenger-endpoint's own",
    );
    expect(await query(file, "PRAGMA journal_mode")).toEqual([["delete"]]);
  });
});

describe("a file that is not SQLite", () => {
  test("is refused with a clear message and left as it was", async () => {
    for (const content of ["hello, this is a text file\n".repeat(40), "hi"]) {
      const file = fresh().write("notes.db", content);
      const error = await openError(`file:${file}`);
      expect(error.message).toBe(
        `${file} is not a SQLite database (or it is encrypted or damaged): point storage.url at a messenger-endpoint database or at a new file`,
      );
      expect(readFileSync(file, "utf8")).toBe(content);
      expect(existsSync(`${file}-wal`)).toBe(false);
    }
  });

  test("a damaged header past the magic string is refused the same way", async () => {
    const file = fresh().join("damaged.db");
    await foreignFile(file);
    const bytes = readFileSync(file);
    bytes.fill(0xff, 16, 100); // page size, format numbers: nothing SQLite can read
    writeFileSync(file, bytes);
    expect((await openError(`file:${file}`)).message).toContain("is not a SQLite database");
  });
});

describe("ours from before the mark (no application_id)", () => {
  test("is accepted and marked", async () => {
    const file = fresh().join("old.db");
    await migrated(file);
    const client = createClient({ url: `file:${file}` });
    await client.execute("PRAGMA application_id = 0");
    client.close();
    expect(await query(file, "PRAGMA application_id")).toEqual([[0]]);
    await migrated(file);
    expect(await query(file, "PRAGMA application_id")).toEqual([[APPLICATION_ID]]);
  });
});

describe("a database of a newer version", () => {
  test("is refused with both versions before anything is written", async () => {
    const file = fresh().join("new.db");
    await migrated(file);
    const newest = knownMigrations().at(-1)!.when;
    const client = createClient({ url: `file:${file}` });
    await client.executeMultiple(
      `INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('${"f".repeat(64)}', ${newest + 1000});
       UPDATE meta SET value = '9.0.0' WHERE key = '${APP_VERSION_KEY}';
       PRAGMA wal_checkpoint(TRUNCATE);`,
    );
    client.close();
    const before = readFileSync(file);
    const error = await openError(`file:${file}`);
    expect(error.message).toBe(
      `the database ${file} has schema ${knownMigrations().length + 1} (written by messenger-endpoint 9.0.0); ` +
        `this binary ${VERSION} knows schema ${knownMigrations().length}: run the newer binary, or restore a backup taken with ${VERSION}`,
    );
    expect(readFileSync(file).equals(before)).toBe(true);
  });
});

describe("the page cache (storage.cache_mib)", () => {
  const cacheSize = async (options: { cacheMib?: number }) => {
    const database = await openDatabase(`file:${fresh().join("cache.db")}`, options);
    try {
      return Number((await database.client.execute("PRAGMA cache_size")).rows[0]![0]);
    } finally {
      database.close();
    }
  };

  test("is 16 MiB unless set (a negative cache_size is KiB)", async () => {
    expect(await cacheSize({})).toBe(-16 * 1024);
  });

  test("follows the setting", async () => {
    expect(await cacheSize({ cacheMib: 64 })).toBe(-64 * 1024);
  });
});
