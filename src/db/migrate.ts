/**
 * Migrations are the SQL files drizzle-kit generated into migrations/. In the compiled binary the
 * folder is embedded (`--asset ./migrations`) and found next to the bundle (identity.ts).
 */
import { migrate } from "drizzle-orm/libsql/migrator";
import { sql } from "drizzle-orm";
import { VERSION } from "../version.ts";
import { DatabaseError, type Database } from "./client.ts";
import { APP_VERSION_KEY, compareSchema, inspectDatabase, migrationsFolder, schemaProblem } from "./identity.ts";
import { backupDatabase } from "./backup.ts";
import { isStorageError } from "./health.ts";
import { column } from "./rows.ts";

export { migrationsFolder };

export interface MigrationResult {
  applied: number;
  total: number;
  /** The checked copy written before migrating (`storage.backup_before_migrate`), or null. */
  backup: string | null;
}

export interface MigrateOptions {
  /**
   * Before applying migrations to a local database that already holds data, write a checked
   * backup next to it (`<db>.before-<version>-<time>`) and refuse to migrate if that fails.
   * Default on; `storage.backup_before_migrate` (config/schema.ts).
   */
  backupBefore?: boolean;
  now?: Date;
}

export async function applyMigrations(database: Database, options: MigrateOptions = {}): Promise<MigrationResult> {
  // openDatabase checked the schema already; checked again here, where it matters, in case a
  // newer binary migrated the file in between (`migrate` does not take the instance lock).
  const inspection = await inspectDatabase(database.client, { applicationId: false });
  const problem = schemaProblem(`the database ${database.file ?? "at storage.url"}`, inspection);
  if (problem) throw new DatabaseError(problem);
  const before = inspection.applied.length;
  const backup = await backupBeforeMigrating(database, inspection, options);
  await migrate(database.db, { migrationsFolder: migrationsFolder() });
  const after = await appliedCount(database);
  // Which version last used the file, for the message an older binary gives (identity.ts). Only
  // written when it changes: a restart on a full disk must not fail here, but start with its
  // processing paused until there is space (db/health.ts).
  const recorded = await database.client.execute({ sql: "SELECT value FROM meta WHERE key = ?", args: [APP_VERSION_KEY] });
  if (String(column(recorded.rows[0], "value") ?? "") !== VERSION) {
    try {
      await database.client.execute({
        sql: "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        args: [APP_VERSION_KEY, VERSION, Date.now()],
      });
    } catch (error) {
      if (!isStorageError(error)) throw error; // recorded at the next start with space
    }
  }
  return { applied: after - before, total: after, backup };
}

/**
 * Not for a new database (nothing to keep), nor for a libSQL server (no file here: back it up
 * with the server's own tools, docs/operations.md).
 */
async function backupBeforeMigrating(
  database: Database,
  inspection: Awaited<ReturnType<typeof inspectDatabase>>,
  options: MigrateOptions,
): Promise<string | null> {
  if (options.backupBefore === false || !database.file) return null;
  if (inspection.applied.length === 0) return null; // a new database, or another program's being adopted
  const state = compareSchema(inspection.applied);
  if (state.kind !== "ok" || state.pending === 0) return null;
  const stamp = (options.now ?? new Date()).toISOString().replace(/[:.]/g, "-");
  const out = `${database.file}.before-${VERSION}-${stamp}`;
  try {
    return (await backupDatabase(database.file, out)).file;
  } catch (error) {
    throw new DatabaseError(
      `cannot write the backup ${out} before applying ${state.pending} migration${state.pending === 1 ? "" : "s"} to ${database.file} ` +
        `(schema ${state.applied} → ${state.known}): ${(error as Error).message}; nothing was migrated. Free space or make the folder writable ` +
        "and start again, or set storage.backup_before_migrate = false to migrate without this backup",
      { cause: error },
    );
  }
}

async function appliedCount(database: Database): Promise<number> {
  const rows = await database.db.all<{ n: number }>(sql`SELECT count(*) AS n FROM __drizzle_migrations`);
  return Number(rows[0]?.n ?? 0);
}
