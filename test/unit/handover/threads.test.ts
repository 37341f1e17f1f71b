/**
 * The handover state machine (src/handover/threads.ts) on a manual clock, a real database and a
 * scripted Graph API: every transition, its deadline (or that none is armed), staleness and
 * erasure. Time moves only with `clock.advance`; nothing here sleeps.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { inbox as inboxTable, threads as threadsTable } from "../../../src/db/schema.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import { Inbox } from "../../../src/inbox/inbox.ts";
import { PageDirectory } from "../../../src/messenger/pages.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { PAGE_INBOX_APP_ID, Threads, type Floor, type HandoverEvent } from "../../../src/handover/threads.ts";
import type { UserKey } from "../../../src/core/user-key.ts";
import { PAGE_ID, PSID, collectingLogger, configFromToml, settingsToml, tempDir } from "../../helpers/index.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { StubGraph } from "../../helpers/stub-graph.ts";
import { eventually } from "../../helpers/eventually.ts";

const MINUTE = 60_000;
const OTHER_APP = "555000111";
const key: UserKey = { endpointId: "support", pageId: PAGE_ID, userId: PSID };

const root = tempDir("threads");
const databases: Database[] = [];
afterAll(() => {
  for (const d of databases) d.close();
  root.remove();
});
let n = 0;

async function openFile(file = root.join(`db-${++n}.sqlite`)): Promise<{ database: Database; file: string }> {
  const database = await openDatabase(`file:${file}`);
  databases.push(database);
  await applyMigrations(database);
  return { database, file };
}

/** A Threads on its own database (or `on` an earlier one: a restart), with `handover` settings. */
async function setup(handover = "timeout_minutes = 10\npause_minutes = 5", on?: { database: Database; clock: ManualClock }) {
  const config = configFromToml(settingsToml({ extra: `[endpoints.handover]\n${handover}` }), { dir: root.path });
  const database = on?.database ?? (await openFile()).database;
  const clock = on?.clock ?? new ManualClock();
  const writes = new WriteQueue(database.client);
  const logs = collectingLogger();
  const graph = new StubGraph();
  const pages = new PageDirectory(config, database, writes, clock, logs.log);
  const inboxErrors: unknown[] = [];
  const inbox = new Inbox(writes, clock, (error) => inboxErrors.push(error));
  const threads = new Threads({ config, database, writes, graph: graph.client, pages, inbox, clock, timers: clock, log: logs.log, metrics: new Registry() });
  const released: UserKey[] = [];
  const left: UserKey[] = [];
  const changes: Floor[] = [];
  threads.onRelease((k) => released.push(k));
  threads.onLeft((k) => left.push(k));
  threads.onChange((_, floor) => changes.push(floor));
  await threads.load();
  return {
    threads,
    graph,
    clock,
    database,
    pages,
    logs,
    released,
    left,
    changes,
    inboxErrors,
    /** The stored row (null: none). */
    async row() {
      await writes.drain();
      return (await database.db.select().from(threadsTable))[0] ?? null;
    },
    /** The synthesized handover events stored for the flow. */
    async outcomes(): Promise<{ dedupKey: string; timestamp: number; event: HandoverEvent }[]> {
      await writes.drain();
      const rows = await database.db.select().from(inboxTable);
      return rows
        .filter((r) => r.kind === "handover")
        .map((r) => ({ dedupKey: r.dedupKey, timestamp: r.timestamp, event: JSON.parse(r.event) as HandoverEvent }));
    },
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

describe("bot → handover", () => {
  test("our pass: the thread leaves, its timeout is armed, and the lanes hear that it left", async () => {
    const { threads, graph, clock, left, changes, row } = await setup();
    const t0 = clock.now();
    expect(await threads.pass(key, PAGE_INBOX_APP_ID, "refund question")).toBeNull();
    expect(graph.to("pass_thread_control").map((c) => c.body)).toEqual([
      { recipient: { id: PSID }, target_app_id: PAGE_INBOX_APP_ID, metadata: "refund question" },
    ]);
    expect(threads.floor(key)).toBe("handover");
    expect(threads.holds(key)).toBe(true);
    expect(await threads.view(key)).toMatchObject({
      state: "handover",
      owner_app_id: PAGE_INBOX_APP_ID,
      metadata: "refund question",
      since: iso(t0),
      timeout_at: iso(t0 + 10 * MINUTE),
      last_error: null,
    });
    expect(clock.timers).toEqual([t0 + 10 * MINUTE]);
    expect(left).toEqual([key]);
    expect(changes).toEqual(["handover"]);
    expect(await row()).toMatchObject({ state: "handover", ownerAppId: PAGE_INBOX_APP_ID, since: t0 });
    expect(threads.counts().get("support")).toEqual({ handover: 1, paused: 0 });
  });

  test("another app takes the thread (Meta's event): handed over to it; the same event again, or an older one, is stale", async () => {
    const { threads, clock } = await setup();
    const at = clock.now() - 1_000;
    expect(await threads.handedOver(key, OTHER_APP, "mine now", "taken_by_other", { at })).toBe(true);
    expect(threads.current(key)).toMatchObject({ state: "handover", ownerAppId: OTHER_APP, metadata: "mine now", since: at });
    expect(clock.timers).toEqual([at + 10 * MINUTE]);
    expect(await threads.handedOver(key, "777", null, "taken_by_other", { at })).toBe(false);
    expect(await threads.handedOver(key, "777", null, "taken_by_other", { at: at - 1 })).toBe(false);
    expect(threads.current(key)?.ownerAppId).toBe(OTHER_APP);
  });

  test("a standby message while the bot had the thread: handed over to an unknown owner, and no timeout is armed", async () => {
    const { threads, clock } = await setup();
    expect(await threads.userSpoke(key, clock.now(), true)).toBeNull();
    expect(threads.current(key)).toMatchObject({ state: "handover", ownerAppId: null });
    expect(clock.timers).toEqual([]); // whose thread it is we do not know: nothing takes it back
    expect((await threads.view(key)).timeout_at).toBeNull();
  });

  test("a person answering in standby while the bot had the thread: handed over to that person's app, timed from the answer", async () => {
    const { threads, clock } = await setup();
    const at = clock.now();
    await threads.humanReplied(key, at, PAGE_INBOX_APP_ID, true);
    expect(threads.current(key)).toMatchObject({ state: "handover", ownerAppId: PAGE_INBOX_APP_ID, lastHumanAt: at });
    expect(clock.timers).toEqual([at + 10 * MINUTE]);
  });
});

describe("handover → bot", () => {
  test("the owner passes it back (Meta's event): released, the deadline is off, and the state it left is returned", async () => {
    const { threads, clock, released, changes, row } = await setup();
    await threads.pass(key, PAGE_INBOX_APP_ID, "refund question");
    const back = await threads.returned(key, "returned", clock.now() + 5_000);
    expect(back).toMatchObject({ state: "handover", ownerAppId: PAGE_INBOX_APP_ID, metadata: "refund question" });
    expect(threads.floor(key)).toBe("bot");
    expect(released).toEqual([key]);
    expect(changes).toEqual(["handover", "bot"]);
    expect(clock.timers).toEqual([]);
    expect(await row()).toMatchObject({ state: "bot", lastError: null, retryAt: null });
    expect(await threads.returned(key, "returned", clock.now() + 6_000)).toBeNull(); // the bot has it already
  });

  test("a user message in messaging[] while we think another app has the thread: Meta gave it back", async () => {
    const { threads, clock, released } = await setup();
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    expect(await threads.userSpoke(key, clock.now() + 3_000, false)).toMatchObject({ state: "handover" });
    expect(threads.floor(key)).toBe("bot");
    expect(released).toHaveLength(1);
  });

  test("our timeout take: the flow's timeout turn is stored first, then the thread is the bot's", async () => {
    const { threads, graph, clock, released, outcomes } = await setup();
    const t0 = clock.now();
    await threads.pass(key, PAGE_INBOX_APP_ID, "refund question");
    await clock.advance(10 * MINUTE - 1);
    expect(graph.to("take_thread_control")).toHaveLength(0);
    await clock.advance(1);
    await graph.waitFor((c) => c.edge === "take_thread_control");
    await eventually(() => threads.floor(key) === "bot", "the take");
    expect(graph.to("take_thread_control")[0]!.body).toEqual({ recipient: { id: PSID }, metadata: "timeout: no reply from a person" });
    expect(released).toEqual([key]);
    expect(clock.timers).toEqual([]);
    const [stored] = await outcomes();
    expect(stored!.dedupKey).toBe(`handover:timeout:${PAGE_ID}:${PSID}:since:${t0}`);
    expect(stored!.event.handover).toEqual({ status: "timeout", metadata: "refund question", owner_app_id: PAGE_INBOX_APP_ID, since: iso(t0) });
  });

  test("a person's reply starts the timeout again", async () => {
    const { threads, graph, clock } = await setup();
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    await clock.advance(4 * MINUTE);
    const repliedAt = clock.now();
    await threads.humanReplied(key, repliedAt, PAGE_INBOX_APP_ID, true);
    expect(clock.timers).toEqual([repliedAt + 10 * MINUTE]);
    await clock.advance(6 * MINUTE); // the first timeout's time: nothing is taken
    expect(graph.to("take_thread_control")).toHaveLength(0);
    await clock.advance(4 * MINUTE);
    await eventually(() => threads.floor(key) === "bot", "the take");
    expect(graph.to("take_thread_control")).toHaveLength(1);
  });

  test("timeout_minutes = 0: no deadline is armed", async () => {
    const { threads, clock } = await setup("timeout_minutes = 0");
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    expect(clock.timers).toEqual([]);
    expect((await threads.view(key)).timeout_at).toBeNull();
  });

  test("a take that fails for a passing reason is tried again a minute later", async () => {
    const { threads, graph, clock, logs } = await setup();
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    graph.answer("take_thread_control", { code: 2, status: 500, message: "An unexpected error has occurred. Please retry your request later." });
    await clock.advance(10 * MINUTE);
    await eventually(() => threads.current(key)?.lastError != null, "the failed take recorded");
    const failedAt = clock.now();
    expect(threads.current(key)).toMatchObject({ state: "handover", retryAt: failedAt + MINUTE });
    expect(clock.timers).toEqual([failedAt + MINUTE]);
    expect((await threads.view(key)).timeout_at).toBe(iso(failedAt + MINUTE));
    expect(logs.records().some((r) => r.level === "warn" && r.msg.includes("trying again in 60 s"))).toBe(true);
    await clock.advance(MINUTE);
    await eventually(() => threads.floor(key) === "bot", "the second take");
    expect(graph.to("take_thread_control")).toHaveLength(2);
    expect((await threads.view(key)).last_error).toBeNull();
  });

  test("a refused take (a Page on Conversation Routing) is reported and never tried again", async () => {
    const { threads, graph, clock, logs } = await setup();
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    graph.answer("take_thread_control", { code: 100, message: "(#100) Handover Protocol APIs disabled for this page." });
    await clock.advance(10 * MINUTE);
    await eventually(() => threads.current(key)?.lastError != null, "the refused take recorded");
    expect(threads.floor(key)).toBe("handover");
    expect(clock.timers).toEqual([]); // nothing will try again
    expect(await threads.view(key)).toMatchObject({ timeout_at: null, last_error: expect.stringContaining("Handover Protocol APIs disabled for this page.") });
    expect(logs.records().some((r) => r.level === "error" && r.msg.includes("Conversation Routing"))).toBe(true);
    expect(graph.to("take_thread_control")).toHaveLength(1);
  });

  test("a take refused for the token (190) pauses the Page; while it is paused no call is made, and a retry stays armed", async () => {
    const { threads, graph, clock, pages } = await setup();
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    graph.answer("take_thread_control", { code: 190, subcode: 463, message: "Error validating access token: Session has expired" });
    await clock.advance(10 * MINUTE);
    await eventually(() => threads.current(key)?.retryAt != null, "the retry armed");
    expect(pages.isPaused("support", PAGE_ID)).toBe(true);
    expect(clock.timers).toEqual([clock.now() + MINUTE]);
    await clock.advance(MINUTE);
    await eventually(() => threads.current(key)!.retryAt === clock.now() + MINUTE, "the next retry armed");
    expect(graph.to("take_thread_control")).toHaveLength(1);
    expect(threads.current(key)!.lastError).toContain("is paused");
  });

  test("the operator's take failing for a passing reason says to try again and leaves the timeout where it was", async () => {
    const { threads, graph, clock } = await setup();
    const t0 = clock.now();
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    await clock.advance(MINUTE);
    graph.answer("take_thread_control", { code: 2, status: 500 });
    const failure = await threads.take(key, "operator");
    expect(failure).toMatchObject({ status: 502, message: expect.stringContaining("try again") });
    expect(threads.floor(key)).toBe("handover");
    expect(clock.timers).toEqual([t0 + 10 * MINUTE]);
    expect(await threads.take(key, "operator")).toBeNull();
    expect(threads.floor(key)).toBe("bot");
    expect(graph.to("take_thread_control").map((c) => c.body.metadata)).toEqual(["taken back by the operator", "taken back by the operator"]);
  });
});

describe("bot → paused → bot", () => {
  test("a person's answer from another app pauses the bot until the quiet time ends", async () => {
    const { threads, clock, released, row } = await setup();
    const at = clock.now();
    await threads.humanReplied(key, at, PAGE_INBOX_APP_ID, false);
    expect(threads.floor(key)).toBe("paused");
    expect(threads.holds(key)).toBe(true);
    expect(await threads.view(key)).toMatchObject({ state: "paused", last_human_at: iso(at), paused_until: iso(at + 5 * MINUTE) });
    expect(clock.timers).toEqual([at + 5 * MINUTE]);
    // A later answer moves the end of the quiet time.
    await clock.advance(2 * MINUTE);
    await threads.humanReplied(key, clock.now(), PAGE_INBOX_APP_ID, false);
    expect(clock.timers).toEqual([at + 7 * MINUTE]);
    await clock.advance(5 * MINUTE - 1);
    expect(threads.floor(key)).toBe("paused");
    await clock.advance(1);
    await eventually(() => released.length === 1, "the end of the pause");
    expect(threads.floor(key)).toBe("bot");
    expect(clock.timers).toEqual([]);
    expect(await row()).toMatchObject({ state: "bot", pausedUntil: null });
  });

  test("nothing pauses with pause_on_human_reply = false, nor for an answer whose quiet time is over already", async () => {
    const off = await setup("pause_on_human_reply = false");
    await off.threads.humanReplied(key, off.clock.now(), PAGE_INBOX_APP_ID, false);
    expect(off.threads.floor(key)).toBe("bot");
    const old = await setup();
    await old.threads.humanReplied(key, old.clock.now() - 6 * MINUTE, PAGE_INBOX_APP_ID, false);
    expect(old.threads.floor(key)).toBe("bot");
    expect(await old.row()).toBeNull();
  });

  test("the operator pauses and resumes", async () => {
    const { threads, clock, released } = await setup();
    await threads.pause(key, 15);
    expect(threads.floor(key)).toBe("paused");
    expect(clock.timers).toEqual([clock.now() + 15 * MINUTE]);
    expect(await threads.returned(key, "resumed")).toMatchObject({ state: "paused" });
    expect(threads.floor(key)).toBe("bot");
    expect(released).toHaveLength(1);
    expect(clock.timers).toEqual([]);
  });
});

describe("paused → handover, and the operator's take of a paused thread", () => {
  test("another app takes the thread while the bot is paused: handed over, the pause's deadline gives way to the timeout", async () => {
    const { threads, clock, released } = await setup();
    const answered = clock.now();
    await threads.humanReplied(key, answered, PAGE_INBOX_APP_ID, false);
    expect(threads.floor(key)).toBe("paused");
    await clock.advance(MINUTE);
    const takenAt = clock.now();
    expect(await threads.handedOver(key, OTHER_APP, null, "taken_by_other", { at: takenAt })).toBe(true);
    expect(threads.floor(key)).toBe("handover");
    expect(threads.current(key)).toMatchObject({ state: "handover", ownerAppId: OTHER_APP, pausedUntil: null });
    // One deadline: the timeout from the take, not the end of the pause any more.
    expect(clock.timers).toEqual([takenAt + 10 * MINUTE]);
    await clock.advance(5 * MINUTE);
    expect(threads.floor(key)).toBe("handover");
    expect(released).toEqual([]);
  });

  test("a standby message while the bot is paused: another app has the thread (owner unknown), no deadline", async () => {
    const { threads, clock } = await setup();
    await threads.humanReplied(key, clock.now(), PAGE_INBOX_APP_ID, false);
    await clock.advance(MINUTE);
    expect(await threads.userSpoke(key, clock.now(), true)).toBeNull();
    expect(threads.current(key)).toMatchObject({ state: "handover", ownerAppId: null });
    expect(clock.timers).toEqual([]);
  });

  test("the operator's take of a paused thread ends the pause without asking Graph (the bot owns the thread)", async () => {
    const { threads, clock, graph, released } = await setup();
    await threads.humanReplied(key, clock.now(), PAGE_INBOX_APP_ID, false);
    expect(await threads.take(key, "operator")).toBeNull();
    expect(graph.to("take_thread_control")).toEqual([]);
    expect(threads.floor(key)).toBe("bot");
    expect(released).toHaveLength(1);
    expect(clock.timers).toEqual([]);
  });
});

describe("stale events change nothing", () => {
  test("a Done older than the take that followed it", async () => {
    const { threads, clock } = await setup();
    const t = clock.now();
    await threads.handedOver(key, PAGE_INBOX_APP_ID, null, "taken_by_other", { at: t + 20 });
    expect(await threads.returned(key, "returned", t + 10)).toBeNull();
    expect(threads.floor(key)).toBe("handover");
  });

  test("a take older than the Done that gave the thread back", async () => {
    const { threads, clock } = await setup();
    const t = clock.now();
    await threads.handedOver(key, PAGE_INBOX_APP_ID, null, "taken_by_other", { at: t });
    await threads.returned(key, "returned", t + 10);
    expect(await threads.handedOver(key, PAGE_INBOX_APP_ID, null, "taken_by_other", { at: t + 5 })).toBe(false);
    expect(threads.floor(key)).toBe("bot");
  });

  test("a user message stamped before (or within the clocks' skew of) our own pass does not give the thread back", async () => {
    const { threads, clock } = await setup();
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    expect(await threads.userSpoke(key, clock.now() - 500, false)).toBeNull();
    expect(await threads.userSpoke(key, clock.now() + 1_500, false)).toBeNull();
    expect(threads.floor(key)).toBe("handover");
  });

  test("a person's answer stamped before the Done neither pauses the bot nor hands the thread over again", async () => {
    const { threads, clock } = await setup();
    const t = clock.now() - 10_000;
    await threads.handedOver(key, PAGE_INBOX_APP_ID, null, "taken_by_other", { at: t });
    await threads.returned(key, "returned", t + 5_000);
    await threads.humanReplied(key, t + 4_000, PAGE_INBOX_APP_ID, true);
    await threads.humanReplied(key, t + 5_000, PAGE_INBOX_APP_ID, false);
    expect(threads.floor(key)).toBe("bot");
  });

  test("after a restart, events older than the last return are still stale", async () => {
    const first = await setup();
    const t = first.clock.now();
    await first.threads.handedOver(key, PAGE_INBOX_APP_ID, null, "taken_by_other", { at: t });
    await first.threads.returned(key, "returned", t + 10);
    await first.row(); // committed
    first.threads.stop();
    const second = await setup(undefined, { database: first.database, clock: first.clock });
    expect(await second.threads.handedOver(key, PAGE_INBOX_APP_ID, null, "taken_by_other", { at: t + 5 })).toBe(false);
    expect(second.threads.floor(key)).toBe("bot");
  });
});

describe("restarts", () => {
  test("the open threads are loaded and their deadlines armed again; one that passed while the server was down fires at once", async () => {
    const first = await setup();
    const t0 = first.clock.now();
    await first.threads.pass(key, PAGE_INBOX_APP_ID, "refund question");
    await first.row();
    first.threads.stop();
    expect(first.clock.timers).toEqual([]);
    await first.clock.advance(30 * MINUTE); // down
    const second = await setup(undefined, { database: first.database, clock: first.clock });
    expect(second.threads.current(key)).toMatchObject({ state: "handover", ownerAppId: PAGE_INBOX_APP_ID, since: t0 });
    expect(second.clock.timers).toEqual([second.clock.now()]);
    await second.clock.advance(0);
    await eventually(() => second.threads.floor(key) === "bot", "the take after the restart");
    expect(second.graph.to("take_thread_control")).toHaveLength(1);
  });
});

describe("a flow's pass that failed for good", () => {
  test("the flow is told once (status error); while another app has the thread, nothing is told", async () => {
    const { threads, clock, outcomes } = await setup();
    const refused = new Error("(#100) Invalid app id");
    await threads.passFailed(key, OTHER_APP, "to another app", refused);
    const [told] = await outcomes();
    expect(told!.event.handover).toEqual({
      status: "error",
      metadata: "to another app",
      owner_app_id: OTHER_APP,
      since: null,
      error: { message: "(#100) Invalid app id" },
    });
    expect(told!.dedupKey).toBe(`handover:error:${PAGE_ID}:${PSID}:at:${clock.now()}`);
    expect((await threads.view(key)).last_error).toBe("pass_thread_control: (#100) Invalid app id");
    await threads.handedOver(key, PAGE_INBOX_APP_ID, null, "taken_by_other", { at: clock.now() });
    await clock.advance(1);
    await threads.passFailed(key, OTHER_APP, null, refused);
    expect(await outcomes()).toHaveLength(1);
  });
});

describe("erasure during a transition", () => {
  test("erased while our pass is under way: the thread is not written back", async () => {
    const { threads, graph, clock, database, row } = await setup();
    const held = graph.hold("pass_thread_control");
    const passing = threads.pass(key, PAGE_INBOX_APP_ID, null);
    await graph.waitFor((c) => c.edge === "pass_thread_control");
    await database.client.execute("DELETE FROM threads");
    threads.forgetUser(key);
    held.release();
    expect(await passing).toBeNull();
    expect(threads.floor(key)).toBe("bot");
    expect(await row()).toBeNull();
    expect(clock.timers).toEqual([]);
  });

  test("erased while the timeout's take is under way: no state, no timeout turn", async () => {
    const { threads, graph, clock, database, row, outcomes } = await setup();
    await threads.pass(key, PAGE_INBOX_APP_ID, null);
    await row();
    const held = graph.hold("take_thread_control");
    await clock.advance(10 * MINUTE);
    await graph.waitFor((c) => c.edge === "take_thread_control");
    await database.client.execute("DELETE FROM threads");
    threads.forgetUser(key);
    expect(clock.timers).toEqual([]);
    held.release();
    await clock.settle();
    expect(threads.floor(key)).toBe("bot");
    expect(await row()).toBeNull();
    expect(await outcomes()).toEqual([]);
  });
});
