/**
 * The storage health check: a storage failure pauses processing until a probe write succeeds;
 * the probes back off. Time moves with a manual clock (no real sleeps).
 */
import { describe, expect, test } from "bun:test";
import type { Clock } from "../../../src/core/clock.ts";
import { StorageHealth, isStorageError } from "../../../src/db/health.ts";
import { collectingLogger } from "../../helpers/log.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";

const full = () => Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });

/** A health check with probes every 10, 20, 40, 40 ... ms on a manual clock (or on `clock` for the time only). */
function health(probe: () => Promise<unknown>, options: { clock?: Clock } = {}) {
  const timers = new ManualClock();
  const logs = collectingLogger();
  const delays = { minDelayMs: 10, maxDelayMs: 40, logEveryMs: 60_000 };
  const h = new StorageHealth({ clock: options.clock ?? timers, timers, log: logs.log, probe, advice: "free space on the disk", ...delays });
  return { h, logs, timers };
}

/** A probe that fails as a full disk does (the write queue reports its failure too) while `works()` is false. */
function probeWhile(works: () => boolean, onProbe: () => void = () => {}) {
  let h: StorageHealth;
  const probe = async () => {
    onProbe();
    if (!works()) {
      h.failed(full());
      throw full();
    }
  };
  return { probe, attach: (health: StorageHealth) => (h = health) };
}

describe("isStorageError", () => {
  test("the storage's failures, not the statement's", () => {
    for (const code of [
      "SQLITE_FULL",
      "SQLITE_IOERR",
      "SQLITE_IOERR_WRITE",
      "SQLITE_READONLY",
      "SQLITE_BUSY",
      "SQLITE_CANTOPEN",
      "SERVER_ERROR",
      "ECONNREFUSED",
    ]) {
      expect({ code, storage: isStorageError({ code }) }).toEqual({ code, storage: true });
    }
    for (const code of ["SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_UNIQUE", "SQLITE_ERROR", "SQLITE_MISMATCH", "CLIENT_CLOSED", undefined, 13]) {
      expect({ code, storage: isStorageError({ code }) }).toEqual({ code, storage: false });
    }
    expect(isStorageError(new Error("the database is closed"))).toBe(false);
    expect(isStorageError(null)).toBe(false);
  });
});

describe("StorageHealth", () => {
  test("a storage failure pauses until a probe write succeeds; one line each way", async () => {
    let probeWorks = false;
    let probes = 0;
    const p = probeWhile(
      () => probeWorks,
      () => probes++,
    );
    const { h, logs, timers } = health(p.probe);
    p.attach(h);
    expect(h.healthy).toBe(true);
    expect(h.failed(full())).toBe(true);
    expect(h.healthy).toBe(false);
    expect(h.problem()).toContain("SQLITE_FULL");
    expect(h.problem()).toContain("free space on the disk");
    let resumed: boolean | undefined;
    void h.waitHealthy().then((healthy) => (resumed = healthy));
    await timers.advance(10 + 20 + 40);
    expect(probes).toBe(3);
    expect(resumed).toBeUndefined(); // still paused: only a probe that works resumes
    for (let i = 0; i < 100; i++) h.failed(full());
    expect(timers.timers).toHaveLength(1); // failures meanwhile arm no probe of their own
    probeWorks = true;
    await timers.advance(40);
    expect(resumed).toBe(true);
    expect(h.healthy).toBe(true);
    expect(h.problem()).toBeNull();
    expect(timers.timers).toEqual([]); // no more probes
    const lines = logs.records().filter((r) => r.level !== "debug");
    expect(lines.map((r) => r.level)).toEqual(["error", "info"]);
    expect(lines[0]!.msg).toContain("Processing is paused");
    expect(lines[1]!.msg).toStartWith("writes to the database work again");
  });

  test("the probes back off: 10, 20, 40, 40 ms ...", async () => {
    const at: number[] = [];
    let start = 0;
    const p = probeWhile(
      () => false,
      () => at.push(timers.now() - start),
    );
    const { h, timers } = health(p.probe);
    p.attach(h);
    start = timers.now();
    h.failed(full());
    expect(timers.timers).toEqual([start + 10]);
    await timers.advance(150);
    expect(at).toEqual([10, 30, 70, 110, 150]); // 20 ms after the first, then capped at 40
    h.stop();
    expect(timers.timers).toEqual([]); // the stop ends the probes
  });

  test("the backoff starts over only after a minute without failures", async () => {
    let works = false;
    const p = probeWhile(() => works);
    const { h, timers } = health(p.probe); // the backoff starts over after 60 s (the default)
    p.attach(h);
    const nextProbeIn = () => timers.timers[0]! - timers.now();
    h.failed(full());
    expect(nextProbeIn()).toBe(10);
    await timers.advance(10); // fails: the next in 20
    expect(nextProbeIn()).toBe(20);
    works = true;
    await timers.advance(20);
    expect(h.healthy).toBe(true);
    // Failing again within the minute: the backoff goes on where it was (a disk that fills up
    // again at once must not be probed at the fastest rate).
    works = false;
    await timers.advance(1_000);
    h.failed(full());
    expect(nextProbeIn()).toBe(40);
    works = true;
    await timers.advance(40);
    expect(h.healthy).toBe(true);
    // A minute without failures: from the start again.
    await timers.advance(60_000);
    h.failed(full());
    expect(nextProbeIn()).toBe(10);
    h.stop();
  });

  test("an error of the statement (a constraint) does not pause anything", () => {
    const { h, logs, timers } = health(async () => {});
    expect(h.failed(Object.assign(new Error("UNIQUE constraint failed"), { code: "SQLITE_CONSTRAINT_UNIQUE" }))).toBe(false);
    expect(h.healthy).toBe(true);
    expect(timers.timers).toEqual([]);
    expect(logs.records()).toHaveLength(0);
  });

  test("check() at start: a failing probe starts paused", async () => {
    const { h, timers } = health(async () => {
      throw full();
    });
    expect(await h.check()).toBe(false);
    expect(h.healthy).toBe(false);
    expect(timers.timers).toHaveLength(1); // probed again later
    h.stop();
    expect(timers.timers).toEqual([]);
    expect(await h.waitHealthy()).toBe(false); // stopping: whoever waits is let go
  });

  test("while failing, at most one line a minute", () => {
    let now = 1_000_000;
    // The time moves, the probes' timers do not: only failed() decides what is logged.
    const { h, logs } = health(async () => {}, { clock: { now: () => now } });
    h.failed(full());
    for (let i = 0; i < 1000; i++) {
      now += 100; // 100 s in all
      h.failed(full());
    }
    h.stop();
    const lines = logs.records().filter((r) => r.level !== "debug");
    expect(lines.length).toBeLessThanOrEqual(3); // the first, then one per minute
    expect(lines[1]!.msg).toStartWith("writes to the database still fail");
  });
});
