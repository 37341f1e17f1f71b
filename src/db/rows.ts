/**
 * Reading result rows by column name, typed from the drizzle schema (db/schema.ts). Hand-written
 * SQL stays where it is fast (a feature's store, as named constants); what comes back is read
 * through a reader made from the table, so that every field has the schema's name and type and no
 * row is read by position. A column renamed in the schema changes the reader with it; SQL that
 * still names the old column fails at once ("no such column"), not quietly.
 */
import { getTableColumns, type Table } from "drizzle-orm";
import type { ResultSet, Row } from "@libsql/client";

type Selected<T extends Table> = T["$inferSelect"];

/**
 * A reader for rows of `table` that carry (at least) the columns of `keys` (the schema's field
 * names, e.g. `endpointId` for `endpoint_id`): one object per row with those fields, decoded as
 * drizzle decodes them (booleans, numbers). Columns missing from the row are an error: the SQL
 * and the reader disagree.
 */
export function rowReader<T extends Table, K extends keyof Selected<T> & string>(table: T, keys: readonly K[]): (row: Row) => Pick<Selected<T>, K> {
  const columns = getTableColumns(table) as Record<string, { name: string; mapFromDriverValue(value: unknown): unknown }>;
  const fields = keys.map((key) => {
    const column = columns[key];
    if (!column) throw new Error(`no column ${key} in table`);
    return { key, name: column.name, column };
  });
  return (row) => {
    const out: Record<string, unknown> = {};
    for (const { key, name, column } of fields) {
      if (!(name in row)) throw new Error(`the result has no column ${name}: the SQL and its reader disagree`);
      const value = (row as unknown as Record<string, unknown>)[name];
      out[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
    }
    return out as Pick<Selected<T>, K>;
  };
}

/** The SQL names of the fields, comma-separated, for a SELECT that a `rowReader` of the same keys reads. */
export function columnList<T extends Table>(table: T, keys: readonly (keyof Selected<T> & string)[]): string {
  const columns = getTableColumns(table) as Record<string, { name: string }>;
  return keys.map((key) => columns[key]!.name).join(", ");
}

/**
 * One named column of a row that no table of the schema describes (a PRAGMA's answer, a count, a
 * table of drizzle's own): `undefined` when there is no such row or column.
 */
export function column(row: Row | undefined, name: string): unknown {
  return row === undefined ? undefined : (row as unknown as Record<string, unknown>)[name];
}

/** Statements of up to this many rows are built once and kept (see `valuesSql`). */
const KEPT_ROW_COUNTS = 64;

/**
 * `head` + one `(?, …)` tuple of `width` parameters per row + `tail`, for a multi-row INSERT. The
 * text for a given number of rows is built once: the local client finds its prepared statement by
 * the text, and a string built anew for each call is hashed anew for each lookup.
 */
export function valuesSql(head: string, width: number, tail = ""): (rows: number) => string {
  const tuple = `(${Array.from({ length: width }, () => "?").join(", ")})`;
  const build = (rows: number) => head + Array.from({ length: rows }, () => tuple).join(", ") + tail;
  const kept: string[] = [];
  return (rows) => {
    if (rows > KEPT_ROW_COUNTS) return build(rows);
    return (kept[rows] ??= build(rows));
  };
}

/**
 * The id of the first of `count` rows that one INSERT … VALUES (without RETURNING) wrote into a
 * table whose key is an INTEGER PRIMARY KEY it did not set: SQLite gives the rows of one statement
 * increasing ids in the order of their VALUES, each one more than the largest before it
 * (AUTOINCREMENT: more than any ever used), so they are the `count` ids ending at the last one the
 * statement reports. Reading them so costs the driver one call less than RETURNING. Throws when the
 * statement did not write every row (an upsert that skipped one leaves no such run).
 */
export function insertedIds(result: ResultSet, count: number): number {
  if (result.rowsAffected !== count || result.lastInsertRowid === undefined)
    throw new Error(`an INSERT of ${count} rows wrote ${result.rowsAffected}: their ids are unknown`);
  return Number(result.lastInsertRowid) - count + 1;
}
