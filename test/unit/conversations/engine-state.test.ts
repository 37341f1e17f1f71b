/**
 * Echo, delivery and read events are applied by a drain loop outside the lanes. An event that
 * arrives at any moment, even in the microtasks between the loop's last look and its end, must
 * be applied (once that gap held events until the next delivery came, which at the end of a
 * burst meant never).
 */
import { afterEach, expect, test } from "bun:test";
import type { InStatement, ResultSet } from "@libsql/client";
import type { StoredEvent } from "../../../src/inbox/inbox.ts";
import { PAGE_ID, PSID } from "../../helpers/config.ts";
import { startTestApp, type TestApp } from "../../helpers/app.ts";

let t: TestApp | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

const delivery = (n: number): StoredEvent => ({
  inboxId: 1000 + n,
  pageId: PAGE_ID,
  userId: PSID,
  kind: "delivery",
  standby: false,
  timestamp: 1767225600000 + n,
  dedupKey: `delivery:${PAGE_ID}:${PSID}:${n}`,
  item: { sender: { id: PSID }, recipient: { id: PAGE_ID }, delivery: { mids: [`m_${n}`], watermark: 1767225600000 + n } },
});

test("a state event that arrives just as the drain loop ends is still applied", async () => {
  t = await startTestApp();
  await t.app.start();
  const writes = t.app.writes;
  const original = writes.run.bind(writes);
  const calls: string[][] = [];
  let release: (() => void) | null = null;
  writes.run = (statements: InStatement[]): Promise<ResultSet[]> => {
    calls.push(statements.map((s) => (typeof s === "string" ? s : s.sql)));
    if (calls.length === 1) {
      return new Promise((resolve) => {
        release = () => {
          void original(statements).then((r) => {
            resolve(r);
            // Queued right behind the loop's continuation: runs after its last look at the list.
            queueMicrotask(() => t!.app.engine.accept("support", [delivery(2)]));
          });
        };
      });
    }
    return original(statements);
  };
  t.app.engine.accept("support", [delivery(1)]);
  while (!release) await Bun.sleep(1);
  (release as () => void)();
  const deadline = Date.now() + 2000;
  while (calls.length < 2 && Date.now() < deadline) await Bun.sleep(5);
  expect(calls.length).toBe(2); // the second delivery got a round of its own
});

test("events committed while the engine starts are queued once and run once", async () => {
  t = await startTestApp();
  // Stored before the start: found by the start's scan and also reported by the inbox.
  const body = JSON.stringify({
    object: "page",
    entry: [
      { id: PAGE_ID, time: 1, messaging: [{ sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: 5, message: { mid: "m_early", text: "early" } }] },
    ],
  });
  expect((await t.post("support", body)).status).toBe(200);
  await t.app.start();
  await t.app.writes.drain();
  const deadline = Date.now() + 3000;
  let rows = await t.inboxRows();
  while (rows.some((r) => r.status === "pending") && Date.now() < deadline) {
    await Bun.sleep(10);
    rows = await t.inboxRows();
  }
  expect(rows.map((r) => r.status)).toEqual(["done"]);
  const sessions = await t.database.client.execute("SELECT context FROM sessions");
  expect(JSON.parse(String(sessions.rows[0]![0]))).toEqual({ count: 1 }); // the echo flow ran once
});
