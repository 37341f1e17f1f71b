import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { createClient } from "@libsql/client";
import { openDatabase } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { acquireInstanceLock } from "../../src/db/lock.ts";
import { meta } from "../../src/db/schema.ts";
import { checkDatabaseFile } from "../../src/db/backup.ts";
import { APPLICATION_ID, APP_VERSION_KEY, knownMigrations } from "../../src/db/identity.ts";
import { VERSION } from "../../src/version.ts";
import { cli, holdInstanceLock, settingsToml, spawnScript, srcPath, tempDir } from "../helpers/index.ts";

const root = tempDir("backup");
afterAll(() => root.remove());
let n = 0;

/** A working folder with settings, a migrated database at data/bot.db and the given meta keys. */
async function site(keys: string[] = ["first"]) {
  const dir = root.sub(`site${++n}`);
  dir.write("messenger-endpoint.toml", settingsToml({ storageUrl: "file:data/bot.db" }));
  const dbFile = dir.join("data/bot.db");
  const migrated = await cli(["migrate"], dir.path);
  expect(migrated.code).toBe(0);
  await addKeys(dbFile, keys);
  return { dir, dbFile };
}

async function addKeys(dbFile: string, keys: string[]) {
  const database = await openDatabase(`file:${dbFile}`);
  try {
    for (const key of keys) await database.db.insert(meta).values({ key, value: `value of ${key}`, updatedAt: 1 });
  } finally {
    database.close();
  }
}

/** The test's own meta keys (not the version every migrate records, see src/db/identity.ts). */
async function keysIn(file: string): Promise<string[]> {
  const client = createClient({ url: `file:${file}` });
  try {
    const rows = await client.execute({ sql: "SELECT key FROM meta WHERE key <> ? ORDER BY key", args: [APP_VERSION_KEY] });
    return rows.rows.map((r) => String(r[0]));
  } finally {
    client.close();
  }
}

async function integrity(file: string): Promise<string> {
  const client = createClient({ url: `file:${file}` });
  try {
    return String((await client.execute("PRAGMA integrity_check")).rows[0]?.[0]);
  } finally {
    client.close();
  }
}

