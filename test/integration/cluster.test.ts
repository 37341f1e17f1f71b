/**
 * Scale-out in process (docs/scale-out.md): two apps on one database file, each with its own
 * connection, leases and lanes, behind a "load balancer" that spreads each user's messages over
 * both. Every message is answered once, in each user's order; an instance that stops hands its
 * users over; rows of endpoints an instance does not serve are left alone.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { KEY, api } from "../helpers/admin.ts";
import { PAGE_ID } from "../helpers/config.ts";
import { libsqlTarget } from "../helpers/libsql-target.ts";
import { partitionOf, preferredOwner } from "../../src/cluster/partitions.ts";
import type { Database } from "../../src/db/client.ts";
import { messageTexts, rows, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";
import { countingFlow } from "../helpers/counting-flow.ts";
import { ManualClock } from "../helpers/manual-clock.ts";

const CLUSTER = `
[cluster]
enabled = true
lease_seconds = 3
poll_ms = 20
`;

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close({ keepGraph: false }).catch(() => {});
});

async function cluster(n: number, extra = "", storage?: { url: string; authToken?: string }): Promise<Conversation[]> {
  const first = await startConversation({ extra: `${CLUSTER}\ninstance_id = "i0"\n${extra}`, storage });
  const all = [first];
  for (let i = 1; i < n; i++)
    all.push(await startConversation({ dir: first.dir, graph: first.graph, storage, extra: `${CLUSTER}\ninstance_id = "i${i}"\n${extra}` }));
  // Closing: the others first, keeping the folder and the fake Graph API for the first.
  open.push(...all);
  for (const c of all.slice(1)) {
    const close = c.close.bind(c);
    c.close = () => close({ keepDir: true, keepGraph: true });
  }
  // Every partition held by someone, and by one instance only.
  await until(async () => (await rows(first, "SELECT count(*) AS n FROM cluster_leases WHERE expires_at > 0"))[0]!.n === 16, 10_000);
  await until(() => all.every((c) => c.app.leases!.held().length > 0) && all.reduce((sum, c) => sum + c.app.leases!.held().length, 0) === 16, 10_000);
  return all;
}

const psid = (u: number) => String(6301234567000000 + u);

/** Each user's messages one after the other (each POST waits for its 200), message i to instance i % n. */
async function converse(all: Conversation[], users: number, messages: number, tag: string) {
  await Promise.all(
    Array.from({ length: users }, async (_, u) => {
      for (let m = 1; m <= messages; m++) {
        const target = all[(u + m) % all.length]!;
        expect(await target.post([userText(`${tag} ${m}`, { psid: psid(u), timestamp: Date.now() })])).toBe(200);
      }
    }),
  );
}

function expectAnswered(c: Conversation, users: number, messages: number, tag: string) {
  for (let u = 0; u < users; u++) {
    const texts = messageTexts(c.graph.sends({ recipientId: psid(u) })).filter((t) => t.includes(tag));
    expect(texts).toEqual(Array.from({ length: messages }, (_, i) => `You said: ${tag} ${i + 1}`));
  }
}

describe("two instances on one database file", () => {
  test("every user's messages, spread over both, are answered once and in order", async () => {
    const all = await cluster(2);
    expect(all[0]!.app.leases!.held().length).toBeGreaterThan(0);
    expect(all[1]!.app.leases!.held().length).toBeGreaterThan(0);
    await converse(all, 20, 5, "hello");
    await until(() => all[0]!.graph.sends().length >= 100, 15_000);
    expectAnswered(all[0]!, 20, 5, "hello");
    // Each user's turns ran on one instance only: its transcript holds each input once.
    const inputs = await rows(all[0]!, "SELECT count(*) AS n FROM inbox WHERE kind = 'message' AND status = 'done'");
    expect(inputs[0]!.n).toBe(100);
  });

  test("an instance that stops hands its users over: their next messages are answered by the other", async () => {
    const all = await cluster(2);
    await converse(all, 10, 2, "before");
    await until(() => all[0]!.graph.sends().length >= 20, 15_000);
    await all[1]!.close();
    await until(() => all[0]!.app.leases!.held().length === 16, 10_000);
    await converse([all[0]!], 10, 2, "after");
    await until(() => all[0]!.graph.sends().length >= 40, 15_000);
    expectAnswered(all[0]!, 10, 2, "after");
  });

  test("messages stored by the instance that does not run the user reach its owner (the delay is in /metrics)", async () => {
    const all = await cluster(2);
    const [a, b] = all as [Conversation, Conversation];
    const u = Array.from({ length: 50 }, (_, i) => i).find((i) => a.app.leases!.owns({ endpointId: "support", pageId: PAGE_ID, userId: psid(i) }))!;
    expect(await b.post([userText("via b", { psid: psid(u) })])).toBe(200);
    await a.graph.waitForSends(1, { recipientId: psid(u) });
    expect(messageTexts(a.graph.sends({ recipientId: psid(u) }))).toEqual(["You said: via b"]);
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toMatch(/messenger_cluster_pickup_seconds_count(\{[^}]*\})? [1-9]/);
  });
});

