/**
 * The translation of a turn (src/translation/translation.ts) with a real database, the fake
 * providers in process (src/simulator/fake-translation.ts) and a manual clock: what the flow
 * gets, what the user reads, auto-detection and its lock, payloads, the cache, failures and slow
 * providers, erasure and retention.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { Config } from "../../../src/config/load.ts";
import { inputFromEvent } from "../../../src/conversations/input.ts";
import type { UserKey } from "../../../src/core/user-key.ts";
import { openDatabase, type Database } from "../../../src/db/client.ts";
import { applyMigrations } from "../../../src/db/migrate.ts";
import { WriteQueue } from "../../../src/db/write-queue.ts";
import type { FlowInput } from "../../../src/flows/schema.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { FakeTranslation } from "../../../src/simulator/fake-translation.ts";
import { Translation } from "../../../src/translation/translation.ts";
import { translationData } from "../../../src/translation/user-data.ts";
import { configFromToml, PAGE_ID, PSID, PSID_2, settingsToml } from "../../helpers/config.ts";
import { collectingLogger, type CollectingLogger } from "../../helpers/log.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { tempDir } from "../../helpers/tmp.ts";

const dir = tempDir("translation");
afterAll(() => dir.remove());

interface Setup {
  translation: Translation;
  fake: FakeTranslation;
  database: Database;
  writes: WriteQueue;
  clock: ManualClock;
  metrics: Registry;
  logs: CollectingLogger;
  config: Config;
  /** A new Translation on the same database (a restart). */
  restart(): Translation;
}

const open: Setup[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    s.fake.release();
    await s.writes.drain();
    s.database.close();
  }
});

let n = 0;
async function setup(translationToml: string, extra = ""): Promise<Setup> {
  const config = configFromToml(settingsToml({ extra: `[endpoints.translation]\n${translationToml}\n${extra}` }), { dir: dir.path });
  const database = await openDatabase(`file:${dir.join(`t-${++n}.db`)}`);
  await applyMigrations(database);
  const writes = new WriteQueue(database.client, { durable: database.durable });
  const clock = new ManualClock();
  const metrics = new Registry();
  const logs = collectingLogger();
  const fake = new FakeTranslation();
  const make = () => new Translation({ config, database, writes, clock, timers: clock, log: logs.log, metrics, fetch: fake.fetch });
  const s = { translation: make(), fake, database, writes, clock, metrics, logs, config, restart: make };
  open.push(s);
  return s;
}

const DEEPL = 'provider = "deepl"\napi_key = "deepl-key-123456:fx"\nurl = "http://fake.invalid/deepl"';
const key: UserKey = { endpointId: "support", pageId: PAGE_ID, userId: PSID };
const ctx = (s: Setup, isPayload = false) => ({ log: s.logs.log, isPayload, signal: new AbortController().signal });

let mids = 0;
/** A user's input as the turn makes it (conversations/input.ts). */
function input(text: string, options: { payload?: boolean; source?: "user" | "inject"; userId?: string; profile?: Record<string, unknown> } = {}): FlowInput {
  const message = options.payload ? { mid: `m${++mids}`, text: "Ja", quick_reply: { payload: text } } : { mid: `m${++mids}`, text };
  const made = inputFromEvent(
    { sender: { id: options.userId ?? PSID }, message },
    { ...key, userId: options.userId ?? PSID, sessionId: "s", contactId: null, context: {}, contact: {}, locale: "en", source: options.source ?? "user" },
  );
  if (options.profile) made.data.profile = options.profile;
  return made;
}
const config = (s: Setup) => s.config.endpoints[0]!;
const toFlow = async (s: Setup, i: FlowInput, options: { isPayload?: boolean; key?: UserKey } = {}) => {
  await s.translation.toFlow(config(s), options.key ?? key, i, ctx(s, options.isPayload));
  return i;
};
const toUser = (s: Setup, i: FlowInput, messages: Record<string, unknown>[]) => s.translation.toUser(config(s), key, i, messages, ctx(s));
const deeplBodies = (s: Setup) => s.fake.callsOf("deepl").map((c) => c.body as Record<string, unknown>);