describe("backup", () => {
  test("writes a checked copy with the data", async () => {
    const { dir } = await site(["alpha", "beta"]);
    const { code, io } = await cli(["backup", dir.join("copy.db")], dir.path);
    expect(io.stderr).toEqual([]);
    expect(code).toBe(0);
    expect(io.stdout[0]).toStartWith(`backup written to ${dir.join("copy.db")}: `);
    expect(io.stdout[0]).toContain("integrity check ok");
    expect(await integrity(dir.join("copy.db"))).toBe("ok");
    expect(await keysIn(dir.join("copy.db"))).toEqual(["alpha", "beta"]);
    const check = await checkDatabaseFile(dir.join("copy.db"));
    expect(check.migrations).toBeGreaterThan(0);
    // No temporary files left next to the copy.
    expect(readdirSync(dir.path).filter((f) => f.includes("partial"))).toEqual([]);
  });

  test("refuses to overwrite an existing file: exit 2, the file untouched", async () => {
    const { dir } = await site();
    const existing = dir.write("precious.db", "do not touch");
    const before = statSync(existing).mtimeMs;
    const { code, io } = await cli(["backup", dir.join("precious.db")], dir.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain("already exists");
    expect(readFileSync(existing, "utf8")).toBe("do not touch");
    expect(statSync(existing).mtimeMs).toBe(before);
  });

  test("no database yet: exit 2", async () => {
    const dir = root.sub(`site${++n}`);
    dir.write("messenger-endpoint.toml", settingsToml({ storageUrl: "file:data/bot.db" }));
    const { code, io } = await cli(["backup", dir.join("copy.db")], dir.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain("there is no database");
    expect(existsSync(dir.join("copy.db"))).toBe(false);
  });

  test("into a folder that does not exist: exit 2", async () => {
    const { dir } = await site();
    const { code } = await cli(["backup", dir.join("no/such/folder/copy.db")], dir.path);
    expect(code).toBe(2);
  });

  test("works while a server holds the instance lock", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    const lock = await acquireInstanceLock(dbFile, "test server");
    try {
      const { code } = await cli(["backup", dir.join("copy.db")], dir.path);
      expect(code).toBe(0);
    } finally {
      lock.release();
    }
    expect(await keysIn(dir.join("copy.db"))).toEqual(["alpha"]);
  });

  test("is consistent while another process keeps writing", async () => {
    const { dir, dbFile } = await site([]);
    const writer = await spawnScript(
      dir,
      "writer.ts",
      `import { openDatabase } from ${srcPath("db/client.ts")};
const database = await openDatabase("file:" + process.argv[2]);
const filler = "x".repeat(2000);
for (let i = 0; ; i++) {
  await database.client.batch(
    Array.from({ length: 20 }, (_, j) => ({ sql: "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?)", args: ["k" + i + "-" + j, filler, i] })),
    "write",
  );
  if (i === 0) console.log("writing");
}
`,
      "writing",
      [dbFile],
    );
    let copies: string[];
    try {
      copies = [];
      for (let i = 0; i < 3; i++) {
        const { code, io } = await cli(["backup", dir.join(`copy-${i}.db`)], dir.path);
        expect(io.stderr).toEqual([]);
        expect(code).toBe(0);
        copies.push(dir.join(`copy-${i}.db`));
      }
    } finally {
      await writer.stop();
    }
    let previous = 0;
    for (const copy of copies) {
      expect(await integrity(copy)).toBe("ok");
      const keys = await keysIn(copy);
      // Whole transactions only: every batch of 20 is in the copy completely or not at all.
      expect(keys.length % 20).toBe(0);
      expect(keys.length).toBeGreaterThanOrEqual(Math.max(20, previous));
      previous = keys.length;
    }
    expect(await integrity(dbFile)).toBe("ok");
  });
});

test("relative OUT_FILE and BACKUP_FILE are resolved against the working folder", async () => {
  const { dir, dbFile } = await site(["alpha"]);
  const backup = await cli(["backup", "relative-copy.db"], dir.path);
  expect(backup.code).toBe(0);
  expect(existsSync(dir.join("relative-copy.db"))).toBe(true);
  const restore = await cli(["restore", "relative-copy.db"], dir.path);
  expect(restore.code).toBe(0);
  expect(await keysIn(dbFile)).toEqual(["alpha"]);
});

describe("restore", () => {
  function safetyCopies(dbFile: string, dirPath: string): string[] {
    return readdirSync(dirPath).filter((f) => f.startsWith(`${basename(dbFile)}.before-restore-`));
  }

  test("puts the backup in place and keeps the previous database aside", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    await addKeys(dbFile, ["beta"]);
    expect(await keysIn(dbFile)).toEqual(["alpha", "beta"]);

    const { code, io } = await cli(["restore", dir.join("b.db")], dir.path);
    expect(io.stderr).toEqual([]);
    expect(code).toBe(0);
    expect(await keysIn(dbFile)).toEqual(["alpha"]);
    expect(await integrity(dbFile)).toBe("ok");

    const kept = safetyCopies(dbFile, dir.join("data"));
    expect(kept).toHaveLength(1);
    expect(io.stdout[0]).toContain(`the previous database is kept at ${dir.join("data", kept[0]!)}`);
    expect(await keysIn(dir.join("data", kept[0]!))).toEqual(["alpha", "beta"]);
    // The backup itself is left as it was.
    expect(await keysIn(dir.join("b.db"))).toEqual(["alpha"]);
  });

  test("the restored database opens and migrates (nothing to apply)", async () => {
    const { dir } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    expect((await cli(["restore", dir.join("b.db")], dir.path)).code).toBe(0);
    const again = await cli(["migrate"], dir.path);
    expect(again.code).toBe(0);
    expect(again.io.stdout[0]).toContain("applied 0 migrations");
    const database = await openDatabase(`file:${dir.join("data/bot.db")}`);
    try {
      expect((await applyMigrations(database)).applied).toBe(0);
    } finally {
      database.close();
    }
  });

  test("with no database yet (the data folder exists)", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    const other = root.sub(`site${++n}`);
    other.sub("data");
    other.write("messenger-endpoint.toml", settingsToml({ storageUrl: "file:data/bot.db" }));
    const { code, io } = await cli(["restore", dir.join("b.db")], other.path);
    expect(io.stderr).toEqual([]);
    expect(code).toBe(0);
    expect(io.stdout[0]).toContain("there was no previous database");
    expect(await keysIn(other.join("data/bot.db"))).toEqual(["alpha"]);
    expect(existsSync(dbFile)).toBe(true);
  });

  test("on a fresh machine, where the database folder does not exist yet", async () => {
    const { dir } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    const other = root.sub(`site${++n}`);
    other.write("messenger-endpoint.toml", settingsToml({ storageUrl: "file:data/bot.db" }));
    const { code } = await cli(["restore", dir.join("b.db")], other.path);
    expect(code).toBe(0);
    expect(await keysIn(other.join("data/bot.db"))).toEqual(["alpha"]);
  });

  test("fails with exit 2 while instances of a cluster run on the database (they hold no lock: their member rows say so); nothing changes", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    await addKeys(dbFile, ["beta"]);
    const database = await openDatabase(`file:${dbFile}`);
    await database.client.execute({
      sql: "INSERT INTO cluster_members (instance_id, started_at, expires_at, about) VALUES ('vm-1:4242', ?, ?, '{}')",
      args: [Date.now(), Date.now() + 15_000],
    });
    database.close();
    const { code, io } = await cli(["restore", dir.join("b.db")], dir.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain("instances are running on");
    expect(io.stderr.join("\n")).toContain("vm-1:4242");
    expect(await keysIn(dbFile)).toEqual(["alpha", "beta"]);
    expect(safetyCopies(dbFile, dir.join("data"))).toEqual([]);
  });

  test("fails with exit 2 while a server in this process holds the lock; nothing changes", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    await addKeys(dbFile, ["beta"]);
    const lock = await acquireInstanceLock(dbFile, "test server");
    try {
      const { code, io } = await cli(["restore", dir.join("b.db")], dir.path);
      expect(code).toBe(2);
      expect(io.stderr.join("\n")).toContain("in use by another messenger-endpoint process");
    } finally {
      lock.release();
    }
    expect(await keysIn(dbFile)).toEqual(["alpha", "beta"]);
    expect(safetyCopies(dbFile, dir.join("data"))).toEqual([]);
  });

  test("fails with exit 2 while another process holds the lock, and works once it is gone", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    await addKeys(dbFile, ["beta"]);
    const holder = await holdInstanceLock(dir, dbFile);
    try {
      const { code, io } = await cli(["restore", dir.join("b.db")], dir.path);
      expect(code).toBe(2);
      expect(io.stderr).toHaveLength(1);
      expect(io.stderr[0]).toContain("in use by another messenger-endpoint process");
      expect(await keysIn(dbFile)).toEqual(["alpha", "beta"]);
    } finally {
      await holder.stop();
    }
    const { code } = await cli(["restore", dir.join("b.db")], dir.path);
    expect(code).toBe(0);
    expect(await keysIn(dbFile)).toEqual(["alpha"]);
  });

  test("refuses a file that is not a database: exit 2, nothing changes", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    dir.write("garbage.db", "this is not SQLite at all, just some text that is long enough ".repeat(100));
    const { code, io } = await cli(["restore", dir.join("garbage.db")], dir.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain("garbage.db");
    expect(await keysIn(dbFile)).toEqual(["alpha"]);
    expect(safetyCopies(dbFile, dir.join("data"))).toEqual([]);
  });

  test("refuses a SQLite file that is not a messenger-endpoint database", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    const foreign = dir.join("foreign.db");
    const client = createClient({ url: `file:${foreign}` });
    await client.execute("CREATE TABLE t (x)");
    client.close();
    const { code, io } = await cli(["restore", dir.join("foreign.db")], dir.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain("not a messenger-endpoint one");
    expect(await keysIn(dbFile)).toEqual(["alpha"]);
  });

  test("a backup file that does not exist: exit 2", async () => {
    const { dir } = await site();
    const { code, io } = await cli(["restore", dir.join("missing.db")], dir.path);
    expect(code).toBe(2);
    expect(io.stderr.join("\n")).toContain("does not exist");
  });
});

