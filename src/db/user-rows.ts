/**
 * The rows a table holds about one person, for tables that carry a person's three columns
 * (`endpoint_id`, `page_id`, `user_id`): the condition that picks them, their deletion, and the
 * Pages a PSID has rows on. Every feature's user-data part (people/user-data.ts) is built on this.
 */
import { and, eq, type SQL } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
import type { InStatement } from "@libsql/client";
import type { UserKey } from "../core/user-key.ts";
import type { Db } from "./client.ts";
import { statement } from "./statement.ts";

type PersonTable = SQLiteTable & { endpointId: SQLiteColumn; pageId: SQLiteColumn; userId: SQLiteColumn };

export interface UserRows {
  /** The condition for the rows of this person on this Page. */
  of(key: UserKey): SQL;
  /** The condition for a PSID's rows on the endpoint (on this Page only, when given). */
  ofPsid(endpointId: string, userId: string, pageId?: string): SQL;
  /** Deletes the rows of these people. */
  erase(keys: readonly UserKey[]): InStatement[];
  /** The Pages the PSID has rows on. */
  pagesOf(endpointId: string, userId: string): Promise<string[]>;
}

export function userRows(db: Db, table: PersonTable): UserRows {
  const ofPsid = (endpointId: string, userId: string, pageId?: string) =>
    // An empty page_id (`?page_id=`) names no Page, as an absent one.
    and(eq(table.endpointId, endpointId), eq(table.userId, userId), pageId ? eq(table.pageId, pageId) : undefined)!;
  return {
    of: (k) => and(eq(table.endpointId, k.endpointId), eq(table.pageId, k.pageId), eq(table.userId, k.userId))!,
    ofPsid,
    erase: (keys) =>
      keys.map((k) => statement(db.delete(table).where(and(eq(table.endpointId, k.endpointId), eq(table.pageId, k.pageId), eq(table.userId, k.userId))))),
    async pagesOf(endpointId, userId) {
      const rows = await db.selectDistinct({ pageId: table.pageId }).from(table).where(ofPsid(endpointId, userId));
      return rows.map((r) => String(r.pageId));
    },
  };
}
