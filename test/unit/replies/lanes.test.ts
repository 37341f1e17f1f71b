/**
 * The reply lanes (src/replies/) on a manual clock, a real database and a scripted Graph API:
 * order, typing and delay, head-of-line retries with backoff, drops, a refused token, unclear
 * answers and the echo wait, a storage failure while marking sent, a flow's handover, a restart
 * and a stop. Time moves only with `clock.advance`; that nothing happens is shown by the timers
 * armed (or none), or by awaiting what would have happened.
 */
import { afterEach, afterAll, describe, expect, test } from "bun:test";
import { asc } from "drizzle-orm";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { StorageHealth } from "../../../src/db/health.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { analyticsDaily, outbox } from "../../../src/db/schema.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import { Inbox } from "../../../src/inbox/inbox.ts";
import { PageDirectory } from "../../../src/messenger/pages.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { countStatement } from "../../../src/people/analytics.ts";
import { PAGE_INBOX_APP_ID, Threads } from "../../../src/handover/threads.ts";
import { ReplyLanes } from "../../../src/replies/lanes.ts";
import { enqueueReplies, type NewReply } from "../../../src/replies/outbox.ts";
import type { UserKey } from "../../../src/core/user-key.ts";
import { PAGE_ID, PSID, PSID_2, collectingLogger, configFromToml, settingsToml, tempDir } from "../../helpers/index.ts";
import { failingStorage, type FailingStorage } from "../../helpers/failing-storage.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { StubGraph } from "../../helpers/stub-graph.ts";
import { eventually } from "../../helpers/eventually.ts";

const INSTALL = "inst0";
const key: UserKey = { endpointId: "support", pageId: PAGE_ID, userId: PSID };
const NO_TYPING = "[endpoints.messenger]\ntyping_indicators = false";

const root = tempDir("lanes");
const databases: Database[] = [];
const running: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of running.splice(0)) await stop();
});
afterAll(() => {
  for (const d of databases) d.close();
  root.remove();
});
let n = 0;

interface Options {
  /** Settings appended after the endpoint (its `[endpoints.messenger]`, `[graph]`). */
  extra?: string;
  echoGraceMs?: number;
  /** Writes fail on demand (and a StorageHealth pauses the lanes, as in the app). */
  storage?: FailingStorage;
  /** With a Threads: handover items and holds. */
  threads?: boolean;
  /** A restart: the database and clock of an earlier set-up. */
  on?: { database: Database; clock: ManualClock };
}

