/**
 * Online backup and offline restore of the SQLite file.
 *
 * Backup uses `VACUUM INTO`, which reads one consistent snapshot while the server keeps writing
 * (WAL lets readers and the writer run side by side), writes a compact copy next to the target,
 * checks it with `PRAGMA integrity_check`, and only then gives it the requested name. An existing
 * file is never overwritten.
 *
 * Every file written here holds transcripts and raw events: each is created 0600 (and the data
 * folder 0700) before anything is written into it.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { createClient } from "@libsql/client";
import { column } from "./rows.ts";
import { acquireInstanceLock } from "./lock.ts";
import { identify, inspectDatabase, schemaProblem } from "./identity.ts";

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
  /** Why this binary cannot use the file (a newer or diverged schema, see identity.ts), or null. */
  schemaProblem: string | null;
}

export async function backupDatabase(databaseFile: string, outFile: string): Promise<BackupCheck> {
  const out = resolve(outFile);
  if (existsSync(out)) throw new BackupError(`${out} already exists; backup never overwrites a file: choose a new name`);
  if (!existsSync(databaseFile)) throw new BackupError(`there is no database at ${databaseFile} to back up: check storage.url`);
  if (!existsSync(dirname(out))) throw new BackupError(`the folder ${dirname(out)} does not exist`);

  const partial = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(partial, { force: true });
  // VACUUM INTO accepts an empty file and keeps its mode; a file it creates itself would be 0644.
  closeSync(openSync(partial, "wx", 0o600));
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
      result = rows.rows.map((r) => String(column(r, "integrity_check"))).join("; ");
    } catch (error) {
      throw new BackupError(`${file} is not a readable SQLite database: ${(error as Error).message}`);
    }
    if (result !== "ok") throw new BackupError(`${file} failed the integrity check: ${result.slice(0, 500)}`);
    const inspection = await inspectDatabase(client, { applicationId: true });
    const identity = identify(inspection);
    if (identity === "foreign" || identity === "new") {
      throw new BackupError(`${file} is a SQLite database, but not a messenger-endpoint one (no migration history of ours)`);
    }
    const tables = await client.execute("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'");
    return {
      file,
      bytes: statSync(file).size,
      migrations: inspection.applied.length,
      tables: Number(column(tables.rows[0], "n") ?? 0),
      schemaProblem: schemaProblem(`the backup ${file}`, inspection),
    };
  } finally {
    client.close();
  }
}

/** Copies `from` to a new file `to`, created 0600 (copyFileSync would give it `from`'s mode), and fsyncs it. */
function copyPrivately(from: string, to: string): void {
  rmSync(to, { force: true }); // left by a restore that failed half-way
  const input = openSync(from, "r");
  try {
    const output = openSync(to, "wx", 0o600);
    try {
      const buffer = Buffer.alloc(1 << 20);
      for (let n: number; (n = readSync(input, buffer, 0, buffer.length, null)) > 0; ) {
        for (let done = 0; done < n; ) done += writeSync(output, buffer, done, n - done);
      }
      fsyncSync(output);
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
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
  // A backup this binary cannot use (made by a newer version) would only be refused at the next
  // start, after the current database was put aside.
  if (restored.schemaProblem) throw new BackupError(restored.schemaProblem);
  mkdirSync(dirname(databaseFile), { recursive: true, mode: 0o700 }); // a fresh machine has no data folder yet
  const lock = await acquireInstanceLock(databaseFile, "restore");
  try {
    // First the copy, complete and on disk: if it fails (disk full), nothing has moved yet.
    const incoming = `${databaseFile}.restoring`;
    copyPrivately(backup, incoming);
    let safetyCopy: string | null = null;
    if (existsSync(databaseFile)) {
      // Fold the WAL into the main file so the safety copy is one self-contained file.
      const current = createClient({ url: `file:${databaseFile}`, concurrency: 1 });
      try {
        // With [cluster] enabled the servers hold no lock on the file: their leases say they run.
        const running = await current
          .execute({ sql: "SELECT instance_id FROM cluster_members WHERE expires_at > ?", args: [now.getTime()] })
          .then((r) => r.rows.map((row) => String(column(row, "instance_id"))))
          .catch(() => [] as string[]); // a database from before scale-out has no such table
        if (running.length > 0) {
          rmSync(incoming, { force: true });
          throw new BackupError(`instances are running on ${databaseFile} (${running.join(", ")}); stop every instance of the cluster and retry`);
        }
        const result = await current.execute("PRAGMA wal_checkpoint(TRUNCATE)");
        // `busy` is 1 when a reader or writer kept the checkpoint from finishing.
        if (Number(column(result.rows[0], "busy")) !== 0) {
          rmSync(incoming, { force: true });
          throw new BackupError(`the current database ${databaseFile} is busy (its WAL could not be folded in); stop every process using it and retry`);
        }
      } finally {
        current.close();
      }
      safetyCopy = `${databaseFile}.before-restore-${now.toISOString().replace(/[:.]/g, "-")}`;
      renameSync(databaseFile, safetyCopy);
      chmodSync(safetyCopy, 0o600); // the database kept its mode; a copy lying aside need not be readable by others
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