describe("file modes: everything that holds user data is private", () => {
  const mode = (path: string) => statSync(path).mode & 0o777;

  test("the backup is 0600 and keeps the database's mark", async () => {
    const { dir } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    expect(mode(dir.join("b.db"))).toBe(0o600);
    const client = createClient({ url: `file:${dir.join("b.db")}` });
    try {
      expect((await client.execute("PRAGMA application_id")).rows[0]?.[0]).toBe(APPLICATION_ID);
    } finally {
      client.close();
    }
  });

  test("restore on a fresh machine: the data folder it creates is 0700, the restored file 0600 whatever the backup's mode", async () => {
    const { dir } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    chmodSync(dir.join("b.db"), 0o644); // a backup made readable, as a copy elsewhere may be

    const other = root.sub(`site${++n}`);
    other.write("messenger-endpoint.toml", settingsToml({ storageUrl: "file:data/bot.db" }));
    expect((await cli(["restore", dir.join("b.db")], other.path)).code).toBe(0);
    expect(mode(other.join("data"))).toBe(0o700);
    expect(mode(other.join("data/bot.db"))).toBe(0o600);
  });

  test("restore over a database readable by others: the restored file and the safety copy are 0600", async () => {
    const { dir, dbFile } = await site(["alpha"]);
    expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
    chmodSync(dbFile, 0o644); // a database from before files were created private
    const { code, io } = await cli(["restore", dir.join("b.db")], dir.path);
    expect(io.stderr).toEqual([]);
    expect(code).toBe(0);
    expect(mode(dbFile)).toBe(0o600);
    const kept = readdirSync(dir.join("data")).filter((f) => f.includes(".before-restore-"));
    expect(kept).toHaveLength(1);
    expect(mode(dir.join("data", kept[0]!))).toBe(0o600);
  });
});