async function setup(options: Options = {}) {
  const config = configFromToml(settingsToml({ extra: options.extra ?? NO_TYPING }), { dir: root.path });
  let opened = options.on?.database;
  if (!opened) {
    opened = await openDatabase(`file:${root.join(`db-${++n}.sqlite`)}`);
    databases.push(opened);
    await applyMigrations(opened);
  }
  const database = options.storage ? options.storage.wrap(opened) : opened;
  const clock = options.on?.clock ?? new ManualClock();
  const logs = collectingLogger();
  // The test plays the health's probe (`health.succeeded()`): its own would come only after an hour.
  const health = options.storage
    ? new StorageHealth({ clock, timers: clock, log: logs.log, probe: async () => {}, advice: "free some space", minDelayMs: 3_600_000, maxDelayMs: 3_600_000 })
    : undefined;
  const writes = new WriteQueue(database.client, { onCommitFailure: (error) => health?.failed(error) });
  const graph = new StubGraph();
  const metrics = new Registry();
  const pages = new PageDirectory(config, database, writes, clock, logs.log);
  const threads = options.threads
    ? new Threads({
        config,
        database,
        writes,
        graph: graph.client,
        pages,
        inbox: new Inbox(writes, clock, () => {}),
        clock,
        timers: clock,
        log: logs.log,
        metrics,
      })
    : undefined;
  const lanes = new ReplyLanes({
    config,
    database,
    writes,
    graph: graph.client,
    pages,
    clock,
    timers: clock,
    log: logs.log,
    metrics,
    echoGraceMs: options.echoGraceMs ?? 5_000,
    minRetryDelayMs: 1_000,
    installId: INSTALL,
    ...(threads ? { threads } : {}),
    ...(health ? { health } : {}),
    failedSendCount: (endpointId, at) => countStatement(endpointId, at, { failedSends: 1 }),
  });
  await lanes.start();
  running.push(async () => {
    threads?.stop();
    await lanes.stop();
    health?.stop();
    await writes.drain();
  });
  return {
    lanes,
    graph,
    clock,
    database,
    writes,
    pages,
    threads,
    health,
    logs,
    metrics,
    /** Commits replies (texts, or whole replies) for the user, and hands them to the lanes, as a turn does. */
    async queue(...replies: (string | Partial<NewReply>)[]) {
      const enqueued = enqueueReplies(
        replies.map((r) => ({
          endpointId: "support",
          pageId: PAGE_ID,
          userId: PSID,
          source: "flow" as const,
          ...(typeof r === "string" ? { message: { text: r } } : r),
        })),
        clock.now(),
      )!;
      const [result] = await writes.run([enqueued.statement]);
      const items = enqueued.items(result!);
      lanes.accept(items);
      return items;
    },
    async rows() {
      await writes.drain();
      return opened!.db.select().from(outbox).orderBy(asc(outbox.id));
    },
    /** One armed timer (a lane waits), at this time. */
    async waitsUntil(at: number) {
      await eventually(() => clock.timers.length > 0, "a lane's wait");
      expect(clock.timers).toEqual([at]);
    },
    warned: (text: string) => logs.records().some((r) => (r.level === "warn" || r.level === "error") && r.msg.includes(text)),
  };
}

const lost = { network: "lost" } as const;

describe("order, typing and delay", () => {
  test("one item at a time, in order: typing_on, the delay, the message with its stamp; marked sent", async () => {
    const { graph, clock, queue, rows, waitsUntil } = await setup({ extra: "[endpoints.messenger]\ntyping_indicators = true\nmessage_delay_ms = 500" });
    const items = await queue("one", "two", "three");
    for (const [i, text] of ["one", "two", "three"].entries()) {
      await graph.waitFor((c) => c.body?.sender_action === "typing_on", i + 1);
      await waitsUntil(clock.now() + 500); // the delay; the message waits for it
      expect(graph.texts()).toHaveLength(i);
      await clock.advance(500);
      await graph.messages(i + 1);
      expect(graph.texts()[i]).toBe(text);
    }
    expect(graph.calls.map((c) => c.body.sender_action ?? c.body.message.text)).toEqual(["typing_on", "one", "typing_on", "two", "typing_on", "three"]);
    expect(graph.to("messages").map((c) => c.body.message.metadata)).toEqual(items.map((item) => `me:${INSTALL}:${item.id}`));
    await eventually(async () => (await rows()).every((r) => r.status === "sent"), "the sent marks");
    expect((await rows()).map((r) => [r.attempts, r.messageId])).toEqual([
      [1, "m_1"],
      [1, "m_2"],
      [1, "m_3"],
    ]);
  });

  test("users do not wait for each other: a send that hangs holds only its own lane", async () => {
    const { graph, queue, rows } = await setup();
    const held = graph.hold("messages");
    await queue("for the first user");
    await graph.messages(1);
    await queue({ userId: PSID_2, message: { text: "for the second" } });
    await graph.messages(2);
    await eventually(async () => (await rows())[1]!.status === "sent", "the second user's message");
    expect((await rows())[0]!.status).toBe("sending");
    held.release();
    await eventually(async () => (await rows())[0]!.status === "sent", "the first user's message");
  });
});