describe("two instances on a libSQL server (the stand-in of test/helpers/hrana-server.ts, or LIBSQL_TEST_URL)", () => {
  test("every user's messages, spread over both, are answered once and in order; a stop hands the users over", async () => {
    const target = await libsqlTarget();
    try {
      const all = await cluster(2, "", { url: target.url, authToken: target.authToken });
      await converse(all, 10, 4, "remote");
      await until(() => all[0]!.graph.sends().length >= 40, 20_000);
      expectAnswered(all[0]!, 10, 4, "remote");
      await all[1]!.close();
      await until(() => all[0]!.app.leases!.held().length === 16, 10_000);
      await converse([all[0]!], 10, 1, "alone");
      await until(() => all[0]!.graph.sends().length >= 50, 20_000);
      expectAnswered(all[0]!, 10, 1, "alone");
    } finally {
      for (const c of open.splice(0).reverse()) await c.close().catch(() => {});
      await target.close();
    }
  });
});

describe("the admin API on any instance", () => {
  const ADMIN = `[admin]\napi_keys = ["${KEY}"]`;
  /** A user of the instance `owner` runs. */
  const ownedBy = (owner: Conversation) =>
    psid(Array.from({ length: 200 }, (_, i) => i).find((i) => owner.app.leases!.owns({ endpointId: "support", pageId: PAGE_ID, userId: psid(i) }))!);

  test("GET /api/cluster on any instance: the live instances, every lease, the partitions this one runs", async () => {
    const [a, b] = (await cluster(2, ADMIN)) as [Conversation, Conversation];
    const answer = await api(b, "GET", "/api/cluster");
    expect(answer.status).toBe(200);
    expect(answer.body.enabled).toBe(true);
    expect(answer.body.instance).toBe("i1");
    expect(answer.body.members.map((m: { instance_id: string; alive: boolean }) => [m.instance_id, m.alive])).toEqual([
      ["i0", true],
      ["i1", true],
    ]);
    expect(answer.body.leases).toHaveLength(16);
    expect(answer.body.held).toEqual(b.app.leases!.held());
    for (const lease of answer.body.leases) expect(lease.owner).toBe(a.app.leases!.held().includes(lease.partition) ? "i0" : "i1");
    expect((await api(b, "GET", "/api/cluster", { key: null })).status).toBe(401);
  });

  test("inject and notify sent to the other instance are run and sent by the owner", async () => {
    const [a, b] = (await cluster(2, ADMIN)) as [Conversation, Conversation];
    const user = ownedBy(a);
    expect(await a.post([userText("hi", { psid: user })])).toBe(200); // the admin API injects only to users it knows
    await a.graph.waitForSends(1, { recipientId: user });
    expect((await api(b, "POST", "/api/endpoints/support/inject", { body: { user_id: user, text: "injected" } })).status).toBe(202);
    await a.graph.waitForSends(2, { recipientId: user });
    expect((await api(b, "POST", "/api/endpoints/support/notify", { body: { user_id: user, text: "a notice" } })).status).toBe(202);
    await a.graph.waitForSends(3, { recipientId: user });
    expect(messageTexts(a.graph.sends({ recipientId: user }))).toEqual(["You said: hi", "You said: injected", "a notice"]);
  });

  test("a thread passed and taken back through the other instance: the owner holds the user meanwhile, and answers again after", async () => {
    const [a, b] = (await cluster(2, ADMIN)) as [Conversation, Conversation];
    const user = ownedBy(a);
    const key = { endpointId: "support", pageId: PAGE_ID, userId: user };
    expect(await a.post([userText("hi", { psid: user })])).toBe(200);
    await a.graph.waitForSends(1, { recipientId: user });
    const passed = await api(b, "POST", `/api/endpoints/support/users/${user}/thread`, { body: { action: "pass" } });
    expect(passed.status).toBe(200);
    expect(passed.body.state).toBe("handover");
    await until(() => a.app.threads.floor(key) === "handover");
    expect(b.app.threads.floor(key)).toBe("bot"); // b does not run the user: it keeps nothing of them
    const taken = await api(b, "POST", `/api/endpoints/support/users/${user}/thread`, { body: { action: "take" } });
    expect(taken.status).toBe(200);
    await until(() => a.app.threads.floor(key) === "bot");
    expect(await a.post([userText("back", { psid: user })])).toBe(200);
    await until(() => messageTexts(a.graph.sends({ recipientId: user })).includes("You said: back"));
  });

  test("an erasure run by the other instance reaches the owner: it forgets the person's session (a cached one would come back with the next turn)", async () => {
    const [a, b] = (await cluster(2, ADMIN)) as [Conversation, Conversation];
    const user = ownedBy(a);
    expect(await a.post([userText("remember me", { psid: user })])).toBe(200);
    await a.graph.waitForSends(1, { recipientId: user });
    const [before] = await rows(a, "SELECT id FROM sessions WHERE user_id = ?", [user]);
    expect((await api(b, "DELETE", `/api/endpoints/support/users/${user}`)).status).toBe(200);
    // The owner took the notice up (and marked it done).
    await until(async () => (await rows(a, "SELECT count(*) AS n FROM inbox WHERE kind = 'erased' AND status = 'done'"))[0]!.n === 1);
    expect(await a.post([userText("who am I", { psid: user })])).toBe(200);
    await a.graph.waitForSends(2, { recipientId: user });
    const after = await rows(a, "SELECT id FROM sessions WHERE user_id = ?", [user]);
    expect(after).toHaveLength(1);
    expect(after[0]!.id).not.toBe(before!.id);
  });
});

