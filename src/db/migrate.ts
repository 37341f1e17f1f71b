/**
 * Migrations are the SQL files drizzle-kit generated into migrations/. In the compiled binary the
 * folder is embedded (`--asset ./migrations`) and found next to the bundle.
 */
import { join } from "node:path";
import { migrate } from "drizzle-orm/libsql/migrator";
import { sql } from "drizzle-orm";
import type { Database } from "./client.ts";

export function migrationsFolder(): string {
  return Bun.isStandaloneExecutable ? join(import.meta.dir, "migrations") : join(import.meta.dir, "..", "..", "migrations");
}

export interface MigrationResult {
  applied: number;
  total: number;
}

export async function applyMigrations(database: Database): Promise<MigrationResult> {
  const before = await appliedCount(database);
  await migrate(database.db, { migrationsFolder: migrationsFolder() });
  const after = await appliedCount(database);
  return { applied: after - before, total: after };
}

async function appliedCount(database: Database): Promise<number> {
  try {
    const rows = await database.db.all<{ n: number }>(sql`SELECT count(*) AS n FROM __drizzle_migrations`);
    return Number(rows[0]?.n ?? 0);
  } catch {
    return 0; // fresh database: the bookkeeping table does not exist yet
  }
}
