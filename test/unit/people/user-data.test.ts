/**
 * The user-data registry (src/people/user-data.ts) with every feature's part registered as app.ts
 * does: whom a request is about, the export (its JSON exactly, section order included:
 * user-data-export.json was written by the code before the registry, which knew every table
 * itself), the erasure (rows deleted, and what is left), and where a PSID is.
 */
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import { silentLogger } from "../../../src/log/logger.ts";
import { ContactViews } from "../../../src/people/contact-views.ts";
import { contactData, transcriptData } from "../../../src/people/people-data.ts";
import { UserData, type PartSubject, type UserDataPart } from "../../../src/people/user-data.ts";
import { sessionData } from "../../../src/conversations/user-data.ts";
import { inboxData } from "../../../src/inbox/user-data.ts";
import { outboxData } from "../../../src/replies/user-data.ts";
import { transformerData } from "../../../src/transformers/user-data.ts";
import { threadData } from "../../../src/handover/user-data.ts";
import { simulatorData } from "../../../src/simulator/user-data.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { seedPeople, whatIsLeft } from "./user-data-seed.ts";

const dir = tempDir("user-data");

const EXPORTS = JSON.parse(readFileSync(`${import.meta.dir}/user-data-export.json`, "utf8")) as Record<string, Record<string, unknown>>;

let database: Database;
let writes: WriteQueue;
let contacts: ContactViews;
let userData: UserData;
let n = 0;

beforeEach(async () => {
  if (database) {
    await writes.drain();
    database.close();
  }
  database = await openDatabase(`file:${dir.join(`people-${++n}.db`)}`);
  await applyMigrations(database);
  writes = new WriteQueue(database.client, { durable: database.durable });
  await seedPeople(database.client);
  contacts = new ContactViews(database);
  const sessions = sessionData(database);
  const links = contactData(database);
  const events = inboxData(database);
  userData = new UserData({ contacts, writes })
    .register(
      links,
      sessions,
      transcriptData(database),
      events,
      outboxData(database),
      transformerData({ database, writes }),
      threadData(database),
      simulatorData(database),
    )
    .locateWith(sessions, links, events);
});
afterAll(async () => {
  await writes.drain();
  database.close();
  dir.remove();
});

/** The export as JSON text, without its time. */
const exported = async (subject: Parameters<UserData["export"]>[0]) => {
  const { exported_at, ...rest } = await userData.export(subject);
  expect(typeof exported_at).toBe("string");
  return JSON.stringify(rest);
};
const keys = (pages: string[], userId: string) => pages.map((pageId) => ({ endpointId: "e", pageId, userId }));

describe("whom a request is about", () => {
  test("a contact: its PSIDs, by contact id or by any of them", async () => {
    const byContact = await userData.subject({ contactId: "c_1" });
    expect(byContact?.contact?.id).toBe("c_1");
    expect(byContact?.keys).toEqual([...keys(["p1"], "u1"), ...keys(["p2"], "u2")]);
    expect(await userData.subject({ endpointId: "e", userId: "u2" })).toEqual(byContact);
  });

  test("a PSID without a contact: on every Page it has rows on (sessions, transcript, inbox, outbox), in order", async () => {
    expect(await userData.subject({ endpointId: "e", userId: "u9" })).toEqual({ contact: null, keys: keys(["p1", "p2", "p3", "p4", "p5", "p6"], "u9") });
  });

  test("nobody known: null (also for a PSID linked to a contact that is gone)", async () => {
    expect(await userData.subject({ endpointId: "e", userId: "nobody" })).toBeNull();
    expect(await userData.subject({ contactId: "c_x" })).toBeNull();
    expect(await userData.subject({ endpointId: "f", userId: "u1" })).toBeNull();
  });
});

describe("export", () => {
  test("a contact's: every section, as before the registry", async () => {
    const expected = JSON.stringify(EXPORTS["contact c_1"]);
    expect(await exported((await userData.subject({ contactId: "c_1" }))!)).toBe(expected);
    expect(await exported((await userData.subject({ endpointId: "e", userId: "u1" }))!)).toBe(expected);
  });

  test("a PSID's without a contact, as before the registry", async () => {
    expect(await exported((await userData.subject({ endpointId: "e", userId: "u9" }))!)).toBe(JSON.stringify(EXPORTS["user u9 of endpoint e"]));
  });
});

