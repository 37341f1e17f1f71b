import { describe, expect, test } from "bun:test";
import { StorageHealth, isStorageError } from "../../../src/db/health.ts";
import { collectingLogger } from "../../helpers/log.ts";

const full = () => Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });

function health(probe: () => Promise<unknown>, clock = { now: () => Date.now() }) {
  const logs = collectingLogger();
  const h = new StorageHealth({ clock, log: logs.log, probe, advice: "free space on the disk", minDelayMs: 10, maxDelayMs: 40, logEveryMs: 60_000 });
  return { h, logs };
}

describe("isStorageError", () => {
  test("the storage's failures, not the statement's", () => {
    for (const code of ["SQLITE_FULL", "SQLITE_IOERR", "SQLITE_IOERR_WRITE", "SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_CANTOPEN", "SERVER_ERROR", "ECONNREFUSED"]) {
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
    const { h, logs } = health(async () => {
      probes++;
      if (!probeWorks) {
        h.failed(full()); // the write queue reports the probe's own failure
        throw full();
      }
    });
    expect(h.healthy).toBe(true);
    expect(h.failed(full())).toBe(true);
    expect(h.healthy).toBe(false);
    expect(h.problem()).toContain("SQLITE_FULL");
    expect(h.problem()).toContain("free space on the disk");
    const waiting = h.waitHealthy();
    await Bun.sleep(200);
    expect(probes).toBeGreaterThanOrEqual(3);
    for (let i = 0; i < 100; i++) h.failed(full());
    probeWorks = true;
    expect(await waiting).toBe(true);
    expect(h.healthy).toBe(true);
    expect(h.problem()).toBeNull();
    const lines = logs.records().filter((r) => r.level !== "debug");
    expect(lines.map((r) => r.level)).toEqual(["error", "info"]);
    expect(lines[0]!.msg).toContain("Processing is paused");
    expect(lines[1]!.msg).toStartWith("writes to the database work again");
  });

  test("the probes back off: 10, 20, 40, 40 ms ...", async () => {
    const at: number[] = [];
    const { h } = health(async () => {
      at.push(performance.now());
      h.failed(full());
      throw full();
    });
    h.failed(full());
    await Bun.sleep(300);
    h.stop();
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(3);
    expect(gaps[0]!).toBeGreaterThanOrEqual(15); // 20 ms, not 10 again
    expect(gaps.slice(2).every((g) => g >= 35)).toBe(true); // capped at 40 ms
    expect(at.length).toBeLessThan(15); // not a busy loop
  });

  test("an error of the statement (a constraint) does not pause anything", () => {
    const { h, logs } = health(async () => {});
    expect(h.failed(Object.assign(new Error("UNIQUE constraint failed"), { code: "SQLITE_CONSTRAINT_UNIQUE" }))).toBe(false);
    expect(h.healthy).toBe(true);
    expect(logs.records()).toHaveLength(0);
  });

  test("check() at start: a failing probe starts paused", async () => {
    const { h } = health(async () => {
      throw full();
    });
    expect(await h.check()).toBe(false);
    expect(h.healthy).toBe(false);
    h.stop();
    expect(await h.waitHealthy()).toBe(false); // stopping: whoever waits is let go
  });

  test("while failing, at most one line a minute", () => {
    let now = 1_000_000;
    const { h, logs } = health(async () => {}, { now: () => now });
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