describe("a fixed user language", () => {
  test("the user's text into the flow's language; input.language and input.data.translation; the reply back, markers kept", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"`);
    const i = await toFlow(s, input("Hallo, ich brauche Hilfe"));
    expect(i.text).toBe("Hello, i need Help");
    expect(i.language).toBe("de");
    expect(i.data.translation).toEqual({ user_language: "de", flow_language: "en", original_text: "Hallo, ich brauche Hilfe" });
    expect(deeplBodies(s)[0]).toEqual({ text: ["Hallo, ich brauche Hilfe"], target_lang: "EN-US", source_lang: "DE" });
    const out = await toUser(s, i, [{ text: "Welcome to **Acme Shop**! Coffee?", quick_replies: [{ content_type: "text", title: "Yes", payload: "YES" }] }]);
    expect(out).toEqual([{ text: "Willkommen zu Acme Shop! Kaffee?", quick_replies: [{ content_type: "text", title: "Ja", payload: "YES" }] }]);
    // One request for the texts of the message, in the provider's HTML mode for the marker.
    expect(deeplBodies(s)[1]).toEqual({
      text: ['Welcome to <span translate="no" class="notranslate">Acme Shop</span>! Coffee?', "Yes"],
      target_lang: "DE",
      source_lang: "EN",
      tag_handling: "html",
    });
  });

  test("a user who writes the flow's language costs nothing; the markers still go", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "en-GB"`);
    const i = await toFlow(s, input("Where is my order?"));
    expect(i.text).toBe("Where is my order?");
    expect(i.language).toBe("en-GB");
    expect(await toUser(s, i, [{ text: "At **Acme**." }])).toEqual([{ text: "At Acme." }]);
    expect(s.fake.calls).toHaveLength(0);
  });

  test("flow_language other than the locale; the input messages are not changed in place", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "en"\nflow_language = "de"`);
    const i = await toFlow(s, input("Hello, I need help"));
    expect(i.text).toBe("Hallo, Ich brauche hilfe");
    const messages = [{ text: "Danke" }];
    expect(await toUser(s, i, messages)).toEqual([{ text: "Thanks" }]);
    expect(messages).toEqual([{ text: "Danke" }]);
  });
});

describe("auto: detected, then locked", () => {
  test("each input votes until lock_after; then the language is sent, not detected; the lock survives a restart", async () => {
    const s = await setup(`${DEEPL}\nlock_after = 2`);
    const first = await toFlow(s, input("Hallo, ich brauche Hilfe"));
    expect(first.language).toBe("de");
    expect(first.text).toBe("Hello, i need Help");
    const second = await toFlow(s, input("Danke"));
    expect(second.language).toBe("de");
    expect(deeplBodies(s).map((b) => b.source_lang ?? null)).toEqual([null, null]);
    // Locked: an English word now is translated from German, not detected.
    const restarted = s.restart();
    const third = input("Bitte");
    await restarted.toFlow(config(s), key, third, ctx(s));
    expect(deeplBodies(s)[2]!.source_lang).toBe("DE");
    expect(third.language).toBe("de");
    const row = (await s.database.client.execute("SELECT language, inputs, locked_at FROM translation_users")).rows[0] as unknown as Record<string, unknown>;
    expect(row.language).toBe("de");
    expect(row.inputs).toBe(2);
    expect(row.locked_at).toBe(s.clock.now());
  });

  test("a user who writes the flow's language: their own words reach the flow, the replies are not translated", async () => {
    const s = await setup(DEEPL);
    const i = await toFlow(s, input("Where is my order"));
    expect(i.text).toBe("Where is my order");
    expect(i.language).toBe("en");
    expect(await toUser(s, i, [{ text: "Soon" }])).toEqual([{ text: "Soon" }]);
    expect(s.fake.calls).toHaveLength(1);
  });

  test("before anything is detected (a sticker first): the profile's locale, else the flow's language", async () => {
    const s = await setup(DEEPL);
    const sticker = await toFlow(s, input("", { profile: { id: PSID, locale: "fr_FR" } }));
    expect(sticker.language).toBe("fr-FR");
    expect(await toUser(s, sticker, [{ text: "Hello" }])).toEqual([{ text: "Bonjour" }]);
    const other = await toFlow(s, input("", { userId: PSID_2 }), { key: { ...key, userId: PSID_2 } });
    expect(other.language).toBe("en");
  });

  test("a handover's turn (no toFlow): the replies go out in the user's known language", async () => {
    const s = await setup(DEEPL);
    await toFlow(s, input("Hallo, ich brauche Hilfe"));
    const back = input("");
    back.source = "handover" as FlowInput["source"];
    expect(await s.translation.toUser(config(s), key, back, [{ text: "Welcome" }], ctx(s))).toEqual([{ text: "Willkommen" }]);
  });
});

