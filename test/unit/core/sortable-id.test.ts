import { describe, expect, test } from "bun:test";
import { sortableId } from "../../../src/core/sortable-id.ts";

describe("sortableId", () => {
  test("the prefix, 9 characters of time, 12 of randomness", () => {
    const id = sortableId("s_", Date.UTC(2026, 11, 2));
    expect(id).toMatch(/^s_[0-9a-v]{9}[A-Za-z0-9_-]{12}$/);
    expect(id.slice(2, 11)).toBe(Date.UTC(2026, 11, 2).toString(32).padStart(9, "0"));
  });

  test("ids sort as text in the order of their time, across digit boundaries and years", () => {
    const times = [0, 1, 31, 32, 1_000, Date.UTC(2001, 0, 1), Date.UTC(2026, 11, 2), Date.UTC(2026, 11, 2) + 1, Date.UTC(2100, 0, 1), Date.UTC(3000, 0, 1)];
    const ids = times.map((t) => sortableId("c_", t));
    expect([...ids].sort()).toEqual(ids);
  });

  test("ids made in the same millisecond differ", () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => sortableId("c_", 1_700_000_000_000)));
    expect(ids.size).toBe(10_000);
  });

  test("without a time given, the time now", () => {
    const before = Date.now();
    const id = sortableId("s_");
    const time = Number.parseInt(id.slice(2, 11), 32);
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
  });
});

describe("the ids that index pages are keyed by", () => {
  test("session and contact ids are made in time order", async () => {
    const { newSessionId } = await import("../../../src/conversations/sessions.ts");
    const { newContactId } = await import("../../../src/people/contacts.ts");
    for (const [make, prefix] of [
      [newSessionId, "s_"],
      [newContactId, "c_"],
    ] as const) {
      const first = make();
      const made = Date.now();
      while (Date.now() === made) {} // the next millisecond
      const second = make();
      expect(first).toMatch(new RegExp(`^${prefix}[0-9a-v]{9}[A-Za-z0-9_-]{12}$`));
      expect(first < second).toBe(true);
    }
  });
});