describe("failures", () => {
  test("a transient failure is retried with backoff, before anything after it (head-of-line)", async () => {
    const { graph, clock, queue, rows, lanes } = await setup();
    graph.answer("messages", { code: 2, status: 500, message: "An unexpected error has occurred. Please retry your request later." });
    await queue("one", "two");
    await eventually(() => clock.timers.length === 1, "the backoff");
    const [one] = await rows();
    expect(one).toMatchObject({ status: "pending", attempts: 1 });
    expect(clock.timers).toEqual([one!.nextAttemptAt!]);
    const delay = one!.nextAttemptAt! - clock.now();
    expect(delay).toBeGreaterThanOrEqual(800); // 1 s ± 20 %
    expect(delay).toBeLessThanOrEqual(1_200);
    expect(graph.texts()).toEqual(["one"]); // "two" waits behind it
    expect(lanes.waiting(key)).toBe(2);
    await clock.advance(delay);
    await graph.messages(3);
    expect(graph.texts()).toEqual(["one", "one", "two"]);
    await eventually(async () => (await rows()).every((r) => r.status === "sent"), "the sent marks");
    expect((await rows())[0]!.attempts).toBe(2);
  });

  test("a rate limit starts the backoff four times higher; after retry_for_minutes the item is given up and counted", async () => {
    const { graph, clock, queue, rows, warned, database } = await setup({ extra: `${NO_TYPING}\n[graph]\nretry_for_minutes = 1` });
    const rateLimited = { code: 613, message: "Calls to this api have exceeded the rate limit." };
    graph.answer("messages", rateLimited);
    const started = clock.now();
    await queue("one", "two");
    await eventually(() => clock.timers.length === 1, "the first backoff");
    expect(clock.timers[0]! - started).toBeGreaterThanOrEqual(3_200);
    expect(clock.timers[0]! - started).toBeLessThanOrEqual(4_800);
    while ((await rows())[0]!.status === "pending") {
      graph.answer("messages", rateLimited);
      await clock.advance(clock.timers[0]! - clock.now());
      await eventually(async () => clock.timers.length === 1 || (await rows())[0]!.status === "failed", "the next backoff or the end");
    }
    expect(clock.now() - started).toBeGreaterThanOrEqual(60_000);
    const [one] = await rows();
    expect(one!.status).toBe("failed");
    expect(JSON.parse(one!.lastError!).reason).toStartWith(`gave up after ${one!.attempts} attempts: rate limited (613)`);
    expect(warned("gave up a message after retrying for 1 minutes")).toBe(true);
    await graph.messages(one!.attempts + 1);
    expect(graph.texts().at(-1)).toBe("two");
    expect((await database.db.select().from(analyticsDaily))[0]?.failedSends).toBe(1);
  });

  test("outside the messaging window: dropped with the reason, the lane goes on", async () => {
    const { graph, queue, rows, warned } = await setup();
    graph.answer("messages", { code: 10, subcode: 2018278, message: "(#10) This message is sent outside of allowed window." });
    await queue("one", "two");
    await graph.messages(2);
    await eventually(async () => (await rows())[1]!.status === "sent", "the next message");
    const [one] = await rows();
    expect(one!.status).toBe("dropped");
    expect(JSON.parse(one!.lastError!)).toMatchObject({ kind: "graph", code: 10, subcode: 2018278, reason: "outside_window" });
    expect(warned("24-hour messaging window is closed")).toBe(true);
  });

  test("an invalid token (190) pauses the Page: nothing is sent, nothing is armed, until it is resumed", async () => {
    const { graph, clock, queue, rows, pages, lanes } = await setup();
    graph.answer("messages", { code: 190, subcode: 463, message: "Error validating access token: Session has expired" });
    await queue("one", "two");
    await eventually(() => pages.isPaused("support", PAGE_ID), "the Page paused");
    await eventually(() => lanes.activeLanes === 0, "the lane idle");
    expect(clock.timers).toEqual([]);
    expect((await rows()).map((r) => r.status)).toEqual(["pending", "pending"]);
    await pages.resume("support", PAGE_ID);
    await graph.messages(3);
    expect(graph.texts()).toEqual(["one", "one", "two"]);
  });
});