test("restore refuses a backup of a newer version with the message serve would give; nothing changes", async () => {
  const { dir, dbFile } = await site(["alpha"]);
  expect((await cli(["backup", dir.join("b.db")], dir.path)).code).toBe(0);
  const newest = knownMigrations().at(-1)!.when;
  const client = createClient({ url: `file:${dir.join("b.db")}` });
  await client.executeMultiple(
    `INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('${"f".repeat(64)}', ${newest + 1000});
     UPDATE meta SET value = '0.3.0' WHERE key = '${APP_VERSION_KEY}';`,
  );
  client.close();
  await addKeys(dbFile, ["beta"]);

  const { code, io } = await cli(["restore", dir.join("b.db")], dir.path);
  expect(code).toBe(2);
  expect(io.stderr).toEqual([
    `messenger-endpoint: the backup ${dir.join("b.db")} has schema ${knownMigrations().length + 1} (written by messenger-endpoint 0.3.0); ` +
      `this binary ${VERSION} knows schema ${knownMigrations().length}: run the newer binary, or restore a backup taken with ${VERSION}`,
  ]);
  expect(await keysIn(dbFile)).toEqual(["alpha", "beta"]);
  expect(readdirSync(dir.join("data")).filter((f) => f.includes(".before-restore-") || f.endsWith(".restoring"))).toEqual([]);
});
