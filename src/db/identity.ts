/**
 * Is this database ours, and can this binary use it? Asked before anything writes to it.
 *
 * Ours: SQLite's `PRAGMA application_id` (the header field meant for this) holds APPLICATION_ID.
 * Files made before the mark existed are recognised by their drizzle migration history (a
 * migration whose hash is one of ours) and marked when opened.
 *
 * Schema version: the number of migrations applied to a database (the rows of
 * `__drizzle_migrations`). This binary's schema is the number of migrations in the
 * migrations/meta/_journal.json it carries (embedded in the executable, see migrate.ts). The
 * numbers are only compared once every applied migration is one of the binary's: same
 * `created_at` (the journal's `when`) and same hash (SHA-256 of the SQL file). drizzle's migrator
 * looks only at the newest `created_at` and applies the journal entries after it, so without this
 * check a database migrated by a newer binary would be used as is (and fail later on a renamed
 * column), and one missing an older migration would never get it.
 *
 * The meta row APP_VERSION_KEY names the version that last migrated or started on the database,
 * so that a refusal can say which binary to run.
 */
import { column } from "./rows.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "@libsql/client";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { VERSION } from "../version.ts";

/** "MsEp": the `application_id` of a messenger-endpoint database. */
export const APPLICATION_ID = 0x4d734570;
/** The `meta` key holding the version of messenger-endpoint that last migrated or started on it. */
export const APP_VERSION_KEY = "app_version";

export function migrationsFolder(): string {
  return Bun.isStandaloneExecutable ? join(import.meta.dir, "migrations") : join(import.meta.dir, "..", "..", "migrations");
}

export interface KnownMigration {
  tag: string;
  /** The journal's `when`, stored by drizzle as `created_at`. */
  when: number;
  hash: string;
}

const knownCache = new Map<string, readonly KnownMigration[]>();

/** The migrations this binary carries, in order; the hashes are drizzle's own (readMigrationFiles). */
export function knownMigrations(folder = migrationsFolder()): readonly KnownMigration[] {
  let known = knownCache.get(folder);
  if (!known) {
    const journal = JSON.parse(readFileSync(join(folder, "meta", "_journal.json"), "utf8")) as { entries: { tag: string; when: number }[] };
    const files = readMigrationFiles({ migrationsFolder: folder });
    known = journal.entries.map((entry, i) => ({ tag: entry.tag, when: entry.when, hash: files[i]!.hash }));
    knownCache.set(folder, known);
  }
  return known;
}

export interface AppliedMigration {
  hash: string;
  createdAt: number;
}

/** What a database holds, read without writing anything. */
export interface Inspection {
  /** null when not asked (a libSQL server: the header field is a local file's). */
  applicationId: number | null;
  /** Its tables, without SQLite's own and Litestream's (LITESTREAM_TABLES). */
  tables: string[];
  /** The rows of `__drizzle_migrations` by `created_at`; empty when there is no such table. */
  applied: AppliedMigration[];
  /** The version recorded under APP_VERSION_KEY, or null. */
  writtenBy: string | null;
}

/**
 * Tables Litestream adds to a database it replicates (`litestream replicate` creates them when it
 * first sees the file, which may be before our first start). They say nothing about whose it is.
 */
export const LITESTREAM_TABLES: readonly string[] = ["_litestream_seq", "_litestream_lock"];

