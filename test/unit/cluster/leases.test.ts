/**
 * cluster/leases.ts on one database and a manual clock: instances share the partitions, take over
 * from one that left or died, give partitions to one that joins, and the fence (migration 0007)
 * refuses the writes of an instance that lost its lease.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { Leases } from "../../../src/cluster/leases.ts";
import { isFenced } from "../../../src/cluster/ownership.ts";
import { partitionOf } from "../../../src/cluster/partitions.ts";
import type { ClusterSettings } from "../../../src/config/schema.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { collectingLogger } from "../../helpers/log.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { scratchDatabase } from "../nlu/support.ts";

const dir = tempDir("leases");
let db: Awaited<ReturnType<typeof scratchDatabase>>;
let clock: ManualClock;
const running: Leases[] = [];

beforeAll(async () => {
  db = await scratchDatabase(dir.path);
});
afterAll(async () => {
  await db.close();
  dir.remove();
});
afterEach(async () => {
  for (const l of running.splice(0)) await l.stop().catch(() => {});
  await db.writes.run([{ sql: "DELETE FROM cluster_leases" }, { sql: "DELETE FROM cluster_members" }]);
});

function instance(id: string, settings: Partial<ClusterSettings> = {}): Leases {
  const leases = new Leases({
    settings: { enabled: true, partitions: 16, lease_seconds: 15, poll_ms: 200, instance_id: id, ...settings },
    about: JSON.stringify({ id }),
    database: db.database,
    writes: db.writes,
    clock,
    timers: clock,
    log: collectingLogger().log,
    metrics: new Registry(),
  });
  running.push(leases);
  return leases;
}

/** Every instance renews once, in turn (what their timers do every lease_seconds / 3). */
async function round(...all: Leases[]) {
  for (const l of all) await l.tick();
}

const user = (n: number) => ({ endpointId: "support", pageId: "1001", userId: String(7000 + n) });

describe("sharing the partitions", () => {
  test("one instance takes all 16 at start", async () => {
    clock = new ManualClock();
    const a = instance("a");
    await a.start();
    expect(a.held()).toHaveLength(16);
    expect(a.owns(user(1))).toBe(true);
  });

  test("a second instance joins: within two renewals each holds its share, every partition exactly once", async () => {
    clock = new ManualClock();
    const a = instance("a");
    await a.start();
    const b = instance("b");
    await b.start(); // a holds them all: b takes nothing yet
    expect(b.held()).toEqual([]);
    await round(a); // a gives up b's share (no new work for those users here) …
    const givenUp = 16 - a.held().length;
    expect(givenUp).toBeGreaterThan(0);
    await round(a, b); // … releases them, and b takes them
    expect(b.held()).toHaveLength(givenUp);
    expect([...a.held(), ...b.held()].sort((x, y) => x - y)).toEqual([...Array(16).keys()]);
    for (let n = 0; n < 50; n++) expect(Number(a.owns(user(n))) + Number(b.owns(user(n)))).toBe(1);
  });

  test("an instance that stops releases its partitions: the other takes them at its next renewal, without waiting for the lease", async () => {
    clock = new ManualClock();
    const a = instance("a");
    const b = instance("b");
    await a.start();
    await b.start();
    await round(a, b, a, b);
    await b.stop();
    await clock.advance(1_000);
    await round(a);
    expect(a.held()).toHaveLength(16);
  });

  test("an instance that dies: its partitions wait out the lease, then the survivor takes them with a new epoch; the dead one's writes are fenced", async () => {
    clock = new ManualClock();
    const a = instance("a");
    const b = instance("b");
    await a.start();
    await b.start();
    await round(a, b, a, b);
    const bUser = [...Array(200).keys()].map(user).find((u) => b.owns(u))!;
    const staleFence = b.fence(bUser);
    // b stops renewing (killed). Before its lease runs out, a does not take its partitions.
    await clock.advance(10_000);
    await round(a);
    expect(a.owns(bUser)).toBe(false);
    await clock.advance(6_000); // 16 s after b's last renewal: expired
    await round(a);
    expect(a.held()).toHaveLength(16);
    expect(a.owns(bUser)).toBe(true);
    // b's commit carrying its old epoch is refused; a's passes.
    const refused = await db.writes.run([staleFence]).catch((error) => error);
    expect(isFenced(refused)).toBe(true);
    await db.writes.run([a.fence(bUser)]);
    const [rows] = await db.writes.run([{ sql: "SELECT count(*) AS n FROM cluster_fence" }]);
    expect(Number(rows!.rows[0]!.n)).toBe(0); // the fence never stores a row
  });

  test("three instances: each user is owned by exactly one, and the leases table agrees", async () => {
    clock = new ManualClock();
    const all = [instance("a"), instance("b"), instance("c")];
    for (const l of all) await l.start();
    for (let i = 0; i < 3; i++) await round(...all);
    for (let n = 0; n < 100; n++) expect(all.filter((l) => l.owns(user(n)))).toHaveLength(1);
    const view = await all[0]!.view();
    for (const lease of view.leases) {
      const holder = all.find((l) => l.instanceId === lease.owner)!;
      expect(holder.held()).toContain(lease.partition);
    }
    expect(view.members.map((m) => m.instance_id)).toEqual(["a", "b", "c"]);
  });
});

