/**
 * The contact fields a flow writes (src/people/contact-fields.ts): a value replaces the field, null
 * deletes it, the limits refuse a change whole; and the patch the database applies with json_patch
 * (src/people/store.ts) gives the same profile as the memory.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { applyContactChange, MAX_PROFILE_BYTES, profilePatch } from "../../../src/people/contact-fields.ts";
import { upsertContact } from "../../../src/people/store.ts";
import { tempDir, type TempDir } from "../../helpers/tmp.ts";

const applied = (profile: Record<string, unknown>, change: Record<string, unknown>) => {
  const result = applyContactChange(profile, change);
  if (!result.ok) throw new Error(result.problem);
  return result;
};

describe("applyContactChange", () => {
  test("a value replaces the field, null deletes it, the rest stays; the profile given is left as it was", () => {
    const profile = { first_name: "Amelie", plan: "silver", prefs: { a: 1, b: 2 } };
    const result = applied(profile, { plan: "gold", prefs: { c: 3 }, first_name: null, visits: 2 });
    expect(result.changed).toBe(true);
    expect(result.profile).toEqual({ plan: "gold", prefs: { c: 3 }, visits: 2 });
    expect(profile).toEqual({ first_name: "Amelie", plan: "silver", prefs: { a: 1, b: 2 } });
  });

  test("nothing changed: deleting a field that is not there, setting the value it has, an undefined value", () => {
    for (const change of [{ missing: null }, { plan: "gold" }, { plan: undefined }, {}]) {
      const result = applied({ plan: "gold" }, change);
      expect(result).toEqual({ ok: true, profile: { plan: "gold" }, changed: false });
    }
  });

  test("values are stored as JSON: null members of an object are left out (as JSON Merge Patch does), arrays kept as they are", () => {
    const result = applied({}, { prefs: { a: null, b: { c: null, d: 1 } }, list: [null, { e: null }], when: new Date(0) });
    expect(result.profile).toEqual({ prefs: { b: { d: 1 } }, list: [null, { e: null }], when: "1970-01-01T00:00:00.000Z" });
  });

  test("a field named __proto__ is a field like any other", () => {
    const result = applied({}, JSON.parse('{"__proto__": {"x": 1}, "constructor": 2}'));
    expect(Object.getPrototypeOf(result.profile)).toBe(Object.prototype);
    expect(JSON.stringify(result.profile)).toBe('{"__proto__":{"x":1},"constructor":2}');
  });

  test("refused whole: a field name of 0 or more than 64 characters, a value that is not JSON", () => {
    const name64 = "é".repeat(64);
    expect(applied({}, { [name64]: 1 }).changed).toBe(true);
    for (const change of [{ "": 1 }, { [`${name64}x`]: 1, ok: 1 }, { big: 10n }]) {
      const result = applyContactChange({ plan: "gold" }, change);
      expect(result.ok).toBe(false);
    }
    const refused = applyContactChange({}, { "": 1 });
    expect(!refused.ok && refused.problem).toContain("1 to 64");
  });

  test("refused: a profile that would grow past 64 KiB of JSON; a change that shrinks one is taken", () => {
    const big = "x".repeat(MAX_PROFILE_BYTES - 20);
    const result = applyContactChange({ plan: "gold" }, { notes: big });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.problem).toContain(`over the limit of ${MAX_PROFILE_BYTES}`);
    expect(applied({ plan: "gold" }, { notes: "x".repeat(MAX_PROFILE_BYTES - 40) }).changed).toBe(true);
    // Over the limit already (written before the limit, say): a deletion still goes through.
    expect(applied({ a: big, b: big, c: big }, { c: null }).profile).toEqual({ a: big, b: big });
  });
});

describe("profilePatch", () => {
  test("removes deleted fields and objects that replace, sets what changed, leaves the rest out", () => {
    expect(profilePatch({ a: 1, b: { x: 1 }, c: 3, d: [1] }, { a: 1, b: { y: 2 }, d: [2], e: 5 })).toEqual({
      remove: { b: null, c: null },
      set: { b: { y: 2 }, d: [2], e: 5 },
    });
    expect(profilePatch({ a: 1 }, { a: 1 })).toEqual({ remove: {}, set: {} });
  });
});

describe("the patch in the database (json_patch)", () => {
  let dir: TempDir;
  let database: Database;
  beforeAll(async () => {
    dir = tempDir("contact-fields");
    database = await openDatabase(`file:${dir.join("c.db")}`);
    await applyMigrations(database);
  });
  afterAll(() => {
    database.close();
    dir.remove();
  });
  const stored = async (id: string) => {
    const row = (await database.client.execute({ sql: "SELECT profile FROM contacts WHERE id = ?", args: [id] })).rows[0];
    return JSON.parse(String(row![0]));
  };

  test("gives the profile the memory has, keys in the same order, numbers and odd names as they were", async () => {
    const start = { first_name: "Amelie", prefs: { a: 1 }, ratio: 0.30000000000000004, 'we"ird.$[0]': true };
    await database.client.execute(upsertContact("c_1", "support", {}, start, 1));
    expect(await stored("c_1")).toEqual(start);
    const next = applied(start, { prefs: { b: null, c: [null] }, first_name: "Amélie", 'we"ird.$[0]': null, plan: "gold" }).profile;
    await database.client.execute(upsertContact("c_1", "support", start, next, 2));
    const row = await stored("c_1");
    expect(row).toEqual(next);
    expect(Object.keys(row)).toEqual(Object.keys(next));
  });

  test("writes only what changed: a field written meanwhile by another PSID's turn stays", async () => {
    await database.client.execute(upsertContact("c_2", "support", {}, { a: 1 }, 1));
    await database.client.execute({ sql: "UPDATE contacts SET profile = json_set(profile, '$.other', 'kept') WHERE id = 'c_2'", args: [] });
    await database.client.execute(upsertContact("c_2", "support", { a: 1 }, { a: 2, plan: "gold" }, 2));
    expect(await stored("c_2")).toEqual({ a: 2, other: "kept", plan: "gold" });
    // Nothing changed: the profile is not written, updated_at stays.
    await database.client.execute(upsertContact("c_2", "support", { a: 2, plan: "gold" }, { a: 2, plan: "gold" }, 3));
    const row = (await database.client.execute("SELECT updated_at, last_active_at FROM contacts WHERE id = 'c_2'")).rows[0]!;
    expect([Number(row[0]), Number(row[1])]).toEqual([2, 3]);
  });
});
