/**
 * The conversation engine's SQL (src/conversations/store.ts) against a real database: the
 * start-up scan finds what was stored and not finished, in the order the lanes need, and the
 * marks finish events (with errors stored without the settings' secrets).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { inArray } from "drizzle-orm";
import { ConversationStore } from "../../../src/conversations/store.ts";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { inbox as inboxTable } from "../../../src/db/schema.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import type { InboxEvent } from "../../../src/inbox/events.ts";
import { Inbox } from "../../../src/inbox/inbox.ts";
import { PAGE_ID, PSID, PSID_2 } from "../../helpers/config.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { tempDir, type TempDir } from "../../helpers/tmp.ts";

const SECRET = "sk-store-test-secret-42";
let dir: TempDir;
let database: Database;
let writes: WriteQueue;
const clock = new ManualClock();

beforeAll(async () => {
  dir = tempDir("conversation-store");
  database = await openDatabase(`file:${dir.join("c.db")}`);
  await applyMigrations(database);
  writes = new WriteQueue(database.client);
});
afterAll(() => {
  database.close();
  dir.remove();
});

const event = (userId: string, kind: InboxEvent["kind"], timestamp: number, key: string): InboxEvent => ({
  pageId: PAGE_ID,
  userId,
  kind,
  standby: kind === "echo",
  dedupKey: key,
  timestamp,
  item: { sender: { id: userId }, key },
});

describe("ConversationStore", () => {
  test("the start-up scan: state events in arrival order, the others by Facebook's time, without what is finished", async () => {
    const store = new ConversationStore(database, clock, [SECRET]);
    const { stored } = await new Inbox(writes, clock).store("support", [
      event(PSID, "message", 300, "m3"),
      event(PSID, "delivery", 900, "d1"),
      event(PSID_2, "message", 100, "m1"),
      event(PSID, "echo", 50, "e1"),
      event(PSID, "postback", 200, "p2"),
      event(PSID, "message", 150, "done"),
    ]);
    await writes.run([store.done(stored.find((e) => e.dedupKey === "done")!.inboxId, null)]);

    const state = await store.pendingStateEvents();
    expect(state.map((e) => [e.kind, e.item.key, e.standby])).toEqual([
      ["delivery", "d1", false],
      ["echo", "e1", true],
    ]);
    expect(state[0]!.key).toEqual({ endpointId: "support", pageId: PAGE_ID, userId: PSID });

    const inbound = await store.pendingInboundEvents();
    expect(inbound.map(({ key, event }) => [key.userId, event.item.key, event.timestamp])).toEqual([
      [PSID_2, "m1", 100],
      [PSID, "p2", 200],
      [PSID, "m3", 300],
    ]);
    expect(inbound[0]!.event).toMatchObject({ kind: "message", standby: false, attempts: 0 });
  });

  test("marks: done with the flow's error, a failed attempt, set aside; errors stored without secrets", async () => {
    const store = new ConversationStore(database, clock, [SECRET]);
    const events = ["a", "b", "c"].map((key, i) => event(PSID, "message", i + 1, key));
    const { stored } = await new Inbox(writes, clock).store("marks", events);
    const [a, b, c] = stored.map((e) => e.inboxId) as [number, number, number];
    await writes.run([
      store.done(a, `the agent answered 500 to ${SECRET}`),
      store.attemptFailed(b, 1, "constraint failed", false),
      store.attemptFailed(c, 5, `still failing with ${SECRET}`, true),
    ]);
    const rows = await database.db
      .select({
        id: inboxTable.id,
        status: inboxTable.status,
        attempts: inboxTable.attempts,
        lastError: inboxTable.lastError,
        processedAt: inboxTable.processedAt,
      })
      .from(inboxTable)
      .where(inArray(inboxTable.id, [a, b, c]));
    const byRow = new Map(rows.map(({ id, ...row }) => [id, row]));
    expect(byRow.get(a)).toMatchObject({ status: "done", attempts: 0, processedAt: clock.now() });
    expect(byRow.get(a)!.lastError).not.toContain(SECRET);
    expect(byRow.get(b)).toEqual({ status: "pending", attempts: 1, lastError: "constraint failed", processedAt: null });
    expect(byRow.get(c)).toMatchObject({ status: "failed", attempts: 5 });
    expect(byRow.get(c)!.lastError).not.toContain(SECRET);
    // Neither of the finished ones is found by the next start's scan; the pending one is.
    const pending = (await store.pendingInboundEvents()).map(({ event }) => event.id);
    expect(pending).toContain(b);
    expect(pending).not.toContain(a);
    expect(pending).not.toContain(c);
  });
});
