/** The retention purge: batches over large tables, pending work never purged, young rows kept. */
import { afterAll, expect, test } from "bun:test";
import { openDatabase } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import { PURGE_BATCH, purge } from "../../../src/people/retention.ts";
import { tempDir } from "../../helpers/tmp.ts";

const dir = tempDir("retention");
afterAll(() => dir.remove());

const DAY = 86_400_000;
const NOW = 1_767_225_700_000;

test("purge deletes old rows across many batches, keeps pending and young ones, and touches only its endpoint", async () => {
  const database = await openDatabase(`file:${dir.join("purge.db")}`);
  await applyMigrations(database);
  const writes = new WriteQueue(database.client, { durable: database.durable });
  const c = database.client;
  const old = NOW - 40 * DAY;
  const n = PURGE_BATCH * 2 + 500;
  // An old pending event at the head, then old finished ones, then young ones; one old row of another endpoint.
  await c.execute({
    sql: "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) VALUES ('a', 'p', 'u0', 'message', 'pending-0', ?, ?, '{}', 'pending')",
    args: [old, old],
  });
  await c.execute({
    sql: `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?) INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) SELECT 'a', 'p', 'u' || i, 'message', 'old-' || i, ?, ? + i, '{}', 'done' FROM k`,
    args: [n, old, old],
  });
  await c.execute({
    sql: "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) VALUES ('b', 'p', 'x', 'message', 'other', ?, ?, '{}', 'done')",
    args: [old, old],
  });
  await c.execute({
    sql: "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) VALUES ('a', 'p', 'y', 'message', 'young', ?, ?, '{}', 'done')",
    args: [NOW, NOW],
  });
  await c.execute({
    sql: `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?) INSERT INTO transcripts (endpoint_id, page_id, user_id, direction, source, text, created_at) SELECT 'a', 'p', 'u' || i, 'in', 'user', 'hi', ? FROM k`,
    args: [n, old],
  });
  await c.execute({
    sql: `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?) INSERT INTO contacts (id, endpoint_id, profile, created_at, updated_at, last_active_at) SELECT 'c_' || i, 'a', '{}', ?, ?, CASE WHEN i % 2 = 0 THEN ? ELSE ? END FROM k`,
    args: [n, old, old, old, NOW],
  });
  await c.execute({
    sql: "INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, first_seen_at, last_seen_at) VALUES ('a', 'p', 'u2', 'c_2', ?, ?), ('a', 'p', 'u1', 'c_1', ?, ?)",
    args: [old, old, NOW, NOW],
  });
  // Ended long ago; open but idle for longer than the retention; open and recent.
  await c.execute({
    sql: "INSERT INTO sessions (id, endpoint_id, page_id, user_id, context, created_at, last_active_at, ended_at) VALUES ('s_old', 'a', 'p', 'u', '{}', ?, ?, ?), ('s_idle', 'a', 'p', 'v', '{}', ?, ?, NULL), ('s_open', 'a', 'p', 'w', '{}', ?, ?, NULL)",
    args: [old, old, old, old, old, old, NOW],
  });

  const counts = await purge(database, writes, "a", NOW - 30 * DAY);
  expect(counts).toEqual({ transcripts: n, inbox: n, outbox: 0, contacts: Math.floor(n / 2), contact_users: 1, sessions: 2, transformer_storage: 0 });
  const left = async (sql: string) => (await c.execute(sql)).rows.map((r) => String(r[0]));
  expect(await left("SELECT dedup_key FROM inbox ORDER BY id")).toEqual(["pending-0", "other", "young"]);
  expect(await left("SELECT id FROM sessions")).toEqual(["s_open"]);
  expect(await left("SELECT contact_id FROM contact_users")).toEqual(["c_1"]);
  expect(await left("SELECT count(*) FROM transcripts")).toEqual(["0"]);
  await writes.drain();
  database.close();
});
