/**
 * The database schema. Every piece of runtime state lives in one SQLite file; migrations are
 * generated from this file by drizzle-kit (`npm run db:generate`) into migrations/.
 */
import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * Webhook events, stored before Facebook gets its 200. One row per `messaging[]`/`standby[]`
 * item of a known Page. `dedup_key` makes a redelivered event a no-op: it is unique per endpoint.
 * Rows are drained per (endpoint, page, user) in `timestamp` order, then `id` order.
 */
export const inbox = sqliteTable(
  "inbox",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    /** The PSID the event is about (the sender, or the recipient of an echo); '' for Page-level events. */
    userId: text("user_id").notNull(),
    /** message | postback | referral | echo | delivery | read | reaction | ... (see webhook/events.ts) */
    kind: text("kind").notNull(),
    /** 1 when the event came in `standby[]` (another app owns the thread). */
    standby: integer("standby", { mode: "boolean" }).notNull().default(false),
    dedupKey: text("dedup_key").notNull(),
    /** Facebook's event timestamp (ms since epoch). */
    timestamp: integer("timestamp").notNull(),
    /** When we stored it (ms since epoch). */
    receivedAt: integer("received_at").notNull(),
    /** The raw messaging item, as JSON. */
    event: text("event").notNull(),
    /** pending → done (or failed after retries). */
    status: text("status").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    processedAt: integer("processed_at"),
  },
  (t) => [
    uniqueIndex("inbox_dedup").on(t.endpointId, t.dedupKey),
    // Only pending rows: the per-user drain and the restart scan read it, and a row leaves it when
    // processed, so it stays small however long the inbox history is.
    index("inbox_pending_lane")
      .on(t.endpointId, t.pageId, t.userId, t.timestamp, t.id)
      .where(sql`status = 'pending'`),
  ],
);

/** Small key/value facts about this database (schema stamps, probes, instance info). */
export const meta = sqliteTable("meta", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
  updatedAt: integer("updated_at").notNull().default(sql`(unixepoch() * 1000)`),
});
