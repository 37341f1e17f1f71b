/**
 * Scale-out through the compiled binary (docs/scale-out.md): several processes on one database
 * file behind a load balancer that spreads every user's messages over them, against a fake Graph
 * API in this process (cluster-helpers.ts). In every scenario: each message acknowledged with 200
 * is answered, in each user's order; an outbox item is sent at most twice, and twice only after a
 * kill -9 (at most once per user's lane); no instance sends for a user whose partition another
 * instance took after it.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ClusterRig, answerTo, partitionOfUser, psidOf, textOf, type Phase } from "./cluster-helpers.ts";

const LEASE_SECONDS = 3;
const POLL_MS = 25;
const USERS = 30;
const MESSAGES = 6;

let rig: ClusterRig | null = null;
afterEach(async () => {
  await rig?.close();
  rig = null;
});

function expectClean(r: ClusterRig, phases: Phase[], maxDuplicatesPerLane = 0) {
  expect(r.answerProblems(phases, maxDuplicatesPerLane)).toEqual([]);
  expect(r.fencingProblems()).toEqual([]);
}

describe("several binaries on one database file", () => {
  test("two, then three: every message answered once, in order; the partitions split among them", async () => {
    // The default poll_ms (200): a message stored by the instance that does not run its user waits
    // for the owner to look, while the next one may reach the owner directly; the order holds.
    rig = await ClusterRig.create({ name: "steady", leaseSeconds: LEASE_SECONDS, pollMs: 200, instanceIds: true });
    // Started together: both may find the migrations to apply.
    await Promise.all([rig.startInstance("a"), rig.startInstance("b")]);
    await rig.settled();
    const two: Phase = { tag: "two", users: USERS, messages: MESSAGES };
    await rig.converse(two);
    await rig.waitAnswered([two]);
    expectClean(rig, [two]);
    let held = await rig.heldByMetrics();
    expect([...held.values()].reduce((a, b) => a + b, 0)).toBe(16);
    expect([...held.values()].every((n) => n > 0)).toBe(true);
    // Each instance answered some of the users (the balancer gave each of them messages of all users).
    expect(new Set(rig.sends.map((s) => s.by))).toEqual(new Set(["a", "b"]));

    await rig.startInstance("c");
    await rig.settled();
    const three: Phase = { tag: "three", users: USERS, messages: MESSAGES };
    await rig.converse(three);
    await rig.waitAnswered([three]);
    expectClean(rig, [two, three]);
    held = await rig.heldByMetrics();
    expect([...held.values()].reduce((a, b) => a + b, 0)).toBe(16);
    expect(held.size).toBe(3);
    expect([...held.values()].every((n) => n > 0)).toBe(true);
    expect(rig.balancer.stats).toMatchObject({ notOk: 0, failed: 0 });
    for (const label of ["a", "b", "c"]) expect(await rig.signal(label, "SIGTERM")).toBe(0);
  }, 60_000);

  test("kill -9 of one of two while users write: the survivor takes its users over after the lease; a restart gets its share back", async () => {
    const r = (rig = await ClusterRig.create({ name: "failover", leaseSeconds: LEASE_SECONDS, pollMs: POLL_MS, instanceIds: true }));
    await Promise.all([r.startInstance("a"), r.startInstance("b")]);
    await r.settled();
    // Users waiting for each answer and taking a moment before the next message: a conversation
    // that is still going when "a" dies.
    const before: Phase = { tag: "kill", users: USERS, messages: MESSAGES };
    const writing = r.converse({ ...before, awaitReplies: true, thinkMs: 150 });
    await r.waitForSends(50);
    const holders = await r.holders();
    const killedAt = Date.now();
    await r.signal("a", "SIGKILL");
    const orphans = new Set(Array.from({ length: USERS }, (_, u) => psidOf(u)).filter((psid) => holders[partitionOfUser(psid)] === "a"));
    expect(orphans.size).toBeGreaterThan(0);
    await writing;
    await r.waitAnswered([before]);
    const firstAfter = Math.min(...r.sends.filter((s) => orphans.has(s.recipient) && s.by !== "a" && s.at > killedAt).map((s) => s.at));
    console.log(`failover (lease_seconds = ${LEASE_SECONDS}, kill -9 → first reply to a user of the killed instance): ${firstAfter - killedAt} ms`);
    // Not before the lease ran out: at the earliest a renewal interval (a third) after its last renewal.
    expect(firstAfter - killedAt).toBeGreaterThan(((LEASE_SECONDS * 2) / 3) * 1000 - 100);
    expect(firstAfter - killedAt).toBeLessThan((LEASE_SECONDS + 5) * 1000);
    expectClean(r, [before], 1);
    await r.settled(); // "b" holds everything

    // The killed instance comes back under the same id while users write: it takes its share
    // back, and they write until it has answered some of them.
    const writingAgain = r.converse({
      tag: "back",
      users: USERS,
      messages: 40,
      awaitReplies: true,
      thinkMs: 150,
      until: () => r.sends.filter((s) => s.by === "a2").length >= 20,
    });
    await r.waitForSends(r.sends.length + 30);
    const restarted = await r.startInstance("a2", { instanceId: "a" });
    await restarted.server.waitFor((l) => String(l.msg).startsWith("this instance took partitions "), 15_000);
    const after = await writingAgain;
    await r.waitAnswered([before, after]);
    await r.settled();
    expectClean(r, [before, after], 1);
    // Nothing of the second round was sent twice.
    const secondRound = new Set(r.sends.filter((s) => s.text.includes("back ")).map((s) => s.metadata));
    expect(r.duplicates().filter((d) => secondRound.has(d.metadata))).toEqual([]);
    for (const label of ["a2", "b"]) expect(await r.signal(label, "SIGTERM")).toBe(0);
  }, 60_000);

  test("kill -9 and a restart at once under the same id: it renews its own leases before they run out and carries on", async () => {
    const r = (rig = await ClusterRig.create({ name: "restart", leaseSeconds: LEASE_SECONDS, pollMs: POLL_MS, instanceIds: true }));
    await Promise.all([r.startInstance("a"), r.startInstance("b")]);
    await r.settled();
    const phase: Phase = { tag: "restart", users: USERS, messages: MESSAGES };
    const writing = r.converse({ ...phase, awaitReplies: true, thinkMs: 150 });
    await r.waitForSends(50);
    const holders = await r.holders();
    const killedAt = Date.now();
    await r.signal("a", "SIGKILL");
    await r.startInstance("a2", { instanceId: "a" });
    const listening = Date.now();
    await writing;
    await r.waitAnswered([phase]);
    const orphans = new Set(Array.from({ length: USERS }, (_, u) => psidOf(u)).filter((psid) => holders[partitionOfUser(psid)] === "a"));
    const firstAfter = Math.min(...r.sends.filter((s) => orphans.has(s.recipient) && s.by === "a2").map((s) => s.at));
    console.log(
      `restart under the same id: listening ${listening - killedAt} ms after the kill, first reply to one of its users after ${firstAfter - killedAt} ms`,
    );
    // Its leases had not run out: b took none of them, a2 holds them again at the same epochs.
    expect(r.takes().filter((t) => t.by === "b" && t.at > killedAt)).toEqual([]);
    expect(await r.holders()).toEqual(holders.map((h) => (h === "a" ? "a2" : h)));
    expectClean(r, [phase], 1);
    for (const label of ["a2", "b"]) expect(await r.signal(label, "SIGTERM")).toBe(0);
  }, 60_000);

  test("a third instance joins a running pair while users write: it takes its partitions, nothing lost or doubled", async () => {
    const r = (rig = await ClusterRig.create({ name: "join", leaseSeconds: LEASE_SECONDS, pollMs: POLL_MS, instanceIds: true }));
    await Promise.all([r.startInstance("a"), r.startInstance("b")]);
    await r.settled();
    // Users write until the newcomer has answered some of them.
    const writing = r.converse({
      tag: "join",
      users: USERS,
      messages: 40,
      awaitReplies: true,
      thinkMs: 150,
      until: () => r.sends.filter((s) => s.by === "c").length >= 20,
    });
    await r.waitForSends(30);
    const joined = Date.now();
    const c = await r.startInstance("c");
    // Nothing is free when it joins: it takes what the others give up, over two renewals.
    const took = await c.server.waitFor((l) => String(l.msg).startsWith("this instance took partitions "), 15_000);
    expect(Date.parse(String(took.time)) - joined).toBeLessThan(LEASE_SECONDS * 1000 + 5_000);
    const phase = await writing;
    await r.waitAnswered([phase]);
    await r.settled();
    expectClean(r, [phase]);
    expect(r.duplicates()).toEqual([]);
    for (const label of ["a", "b", "c"]) expect(await r.signal(label, "SIGTERM")).toBe(0);
  }, 60_000);

  test("rolling upgrade: a new instance starts, then the old one gets SIGTERM; no webhook refused, every message answered", async () => {
    // The default instance ids (host:pid), as a supervisor starting new processes gets them.
    const r = (rig = await ClusterRig.create({ name: "rolling", leaseSeconds: LEASE_SECONDS, pollMs: POLL_MS }));
    await r.startInstance("old1");
    await r.startInstance("old2");
    await r.settled();
    let stopped = false;
    const writing = r.converse({
      tag: "roll",
      users: USERS,
      messages: 40,
      awaitReplies: true,
      thinkMs: 150,
      until: () => stopped && r.sends.filter((s) => s.by === "new1").length >= 20,
    });
    await r.waitForSends(30);
    await r.startInstance("new1");
    expect(await r.signal("old1", "SIGTERM")).toBe(0);
    stopped = true;
    const phase = await writing;
    await r.waitAnswered([phase]);
    await r.settled();
    expectClean(r, [phase]);
    expect(r.duplicates()).toEqual([]);
    // The balancer had to try another instance only for connections the stopped one refused; it answered every POST with 200.
    expect(r.balancer.stats).toMatchObject({ notOk: 0, failed: 0 });
    expect(r.userRetries).toBe(0);
    console.log(`rolling upgrade: ${r.balancer.stats.requests} webhook POSTs, ${r.balancer.stats.retried} tries refused and sent to the next instance`);
    for (const label of ["old2", "new1"]) expect(await r.signal(label, "SIGTERM")).toBe(0);
  }, 60_000);

  test("a paused owner (SIGSTOP longer than the lease): the other takes its users over; after SIGCONT it sends nothing for them, its late commit is fenced", async () => {
    // The flow takes 1.5 s over a message saying "slow", and tells this test when it starts (with its pid).
    const startedBy = new Map<number, () => void>();
    const signals = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request) => {
        startedBy.get(Number(new URL(request.url).searchParams.get("pid")))?.();
        return new Response("ok");
      },
    });
    try {
      const flowSource = `export default async (input) => {
  if (String(input.text).includes("slow")) {
    await fetch("http://127.0.0.1:${signals.port}/?pid=" + process.pid).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
  return { outputs: [{ text: "You said: " + input.text }] };
};
`;
      // The balancer gives up on a try after 1 s (the paused instance accepts connections but does not answer).
      const r = (rig = await ClusterRig.create({
        name: "pause",
        leaseSeconds: LEASE_SECONDS,
        pollMs: POLL_MS,
        instanceIds: true,
        flowSource,
        balancerTimeoutMs: 1_000,
      }));
      const a = await r.startInstance("a");
      const slowStartedAtA = new Promise<void>((resolve) => startedBy.set(a.server.proc.pid, resolve));
      await r.startInstance("b");
      await r.settled();
      const first: Phase = { tag: "first", users: USERS, messages: 3 };
      await r.converse(first);
      await r.waitAnswered([first]);

      // One of a's users says "slow": a runs that turn, and is stopped in the middle of it (its lanes idle).
      const holders = await r.holders();
      const ofA = new Set(holders.flatMap((h, p) => (h === "a" ? [p] : [])));
      const slowUser = Array.from({ length: USERS }, (_, u) => u).find((u) => ofA.has(partitionOfUser(psidOf(u))))!;
      const slow: Phase = { tag: "slow", users: slowUser + 1, messages: 1, counts: Array.from({ length: slowUser + 1 }, (_, u) => (u === slowUser ? 1 : 0)) };
      await r.write(psidOf(slowUser), textOf("slow", slowUser, 1), "m_slow");
      await slowStartedAtA;
      const pausedAt = Date.now();
      await r.signal("a", "SIGSTOP");

      // Users go on writing; b takes a's partitions once their leases ran out, and answers a's users.
      const writing = r.converse({ tag: "during", users: USERS, messages: 3, awaitReplies: true, thinkMs: 100 });
      await r.instances
        .get("b")!
        .server.waitFor((l) => String(l.msg).startsWith("this instance took partitions ") && Date.parse(String(l.time)) > pausedAt, 15_000);
      await Bun.sleep(Math.max(0, pausedAt + (LEASE_SECONDS + 1) * 1000 - Date.now())); // paused for longer than the lease
      const resumedAt = Date.now();
      await r.signal("a", "SIGCONT");
      const during = await writing;
      await r.waitAnswered([first, slow, during]);

      // a learns that it lost them, and the turn it had under way is refused by the fence.
      await a.server.waitFor((l) => String(l.msg).includes("lost partitions"), 10_000);
      await a.server.waitFor((l) => String(l.msg).startsWith("a turn was not committed") && l.user === psidOf(slowUser), 10_000);
      await r.settled(); // and then gets its share back
      const retaken = Math.min(
        ...r
          .takes()
          .filter((t) => t.by === "a" && t.at > resumedAt)
          .map((t) => t.at),
      );
      const lateSends = r.sends.filter((s) => s.by === "a" && s.at > pausedAt && s.at < retaken && ofA.has(partitionOfUser(s.recipient)));
      expect(lateSends).toEqual([]);
      // The slow message answered once: by b, or by a once it had taken the partition back.
      expect(r.sends.filter((s) => s.text === answerTo(textOf("slow", slowUser, 1)))).toHaveLength(1);
      expectClean(r, [first, slow, during]);
      expect(r.duplicates()).toEqual([]);
      for (const label of ["a", "b"]) expect(await r.signal(label, "SIGTERM")).toBe(0);
    } finally {
      signals.stop(true);
    }
  }, 60_000);
});
