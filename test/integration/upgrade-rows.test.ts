/**
 * Rows stored before migrations 0009 (one transcript index) and 0010 (the dedup index led by the
 * event's time) stay usable after them: an event acknowledged by the older schema is still a
 * duplicate when Facebook redelivers it, and its transcript is still read by session and contact.
 */
import { afterAll, expect, test } from "bun:test";
import { migrate } from "drizzle-orm/libsql/migrator";
import { createApp } from "../../src/app.ts";
import { openDatabase } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { collectingLogger, configFromToml, fixedClock, PAGE_ID, PSID, settingsToml, tempDir, textBody, webhookPost } from "../helpers/index.ts";
import { KEY } from "../helpers/admin.ts";
import { olderMigrations } from "../helpers/migrations.ts";

const root = tempDir("upgrade-rows");
afterAll(() => root.remove());

/** The migrations folder of schema 9 (migrations 0000–0008), before 0009 and 0010. */
const schema9 = () => olderMigrations(root.join("schema9"), 9);

const T = 1767225599876;

test("an event and a transcript stored under schema 9: a redelivery is still a duplicate, and the lines are read by session and contact", async () => {
  const dir = root.sub("site");
  const config = configFromToml(settingsToml({ storageUrl: "file:data/test.db", extra: `[admin]\napi_keys = ["${KEY}"]` }), { dir: dir.path });
  const old = await openDatabase(config.storage.url);
  await migrate(old.db, { migrationsFolder: schema9() });
  const run = (sql: string, args: (string | number)[] = []) => old.client.execute({ sql, args });
  await run(
    "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) VALUES ('support', ?, ?, 'message', 'message:m_before', ?, ?, '{}', 'done')",
    [PAGE_ID, PSID, T, T + 5],
  );
  await run("INSERT INTO sessions (id, endpoint_id, page_id, user_id, context, created_at, last_active_at) VALUES ('s_old', 'support', ?, ?, '{}', ?, ?)", [
    PAGE_ID,
    PSID,
    T,
    T,
  ]);
  await run("INSERT INTO contacts (id, endpoint_id, profile, created_at, updated_at, last_active_at) VALUES ('c_old', 'support', '{}', ?, ?, ?)", [T, T, T]);
  await run("INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, first_seen_at, last_seen_at) VALUES ('support', ?, ?, 'c_old', ?, ?)", [
    PAGE_ID,
    PSID,
    T,
    T,
  ]);
  await run(
    "INSERT INTO transcripts (endpoint_id, page_id, user_id, contact_id, session_id, direction, source, text, data, created_at) VALUES ('support', ?, ?, 'c_old', 's_old', 'in', 'user', 'before the upgrade', NULL, ?)",
    [PAGE_ID, PSID, T],
  );
  await old.checkpoint();
  old.close();

  const database = await openDatabase(config.storage.url);
  expect((await applyMigrations(database, { backupBefore: false })).applied).toBe(2);
  const app = await createApp({ config, db: database, log: collectingLogger().log, clock: fixedClock() });
  try {
    // Facebook redelivers the event the older schema acknowledged: answered, not stored again.
    const again = await app.http.handle(webhookPost("support", textBody("m_before", { timestamp: T })));
    expect(again.status).toBe(200);
    const inbox = await database.client.execute("SELECT dedup_key FROM inbox");
    expect(inbox.rows.map((r) => String(r[0]))).toEqual(["message:m_before"]);
    expect(app.metrics.render()).toContain('messenger_webhook_events_total{endpoint="support",kind="any",result="duplicate"} 1');
    const read = async (query: string) => {
      const answer = await app.http.handle(new Request(`http://localhost/api/conversations?${query}`, { headers: { authorization: `Bearer ${KEY}` } }));
      expect(answer.status).toBe(200);
      return ((await answer.json()) as { entries: { text: string }[] }).entries.map((e) => e.text);
    };
    expect(await read("session_id=s_old")).toEqual(["before the upgrade"]);
    expect(await read("contact_id=c_old")).toEqual(["before the upgrade"]);
    expect(await read(`user_id=${PSID}`)).toEqual(["before the upgrade"]);
  } finally {
    await app.shutdown();
    database.close();
  }
});