describe("unclear answers and the echo wait", () => {
  test("the lane waits for the echo, in order; the echo ends the wait at once and the message is not sent again", async () => {
    const { graph, clock, queue, rows, lanes, database, waitsUntil, warned } = await setup();
    graph.answer("messages", lost);
    const t0 = clock.now();
    const [one] = await queue("one", "two");
    await waitsUntil(clock.now() + 5_000);
    expect(warned("the Send API did not answer clearly (network)")).toBe(true);
    expect((await rows())[0]).toMatchObject({ status: "sending", lastError: expect.stringContaining('"unclear":true') });
    // The engine commits the echo's item as sent, then tells the lane.
    await database.client.execute({ sql: "UPDATE outbox SET status = 'sent' WHERE id = ?", args: [one!.id] });
    lanes.confirmed(key, one!.id);
    await graph.messages(2);
    expect(graph.texts()).toEqual(["one", "two"]);
    expect(clock.now()).toBe(t0); // no time passed: the echo ended the wait
  });

  test("where echoes are known to arrive, no echo means Graph did not take it: sent again", async () => {
    const { graph, clock, queue, lanes, waitsUntil, logs } = await setup();
    expect(lanes.ownEcho("support", PAGE_ID)).not.toBeNull(); // an earlier echo of ours came back
    expect(lanes.ownEcho("support", PAGE_ID)).toBeNull(); // remembered at most once an hour
    graph.answer("messages", lost);
    await queue("one", "two");
    await waitsUntil(clock.now() + 5_000);
    await clock.advance(5_000);
    await eventually(() => logs.records().some((r) => r.msg.startsWith("send failed (no echo after an unclear answer)")), "the retry");
    await eventually(() => clock.timers.length === 1, "the backoff");
    await clock.advance(clock.timers[0]! - clock.now());
    await graph.messages(3);
    expect(graph.texts()).toEqual(["one", "one", "two"]);
  });

  test("where echoes are not known to arrive: marked unconfirmed, not sent again, and the log says what to subscribe", async () => {
    const { graph, clock, queue, rows, waitsUntil, warned, metrics } = await setup();
    graph.answer("messages", lost);
    await queue("one", "two");
    await waitsUntil(clock.now() + 5_000);
    await clock.advance(5_000);
    await graph.messages(2);
    expect(graph.texts()).toEqual(["one", "two"]);
    await eventually(async () => (await rows())[1]!.status === "sent", "the next message");
    expect((await rows())[0]!.status).toBe("unconfirmed");
    expect(warned("Subscribe the App's webhook to message_echoes")).toBe(true);
    expect(metrics.render()).toContain('messenger_sends_total{endpoint="support",result="unconfirmed"} 1');
  });

  test("a 200 that cannot be read: taken, unconfirmed, never sent again", async () => {
    const { graph, queue, rows } = await setup();
    graph.answer("messages", { garbled: true });
    await queue("one", "two");
    await graph.messages(2);
    await eventually(async () => (await rows())[1]!.status === "sent", "the next message");
    expect((await rows())[0]).toMatchObject({ status: "unconfirmed", lastError: expect.stringContaining("unreadable_answer") });
  });
});

describe("a storage failure while marking sent", () => {
  test("only the mark is stored again once writes work, never the message", async () => {
    const storage = failingStorage();
    const { graph, queue, rows, health } = await setup({ storage });
    storage.fail((sql) => sql.startsWith("UPDATE outbox SET status = 'sent'"));
    await queue("one");
    await graph.messages(1);
    await eventually(() => !health!.healthy, "the storage failure noticed");
    expect((await rows())[0]!.status).toBe("sending");
    storage.fail(false);
    health!.succeeded(); // the probe's write went through
    await eventually(async () => (await rows())[0]!.status === "sent", "the mark stored");
    await queue("two");
    await graph.messages(2);
    expect(graph.texts()).toEqual(["one", "two"]);
  });
});

