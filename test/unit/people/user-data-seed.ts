/**
 * A database with something of every kind stored about two people and their neighbours: the
 * subject of the export and erasure tests (test/unit/people/user-data.test.ts).
 *
 * Endpoint `e`: contact c_1 is u1 on Page p1 and u2 on Page p2; contact c_2 is u3 on p1. u9 has
 * no contact: sessions on p1 and p2, a transcript on p3, an inbox event on p4 and a message on
 * p5. u2 also has a session on p3 (after its contact link on p2); u3 also wrote on p9; u4 is
 * linked to c_2 on p8 and has nothing else. Endpoint `f` has a u1 of its own, and `e` has a u10
 * whose storage key starts like u1's.
 */
import type { Client } from "@libsql/client";

const T = 1_767_225_700_000;

export async function seedPeople(c: Client): Promise<void> {
  const run = (sql: string, args: (string | number | null)[] = []) => c.execute({ sql, args });
  await run(
    "INSERT INTO contacts (id, endpoint_id, profile, created_at, updated_at, last_active_at) VALUES ('c_1', 'e', ?, ?, ?, ?), ('c_2', 'e', '{}', ?, ?, ?)",
    [JSON.stringify({ first_name: "Ada", last_name: "Quill" }), T, T + 1, T + 2, T + 3, T + 4, T + 5],
  );
  await run(
    "INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, profile, profile_status, profile_expires_at, linked_at, first_seen_at, last_seen_at) VALUES " +
      "('e', 'p1', 'u1', 'c_1', ?, 'ok', ?, ?, ?, ?), ('e', 'p2', 'u2', 'c_1', NULL, NULL, NULL, NULL, ?, ?), ('e', 'p1', 'u3', 'c_2', NULL, 'unavailable', ?, NULL, ?, ?), ('f', 'p1', 'u1', 'c_9', NULL, NULL, NULL, NULL, ?, ?), " +
      "('e', 'p8', 'u4', 'c_2', NULL, NULL, NULL, NULL, ?, ?)",
    [JSON.stringify({ id: "u1", first_name: "Ada" }), T + 100, T + 10, T, T + 20, T + 5, T + 6, T + 200, T, T, T, T, T + 1, T + 2],
  );
  await run(
    "INSERT INTO sessions (id, endpoint_id, page_id, user_id, context, created_at, last_active_at, ended_at) VALUES " +
      "('s_1a', 'e', 'p1', 'u1', '{\"n\":1}', ?, ?, ?), ('s_1b', 'e', 'p1', 'u1', '{\"n\":2}', ?, ?, NULL), ('s_2', 'e', 'p2', 'u2', '{}', ?, ?, NULL), " +
      "('s_3', 'e', 'p1', 'u3', '{}', ?, ?, NULL), ('s_9a', 'e', 'p2', 'u9', '{}', ?, ?, NULL), ('s_9b', 'e', 'p1', 'u9', '{}', ?, ?, NULL), ('s_f', 'f', 'p1', 'u1', '{}', ?, ?, NULL), " +
      "('s_2b', 'e', 'p3', 'u2', '{}', ?, ?, NULL)",
    [T, T + 1, T + 2, T + 3, T + 4, T + 5, T + 6, T + 7, T + 8, T + 9, T + 30, T + 10, T + 11, T + 12, T + 13, T + 14, T + 40],
  );
  await run(
    "INSERT INTO transcripts (endpoint_id, page_id, user_id, contact_id, session_id, direction, source, text, data, created_at) VALUES " +
      "('e', 'p1', 'u1', 'c_1', 's_1a', 'in', 'user', 'hello', '{\"a\":1}', ?), ('e', 'p1', 'u1', 'c_1', 's_1a', 'out', 'flow', 'hi Ada', NULL, ?), " +
      "('e', 'p2', 'u2', 'c_1', 's_2', 'in', 'user', 'from p2', NULL, ?), " +
      "('e', 'p1', 'u3', 'c_2', 's_3', 'in', 'user', 'other person', NULL, ?), ('e', 'p3', 'u9', NULL, NULL, 'out', 'notify', 'to u9', 'not json', ?), " +
      "('f', 'p1', 'u1', NULL, 's_f', 'in', 'user', 'other endpoint', NULL, ?)",
    [T + 1, T + 2, T + 3, T + 5, T + 6, T + 7],
  );
  await run(
    "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, standby, dedup_key, timestamp, received_at, event, status) VALUES " +
      "('e', 'p1', 'u1', 'message', 0, 'd1', ?, ?, '{\"message\":{\"text\":\"hello\"}}', 'done'), ('e', 'p1', 'u1', 'inject', 0, 'd2', ?, ?, '{\"text\":\"x\"}', 'done'), " +
      "('e', 'p1', 'u3', 'message', 0, 'd3', ?, ?, '{}', 'done'), ('e', 'p4', 'u9', 'message', 0, 'd4', ?, ?, '{}', 'pending'), ('e', 'p6', 'u9', 'inject', 0, 'd5', ?, ?, '{}', 'done'), " +
      "('f', 'p1', 'u1', 'message', 0, 'd6', ?, ?, '{}', 'done'), " +
      "('e', 'p9', 'u3', 'message', 0, 'd7', ?, ?, '{}', 'done')",
    [T + 5, T + 6, T + 1, T + 7, T + 8, T + 9, T + 10, T + 11, T + 50, T + 12, T + 13, T + 14, T + 90, T + 91],
  );
  await run(
    "INSERT INTO outbox (endpoint_id, page_id, user_id, source, kind, body, status, created_at, sent_at) VALUES " +
      "('e', 'p1', 'u1', 'flow', 'message', '{\"message\":{\"text\":\"hi Ada\"}}', 'sent', ?, ?), ('e', 'p1', 'u1', 'notify', 'message', '{\"message\":{\"text\":\"later\"}}', 'pending', ?, NULL), " +
      "('e', 'p1', 'u3', 'flow', 'message', '{}', 'sent', ?, ?), ('e', 'p5', 'u9', 'notify', 'message', '{}', 'failed', ?, NULL), ('f', 'p1', 'u1', 'flow', 'message', '{}', 'sent', ?, ?)",
    [T + 2, T + 3, T + 4, T + 5, T + 6, T + 7, T + 8, T + 9],
  );
  const key = (userId: string, sessionId: string) => JSON.stringify([userId, sessionId]);
  await run(
    "INSERT INTO transformer_storage (endpoint_id, storage_key, value, updated_at) VALUES ('e', ?, '{\"visits\":2}', ?), ('e', ?, '{}', ?), ('e', ?, '{\"k\":\"v\"}', ?), ('e', ?, '{}', ?), ('f', ?, '{}', ?)",
    [key("u1", "s_1a"), T + 1, key("u10", "s"), T + 2, key("u2", "s_2"), T + 3, key("u9", "s_9a"), T + 4, key("u1", "s_f"), T + 5],
  );
  await run(
    "INSERT INTO threads (endpoint_id, page_id, user_id, state, owner_app_id, metadata, since, last_human_at, paused_until, last_error, updated_at) VALUES " +
      "('e', 'p1', 'u1', 'handover', '263902037430900', 'to a person', ?, ?, NULL, NULL, ?), ('e', 'p2', 'u9', 'paused', NULL, NULL, ?, NULL, ?, 'refused', ?), ('e', 'p1', 'u3', 'bot', NULL, NULL, ?, NULL, NULL, NULL, ?)",
    [T + 1, T + 2, T + 3, T + 4, T + 5, T + 6, T + 7, T + 8],
  );
  await run(
    "INSERT INTO simulator_users (endpoint_id, page_id, user_id, name, created_at) VALUES ('e', 'p1', 'u1', 'Ada', ?), ('e', 'p2', 'u9', 'Nine', ?), ('e', 'p1', 'u3', 'Three', ?)",
    [T, T, T],
  );
}

/** What is left in the tables a person's data lives in: one short name per row, in rowid order. */
export async function whatIsLeft(c: Client): Promise<Record<string, string[]>> {
  const names: Record<string, string> = {
    contacts: "id",
    contact_users: "endpoint_id || '/' || page_id || '/' || user_id",
    sessions: "id",
    transcripts: "text",
    inbox: "dedup_key",
    outbox: "endpoint_id || '/' || page_id || '/' || user_id",
    transformer_storage: "endpoint_id || ' ' || storage_key",
    threads: "endpoint_id || '/' || page_id || '/' || user_id",
    simulator_users: "name",
  };
  const out: Record<string, string[]> = {};
  for (const [table, name] of Object.entries(names)) {
    const result = await c.execute(`SELECT ${name} AS name FROM ${table} ORDER BY rowid`);
    out[table] = result.rows.map((r) => String((r as unknown as { name: string }).name));
  }
  return out;
}
