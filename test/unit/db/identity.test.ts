/** identity.ts: which databases are ours, and the schema comparison that decides if this binary may use one. */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import {
  APPLICATION_ID,
  compareSchema,
  identify,
  knownMigrations,
  migrationsFolder,
  schemaProblem,
  type AppliedMigration,
  type Inspection,
} from "../../../src/db/identity.ts";
import { VERSION } from "../../../src/version.ts";

const known = knownMigrations();
/** What drizzle's migrator stores for each of this binary's migrations. */
const all: AppliedMigration[] = known.map((m) => ({ hash: m.hash, createdAt: m.when }));
const later = known[known.length - 1]!.when + 86_400_000;

function inspection(over: Partial<Inspection> = {}): Inspection {
  return { applicationId: 0, tables: [], applied: [], writtenBy: null, ...over };
}

describe("knownMigrations", () => {
  test("one per SQL file of migrations/, in journal order, with drizzle's hash (SHA-256 of the file)", () => {
    const files = readdirSync(migrationsFolder())
      .filter((f) => f.endsWith(".sql"))
      .sort();
    expect(known.map((m) => `${m.tag}.sql`)).toEqual(files);
    for (const m of known) {
      const text = readFileSync(join(migrationsFolder(), `${m.tag}.sql`)).toString();
      expect(m.hash).toBe(createHash("sha256").update(text).digest("hex"));
    }
    expect(known.map((m) => m.when)).toEqual([...known.map((m) => m.when)].sort((a, b) => a - b));
  });
});

describe("compareSchema", () => {
  test("a database with all, some or none of the binary's migrations is usable", () => {
    expect(compareSchema(all)).toEqual({ kind: "ok", applied: known.length, known: known.length, pending: 0 });
    expect(compareSchema(all.slice(0, 2))).toEqual({ kind: "ok", applied: 2, known: known.length, pending: known.length - 2 });
    expect(compareSchema([])).toMatchObject({ kind: "ok", pending: known.length });
  });

  test("a migration newer than the binary's newest: newer", () => {
    expect(compareSchema([...all, { hash: "f".repeat(64), createdAt: later }, { hash: "e".repeat(64), createdAt: later + 1 }])).toEqual({
      kind: "newer",
      applied: known.length + 2,
      known: known.length,
    });
  });

  test("an unknown migration older than the binary's newest: diverged", () => {
    const state = compareSchema([...all.slice(0, 2), { hash: "f".repeat(64), createdAt: known[1]!.when + 1 }]);
    expect(state).toMatchObject({ kind: "diverged" });
    expect(state.kind === "diverged" && state.detail).toContain("that this binary does not know");
  });

  test("one of the binary's migrations with other content: diverged", () => {
    const edited = all.map((m, i) => (i === 2 ? { ...m, hash: "0".repeat(64) } : m));
    const state = compareSchema(edited);
    expect(state.kind === "diverged" && state.detail).toBe(`its migration ${known[2]!.tag} differs from this binary's`);
  });

  test("a gap (drizzle would never apply the missing migration): diverged, even with newer ones", () => {
    const gap = all.filter((_, i) => i !== 1);
    expect(compareSchema(gap)).toMatchObject({ kind: "diverged", detail: `it lacks this binary's migration ${known[1]!.tag}, which is older than its newest` });
    expect(compareSchema([...gap, { hash: "f".repeat(64), createdAt: later }])).toMatchObject({ kind: "diverged" });
  });
});

describe("schemaProblem", () => {
  test("newer: both versions and both schema numbers, and what to do", () => {
    const message = schemaProblem("the database data/x.db", inspection({ applied: [...all, { hash: "f".repeat(64), createdAt: later }], writtenBy: "9.9.9" }));
    expect(message).toBe(
      `the database data/x.db has schema ${known.length + 1} (written by messenger-endpoint 9.9.9); this binary ${VERSION} knows schema ${known.length}: ` +
        `run the newer binary, or restore a backup taken with ${VERSION}`,
    );
  });

  test("without a recorded version it says so", () => {
    expect(schemaProblem("the database d", inspection({ applied: [...all, { hash: "f".repeat(64), createdAt: later }] }))).toContain(
      "(written by an unknown version)",
    );
  });

  test("none for a usable database", () => {
    expect(schemaProblem("the database d", inspection({ applied: all.slice(0, 3) }))).toBeNull();
  });
});

describe("identify", () => {
  test("marked", () => {
    expect(identify(inspection({ applicationId: APPLICATION_ID, tables: ["anything"] }))).toBe("ours");
  });

  test("empty, or only the empty migration table an interrupted first migration leaves: new", () => {
    expect(identify(inspection())).toBe("new");
    expect(identify(inspection({ tables: ["__drizzle_migrations"] }))).toBe("new");
  });

  test("unmarked with our migration history: ours from before the mark", () => {
    expect(identify(inspection({ tables: ["__drizzle_migrations", "meta"], applied: all.slice(0, 1) }))).toBe("unmarked");
    expect(identify(inspection({ applicationId: null, tables: ["__drizzle_migrations", "meta"], applied: all }))).toBe("unmarked");
  });

  test("tables but no history of ours, or another program's application_id: foreign", () => {
    expect(identify(inspection({ tables: ["users"] }))).toBe("foreign");
    expect(identify(inspection({ tables: ["__drizzle_migrations", "users"], applied: [{ hash: "a".repeat(64), createdAt: 1 }] }))).toBe("foreign");
    expect(identify(inspection({ applicationId: 0x0f055112 }))).toBe("foreign");
    expect(identify(inspection({ applicationId: 0x0f055112, tables: ["__drizzle_migrations"], applied: all }))).toBe("foreign");
  });
});