describe("a flow's handover (a control item)", () => {
  test("passed after what was queued before it; what comes after waits for the bot to have the thread again", async () => {
    const { graph, clock, queue, rows, threads, lanes } = await setup({ threads: true });
    await queue("one", { passThread: { targetAppId: PAGE_INBOX_APP_ID, metadata: "refund question" } }, "two");
    await graph.waitFor((c) => c.edge === "pass_thread_control");
    expect(graph.texts()).toEqual(["one"]);
    await eventually(() => lanes.activeLanes === 0, "the lane holding");
    expect(threads!.floor(key)).toBe("handover");
    expect((await rows()).map((r) => r.status)).toEqual(["sent", "sent", "pending"]);
    expect(lanes.waiting(key)).toBe(1);
    await threads!.returned(key, "returned", clock.now() + 5_000);
    await graph.messages(2);
    expect(graph.texts()).toEqual(["one", "two"]);
  });

  test("a handover still queued when the thread left the bot otherwise is dropped as superseded", async () => {
    const { queue, rows, threads, graph, clock } = await setup({ threads: true });
    const held = graph.hold("messages");
    await queue("one", { passThread: { targetAppId: PAGE_INBOX_APP_ID, metadata: null } });
    await graph.messages(1);
    await threads!.handedOver(key, "555000111", null, "taken_by_other", { at: clock.now() }); // a person took the thread
    await eventually(async () => (await rows())[1]!.status === "dropped", "the handover dropped");
    expect(JSON.parse((await rows())[1]!.lastError!).reason).toStartWith("superseded");
    held.release();
    await eventually(async () => (await rows())[0]!.status === "sent", "the message in flight recorded");
    expect(graph.to("pass_thread_control")).toHaveLength(0);
  });
});

describe("restarts and stopping", () => {
  test("a send interrupted by a crash is sent again after the echo grace, unless its echo came", async () => {
    const first = await setup();
    const [one] = await first.queue({ userId: PSID_2, message: { text: "interrupted" } });
    await eventually(async () => (await first.rows())[0]!.status === "sent", "the first send");
    await first.database.client.execute({ sql: "UPDATE outbox SET status = 'sending' WHERE id = ?", args: [one!.id] }); // as if the crash came before the mark
    for (const stop of running.splice(0)) await stop();
    const second = await setup({ on: { database: first.database, clock: first.clock } });
    await second.waitsUntil(second.clock.now() + 5_000);
    expect(second.graph.texts()).toEqual([]);
    await second.clock.advance(5_000);
    await second.graph.messages(1);
    expect(second.warned("resending a message whose send was interrupted")).toBe(true);
  });

  test("the stop ends a delay at once and leaves the item for the next start", async () => {
    const { graph, clock, queue, lanes, rows } = await setup({ extra: "[endpoints.messenger]\ntyping_indicators = false\nmessage_delay_ms = 60000" });
    await queue({ userId: PSID_2, message: { text: "waits for the delay" } });
    await eventually(() => clock.timers.length === 1, "the delay");
    await lanes.stop();
    expect(clock.timers).toEqual([]);
    expect(graph.to("messages")).toHaveLength(0);
    expect((await rows()).map((r) => [r.status, r.attempts])).toEqual([["pending", 0]]);
  });

  test("the stop also ends a wait for an echo", async () => {
    const { graph, clock, queue, lanes, rows } = await setup();
    graph.answer("messages", lost);
    await queue("one", "two");
    await eventually(() => clock.timers.length === 1, "the echo wait");
    await lanes.stop();
    expect(clock.timers).toEqual([]);
    expect(graph.texts()).toEqual(["one"]);
    expect((await rows()).map((r) => r.status)).toEqual(["sending", "pending"]);
  });
});
