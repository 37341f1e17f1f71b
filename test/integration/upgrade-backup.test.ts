/**
 * An upgrade: a database of an older schema (the migrations of this binary but the last) is
 * migrated by this binary. With `storage.backup_before_migrate` (default on) a checked backup is
 * written next to it first (db/migrate.ts); if that fails, nothing is migrated.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@libsql/client";
import { migrate } from "drizzle-orm/libsql/migrator";
import { openDatabase } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { checkDatabaseFile } from "../../src/db/backup.ts";
import { knownMigrations } from "../../src/db/identity.ts";
import { VERSION } from "../../src/version.ts";
import { cli, REPO, settingsToml, tempDir } from "../helpers/index.ts";
import { olderMigrations } from "../helpers/migrations.ts";
import { start } from "../smoke/binary-helpers.ts";

const root = tempDir("upgrade");
afterAll(() => root.remove());
let n = 0;

/** The migrations folder of a binary one schema older than this one. */
const oneOlder = () => olderMigrations(root.join("older-migrations"), knownMigrations().length - 1);

/** A site whose data/bot.db has every migration but the last, and a row of data. */
async function oldSite(extra = "") {
  const dir = root.sub(`site${++n}`);
  dir.write("messenger-endpoint.toml", settingsToml({ storageUrl: "file:data/bot.db", extra }));
  const dbFile = dir.join("data/bot.db");
  const database = await openDatabase(`file:${dbFile}`);
  try {
    await migrate(database.db, { migrationsFolder: oneOlder() });
    await database.client.execute("INSERT INTO meta (key, value, updated_at) VALUES ('kept', 'from the old version', 1)");
    await database.client.execute("INSERT INTO meta (key, value, updated_at) VALUES ('app_version', '0.0.1-old', 1)");
  } finally {
    await database.checkpoint();
    database.close();
  }
  return { dir, dbFile };
}

function backupsOf(dbFile: string): string[] {
  const name = dbFile.split("/").pop()!;
  return readdirSync(join(dbFile, "..")).filter((f) => f.startsWith(`${name}.before-`));
}

async function migrationsIn(file: string): Promise<number> {
  const client = createClient({ url: `file:${file}` });
  try {
    return Number((await client.execute("SELECT count(*) FROM __drizzle_migrations")).rows[0]![0]);
  } finally {
    client.close();
  }
}

describe("backup before migrate", () => {
  test("migrate on an older database writes a checked 0600 backup of the old schema first, then migrates", async () => {
    const known = knownMigrations().length;
    const { dir, dbFile } = await oldSite();
    const { code, io } = await cli(["migrate"], dir.path);
    expect(io.stderr).toEqual([]);
    expect(code).toBe(0);
    const backups = backupsOf(dbFile);
    expect(backups).toHaveLength(1);
    expect(backups[0]).toStartWith(`bot.db.before-${VERSION}-`);
    const backup = join(dir.join("data"), backups[0]!);
    expect(io.stdout[0]).toBe(`backup written to ${backup} before migrating`);
    expect(io.stdout[1]).toContain("applied 1 migration");
    expect(statSync(backup).mode & 0o777).toBe(0o600);
    const check = await checkDatabaseFile(backup); // integrity ok, ours
    expect(check.migrations).toBe(known - 1);
    const client = createClient({ url: `file:${backup}` });
    try {
      expect(String((await client.execute("SELECT value FROM meta WHERE key = 'kept'")).rows[0]![0])).toBe("from the old version");
    } finally {
      client.close();
    }
    expect(await migrationsIn(dbFile)).toBe(known);
    // Nothing pending any more: no second backup.
    expect((await cli(["migrate"], dir.path)).code).toBe(0);
    expect(backupsOf(dbFile)).toHaveLength(1);
  });

  test("storage.backup_before_migrate = false: migrated without a backup", async () => {
    const { dir, dbFile } = await oldSite();
    const settings = readFileSync(dir.join("messenger-endpoint.toml"), "utf8").replace(
      'url = "file:data/bot.db"',
      'url = "file:data/bot.db"\nbackup_before_migrate = false',
    );
    dir.write("messenger-endpoint.toml", settings);
    const { code, io } = await cli(["migrate"], dir.path);
    expect(code).toBe(0);
    expect(io.stdout[0]).toContain("applied 1 migration");
    expect(backupsOf(dbFile)).toEqual([]);
    expect(await migrationsIn(dbFile)).toBe(knownMigrations().length);
  });

  test("a new database gets no backup", async () => {
    const dir = root.sub(`site${++n}`);
    dir.write("messenger-endpoint.toml", settingsToml({ storageUrl: "file:data/bot.db" }));
    expect((await cli(["migrate"], dir.path)).code).toBe(0);
    expect(backupsOf(dir.join("data/bot.db"))).toEqual([]);
  });

  test("the backup fails: refused with the reason and how to skip it, nothing migrated", async () => {
    const { dbFile } = await oldSite();
    const now = new Date("2026-01-02T03:04:05.678Z");
    const target = `${dbFile}.before-${VERSION}-2026-01-02T03-04-05-678Z`;
    writeFileSync(target, "in the way"); // backup never overwrites a file (db/backup.ts)
    const database = await openDatabase(`file:${dbFile}`);
    try {
      const failure = await applyMigrations(database, { now }).then(
        () => null,
        (error: Error) => error,
      );
      expect(failure?.message).toBe(
        `cannot write the backup ${target} before applying 1 migration to ${dbFile} (schema ${knownMigrations().length - 1} → ${knownMigrations().length}): ` +
          `${target} already exists; backup never overwrites a file: choose a new name; nothing was migrated. ` +
          "Free space or make the folder writable and start again, or set storage.backup_before_migrate = false to migrate without this backup",
      );
    } finally {
      database.close();
    }
    expect(await migrationsIn(dbFile)).toBe(knownMigrations().length - 1);
    expect(readFileSync(target, "utf8")).toBe("in the way");
  });

  test("serve on an older database: the backup first, then the migration, both in the log line", async () => {
    const { dir, dbFile } = await oldSite();
    const server = start(process.execPath, [join(REPO, "src", "main.ts"), "serve", "--port", "0", "--host", "127.0.0.1"], { cwd: dir.path });
    try {
      const migrated = await server.waitFor((l) => l.msg === "database migrated", 30_000);
      const backups = backupsOf(dbFile);
      expect(backups).toHaveLength(1);
      expect(migrated).toMatchObject({ applied: 1, total: knownMigrations().length, backup: join(dir.join("data"), backups[0]!) });
      expect((await checkDatabaseFile(migrated.backup as string)).migrations).toBe(knownMigrations().length - 1);
      await server.waitFor((l) => l.msg === "listening", 30_000);
    } finally {
      server.proc.kill("SIGTERM");
      await server.exited;
    }
  });
});
