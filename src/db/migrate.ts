/**
 * Migrations are the SQL files drizzle-kit generated into migrations/. In the compiled binary the
 * folder is embedded (`--asset ./migrations`) and found next to the bundle (identity.ts).
 */
import { migrate } from "drizzle-orm/libsql/migrator";
import { sql } from "drizzle-orm";
import { VERSION } from "../version.ts";
import { DatabaseError, type Database } from "./client.ts";
import { APP_VERSION_KEY, inspectDatabase, migrationsFolder, schemaProblem } from "./identity.ts";
import { isStorageError } from "./health.ts";
import { column } from "./rows.ts";

export { migrationsFolder };

export interface MigrationResult {
  applied: number;
  total: number;
}

export async function applyMigrations(database: Database): Promise<MigrationResult> {
  // openDatabase checked the schema already; checked again here, where it matters, in case a
  // newer binary migrated the file in between (`migrate` does not take the instance lock).
  const inspection = await inspectDatabase(database.client, { applicationId: false });
  const problem = schemaProblem(`the database ${database.file ?? "at storage.url"}`, inspection);
  if (problem) throw new DatabaseError(problem);
  const before = inspection.applied.length;
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
  return { applied: after - before, total: after };
}

async function appliedCount(database: Database): Promise<number> {
  const rows = await database.db.all<{ n: number }>(sql`SELECT count(*) AS n FROM __drizzle_migrations`);
  return Number(rows[0]?.n ?? 0);
}