describe("erasure", () => {
  test("deletes every part's rows of the subject in one commit, and nothing of anyone else", async () => {
    expect(await userData.erase((await userData.subject({ contactId: "c_1" }))!, silentLogger)).toBe(17);
    expect(await userData.erase((await userData.subject({ endpointId: "e", userId: "u9" }))!, silentLogger)).toBe(9);
    expect(await whatIsLeft(database.client)).toEqual({
      contacts: ["c_2"],
      contact_users: ["e/p1/u3", "f/p1/u1", "e/p8/u4"],
      // u2's session on p3 is not one of its contact's PSIDs (the contact links u2 on p2 only).
      sessions: ["s_3", "s_f", "s_2b"],
      transcripts: ["other person", "other endpoint"],
      inbox: ["d3", "d6", "d7"],
      outbox: ["e/p1/u3", "f/p1/u1"],
      transformer_storage: ['e ["u10","s"]', 'f ["u1","s_f"]'],
      threads: ["e/p1/u3"],
      simulator_users: ["Three"],
    });
    expect(await userData.subject({ contactId: "c_1" })).toBeNull();
    expect(await userData.subject({ endpointId: "e", userId: "u9" })).toBeNull();
  });

  test("each part's erased() runs after the commit, with the subject", async () => {
    const seen: string[] = [];
    const probe: UserDataPart = {
      name: "probe",
      erase: () => [],
      erased: (subject: PartSubject) => seen.push(`${subject.contact?.id} ${subject.keys.length}`),
    };
    userData.register(probe);
    await userData.erase((await userData.subject({ contactId: "c_1" }))!, silentLogger);
    expect(seen).toEqual(["c_1 2"]);
  });

  test("two parts of one name are refused, and so is a locator that cannot locate", () => {
    expect(() => userData.register({ name: "sessions", erase: () => [] })).toThrow("two user-data parts are named sessions");
    expect(() => userData.locateWith({ name: "x", erase: () => [] })).toThrow("the user-data part x cannot locate a PSID");
  });
});

describe("where a PSID is", () => {
  test("its latest session's Page, else its contact link's, else its latest event's (not an injected one)", async () => {
    expect(await userData.pageOf("e", "u2")).toBe("p3"); // session on p3, contact link on p2
    expect(await userData.pageOf("e", "u9")).toBe("p2"); // the session active last
    expect(await userData.pageOf("e", "u4")).toBe("p8"); // a contact link only
    expect(await userData.pageOf("e", "u3")).toBe("p1"); // its session, though it wrote on p9 later
    expect(await userData.pageOf("e", "u9", "p4")).toBe("p4"); // an event only
    expect(await userData.pageOf("e", "u9", "p6")).toBeNull(); // an injected input only
    expect(await userData.pageOf("e", "u1", "p2")).toBeNull();
    expect(await userData.pageOf("e", "u2", "p2")).toBe("p2");
    expect(await userData.pageOf("f", "u1")).toBe("p1");
    expect(await userData.pageOf("e", "zz")).toBeNull();
  });

  test("known: a session or a contact link (on the endpoint, or on any)", async () => {
    expect(await userData.knowsUser("u1")).toBe(true);
    expect(await userData.knowsUser("u4", "e")).toBe(true); // a contact link only
    expect(await userData.knowsUser("u9", "e")).toBe(true);
    expect(await userData.knowsUser("u9", "f")).toBe(false);
    expect(await userData.knowsUser("zz")).toBe(false);
  });

  test("the contact of a PSID on a Page", async () => {
    expect(await contacts.contactIdOf({ endpointId: "e", pageId: "p1", userId: "u1" })).toBe("c_1");
    expect(await contacts.contactIdOf({ endpointId: "e", pageId: "p1", userId: "u9" })).toBeNull();
  });
});