describe("payloads and injects", () => {
  test("a payload is not translated (nor detected) unless translate_payloads; the reply's payloads neither", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"`);
    const i = await toFlow(s, input("HILFE_BITTE", { payload: true }), { isPayload: true });
    expect(i.text).toBe("HILFE_BITTE");
    expect(i.data.translation).toEqual({ user_language: "de", flow_language: "en", original_text: "HILFE_BITTE" });
    const out = await toUser(s, i, [{ text: "Coffee?", quick_replies: [{ content_type: "text", title: "Yes", payload: "Yes" }] }]);
    expect(out[0]!.quick_replies).toEqual([{ content_type: "text", title: "Ja", payload: "Yes" }]);
    expect(deeplBodies(s)).toHaveLength(1);
  });

  test("translate_payloads: the payload into the flow's language, and the reply's payloads into the user's", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"\ntranslate_payloads = true`);
    const i = await toFlow(s, input("Ja", { payload: true }), { isPayload: true });
    expect(i.text).toBe("Yes");
    const out = await toUser(s, i, [
      {
        attachment: { type: "template", payload: { template_type: "button", text: "Coffee?", buttons: [{ type: "postback", title: "Yes", payload: "Yes" }] } },
      },
    ]);
    expect((out[0] as any).attachment.payload.buttons).toEqual([{ type: "postback", title: "Ja", payload: "Ja" }]);
  });

  test("an inject's text is the operator's, in the flow's language: not translated; its replies are", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"`);
    const i = await toFlow(s, input("Remind the user about the order", { source: "inject" }));
    expect(i.text).toBe("Remind the user about the order");
    expect(i.language).toBe("de");
    expect(await toUser(s, i, [{ text: "Your order" }])).toEqual([{ text: "Deine bestellung" }]);
  });
});

describe("the cache", () => {
  test("a repeated reply costs no request; counted as a cache hit; the user's own text is cached for them only", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"`);
    const i = await toFlow(s, input("Danke"));
    await toUser(s, i, [{ text: "Anything else?" }]);
    await s.writes.drain();
    const calls = s.fake.calls.length;
    expect(await toUser(s, i, [{ text: "Anything else?" }])).toEqual([{ text: "Etwas sonst?" }]);
    expect(await toFlow(s, input("Danke"))).toMatchObject({ text: "Thanks" });
    expect(s.fake.calls.length).toBe(calls);
    expect(s.metrics.counter("messenger_translation_cache_hits_total", "").get({ endpoint: "support", direction: "to_user" })).toBe(1);
    expect(s.metrics.counter("messenger_translation_cache_hits_total", "").get({ endpoint: "support", direction: "to_flow" })).toBe(1);
    // Another user's "Danke" is theirs: asked again.
    await toFlow(s, input("Danke", { userId: PSID_2 }), { key: { ...key, userId: PSID_2 } });
    expect(s.fake.calls.length).toBe(calls + 1);
    await s.writes.drain();
    const rows = (await s.database.client.execute("SELECT kind, user_id, expires_at - created_at AS ttl FROM translation_cache ORDER BY rowid")).rows;
    const named = rows.map((r) => r as unknown as { kind: string; user_id: string; ttl: number });
    expect(named.map(({ kind, user_id, ttl }) => ({ kind, user_id, ttl }))).toEqual([
      { kind: "user", user_id: PSID, ttl: 24 * 3_600_000 },
      { kind: "bot", user_id: PSID, ttl: 24 * 3_600_000 },
      { kind: "user", user_id: PSID_2, ttl: 24 * 3_600_000 },
    ]);
  });

  test("the same reply to many users at once: one request; the others await its answer", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"`);
    const i = await toFlow(s, input("Danke"));
    const before = s.fake.calls.length;
    s.fake.hold();
    const to = (userId: string) => s.translation.toUser(config(s), { ...key, userId }, i, [{ text: "Anything else?" }], ctx(s));
    const first = to(PSID);
    while (s.fake.waiting < 1) await Bun.sleep(1); // the first request is at the provider
    const others = [to(PSID_2), to("7300000000000003")];
    s.fake.release();
    for (const answer of await Promise.all([first, ...others])) expect(answer).toEqual([{ text: "Etwas sonst?" }]);
    expect(s.fake.calls.length).toBe(before + 1);
  });

  test("when the request they awaited fails, each asks for itself", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"\nretries = 0`);
    const i = await toFlow(s, input("Danke"));
    const before = s.fake.calls.length;
    s.fake.fail({ status: 456 });
    s.fake.hold();
    const to = (userId: string) => s.translation.toUser(config(s), { ...key, userId }, i, [{ text: "Anything else?" }], ctx(s));
    const first = to(PSID);
    while (s.fake.waiting < 1) await Bun.sleep(1);
    const second = to(PSID_2);
    s.fake.release();
    expect(await first).toEqual([{ text: "Anything else?" }]); // untranslated: its request failed
    expect(await second).toEqual([{ text: "Etwas sonst?" }]);
    expect(s.fake.calls.length).toBe(before + 2);
  });

  test("cache_hours = 0: nothing kept, every reply asked", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"\ncache_hours = 0`);
    const i = await toFlow(s, input("Danke"));
    await toUser(s, i, [{ text: "Yes" }]);
    await toUser(s, i, [{ text: "Yes" }]);
    await s.writes.drain();
    expect(s.fake.calls).toHaveLength(3);
    expect((await s.database.client.execute("SELECT count(*) AS n FROM translation_cache")).rows[0]).toMatchObject({ n: 0 });
  });

  test("an expired entry is asked again (and replaced)", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"\ncache_hours = 1`);
    const i = await toFlow(s, input("Danke"));
    await toUser(s, i, [{ text: "Yes" }]);
    await s.writes.drain();
    await s.clock.advance(3_600_000);
    await toUser(s, i, [{ text: "Yes" }]);
    expect(s.fake.calls).toHaveLength(3);
  });
});

