/**
 * Online backup and offline restore of the SQLite file.
 *
 * Backup uses `VACUUM INTO`, which reads one consistent snapshot while the server keeps writing
 * (WAL lets readers and the writer run side by side), writes a compact copy next to the target,
 * checks it with `PRAGMA integrity_check`, and only then gives it the requested name. An existing
 * file is never overwritten.
 */
import { closeSync, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { createClient } from "@libsql/client";
import { acquireInstanceLock } from "./lock.ts";

export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackupError";
  }
}

export interface BackupCheck {
  file: string;
  bytes: number;
  migrations: number;
  tables: number;
}

export async function backupDatabase(databaseFile: string, outFile: string): Promise<BackupCheck> {
  const out = resolve(outFile);
  if (existsSync(out)) throw new BackupError(`${out} already exists; backup never overwrites a file: choose a new name`);
  if (!existsSync(databaseFile)) throw new BackupError(`there is no database at ${databaseFile} to back up: check storage.url`);
  if (!existsSync(dirname(out))) throw new BackupError(`the folder ${dirname(out)} does not exist`);

  const partial = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(partial, { force: true });
  const source = createClient({ url: `file:${databaseFile}`, concurrency: 1, ...({ timeout: 10_000 } as object) });
  try {
    await source.execute({ sql: "VACUUM INTO ?", args: [partial] });
  } catch (error) {
    rmSync(partial, { force: true });
    throw new BackupError(`copying ${databaseFile} failed: ${(error as Error).message}`);
  } finally {
    source.close();
  }
  try {
    const check = await checkDatabaseFile(partial);
    linkSync(partial, out); // fails if `out` appeared meanwhile: still no overwrite
    return { ...check, file: out };
  } finally {
    rmSync(partial, { force: true });
  }
}

/** Opens a database file and proves it is intact and ours. */
export async function checkDatabaseFile(file: string): Promise<BackupCheck> {
  if (!existsSync(file)) throw new BackupError(`${file} does not exist`);
  const client = createClient({ url: `file:${file}`, concurrency: 1 });
  try {
    let result: string;
    try {
      const rows = await client.execute("PRAGMA integrity_check");
      result = rows.rows.map((r) => String(r[0])).join("; ");
    } catch (error) {
      throw new BackupError(`${file} is not a readable SQLite database: ${(error as Error).message}`);
    }
    if (result !== "ok") throw new BackupError(`${file} failed the integrity check: ${result.slice(0, 500)}`);
    let migrations: number;
    try {
      const rows = await client.execute("SELECT count(*) FROM __drizzle_migrations");
      migrations = Number(rows.rows[0]?.[0] ?? 0);
    } catch {
      throw new BackupError(`${file} is a SQLite database, but not a messenger-endpoint one (no migration history)`);
    }
    const tables = await client.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table'");
    return { file, bytes: statSync(file).size, migrations, tables: Number(tables.rows[0]?.[0] ?? 0) };
  } finally {
    client.close();
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface RestoreResult {
  restored: BackupCheck;
  /** Where the previous database was kept, or null when there was none. */
  safetyCopy: string | null;
}

/**
 * Puts a checked backup in place of the database. The server must be stopped: restore takes the
 * instance lock and fails if a server holds it. The previous database is renamed, never deleted.
 */
export async function restoreDatabase(databaseFile: string, backupFile: string, now = new Date()): Promise<RestoreResult> {
  const backup = resolve(backupFile);
  const restored = await checkDatabaseFile(backup);
  mkdirSync(dirname(databaseFile), { recursive: true }); // a fresh machine has no data folder yet
  const lock = await acquireInstanceLock(databaseFile, "restore");
  try {
    // First the copy, complete and on disk: if it fails (disk full), nothing has moved yet.
    const incoming = `${databaseFile}.restoring`;
    copyFileSync(backup, incoming);
    fsyncFile(incoming);
    let safetyCopy: string | null = null;
    if (existsSync(databaseFile)) {
      // Fold the WAL into the main file so the safety copy is one self-contained file.
      const current = createClient({ url: `file:${databaseFile}`, concurrency: 1 });
      try {
        const result = await current.execute("PRAGMA wal_checkpoint(TRUNCATE)");
        if (Number(result.rows[0]?.[0]) !== 0) {
          rmSync(incoming, { force: true });
          throw new BackupError(`the current database ${databaseFile} is busy (its WAL could not be folded in); stop every process using it and retry`);
        }
      } finally {
        current.close();
      }
      safetyCopy = `${databaseFile}.before-restore-${now.toISOString().replace(/[:.]/g, "-")}`;
      renameSync(databaseFile, safetyCopy);
    }
    // A WAL or shared-memory file left from the old database must never be replayed into the new one.
    rmSync(`${databaseFile}-wal`, { force: true });
    rmSync(`${databaseFile}-shm`, { force: true });
    renameSync(incoming, databaseFile);
    fsyncFile(dirname(databaseFile));
    return { restored: { ...restored, file: databaseFile }, safetyCopy };
  } finally {
    lock.release();
  }
}
