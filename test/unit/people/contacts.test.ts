/**
 * The contact fields of a flow's result through `Contacts` (src/people/contacts.ts): merged into the
 * contact with the turn's commit, seen by the next turn from memory and after a restart, deleted with
 * null, refused past the limits with a warning, not written with contact_profiles = false.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { EndpointSettings } from "../../../src/config/schema.ts";
import type { UserKey } from "../../../src/core/user-key.ts";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { Contacts } from "../../../src/people/contacts.ts";
import { PAGE_ID, PAGE_ID_2, configFromToml, settingsToml } from "../../helpers/config.ts";
import { collectingLogger } from "../../helpers/log.ts";
import { StubGraph } from "../../helpers/stub-graph.ts";
import { tempDir, type TempDir } from "../../helpers/tmp.ts";

let dir: TempDir;
let database: Database;
let users = 0;
const T0 = 1_767_225_700_000;
const logs = collectingLogger();
const log = logs.log;

beforeAll(async () => {
  dir = tempDir("contacts");
  database = await openDatabase(`file:${dir.join("c.db")}`);
  await applyMigrations(database);
});
afterAll(() => {
  database.close();
  dir.remove();
});

/** The endpoint's settings: no Graph API calls (no profiles asked), contact profiles on unless told. */
function endpoint(contactProfiles = true): EndpointSettings {
  const extra = `[endpoints.profiles]\nrequest_profile_data = false\nupdate_contact_profiles = false\n[endpoints.data_protection]\ncontact_profiles = ${contactProfiles}`;
  return configFromToml(settingsToml({ extra }), { dir: dir.path }).endpoints[0]!;
}

const newKey = (pageId = PAGE_ID): UserKey => ({ endpointId: "support", pageId, userId: String(6300000000000000 + ++users) });
const contacts = () => new Contacts({ database, graph: new StubGraph().client, credentials: () => undefined, clock: { now: () => T0 }, log });

/** One turn: the person before the flow, then the flow's contact change committed with it. */
async function turn(store: Contacts, key: UserKey, change?: Record<string, unknown>, settings = endpoint()) {
  const person = await store.forTurn(key, settings, log);
  const saved = person.save(change, log);
  saved.committed(saved.statements.length > 0 ? await database.client.batch(saved.statements, "write") : []);
  return { person, statements: saved.statements };
}

const storedProfile = async (contactId: string | null) => {
  const row = (await database.client.execute({ sql: "SELECT profile FROM contacts WHERE id = ?", args: [contactId] })).rows[0];
  return row ? JSON.parse(String(row[0])) : null;
};

describe("a flow's contact fields", () => {
  test("merged with the turn's commit; the next turn sees them from memory and after a restart; null deletes", async () => {
    const store = contacts();
    const key = newKey();
    const first = await turn(store, key, { plan: "gold", prefs: { lang: "fr" } });
    const contactId = first.person.contactId;
    expect(await storedProfile(contactId)).toEqual({ plan: "gold", prefs: { lang: "fr" } });
    expect((await store.forTurn(key, endpoint(), log)).contact).toEqual({ plan: "gold", prefs: { lang: "fr" } });
    expect((await contacts().forTurn(key, endpoint(), log)).contact).toEqual({ plan: "gold", prefs: { lang: "fr" } });
    await turn(store, key, { plan: null, visits: 1 });
    expect(await storedProfile(contactId)).toEqual({ prefs: { lang: "fr" }, visits: 1 });
    expect((await store.forTurn(key, endpoint(), log)).contact).toEqual({ prefs: { lang: "fr" }, visits: 1 });
    expect((await contacts().forTurn(key, endpoint(), log)).contact).toEqual({ prefs: { lang: "fr" }, visits: 1 });
  });

  test("nothing is remembered until the commit", async () => {
    const store = contacts();
    const key = newKey();
    await turn(store, key, { plan: "gold" });
    const person = await store.forTurn(key, endpoint(), log);
    person.save({ plan: "silver" }, log); // never committed
    expect((await store.forTurn(key, endpoint(), log)).contact).toEqual({ plan: "gold" });
  });

  test("a flow that changes input.contact changes nothing that was not saved", async () => {
    const store = contacts();
    const key = newKey();
    await turn(store, key, { prefs: { lang: "fr" } });
    const person = await store.forTurn(key, endpoint(), log);
    (person.contact.prefs as Record<string, unknown>).lang = "de";
    await turn(store, key); // the next turn's commit (no change of the flow)
    expect((await store.forTurn(key, endpoint(), log)).contact).toEqual({ prefs: { lang: "fr" } });
  });

  test("a known user's turn without a change writes nothing; one with a change writes the contact", async () => {
    const store = contacts();
    const key = newKey();
    await turn(store, key);
    expect((await turn(store, key)).statements).toEqual([]);
    expect((await turn(store, key, { plan: "gold" })).statements.length).toBeGreaterThan(0);
    expect((await turn(store, key, { plan: "gold" })).statements).toEqual([]);
  });

  test("refused past the limits: the contact stays as it was, a warning says how to fix it", async () => {
    const store = contacts();
    const key = newKey();
    const { person } = await turn(store, key, { plan: "gold" });
    logs.clear();
    await turn(store, key, { plan: "platinum", notes: "x".repeat(70_000) });
    await turn(store, key, { plan: "platinum", ["n".repeat(65)]: 1 });
    expect(await storedProfile(person.contactId)).toEqual({ plan: "gold" });
    expect((await store.forTurn(key, endpoint(), log)).contact).toEqual({ plan: "gold" });
    const warnings = logs.records().filter((r) => r.level === "warn");
    expect(warnings.map((r) => r.msg)).toEqual([
      expect.stringContaining("over the limit of 65536: keep large data in your own storage"),
      expect.stringContaining("contact field names have 1 to 64"),
    ]);
  });

  test("contact_profiles = false: nothing is written (a debug line says why)", async () => {
    const store = contacts();
    const key = newKey();
    logs.clear();
    const { person, statements } = await turn(store, key, { plan: "gold" }, endpoint(false));
    expect(person.contactId).toBeNull();
    expect(statements).toEqual([]);
    expect((await store.forTurn(key, endpoint(false), log)).contact).toEqual({});
    expect(logs.records().some((r) => r.level === "debug" && r.msg.includes("contact_profiles is off"))).toBe(true);
    const rows = await database.client.execute({ sql: "SELECT count(*) FROM contact_users WHERE user_id = ?", args: [key.userId] });
    expect(Number(rows.rows[0]![0])).toBe(0);
  });

  test("the contact's other PSIDs (merge_contact_profiles) see the fields at their next turn", async () => {
    const store = contacts();
    const key = newKey();
    const other = newKey(PAGE_ID_2);
    const { person } = await turn(store, key, { plan: "silver" });
    // The other Page's PSID linked to the same contact, and its turn cached in memory.
    await database.client.execute({
      sql: "INSERT INTO contact_users (endpoint_id, page_id, user_id, contact_id, first_seen_at, last_seen_at, linked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      args: [other.endpointId, other.pageId, other.userId, person.contactId, T0, T0, T0],
    });
    expect((await turn(store, other)).person.contact).toEqual({ plan: "silver" });
    await turn(store, key, { plan: "gold" });
    expect((await store.forTurn(other, endpoint(), log)).contact).toEqual({ plan: "gold" });
    // The other PSID's own change keeps this one's fields.
    await turn(store, other, { seen_on_page_2: true });
    expect(await storedProfile(person.contactId)).toEqual({ plan: "gold", seen_on_page_2: true });
  });
});
