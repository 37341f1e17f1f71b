/**
 * The local client's rows: statements that return one row at most are read with the driver's
 * `get` (one call), the others with its iterator; both give the same result sets. And the SQL of a
 * multi-row INSERT is built once per number of rows (db/rows.ts valuesSql).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atMostOneRow, LocalClient } from "../../../src/db/local-client.ts";
import { insertedIds, valuesSql } from "../../../src/db/rows.ts";

describe("atMostOneRow", () => {
  const one = [
    "INSERT INTO inbox (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING dedup_key, id",
    "INSERT INTO outbox (a) VALUES (?) RETURNING id",
    "INSERT INTO meta (key, value) VALUES ('install_id', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, key = 'x' RETURNING value",
    "insert into `t` (a, b) values (?1, NULL) returning a",
    "SELECT id FROM sessions WHERE user_id = ? LIMIT 1",
    "SELECT a FROM t UNION ALL SELECT b FROM u LIMIT 1",
  ];
  const many = [
    "INSERT INTO inbox (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING RETURNING id",
    "INSERT INTO inbox (a, b) VALUES (?, ?)\n , (?, ?) RETURNING id",
    // A literal that looks like the end of a tuple and the start of another.
    "INSERT INTO t (a, b) VALUES ('x), (y', ?), (?, ?) RETURNING id",
    "INSERT INTO t (a, b) VALUES (?, json(?)) RETURNING id",
    "INSERT INTO t (a, b) SELECT a, b FROM u RETURNING id",
    "INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING id",
    "UPDATE t SET a = 1 RETURNING id",
    "DELETE FROM t WHERE a < ? RETURNING id",
    "SELECT id FROM t WHERE a = (SELECT b FROM u LIMIT 1)",
    "SELECT id FROM t LIMIT 10",
    "SELECT id FROM t LIMIT ?",
    "SELECT id FROM t LIMIT 1 OFFSET 5",
  ];
  for (const sql of one) test(`one row at most: ${sql.slice(0, 60)}`, () => expect(atMostOneRow(sql)).toBe(true));
  for (const sql of many) test(`maybe more: ${sql.slice(0, 60)}`, () => expect(atMostOneRow(sql)).toBe(false));
});

describe("on a database file with a table t", () => {
  let dir: string;
  let client: LocalClient;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "local-client-"));
    client = new LocalClient(join(dir, "t.db"));
    await client.executeMultiple("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL UNIQUE, v INTEGER)");
  });
  afterEach(() => {
    client.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe("LocalClient rows", () => {
    test("an INSERT of one row with RETURNING gives its row, and none when the upsert skips it", async () => {
      const insert = "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING id, k";
      const first = await client.execute({ sql: insert, args: ["a", 1] });
      expect(first.columns).toEqual(["id", "k"]);
      expect(first.rows.map((r) => [r.id, r.k, r[0], r[1]])).toEqual([[1, "a", 1, "a"]]);
      const again = await client.execute({ sql: insert, args: ["a", 2] });
      expect(again.rows).toEqual([]);
      const other = await client.execute({ sql: insert, args: ["b", 3] });
      // (AUTOINCREMENT spends an id on the skipped row, as SQLite does with either way of reading.)
      expect(other.rows.map((r) => r.k)).toEqual(["b"]);
      expect(other.rows[0]!.id).toBeGreaterThan(1);
    });

    test("a one-row INSERT … RETURNING outside a transaction still reports a commit that failed", async () => {
      // A deferred foreign key fails at the commit, as a full disk would: the statement commits by
      // itself here, so it must not be read with the driver's get (whose reset drops that error).
      await client.executeMultiple(
        "PRAGMA foreign_keys = ON; CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)",
      );
      await expect(client.execute({ sql: "INSERT INTO c (pid) VALUES (?) RETURNING id", args: [5] })).rejects.toThrow(/FOREIGN KEY/);
      expect((await client.execute("SELECT count(*) AS n FROM c")).rows[0]!.n).toBe(0);
      // Inside a transaction the commit is the batch's own, and fails there.
      await expect(client.batch([{ sql: "INSERT INTO c (pid) VALUES (?) RETURNING id", args: [5] }], "write")).rejects.toThrow(/FOREIGN KEY/);
      expect((await client.execute("SELECT count(*) AS n FROM c")).rows[0]!.n).toBe(0);
    });

    test("a multi-row INSERT with RETURNING gives every row", async () => {
      const result = await client.execute({ sql: valuesSql("INSERT INTO t (k, v) VALUES ", 2, " RETURNING k")(3), args: ["a", 1, "b", 2, "c", 3] });
      expect(result.rows.map((r) => r.k).sort()).toEqual(["a", "b", "c"]);
    });

    test("a SELECT … LIMIT 1 gives one row or none; a wider SELECT gives all", async () => {
      await client.batch([{ sql: valuesSql("INSERT INTO t (k, v) VALUES ", 2)(3), args: ["a", 1, "b", 1, "c", 2] }], "write");
      const one = await client.execute({ sql: "SELECT k FROM t WHERE v = ? ORDER BY k LIMIT 1", args: [1] });
      expect(one.rows.map((r) => r.k)).toEqual(["a"]);
      expect((await client.execute({ sql: "SELECT k FROM t WHERE v = ? ORDER BY k LIMIT 1", args: [9] })).rows).toEqual([]);
      const all = await client.execute({ sql: "SELECT k FROM t WHERE v = ? ORDER BY k", args: [1] });
      expect(all.rows.map((r) => r.k)).toEqual(["a", "b"]);
    });

    test("a one-row statement that fails leaves the client usable, with the same statement", async () => {
      const insert = "INSERT INTO t (k, v) VALUES (?, ?) RETURNING id";
      await client.execute({ sql: insert, args: ["a", 1] });
      // The unique index refuses it: the step fails inside the driver's get.
      await expect(client.execute({ sql: insert, args: ["a", 2] })).rejects.toThrow(/UNIQUE/);
      const next = await client.execute({ sql: insert, args: ["b", 2] });
      expect(next.rows.map((r) => r.id)).toEqual([2]);
      // The failed one changed nothing, and a transaction around it rolls back as a whole.
      await expect(
        client.batch(
          [
            { sql: insert, args: ["c", 3] },
            { sql: insert, args: ["a", 4] },
          ],
          "write",
        ),
      ).rejects.toThrow(/UNIQUE/);
      expect((await client.execute("SELECT k, v FROM t ORDER BY id")).rows.map((r) => [r.k, r.v])).toEqual([
        ["a", 1],
        ["b", 2],
      ]);
    });
  });

  describe("insertedIds", () => {
    test("the ids of the rows of one INSERT, in the order of its VALUES, also after deletions and skipped rows", async () => {
      const insert = valuesSql("INSERT INTO t (k) VALUES ", 1);
      await client.execute({ sql: insert(2), args: ["a", "b"] });
      await client.execute({ sql: "DELETE FROM t WHERE k = 'b'" }); // the largest id is gone; AUTOINCREMENT does not reuse it
      await client.execute({ sql: "INSERT INTO t (k) VALUES (?) ON CONFLICT DO NOTHING", args: ["a"] }); // skipped
      const result = await client.execute({ sql: insert(3), args: ["x", "y", "z"] });
      const first = insertedIds(result, 3);
      const rows = (await client.execute("SELECT id, k FROM t WHERE k IN ('x', 'y', 'z') ORDER BY id")).rows;
      expect(rows.map((r) => [r.id, r.k])).toEqual([
        [first, "x"],
        [first + 1, "y"],
        [first + 2, "z"],
      ]);
    });

    test("a statement that did not write every row has no such run of ids", async () => {
      await client.execute({ sql: "INSERT INTO t (k) VALUES (?)", args: ["a"] });
      const result = await client.execute({ sql: "INSERT INTO t (k) VALUES (?), (?) ON CONFLICT DO NOTHING", args: ["a", "b"] });
      expect(() => insertedIds(result, 2)).toThrow(/wrote 1/);
    });
  });
});

describe("valuesSql", () => {
  test("one tuple of parameters per row, the same string for the same count", () => {
    const sql = valuesSql("INSERT INTO t (a, b) VALUES ", 2, " RETURNING id");
    expect(sql(1)).toBe("INSERT INTO t (a, b) VALUES (?, ?) RETURNING id");
    expect(sql(2)).toBe("INSERT INTO t (a, b) VALUES (?, ?), (?, ?) RETURNING id");
    expect(sql(2)).toBe(sql(2));
    expect(sql(100).split("(?, ?)").length - 1).toBe(100);
  });
});