describe("a provider that fails never loses a message", () => {
  test("down: the flow gets the text untranslated with data.translation.error; the reply goes out untranslated, markers removed; logged without the key, counted", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"\nretries = 0`);
    s.fake.fail({ status: 456, times: 2 });
    const i = await toFlow(s, input("Hallo"));
    expect(i.text).toBe("Hallo");
    expect(i.language).toBe("de");
    expect(i.data.translation).toMatchObject({ original_text: "Hallo", error: expect.stringContaining("deepl answered HTTP 456: Quota exceeded") });
    expect(await toUser(s, i, [{ text: "Welcome to **Acme**" }])).toEqual([{ text: "Welcome to Acme" }]);
    const requests = s.metrics.counter("messenger_translation_requests_total", "");
    expect(requests.get({ endpoint: "support", provider: "deepl", direction: "to_flow", result: "quota_exceeded" })).toBe(1);
    expect(requests.get({ endpoint: "support", provider: "deepl", direction: "to_user", result: "quota_exceeded" })).toBe(1);
    const warned = s.logs.records().filter((r) => r.level === "warn");
    expect(warned.map((r) => r.msg)).toEqual([
      expect.stringContaining("the user's text could not be translated; the flow gets it untranslated: deepl answered HTTP 456"),
      expect.stringContaining("a reply could not be translated; it is sent untranslated"),
    ]);
    expect(s.logs.lines.join("\n")).not.toContain("deepl-key-123456");
    expect(warned[0]!.msg).toContain("raise the plan's limit");
  });

  test("a 5xx is tried again (retries) and then answered", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"\nretries = 1`);
    s.fake.fail({ status: 503 });
    const pending = toFlow(s, input("Danke"));
    await s.clock.advance(250);
    expect((await pending).text).toBe("Thanks");
    expect(s.fake.calls).toHaveLength(2);
  });

  test("slow: the turn waits timeout_ms per try, then goes on untranslated (a manual clock, no real wait)", async () => {
    const s = await setup(`${DEEPL}\nuser_language = "de"\nretries = 0\ntimeout_ms = 2000`);
    s.fake.hold();
    let done = false;
    const pending = toFlow(s, input("Danke")).then((i) => {
      done = true;
      return i;
    });
    await s.clock.advance(1_999);
    expect(done).toBe(false);
    await s.clock.advance(1);
    const i = await pending;
    expect(i.text).toBe("Danke");
    expect(i.data.translation).toMatchObject({ error: "deepl did not answer within 2000 ms" });
    expect(
      s.metrics.counter("messenger_translation_requests_total", "").get({ endpoint: "support", provider: "deepl", direction: "to_flow", result: "timeout" }),
    ).toBe(1);
  });
});