export async function inspectDatabase(client: Client, { applicationId }: { applicationId: boolean }): Promise<Inspection> {
  const tables = (await client.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")).rows
    .map((r) => String(column(r, "name")))
    .filter((name) => !LITESTREAM_TABLES.includes(name));
  const id = applicationId ? Number(column((await client.execute("PRAGMA application_id")).rows[0], "application_id") ?? 0) : null;
  let applied: AppliedMigration[] = [];
  if (tables.includes("__drizzle_migrations")) {
    const rows = await client.execute("SELECT hash, created_at FROM __drizzle_migrations ORDER BY created_at, id");
    applied = rows.rows.map((r) => ({ hash: String(column(r, "hash")), createdAt: Number(column(r, "created_at")) }));
  }
  let writtenBy: string | null = null;
  if (tables.includes("meta")) {
    try {
      const rows = await client.execute({ sql: "SELECT value FROM meta WHERE key = ?", args: [APP_VERSION_KEY] });
      writtenBy = rows.rows.length > 0 ? String(column(rows.rows[0], "value")) : null;
    } catch {
      // Another program's `meta` table, shaped differently: no version to name.
    }
  }
  return { applicationId: id, tables, applied, writtenBy };
}

/**
 * - new: nothing in it yet (an empty file, or only the empty migration table an interrupted first
 *   migration of an older version left behind);
 * - ours: marked with APPLICATION_ID;
 * - unmarked: ours from before the mark (it has our migration history), to be marked;
 * - foreign: another program's.
 */
export type Identity = "new" | "ours" | "unmarked" | "foreign";

export function identify(inspection: Inspection, known = knownMigrations()): Identity {
  if (inspection.applicationId === APPLICATION_ID) return "ours";
  if (inspection.applicationId !== null && inspection.applicationId !== 0) return "foreign";
  if (inspection.applied.length === 0 && inspection.tables.every((t) => t === "__drizzle_migrations")) return "new";
  const ours = new Set(known.map((m) => m.hash));
  return inspection.applied.some((m) => ours.has(m.hash)) ? "unmarked" : "foreign";
}

/** Why a database that is not ours is refused, and what to do. */
export function foreignMessage(subject: string, inspection: Inspection, { adoptable }: { adoptable: boolean }): string {
  const shown = inspection.tables.slice(0, 5).join(", ") + (inspection.tables.length > 5 ? `, … (${inspection.tables.length} tables)` : "");
  if (inspection.applicationId !== null && inspection.applicationId !== 0 && inspection.applicationId !== APPLICATION_ID) {
    return (
      `${subject} belongs to another program (its SQLite application_id is 0x${(inspection.applicationId >>> 0).toString(16)}` +
      `${shown ? `; tables: ${shown}` : ""}): point storage.url at a file of messenger-endpoint's own`
    );
  }
  return (
    `${subject} is another program's SQLite database (tables: ${shown}): point storage.url at a new database` +
    (adoptable ? ", or pass --adopt to add messenger-endpoint's tables to this one" : "")
  );
}

export type SchemaState =
  | { kind: "ok"; applied: number; known: number; pending: number }
  | { kind: "newer"; applied: number; known: number }
  | { kind: "diverged"; applied: number; known: number; detail: string };

export function compareSchema(applied: readonly AppliedMigration[], known = knownMigrations()): SchemaState {
  const byWhen = new Map(known.map((m) => [m.when, m]));
  const newestKnown = known.length > 0 ? known[known.length - 1]!.when : -Infinity;
  let newer = 0;
  for (const row of applied) {
    const mine = byWhen.get(row.createdAt);
    if (mine && mine.hash !== row.hash) {
      return { kind: "diverged", applied: applied.length, known: known.length, detail: `its migration ${mine.tag} differs from this binary's` };
    }
    if (mine) continue;
    if (row.createdAt > newestKnown) newer++;
    else
      return {
        kind: "diverged",
        applied: applied.length,
        known: known.length,
        detail: `it has a migration of ${stamp(row.createdAt)} that this binary does not know`,
      };
  }
  // drizzle applies only what is newer than the newest applied migration: an older one missing
  // would never be applied.
  const newest = applied.reduce((max, row) => Math.max(max, row.createdAt), -Infinity);
  const done = new Set(applied.map((row) => row.createdAt));
  const skipped = known.find((m) => m.when < newest && !done.has(m.when));
  if (skipped)
    return {
      kind: "diverged",
      applied: applied.length,
      known: known.length,
      detail: `it lacks this binary's migration ${skipped.tag}, which is older than its newest`,
    };
  if (newer > 0) return { kind: "newer", applied: applied.length, known: known.length };
  return { kind: "ok", applied: applied.length, known: known.length, pending: known.filter((m) => !done.has(m.when)).length };
}

/** The refusal for a database this binary cannot use, or null when it can. */
export function schemaProblem(subject: string, inspection: Inspection, known = knownMigrations()): string | null {
  const state = compareSchema(inspection.applied, known);
  if (state.kind === "ok") return null;
  const by = inspection.writtenBy ? `written by messenger-endpoint ${inspection.writtenBy}` : "written by an unknown version";
  const fix = `run the newer binary, or restore a backup taken with ${VERSION}`;
  if (state.kind === "newer") {
    return `${subject} has schema ${state.applied} (${by}); this binary ${VERSION} knows schema ${state.known}: ${fix}`;
  }
  return (
    `${subject} has schema ${state.applied} (${by}), which is not this binary's: ${state.detail}; ` +
    `run the binary that wrote it, or restore a backup taken with ${VERSION}`
  );
}

function stamp(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.valueOf())
    ? String(ms)
    : date
        .toISOString()
        .replace("T", " ")
        .replace(/:\d\d\.\d+Z$/, " UTC");
}
