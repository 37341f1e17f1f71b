import type { InStatement, InValue } from "@libsql/client";

/**
 * A drizzle query as a plain statement for the write queue: built with drizzle's type-checked
 * builder, committed together with other statements in one group commit.
 */
export function statement(query: { toSQL(): { sql: string; params: unknown[] } }): InStatement {
  const { sql, params } = query.toSQL();
  return { sql, args: params as InValue[] };
}

/** A nullable number column of a result row. */
export const numberOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** A nullable text column of a result row. */
export const stringOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
