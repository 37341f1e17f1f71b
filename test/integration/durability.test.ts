/**
 * Durable before 200: the webhook is answered only after the fsync of the WAL that covers its
 * events (db/wal-sync.ts). Here the fsync is held back by a gate, and the answer waits for it; the
 * turn may run meanwhile (inbox/inbox.ts), but its reply waits for a durable write of its own.
 */
import { expect, test } from "bun:test";
import { createApp } from "../../src/app.ts";
import { openDatabase } from "../../src/db/client.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { configFromToml, settingsToml } from "../helpers/config.ts";
import { collectingLogger } from "../helpers/log.ts";
import { tempDir } from "../helpers/tmp.ts";
import { envelope, textItem, webhookPost } from "../helpers/webhook.ts";
import { PSID } from "../helpers/config.ts";
import { messageTexts, startConversation, until, userText } from "../helpers/conversation.ts";

test("a webhook is answered only after the WAL's fsync; the rows are in the table before that", async () => {
  const dir = tempDir("durability");
  const config = configFromToml(settingsToml({ storageUrl: "file:data/d.db" }), { dir: dir.path });
  const database = await openDatabase(config.storage.url);
  await applyMigrations(database);
  expect(database.durable).toBeDefined(); // a local file: commits are made durable by our own fsync
  let gateOn = false;
  let open: () => void = () => {};
  let waiting = false;
  const gated = {
    ...database,
    durable: async () => {
      if (gateOn) {
        waiting = true;
        await new Promise<void>((resolve) => (open = resolve));
      }
      await database.durable!();
    },
  };
  const app = await createApp({ config, db: gated, log: collectingLogger().log });
  try {
    gateOn = true;
    let answered = false;
    const response = app.http.handle(webhookPost("support", JSON.stringify(envelope([{ messaging: [textItem("m_durable_1")] }])))).then((r) => {
      answered = true;
      return r;
    });
    while (!waiting) await Bun.sleep(1);
    const rows = await database.client.execute("SELECT count(*) FROM inbox");
    expect(Number(rows.rows[0]![0])).toBe(1); // committed…
    // The fsync is held: however many turns the event loop takes now, no answer may come before it.
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBe(false); // …but not acknowledged before the fsync
    gateOn = false;
    open();
    expect((await response).status).toBe(200);
  } finally {
    gateOn = false;
    open();
    await app.shutdown();
    database.close();
    dir.remove();
  }
});

test("the turn runs while the webhook's fsync is held, but nothing reaches Facebook before a durable write", async () => {
  let gateOn = false;
  let open: () => void = () => {};
  let held = 0;
  const c = await startConversation({
    wrapDatabase: (database) => ({
      ...database,
      durable: async () => {
        if (gateOn) {
          held++;
          await new Promise<void>((resolve) => {
            const before = open;
            open = () => {
              before();
              resolve();
            };
          });
        }
        await database.durable!();
      },
    }),
  });
  try {
    gateOn = true;
    let answered = false;
    const posted = c.post([userText("while the disk syncs")]).then((status) => {
      answered = true;
      return status;
    });
    // The engine had the event at its commit: the turn ran and queued its reply meanwhile.
    // (Read without draining the write queue: its fsync is the one held.)
    const outbox = async () => Number((await c.database.client.execute("SELECT count(*) AS n FROM outbox")).rows[0]!.n);
    await until(async () => (await outbox()) === 1);
    // The lane was idle: the reply was committed already marked "sending" with its turn (replies/outbox.ts
    // markFirst); the sync that covers that commit is its mark, and the held fsync holds it.
    const [row] = (await c.database.client.execute("SELECT status, attempts FROM outbox")).rows;
    expect([row!.status, Number(row!.attempts)]).toEqual(["sending", 1]);
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBe(false);
    expect(held).toBeGreaterThanOrEqual(1);
    expect(c.sends(PSID)).toEqual([]); // the reply's "sending" mark waits for an fsync too
    gateOn = false;
    open();
    expect(await posted).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID });
    expect(messageTexts(c.sends(PSID))).toEqual(["You said: while the disk syncs"]);
  } finally {
    gateOn = false;
    open();
    await c.close();
  }
});

test("a reply that waits (message_delay_ms) is committed pending and marked sending by its lane", async () => {
  const c = await startConversation({ messenger: { delayMs: 50 } });
  try {
    expect(await c.post([userText("slowly")])).toBe(200);
    await until(async () => Number((await c.database.client.execute("SELECT count(*) AS n FROM outbox")).rows[0]!.n) === 1);
    const [row] = (await c.database.client.execute("SELECT status, attempts FROM outbox")).rows;
    expect([row!.status, Number(row!.attempts)]).toEqual(["pending", 0]);
    await c.graph.waitForSends(1, { recipientId: PSID });
    expect(messageTexts(c.sends(PSID))).toEqual(["You said: slowly"]);
  } finally {
    await c.close();
  }
});