/** The fsync that makes a commit durable takes 150 ms: what this instance stores is in the table well before the inbox (or the admin API) reports it. */
const slowFsync = (database: Database): Database => ({
  ...database,
  durable: async () => {
    await database.durable?.();
    await Bun.sleep(150);
  },
});

describe("work this instance stored, found by its own poller first", () => {
  test("an event the poller took up before the inbox reported it runs once", async () => {
    const counting = countingFlow();
    const c = await startConversation({ extra: `${CLUSTER}\ninstance_id = "i0"\n`, flows: counting.flows, wrapDatabase: slowFsync });
    open.push(c);
    await until(() => c.app.leases!.held().length === 16, 10_000);
    // One user's messages one after the other: each is committed, found by the poller (every 20
    // ms) and answered while its fsync runs, and then reported by the inbox.
    for (let m = 1; m <= 5; m++) expect(await c.post([userText(`fsync ${m}`, { psid: psid(0), timestamp: Date.now() + m })])).toBe(200);
    expect(await c.post([userText("last", { psid: psid(0), timestamp: Date.now() + 10 })])).toBe(200);
    // The lane runs in timestamp order: once "last" is answered, whatever was queued before it has run.
    await until(() => messageTexts(c.graph.sends()).includes("re: last"), 10_000);
    expect(Array.from({ length: 5 }, (_, i) => counting.calls.get(`fsync ${i + 1}`))).toEqual([1, 1, 1, 1, 1]);
    expect(c.logs.records().filter((r) => String(r.msg).startsWith("a turn was not committed"))).toEqual([]);
    expect(messageTexts(c.graph.sends())).toEqual(["re: fsync 1", "re: fsync 2", "re: fsync 3", "re: fsync 4", "re: fsync 5", "re: last"]);
  });

  test("a notify the poller took up before the admin API reported it is sent once, without a second try", async () => {
    const c = await startConversation({
      extra: `${CLUSTER}\ninstance_id = "i0"\n[admin]\napi_keys = ["${KEY}"]\n`,
      messenger: { typing: true },
      wrapDatabase: slowFsync,
    });
    open.push(c);
    await until(() => c.app.leases!.held().length === 16, 10_000);
    expect(await c.post([userText("hello", { psid: psid(0) })])).toBe(200);
    await until(() => c.sends(psid(0)).length >= 2, 10_000); // typing, "You said: hello"
    for (let n = 1; n <= 3; n++) {
      expect((await api(c, "POST", "/api/endpoints/support/notify", { body: { user_id: psid(0), text: `notice ${n}` } })).status).toBe(202);
    }
    expect(await c.post([userText("again", { psid: psid(0) })])).toBe(200);
    await until(() => messageTexts(c.sends(psid(0))).includes("You said: again"), 10_000);
    // Each notice sent once, after one typing indicator; no item taken up twice.
    expect(messageTexts(c.sends(psid(0)))).toEqual(["You said: hello", "notice 1", "notice 2", "notice 3", "You said: again"]);
    expect(c.sends(psid(0)).filter((s) => s.type === "action").length).toBe(5);
    expect(c.logs.records().filter((r) => String(r.msg).startsWith("a send was not started"))).toEqual([]);
  });
});

