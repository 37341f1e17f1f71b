/**
 * The write queue with a driver that answers asynchronously, as a remote libSQL server does:
 * writes queued while a commit runs must still be committed (none may hang).
 */
import { describe, expect, test } from "bun:test";
import type { Client, InStatement, ResultSet } from "@libsql/client";
import { WriteQueue } from "../../../src/db/write-queue.ts";

function result(n: number): ResultSet {
  return { columns: [], columnTypes: [], rows: [], rowsAffected: n, lastInsertRowid: undefined, toJSON: () => ({}) };
}

/** Records each commit (execute or batch) and answers after a tick of real time. */
function slowClient(failOn?: (sql: string) => boolean, delayMs = 5) {
  const commits: string[][] = [];
  const answer = async (statements: InStatement[]) => {
    await (delayMs > 0 ? new Promise((r) => setTimeout(r, delayMs)) : Promise.resolve());
    const sqls = statements.map((s) => (typeof s === "string" ? s : s.sql));
    if (failOn && sqls.some(failOn)) throw new Error("constraint failed");
    commits.push(sqls);
    return sqls.map(() => result(1));
  };
  const client = {
    execute: async (s: InStatement) => (await answer([s]))[0],
    batch: async (s: InStatement[]) => answer(s),
  } as unknown as Client;
  return { client, commits };
}

describe("WriteQueue", () => {
  test("groups queued during a slow commit are committed by the next one", async () => {
    const { client, commits } = slowClient();
    const writes = new WriteQueue(client);
    const first = writes.run(["A"]);
    await new Promise((r) => setTimeout(r, 1)); // the first commit is under way
    const later = [writes.run(["B"]), writes.run(["C1", "C2"])];
    const results = await Promise.all([first, ...later]);
    expect(results.map((r) => r.length)).toEqual([1, 1, 2]);
    expect(commits).toEqual([["A"], ["B", "C1", "C2"]]);
  });

  test("a failing group fails alone; the others of its commit are committed", async () => {
    const { client, commits } = slowClient((sql) => sql === "BAD");
    const writes = new WriteQueue(client);
    const settled = await Promise.allSettled([writes.run(["A"]), writes.run(["BAD"]), writes.run(["C"])]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(commits).toEqual([["A"], ["C"]]);
  });

  test("drain waits for every queued group", async () => {
    const { client, commits } = slowClient();
    const writes = new WriteQueue(client);
    void writes.run(["A"]);
    void writes.run(["B"]);
    await writes.drain();
    expect(commits.flat()).toEqual(["A", "B"]);
  });

  test("with a durability step, nothing resolves before it; the next commit does not wait for it", async () => {
    const { client, commits } = slowClient();
    const gates: (() => void)[] = [];
    const writes = new WriteQueue(client, { durable: () => new Promise<void>((resolve) => gates.push(resolve)) });
    let firstDone = false;
    const first = writes.run(["A"]).then(() => (firstDone = true));
    while (gates.length < 1) await new Promise((r) => setTimeout(r, 1)); // A committed, its fsync pending
    const second = writes.run(["B"]);
    while (gates.length < 2) await new Promise((r) => setTimeout(r, 1)); // B committed meanwhile
    expect(commits).toEqual([["A"], ["B"]]);
    expect(firstDone).toBe(false);
    gates[0]!();
    await first;
    gates[1]!();
    await second;
    await writes.drain();
  });

  test("one sync covers every commit made before it starts: a second wait for the same commits asks for none", async () => {
    const { client } = slowClient();
    let syncs = 0;
    const writes = new WriteQueue(client, { durable: async () => void syncs++ });
    await writes.run(["A"], { durable: false });
    await Promise.all([writes.synced(), writes.synced()]);
    expect(syncs).toBe(1);
    await writes.synced(); // nothing committed since: the last sync covers it, or a new one is asked (never fewer)
    expect(syncs).toBeLessThanOrEqual(2);
  });

  test("a lingering group starts its sync after the next commit, and that sync serves the next commit's waiter too", async () => {
    const { client, commits } = slowClient(undefined, 0); // commits well within the 2 ms
    let syncs = 0;
    const writes = new WriteQueue(client, { durable: async () => void syncs++ });
    let turn: Promise<unknown> = Promise.resolve();
    // As the inbox does: the engine gets the event at its commit and commits the turn at once.
    const event = writes.run(["EVENT"], { linger: true, onCommit: () => (turn = writes.run(["TURN"], { durable: false })) });
    while (commits.length < 1) await new Promise((r) => setImmediate(r));
    await turn;
    await Promise.all([event, writes.synced()]); // the reply waits for a sync that covers the turn
    expect(syncs).toBe(1);
    expect(commits).toEqual([["EVENT"], ["TURN"]]);
  });

  test("a lingering group without a next commit syncs after 2 ms", async () => {
    const { client } = slowClient();
    let syncs = 0;
    const writes = new WriteQueue(client, { durable: async () => void syncs++ });
    await writes.run(["EVENT"], { linger: true });
    expect(syncs).toBe(1);
  });

  test("a failed durability step rejects the groups and is reported", async () => {
    const { client } = slowClient();
    const reported: unknown[] = [];
    const writes = new WriteQueue(client, { durable: async () => Promise.reject(new Error("EIO")), onDurabilityFailure: (e) => reported.push(e) });
    const settled = await Promise.allSettled([writes.run(["A"]), writes.run(["B"])]);
    expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected"]);
    expect(reported.length).toBeGreaterThan(0);
    expect(String(reported[0])).toContain("EIO");
  });

  test("a group that needs no fsync of its own resolves at commit; a commit of only such groups syncs nothing", async () => {
    const { client } = slowClient();
    let syncs = 0;
    let open: () => void = () => {};
    const writes = new WriteQueue(client, {
      durable: () => {
        syncs++;
        return new Promise<void>((resolve) => (open = resolve));
      },
    });
    await writes.run(["A"], { durable: false });
    expect(syncs).toBe(0);
    let acknowledged = false;
    const both = [writes.run(["B"]).then(() => (acknowledged = true)), writes.run(["C"], { durable: false })];
    await both[1]; // C resolved at its commit, while B waits for the fsync
    expect(syncs).toBe(1);
    expect(acknowledged).toBe(false);
    open();
    await both[0];
    expect(acknowledged).toBe(true);
  });
});
