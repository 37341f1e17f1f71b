import { afterAll, describe, expect, test } from "bun:test";
import { asc } from "drizzle-orm";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { inbox as inboxTable } from "../../../src/db/schema.ts";
import type { InboxEvent } from "../../../src/inbox/events.ts";
import { toInboxEvent } from "../../../src/webhook/events.ts";
import { Inbox } from "../../../src/inbox/inbox.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import { PAGE_ID, fixedClock, tempDir, textItem } from "../../helpers/index.ts";

const root = tempDir("inbox");
const open: Database[] = [];
afterAll(() => {
  for (const d of open) d.close();
  root.remove();
});
let n = 0;

async function setup() {
  const database = await openDatabase(`file:${root.join(`db-${++n}.sqlite`)}`);
  open.push(database);
  await applyMigrations(database);
  const errors: unknown[] = [];
  const writes = new WriteQueue(database.client);
  const inbox = new Inbox(writes, fixedClock(1000), (e) => errors.push(e));
  const rows = () => database.db.select().from(inboxTable).orderBy(asc(inboxTable.id));
  return { database, inbox, writes, rows, errors };
}

const event = (mid: string): InboxEvent => toInboxEvent(textItem(mid), PAGE_ID, false, 0) as InboxEvent;

describe("Inbox", () => {
  test("stores events and reports which were new", async () => {
    const { inbox, rows } = await setup();
    const result = await inbox.store("support", [event("m_1"), event("m_2")]);
    expect(result.stored.map((e) => e.dedupKey)).toEqual(["message:m_1", "message:m_2"]);
    expect(result.duplicates).toBe(0);
    expect((await rows()).map((r) => [r.dedupKey, r.receivedAt])).toEqual([
      ["message:m_1", 1000],
      ["message:m_2", 1000],
    ]);
  });

  test("nothing to store resolves at once", async () => {
    const { inbox } = await setup();
    expect(await inbox.store("support", [])).toEqual({ stored: [], duplicates: 0 });
  });

  test("a duplicate in a later call, and a duplicate inside one call, are counted, not written", async () => {
    const { inbox, rows } = await setup();
    await inbox.store("support", [event("m_1")]);
    const again = await inbox.store("support", [event("m_1"), event("m_2"), event("m_2")]);
    expect(again.stored.map((e) => e.dedupKey)).toEqual(["message:m_2"]);
    expect(again.duplicates).toBe(2);
    expect(await rows()).toHaveLength(2);
  });

  test("a commit where a duplicate sits between fresh events reports every fresh event", async () => {
    const { inbox, rows } = await setup();
    const [a, b] = await Promise.all([inbox.store("support", [event("m_a")]), inbox.store("support", [event("m_a"), event("m_b")])]);
    expect(a.stored.map((e) => e.dedupKey)).toEqual(["message:m_a"]);
    expect(b.stored.map((e) => e.dedupKey)).toEqual(["message:m_b"]);
    expect(a.duplicates + b.duplicates).toBe(1);
    expect(await rows()).toHaveLength(2);
  });

  test("calls in the same tick share a commit; the first claimant of an event gets it", async () => {
    const { inbox, rows } = await setup();
    const commits: string[][] = [];
    inbox.onStored((endpoint, events) => commits.push([endpoint, ...events.map((e) => e.dedupKey)]));
    const [a, b, c] = await Promise.all([
      inbox.store("support", [event("m_1")]),
      inbox.store("support", [event("m_1"), event("m_2")]),
      inbox.store("other", [event("m_1")]),
    ]);
    expect(a.stored).toHaveLength(1);
    expect(b).toMatchObject({ duplicates: 1 });
    expect(b.stored.map((e) => e.dedupKey)).toEqual(["message:m_2"]);
    expect(c.stored).toHaveLength(1);
    expect(await rows()).toHaveLength(3);
    expect(commits).toEqual([
      ["support", "message:m_1"],
      ["support", "message:m_2"],
      ["other", "message:m_1"],
    ]);
  });

  test("more rows than one statement holds are stored together", async () => {
    const { inbox, rows } = await setup();
    const events = Array.from({ length: 4500 }, (_, i) => event(`m_${i}`));
    const result = await inbox.store("support", events);
    expect(result.stored).toHaveLength(4500);
    expect(await rows()).toHaveLength(4500);
    const again = await inbox.store("support", [...events.slice(0, 10), event("m_new")]);
    expect(again).toMatchObject({ duplicates: 10 });
  });

  test("a failing listener does not fail the store", async () => {
    const { inbox, errors } = await setup();
    inbox.onStored(() => {
      throw new Error("listener broke");
    });
    const result = await inbox.store("support", [event("m_1")]);
    expect(result.stored).toHaveLength(1);
    expect(errors).toHaveLength(1);
  });

  test("a failed commit rejects every waiter of that commit", async () => {
    const { inbox, database } = await setup();
    database.close();
    const results = await Promise.allSettled([inbox.store("support", [event("m_1")]), inbox.store("support", [event("m_2")])]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
  });

  test("drain waits for what was queued", async () => {
    const { inbox, writes, rows } = await setup();
    const pending = inbox.store("support", [event("m_1")]);
    await writes.drain();
    expect(await rows()).toHaveLength(1);
    await pending;
  });
});