describe('provider = "none"', () => {
  test("always_remove_markers: the markers go from every reply, nothing is asked", async () => {
    const s = await setup('provider = "none"\nalways_remove_markers = true');
    expect(s.translation.active).toBe(true);
    const i = await toFlow(s, input("Hallo"));
    expect(i.text).toBe("Hallo");
    expect(i.data.translation).toBeUndefined();
    expect(await toUser(s, i, [{ text: "Hi **there**", quick_replies: [{ content_type: "text", title: "**OK**", payload: "**OK**" }] }])).toEqual([
      { text: "Hi there", quick_replies: [{ content_type: "text", title: "OK", payload: "**OK**" }] },
    ]);
    expect(s.fake.calls).toHaveLength(0);
  });

  test("without it, the turns do not use the translation at all", async () => {
    const s = await setup('provider = "none"');
    expect(s.translation.active).toBe(false);
    const messages = [{ text: "Hi **there**" }];
    expect(await toUser(s, input("x"), messages)).toBe(messages);
  });
});

describe("erasure and retention", () => {
  const count = async (s: Setup, table: string) =>
    Number(((await s.database.client.execute(`SELECT count(*) AS n FROM ${table}`)).rows[0] as unknown as { n: number }).n);

  test("the erasure deletes the user's language and every cache row their turns stored; the export shows them first", async () => {
    const s = await setup(DEEPL);
    const i = await toFlow(s, input("Hallo, ich brauche Hilfe"));
    await toUser(s, i, [{ text: "Welcome" }]);
    await toFlow(s, input("Danke", { userId: PSID_2 }), { key: { ...key, userId: PSID_2 } });
    await s.writes.drain();
    const part = translationData(s.translation);
    const exported = await part.export({ keys: [key] });
    expect(exported).toEqual([
      {
        page_id: PAGE_ID,
        language: { language: "de", votes: { de: 1 }, inputs: 1, locked_at: null, updated_at: expect.any(String) },
        cached_translations: [
          { kind: "user", translation: "Hello, i need Help", detected: "de", created_at: expect.any(String), expires_at: expect.any(String) },
          { kind: "bot", translation: "Willkommen", detected: null, created_at: expect.any(String), expires_at: expect.any(String) },
        ],
      },
    ]);
    expect(await part.pagesOf("support", PSID)).toEqual([PAGE_ID]);
    await s.writes.run(part.erase({ keys: [key] }));
    expect(await count(s, "translation_users")).toBe(1);
    expect(await count(s, "translation_cache")).toBe(1); // the other user's
    expect(await part.export({ keys: [key] })).toEqual([]);
    // Forgotten in memory too: the next input is detected afresh, the reply asked again (not from memory).
    const calls = s.fake.calls.length;
    const again = await toFlow(s, input("Hallo, ich brauche Hilfe"));
    expect(deeplBodies(s).at(-1)!.source_lang).toBeUndefined();
    await toUser(s, again, [{ text: "Welcome" }]);
    expect(s.fake.calls.length).toBe(calls + 2);
  });

  test("a turn in flight when the person is erased stores nothing of theirs afterwards", async () => {
    const s = await setup(DEEPL);
    s.fake.hold();
    const pending = toFlow(s, input("Hallo, ich brauche Hilfe"));
    await s.clock.settle();
    expect(s.fake.waiting).toBe(1);
    await s.writes.run(translationData(s.translation).erase({ keys: [key] }));
    s.fake.release();
    expect((await pending).language).toBe("de");
    await s.writes.drain();
    expect(await count(s, "translation_users")).toBe(0);
    expect(await count(s, "translation_cache")).toBe(0);
  });

  test("retention: expired cache rows go (also with retention_days = 0); idle users' languages after retention_days", async () => {
    const s = await setup(`${DEEPL}\ncache_hours = 2`, "[endpoints.data_protection]\nretention_days = 1");
    await toFlow(s, input("Hallo, ich brauche Hilfe"));
    await s.writes.drain();
    await s.clock.advance(3_600_000);
    const i = await toFlow(s, input("Danke", { userId: PSID_2 }), { key: { ...key, userId: PSID_2 } });
    await toUser(s, { ...i, user_id: PSID_2 }, [{ text: "Yes" }]);
    await s.writes.drain();
    await s.clock.advance(3_600_000); // the first user's text expired, the second user's not
    expect(await s.translation.purge(config(s), s.clock.now())).toEqual({ translation_cache: 1, translation_users: 0 });
    expect(await count(s, "translation_cache")).toBe(2);
    await s.clock.advance(86_400_000);
    expect(await s.translation.purge(config(s), s.clock.now())).toEqual({ translation_cache: 2, translation_users: 2 });
  });
});
