/**
 * Reading result rows by column name, typed from the drizzle schema (db/schema.ts). Hand-written
 * SQL stays where it is fast (a feature's store, as named constants); what comes back is read
 * through a reader made from the table, so that every field has the schema's name and type and no
 * row is read by position. A column renamed in the schema changes the reader with it; SQL that
 * still names the old column fails at once ("no such column"), not quietly.
 */
import { getTableColumns, type Table } from "drizzle-orm";
import type { Row } from "@libsql/client";

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