describe("a partition given up while a reply waits out its typing delay", () => {
  test("the reply is not marked as being sent: when the partition comes back it is sent at once, without waiting for an echo", async () => {
    // Time moves by hand: the renewals (every second), the typing delay and the echo wait.
    const clock = new ManualClock(Date.now());
    const c = await startConversation({
      extra: `${CLUSTER}\ninstance_id = "i0"\n`,
      messenger: { typing: true, delayMs: 1_500 },
      lanes: { echoGraceMs: 1_000 },
      clock,
      timers: clock,
    });
    open.push(c);
    const owns = (key: { endpointId: string; pageId: string; userId: string }) => c.app.leases!.owns(key);
    // A user whose partition an instance "i1" would be preferred for.
    const u = Array.from({ length: 100 }, (_, i) => i).find(
      (i) => preferredOwner(partitionOf({ endpointId: "support", pageId: PAGE_ID, userId: psid(i) }, 16), ["i0", "i1"]) === "i1",
    )!;
    const key = { endpointId: "support", pageId: PAGE_ID, userId: psid(u) };
    expect(owns(key)).toBe(true);
    expect(await c.post([userText("moving", { psid: psid(u) })])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: psid(u) }); // typing_on: the delay runs
    // "i1" joins (its row only): at the next renewal i0 gives the partition up (its lease still held, for one more renewal).
    await c.app.writes.run([
      { sql: "INSERT INTO cluster_members (instance_id, started_at, expires_at, about) VALUES ('i1', 0, ?, '{}')", args: [clock.now() + 600_000] },
    ]);
    await clock.advance(1_000);
    await until(() => !owns(key), 5_000);
    // The delay ends now, while the lease is still i0's but the user is not.
    await clock.advance(500);
    await clock.advance(250);
    // "i1" is gone again: i0 releases the partition at the next renewal and takes it back.
    await c.app.writes.run([{ sql: "DELETE FROM cluster_members WHERE instance_id = 'i1'" }]);
    await clock.advance(1_000);
    await until(() => owns(key), 5_000);
    // Its typing delay once more (and an echo wait, if it had been marked), then the send.
    for (let i = 0; i < 20 && messageTexts(c.sends(psid(u))).length === 0; i++) {
      await c.app.writes.drain();
      await clock.advance(250);
    }
    await until(() => messageTexts(c.sends(psid(u))).length === 1, 5_000);
    expect(c.logs.records().filter((r) => String(r.msg).startsWith("resending a message whose send was interrupted"))).toEqual([]);
    expect((await rows(c, "SELECT attempts FROM outbox WHERE user_id = ?", [psid(u)])).map((r) => r.attempts)).toEqual([1]);
  });
});

describe("one instance", () => {
  test("rows of an endpoint it does not serve stay as they are (another instance's work)", async () => {
    const c = await startConversation();
    open.push(c);
    await c.app.writes.run([
      {
        sql: "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) VALUES ('sales', ?, '6301', 'message', 'm_other', 1, 1, '{}', 'pending')",
        args: [PAGE_ID],
      },
      {
        sql: "INSERT INTO outbox (endpoint_id, page_id, user_id, source, kind, body, status, created_at) VALUES ('sales', ?, '6301', 'flow', 'message', '{}', 'pending', 1)",
        args: [PAGE_ID],
      },
    ]);
    // A restart reads both tables: the rows of "sales" are not this instance's to finish.
    const again = await startConversation({ dir: c.dir, graph: c.graph });
    await c.close({ keepDir: true, keepGraph: true });
    open.splice(open.indexOf(c), 1, again);
    expect(await again.post([userText("hello")])).toBe(200);
    await again.graph.waitForSends(1);
    expect((await rows(again, "SELECT status FROM inbox WHERE endpoint_id = 'sales'")).map((r) => r.status)).toEqual(["pending"]);
    expect((await rows(again, "SELECT status FROM outbox WHERE endpoint_id = 'sales'")).map((r) => r.status)).toEqual(["pending"]);
  });
});