describe("the fence", () => {
  test("refuses a turn's commit for an event already finished, and a send mark for an item already sent", async () => {
    clock = new ManualClock();
    const a = instance("a");
    await a.start();
    const u = user(1);
    const [inserted] = await db.writes.run([
      {
        sql: "INSERT INTO inbox (endpoint_id, page_id, user_id, kind, dedup_key, timestamp, received_at, event, status) VALUES (?, ?, ?, 'message', ?, 1, 1, '{}', 'done') RETURNING id",
        args: [u.endpointId, u.pageId, u.userId, `fence-${Date.now()}`],
      },
    ]);
    const inboxId = Number(inserted!.rows[0]!.id);
    expect(isFenced(await db.writes.run([a.fence(u, { inboxId })]).catch((e) => e))).toBe(true);
    await db.writes.run([{ sql: "UPDATE inbox SET status = 'pending' WHERE id = ?", args: [inboxId] }]);
    await db.writes.run([a.fence(u, { inboxId })]); // pending: passes
  });

  test("a user of a partition this instance does not hold is refused", async () => {
    clock = new ManualClock();
    const a = instance("a", { partitions: 16 });
    await a.start();
    const b = instance("b");
    await b.start();
    await round(a, a, b);
    const notA = [...Array(200).keys()].map(user).find((u) => !a.owns(u))!;
    expect(isFenced(await db.writes.run([a.fence(notA)]).catch((e) => e))).toBe(true);
    expect(partitionOf(notA, 16)).toBeGreaterThanOrEqual(0);
  });
});

describe("settings every instance must share", () => {
  test("a different number of partitions is refused while another instance runs, with what to do", async () => {
    clock = new ManualClock();
    const a = instance("a", { partitions: 16 });
    await a.start();
    const b = instance("b", { partitions: 8 });
    await expect(b.start()).rejects.toThrow("[cluster] partitions = 8, but the instances running on this database (a) use 16");
  });
});

describe("a lapse", () => {
  test("when renewals stop succeeding, the instance lets its users go once its lease may have expired, and takes them back when it renews", async () => {
    clock = new ManualClock();
    const a = instance("a");
    const lost: number[] = [];
    const gained: number[] = [];
    a.onLost((test) => lost.push([...Array(100).keys()].filter((n) => test(user(n))).length));
    a.onGained((test) => gained.push([...Array(100).keys()].filter((n) => test(user(n))).length));
    await a.start();
    // No renewal for longer than the lease minus the margin: the lapse timer lets go.
    await clock.advance(14_000);
    expect(a.held()).toEqual([]);
    expect(lost).toEqual([100]);
    await a.tick(); // nobody took them: they are its again, and the listeners hear it
    expect(a.held()).toHaveLength(16);
    expect(gained.at(-1)).toBe(100);
  });
});
