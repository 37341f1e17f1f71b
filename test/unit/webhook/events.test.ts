import { describe, expect, test } from "bun:test";
import { isUnsent, USER_INPUT_KINDS, type InboxEvent } from "../../../src/inbox/events.ts";
import { MAX_MALFORMED_JSON, parseWebhookBody, toInboxEvent, type ParsedBody } from "../../../src/webhook/events.ts";
import { PAGE_ID, PAGE_ID_2, PSID, PSID_2, envelope, fixtureText, textItem } from "../../helpers/index.ts";

const NOW = 1767225700000;
const bytes = (s: string) => new TextEncoder().encode(s);
const parse = (text: string): ParsedBody => parseWebhookBody(bytes(text), NOW);

function eventsOf(text: string): InboxEvent[] {
  const parsed = parse(text);
  if (parsed.type !== "events") throw new Error(`expected events, got ${parsed.type}: ${"reason" in parsed ? parsed.reason : ""}`);
  return parsed.entries.flatMap((e) => e.events);
}

function only(text: string): InboxEvent {
  const events = eventsOf(text);
  expect(events).toHaveLength(1);
  return events[0]!;
}

describe("envelope", () => {
  test("batched entries and several items per entry are all returned, in order", () => {
    const parsed = parse(fixtureText("batched"));
    expect(parsed.type).toBe("events");
    if (parsed.type !== "events") return;
    expect(parsed.entries.map((e) => e.pageId)).toEqual([PAGE_ID, PAGE_ID_2]);
    expect(parsed.entries.map((e) => e.events.length)).toEqual([3, 3]);
    expect(parsed.skipped).toEqual([]);
    const events = parsed.entries.flatMap((e) => e.events);
    expect(events.map((e) => e.dedupKey)).toEqual([
      "message:m_BATCH_A1",
      "message:m_BATCH_A2",
      "postback:m_BATCH_A3",
      "message:m_BATCH_B1",
      `read:${PAGE_ID_2}:6301234567890999:1767225599102`,
      "message:m_BATCH_B3",
    ]);
    expect(events.map((e) => e.pageId)).toEqual([PAGE_ID, PAGE_ID, PAGE_ID, PAGE_ID_2, PAGE_ID_2, PAGE_ID_2]);
    expect(events.every((e) => !e.standby)).toBe(true);
  });

  test("messaging and standby in one entry: both handled, standby flagged", () => {
    const text = JSON.stringify(envelope([{ messaging: [textItem("m_1")], standby: [textItem("m_2"), textItem("m_3")] }]));
    const events = eventsOf(text);
    expect(events.map((e) => [e.dedupKey, e.standby])).toEqual([
      ["message:m_1", false],
      ["message:m_2", true],
      ["message:m_3", true],
    ]);
  });

  test("standby items are flagged", () => {
    const events = eventsOf(fixtureText("standby"));
    expect(events.map((e) => [e.kind, e.standby, e.userId])).toEqual([
      ["message", true, PSID],
      ["postback", true, PSID],
    ]);
  });

  test("the raw item is kept as it came", () => {
    const event = only(fixtureText("quick-reply"));
    expect(event.item).toEqual(JSON.parse(fixtureText("quick-reply")).entry[0].messaging[0]);
  });

  test("a numeric entry id is read as a string", () => {
    const text = `{"object":"page","entry":[{"id":104857600012345,"time":1,"messaging":[${JSON.stringify(textItem("m_n"))}]}]}`;
    expect(only(text).pageId).toBe(PAGE_ID);
  });

  test("an entry with an empty messaging list has no events", () => {
    const parsed = parse(JSON.stringify(envelope([{ messaging: [] }])));
    expect(parsed).toEqual({ type: "events", entries: [{ pageId: PAGE_ID, events: [] }], skipped: [], ignoredEntries: [] });
  });

  test("an empty entry list is valid and has no events", () => {
    expect(parse(`{"object":"page","entry":[]}`)).toEqual({ type: "events", entries: [], skipped: [], ignoredEntries: [] });
  });

  test("a changes[]-only entry (Page feed) has no events", () => {
    const parsed = parse(fixtureText("feed-changes"));
    expect(parsed.type).toBe("events");
    if (parsed.type === "events") {
      expect(parsed.entries.flatMap((e) => e.events)).toEqual([]);
      expect(parsed.skipped).toEqual([]);
    }
  });

  test("the App Dashboard test ping is ignored", () => {
    const parsed = parse(fixtureText("dashboard-ping"));
    expect(parsed.type).toBe("ignored");
  });

  test("non-JSON is invalid", () => {
    expect(parse("not json").type).toBe("invalid");
    expect(parse('{"object":"page","entry":[').type).toBe("invalid");
    expect(parse("").type).toBe("invalid");
    expect(parseWebhookBody(new Uint8Array([0xff, 0xfe, 0x00]), NOW).type).toBe("invalid");
  });

  test("JSON that is not an object is invalid", () => {
    for (const text of ["[]", "null", "42", '"page"']) expect(parse(text).type).toBe("invalid");
  });

  test("object instagram is invalid, with a reason that says what was expected", () => {
    const parsed = parse(JSON.stringify(envelope([{ messaging: [textItem("m_ig")] }], "instagram")));
    expect(parsed.type).toBe("invalid");
    if (parsed.type === "invalid") expect(parsed.reason).toContain('object "instagram"');
  });

  test("a missing object is invalid", () => {
    expect(parse(`{"entry":[]}`).type).toBe("invalid");
  });

  test("a missing entry, or one that is not a list, is invalid", () => {
    expect(parse(`{"object":"page"}`).type).toBe("invalid");
    expect(parse(`{"object":"page","entry":{}}`).type).toBe("invalid");
    expect(parse(`{"object":"page","entry":null}`).type).toBe("invalid");
  });

  test("a malformed item is kept as kind malformed with a reason; its neighbours are kept", () => {
    const text = JSON.stringify(
      envelope([
        { messaging: [textItem("m_ok1"), { sender: { id: 123 }, recipient: { id: PAGE_ID }, message: { mid: "m_bad" } }, "junk", null, textItem("m_ok2")] },
      ]),
    );
    const parsed = parse(text);
    expect(parsed.type).toBe("events");
    if (parsed.type !== "events") return;
    const events = parsed.entries[0]!.events;
    expect(events.map((e) => e.kind)).toEqual(["message", "malformed", "malformed", "malformed", "message"]);
    expect(events.filter((e) => e.kind === "message").map((e) => e.dedupKey)).toEqual(["message:m_ok1", "message:m_ok2"]);
    expect(new Set(events.map((e) => e.dedupKey)).size).toBe(5);
    expect(parsed.skipped).toHaveLength(3);
    for (const s of parsed.skipped) {
      expect(s.pageId).toBe(PAGE_ID);
      expect(s.reason).toStartWith("malformed messaging item");
    }
    expect(parsed.skipped[0]!.reason).toContain("/sender/id");
  });

  test("an item with a string timestamp is skipped", () => {
    const item = { ...textItem("m_t"), timestamp: "1767225599876" };
    const parsed = parse(JSON.stringify(envelope([{ messaging: [item] }])));
    expect(parsed.type === "events" && parsed.skipped.length).toBe(1);
  });
});

describe("kinds", () => {
  test("message", () => {
    const e = only(JSON.stringify(envelope([{ messaging: [textItem("m_AbC123")] }])));
    expect(e).toMatchObject({ pageId: PAGE_ID, userId: PSID, kind: "message", standby: false, timestamp: 1767225599876, dedupKey: "message:m_AbC123" });
  });

  test("echo: the user is the recipient", () => {
    const e = only(fixtureText("echo"));
    expect(e).toMatchObject({ kind: "echo", userId: PSID, timestamp: 1767225602000, dedupKey: "echo:m_E05" });
  });

  test("delivery without a timestamp uses the watermark", () => {
    const e = only(fixtureText("delivery"));
    expect(e).toMatchObject({ kind: "delivery", userId: PSID, timestamp: 1767225602500, dedupKey: `delivery:${PAGE_ID}:${PSID}:1767225602500` });
  });

  test("read", () => {
    const e = only(fixtureText("read"));
    expect(e).toMatchObject({ kind: "read", userId: PSID, timestamp: 1767225603000, dedupKey: `read:${PAGE_ID}:${PSID}:1767225603000` });
  });

  test("postback with a referral", () => {
    const e = only(fixtureText("postback-referral"));
    expect(e).toMatchObject({ kind: "postback", userId: PSID, dedupKey: "postback:m_P06" });
    expect((e.item.postback as { referral: { ref: string } }).referral.ref).toBe("spring-promo");
  });

  test("a postback without mid (before v11, or in standby) is keyed by user and time", () => {
    const item = { sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: 1767225604000, postback: { title: "Get Started", payload: "GET_STARTED" } };
    expect(only(JSON.stringify(envelope([{ messaging: [item] }]))).dedupKey).toBe(`postback:${PAGE_ID}:${PSID}:1767225604000`);
  });

  test("referral", () => {
    const e = only(fixtureText("referral"));
    expect(e).toMatchObject({ kind: "referral", userId: PSID, timestamp: 1767225605000, dedupKey: `referral:${PAGE_ID}:${PSID}:1767225605000` });
  });

  test("quick reply is a message", () => {
    const e = only(fixtureText("quick-reply"));
    expect(e).toMatchObject({ kind: "message", dedupKey: "message:m_QR01" });
    expect((e.item.message as { quick_reply: { payload: string } }).quick_reply.payload).toBe("COLOR_BLUE");
  });

  test("attachments are a message", () => {
    const e = only(fixtureText("attachments"));
    expect(e).toMatchObject({ kind: "message", dedupKey: "message:m_A03" });
    expect((e.item.message as { attachments: unknown[] }).attachments).toHaveLength(3);
  });

  test("reactions: react and unreact are two events", () => {
    const [react, unreact] = eventsOf(fixtureText("reaction"));
    expect(react).toMatchObject({ kind: "reaction", userId: PSID, timestamp: 1767225607000 });
    expect(unreact).toMatchObject({ kind: "reaction", userId: PSID, timestamp: 1767225607500 });
    expect(react!.dedupKey).not.toBe(unreact!.dedupKey);
  });

  test("message_edit is keyed by mid and edit number", () => {
    const e = only(fixtureText("message-edit"));
    expect(e).toMatchObject({ kind: "message_edit", userId: PSID, dedupKey: "edit:m_A03:1" });
  });

  test("handover events resolve the PSID in both orientations; app_roles and policy-enforcement have no user", () => {
    const events = eventsOf(fixtureText("handover"));
    expect(events.map((e) => [e.kind, e.userId])).toEqual([
      ["pass_thread_control", PSID],
      ["take_thread_control", PSID],
      ["request_thread_control", PSID],
      ["app_roles", ""],
      ["policy_enforcement", ""],
    ]);
    expect(events[3]!.dedupKey).toBe(`app_roles:${PAGE_ID}::1767225623000`);
  });

  test("optin from the checkbox plugin has only a user_ref", () => {
    const item = { recipient: { id: PAGE_ID }, timestamp: 1767225609000, optin: { ref: "checkout", user_ref: "ur_42" } };
    const e = only(JSON.stringify(envelope([{ messaging: [item] }])));
    expect(e).toMatchObject({ kind: "optin", userId: "user_ref:ur_42" });
  });

  test("a sender with user_ref only", () => {
    const item = { sender: { user_ref: "ur_7" }, recipient: { id: PAGE_ID }, timestamp: 1, message: { mid: "m_ur", text: "hi" } };
    expect(only(JSON.stringify(envelope([{ messaging: [item] }]))).userId).toBe("user_ref:ur_7");
  });

  test("an unrecognised event key is kind unknown", () => {
    const item = { sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: 5, brand_new_event: { x: 1 } };
    expect(only(JSON.stringify(envelope([{ messaging: [item] }])))).toMatchObject({ kind: "unknown", dedupKey: `unknown:${PAGE_ID}:${PSID}:5` });
  });

  test("which kinds run the flow", () => {
    for (const k of ["message", "postback", "referral", "optin"] as const) expect(USER_INPUT_KINDS.has(k)).toBe(true);
    for (const k of ["echo", "delivery", "read", "reaction", "app_roles"] as const) expect(USER_INPUT_KINDS.has(k)).toBe(false);
  });
});

describe("timestamps", () => {
  test("an item without timestamp or watermark falls back to entry.time", () => {
    const item = { sender: { id: PSID }, recipient: { id: PAGE_ID }, referral: { ref: "x", source: "SHORTLINK", type: "OPEN_THREAD" } };
    expect(only(JSON.stringify(envelope([{ time: 1767225600999, messaging: [item] }]))).timestamp).toBe(1767225600999);
  });

  test("then to now", () => {
    const item = { sender: { id: PSID }, recipient: { id: PAGE_ID }, referral: { ref: "x" } };
    const text = JSON.stringify({ object: "page", entry: [{ id: PAGE_ID, messaging: [item] }] });
    expect(only(text).timestamp).toBe(NOW);
  });
});

describe("dedup keys", () => {
  test("the same mid gives the same key, whatever else differs", () => {
    const a = toInboxEvent(textItem("m_same", "one", { timestamp: 1 }), PAGE_ID, false, NOW) as InboxEvent;
    const b = toInboxEvent(textItem("m_same", "two", { timestamp: 2 }), PAGE_ID, true, NOW) as InboxEvent;
    expect(a.dedupKey).toBe(b.dedupKey);
  });

  test("different mids give different keys", () => {
    const a = toInboxEvent(textItem("m_1"), PAGE_ID, false, NOW) as InboxEvent;
    const b = toInboxEvent(textItem("m_2"), PAGE_ID, false, NOW) as InboxEvent;
    expect(a.dedupKey).not.toBe(b.dedupKey);
  });

  test("events without mid are keyed by kind, Page, user and timestamp", () => {
    const read = (psid: string, timestamp: number) => ({ sender: { id: psid }, recipient: { id: PAGE_ID }, timestamp, read: { watermark: 1 } });
    const key = (raw: unknown) => (toInboxEvent(raw, PAGE_ID, false, NOW) as InboxEvent).dedupKey;
    expect(key(read(PSID, 10))).toBe(key(read(PSID, 10)));
    expect(key(read(PSID, 10))).toBe(`read:${PAGE_ID}:${PSID}:10`);
    expect((toInboxEvent(read(PSID, 10), PAGE_ID_2, false, NOW) as InboxEvent).dedupKey).not.toBe(key(read(PSID, 10)));
    expect(key(read(PSID, 10))).not.toBe(key(read(PSID, 11)));
    expect(key(read(PSID, 10))).not.toBe(key(read(PSID_2, 10)));
    const delivery = { sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: 10, delivery: { watermark: 10 } };
    expect(key(delivery)).not.toBe(key(read(PSID, 10)));
  });

  test("a message and its echo do not collide", () => {
    const message = toInboxEvent(textItem("m_x"), PAGE_ID, false, NOW) as InboxEvent;
    const echo = toInboxEvent(
      { sender: { id: PAGE_ID }, recipient: { id: PSID }, timestamp: 1, message: { is_echo: true, mid: "m_x", text: "t" } },
      PAGE_ID,
      false,
      NOW,
    ) as InboxEvent;
    expect(message.dedupKey).not.toBe(echo.dedupKey);
  });

  test("toInboxEvent returns the reason for a malformed item", () => {
    expect(typeof toInboxEvent({ sender: "x" }, PAGE_ID, false, NOW)).toBe("string");
    expect(typeof toInboxEvent(7, PAGE_ID, false, NOW)).toBe("string");
  });
});

/** An object nested `depth` levels deep, built without recursion. */
function deep(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

function parsedEvents(text: string): Extract<ParsedBody, { type: "events" }> {
  const parsed = parse(text);
  if (parsed.type !== "events") throw new Error(`expected events, got ${parsed.type}: ${"reason" in parsed ? parsed.reason : ""}`);
  return parsed;
}

const item = (extra: Record<string, unknown>, psid: unknown = PSID) => ({
  sender: { id: psid },
  recipient: { id: PAGE_ID },
  timestamp: 1767225610000,
  ...extra,
});

describe("what cannot be understood does not fail the batch", () => {
  test('an event key that is null ("postback": null, ...) is malformed, named in the reason; its neighbours are kept', () => {
    const bad = ["postback", "reaction", "message_edit", "message", "delivery", "pass_thread_control", "policy-enforcement"].map((key) =>
      item({ [key]: null }),
    );
    const parsed = parsedEvents(JSON.stringify(envelope([{ messaging: [textItem("m_good1"), ...bad, textItem("m_good2")] }])));
    const events = parsed.entries[0]!.events;
    expect(events.map((e) => e.kind)).toEqual(["message", ...bad.map(() => "malformed" as const), "message"]);
    expect(parsed.skipped.map((s) => s.reason)).toContain('malformed messaging item: "postback" is null, not an object');
    expect(parsed.skipped.map((s) => s.reason)).toContain('malformed messaging item: "message_edit" is null, not an object');
    expect(new Set(events.map((e) => e.dedupKey)).size).toBe(events.length);
  });

  test("an event key of another type (a string, a list, a number) is malformed", () => {
    for (const value of ["hi", [], 7, true]) {
      const [event] = eventsOf(JSON.stringify(envelope([{ messaging: [item({ reaction: value })] }])));
      expect(event!.kind).toBe("malformed");
    }
  });

  test("fields of the wrong type inside an event are taken as absent: mid, num_edit, action, is_echo", () => {
    const key = (extra: Record<string, unknown>) => eventsOf(JSON.stringify(envelope([{ messaging: [item(extra)] }])))[0]!;
    expect(key({ message: { mid: null, text: "x" } }).dedupKey).toBe(`message:${PAGE_ID}:${PSID}:1767225610000`);
    expect(key({ message: { mid: 42, text: "x" } }).dedupKey).toBe(`message:${PAGE_ID}:${PSID}:1767225610000`);
    expect(key({ message: { mid: "m_x", is_echo: "true", text: "x" } }).kind).toBe("message");
    expect(key({ postback: { mid: { a: 1 }, payload: "P" } }).dedupKey).toBe(`postback:${PAGE_ID}:${PSID}:1767225610000`);
    expect(key({ message_edit: { mid: "m_e", num_edit: { n: 1 } } }).dedupKey).toBe("edit:m_e:");
    expect(key({ reaction: { mid: null, action: ["react"] } }).dedupKey).toBe(`reaction:${PAGE_ID}:${PSID}:1767225610000::`);
  });

  test("a mid that cannot be stored as it is (a NUL, a lone surrogate) is taken as absent", () => {
    // SQLite would give back another string than the one written, and two of them could collide.
    for (const mid of ["m_\u0000a", "m_\ud800"]) {
      const event = toInboxEvent(item({ message: { mid, text: "x" } }), PAGE_ID, false, NOW) as InboxEvent;
      expect(event.dedupKey).toBe(`message:${PAGE_ID}:${PSID}:1767225610000`);
    }
  });

  test("an entry whose messaging is null, or whose time is not a number, keeps its neighbours", () => {
    const text = JSON.stringify({
      object: "page",
      entry: [
        { id: PAGE_ID, time: 1, messaging: null },
        { id: PAGE_ID, time: "x", messaging: [textItem("m_t1")], standby: null },
        { id: PAGE_ID_2, time: 1, messaging: [textItem("m_t2", "hi", { pageId: PAGE_ID_2 })] },
      ],
    });
    const parsed = parsedEvents(text);
    expect(parsed.entries.map((e) => [e.pageId, e.events.map((x) => x.dedupKey)])).toEqual([
      [PAGE_ID, []],
      [PAGE_ID, ["message:m_t1"]],
      [PAGE_ID_2, ["message:m_t2"]],
    ]);
    expect(parsed.ignoredEntries).toEqual([]);
  });

  test("an entry time that is not whole milliseconds is not used as a fallback timestamp", () => {
    const noTimestamp = { sender: { id: PSID }, recipient: { id: PAGE_ID }, referral: { ref: "x" } };
    for (const time of ["x", 1.5, -1, null]) {
      const text = JSON.stringify({ object: "page", entry: [{ id: PAGE_ID, time, messaging: [noTimestamp] }] });
      expect(only(text).timestamp).toBe(NOW);
    }
  });

  test("messaging that is not a list is kept as one malformed item", () => {
    const parsed = parsedEvents(JSON.stringify({ object: "page", entry: [{ id: PAGE_ID, messaging: { sender: { id: PSID } } }] }));
    expect(parsed.entries[0]!.events.map((e) => e.kind)).toEqual(["malformed"]);
    expect(parsed.skipped[0]!.reason).toBe("entry.messaging is an object, not a list");
  });

  test("an entry without a usable Page id is ignored and reported; the other entries are kept", () => {
    const good = { id: PAGE_ID, messaging: [textItem("m_kept")] };
    for (const bad of [{ id: true, messaging: [textItem("m_lost")] }, { time: 1 }, { id: "../me", messaging: [] }, { id: 1.5 }, null, "entry", [good]]) {
      const parsed = parsedEvents(JSON.stringify({ object: "page", entry: [bad, good] }));
      expect(parsed.entries.flatMap((e) => e.events.map((x) => x.dedupKey))).toEqual(["message:m_kept"]);
      expect(parsed.ignoredEntries).toHaveLength(1);
      expect(parsed.ignoredEntries[0]!.index).toBe(0);
    }
  });

  test("a timestamp that is not whole milliseconds (1e400 is Infinity, 1.5, -1) makes the item malformed", () => {
    for (const timestamp of ["1e400", "1.5", "-1", "1e300"]) {
      const text = `{"object":"page","entry":[{"id":"${PAGE_ID}","messaging":[{"sender":{"id":"${PSID}"},"recipient":{"id":"${PAGE_ID}"},"timestamp":${timestamp},"message":{"mid":"m_ts","text":"x"}}]}]}`;
      expect(only(text).kind).toBe("malformed");
    }
  });

  test("a watermark that is not whole milliseconds makes a delivery or read malformed (it could not be stored)", () => {
    for (const kind of ["delivery", "read"]) {
      const text = `{"object":"page","entry":[{"id":"${PAGE_ID}","messaging":[{"sender":{"id":"${PSID}"},"recipient":{"id":"${PAGE_ID}"},"${kind}":{"watermark":1e400}}]}]}`;
      expect(only(text).kind).toBe("malformed");
      expect(only(text.replace("1e400", '"soon"')).kind).toBe("malformed");
    }
  });

  test("delivery mids that are not a short list of strings make it malformed", () => {
    for (const mids of ["m_1", [1, 2], Array.from({ length: 1001 }, (_, i) => `m_${i}`)]) {
      expect(only(JSON.stringify(envelope([{ messaging: [item({ delivery: { mids, watermark: 5 } })] }]))).kind).toBe("malformed");
    }
    expect(only(JSON.stringify(envelope([{ messaging: [item({ delivery: { mids: ["m_1"], watermark: 5 } })] }]))).kind).toBe("delivery");
  });

  test("a handover event whose app id is not one is malformed", () => {
    expect(only(JSON.stringify(envelope([{ messaging: [item({ request_thread_control: { requested_owner_app_id: { id: 1 } } })] }]))).kind).toBe("malformed");
    expect(only(JSON.stringify(envelope([{ messaging: [item({ pass_thread_control: { new_owner_app_id: "x/y" } })] }]))).kind).toBe("malformed");
    expect(only(JSON.stringify(envelope([{ messaging: [item({ request_thread_control: { requested_owner_app_id: 123456789 } })] }]))).kind).toBe(
      "request_thread_control",
    );
    expect(
      only(JSON.stringify(envelope([{ messaging: [item({ pass_thread_control: { previous_owner_app_id: null, new_owner_app_id: "123" } })] }]))).kind,
    ).toBe("pass_thread_control");
  });
});

describe("deep nesting", () => {
  test("an item nested 50,000 levels deep is malformed, stored bounded, and its neighbours are kept", () => {
    const text = JSON.stringify(envelope([{ messaging: [textItem("m_before")] }])).replace(
      "]}]}",
      `,${JSON.stringify(textItem("m_deep")).slice(0, -1)},"x":${'{"a":'.repeat(50_000)}1${"}".repeat(50_000)}}, ${JSON.stringify(textItem("m_after"))}]}]}`,
    );
    const parsed = parsedEvents(text);
    const events = parsed.entries[0]!.events;
    expect(events.map((e) => e.kind)).toEqual(["message", "malformed", "message"]);
    expect(parsed.skipped[0]!.reason).toContain("nested deeper than 64 levels");
    const stored = events[1]!.item as Record<string, unknown>;
    expect(stored).toMatchObject({ truncated: true, reason: expect.stringContaining("nested deeper") });
    expect((stored.raw_json as string).length).toBe(MAX_MALFORMED_JSON);
    expect((stored.raw_json as string).startsWith('{"sender":')).toBe(true);
    expect(stored.raw_length).toBeGreaterThan(250_000);
    // What the inbox writes: it must serialise, bounded (escaping at most sextuples a character).
    expect(JSON.stringify(stored).length).toBeLessThan(6 * MAX_MALFORMED_JSON + 1000);
  });

  test("an item a little deeper than the limit is malformed, kept as text (not re-nested)", () => {
    const e = only(JSON.stringify(envelope([{ messaging: [item({ message: { mid: "m_d", text: "x", extra: deep(70) } })] }])));
    expect(e.kind).toBe("malformed");
    expect(e.item).toMatchObject({ truncated: false, raw_json: expect.stringContaining('"mid":"m_d"') });
    expect(e.item.raw).toBeUndefined();
  });

  test("an ordinary item, however wide, is not deep", () => {
    const e = only(JSON.stringify(envelope([{ messaging: [item({ message: { mid: "m_w", text: "x", extra: deep(50) } })] }])));
    expect(e.kind).toBe("message");
  });

  test("deep nesting outside the items (an unknown field, a changes[] list) is not read and does no harm", () => {
    const nest = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const text = `{"object":"page","junk":${nest},"entry":[{"id":"${PAGE_ID}","changes":${nest},"messaging":[${JSON.stringify(textItem("m_ok"))}]}]}`;
    expect(only(text).dedupKey).toBe("message:m_ok");
  });

  test("entries nested 500,000 levels deep are read (the parser keeps no call stack) and ignored as entries that are not objects", () => {
    const parsed = parse(`{"object":"page","entry":${"[".repeat(500_000)}${"]".repeat(500_000)}}`);
    expect(parsed).toMatchObject({ type: "events", entries: [], ignoredEntries: [{ index: 0, reason: "the entry is a list, not an object" }] });
  });

  test("a malformed item's JSON longer than the limit is cut to it", () => {
    const e = only(JSON.stringify(envelope([{ messaging: [{ sender: { id: 42 }, padding: "p".repeat(200_000) }] }])));
    expect(e.kind).toBe("malformed");
    expect(e.item).toMatchObject({ truncated: true, raw_length: expect.any(Number) });
    expect((e.item.raw_json as string).length).toBe(MAX_MALFORMED_JSON);
  });
});

describe("the person an event is about", () => {
  test("an event about a person that names none is malformed with a reason, never user ''", () => {
    const pageOnly = { recipient: { id: PAGE_ID } };
    const cases = [
      { timestamp: 1, message: { mid: "m_nobody", text: "hi" } },
      { ...pageOnly, timestamp: 1, postback: { payload: "P" } },
      { sender: { id: PAGE_ID }, ...pageOnly, timestamp: 1, reaction: { action: "react", mid: "m_1" } },
      { sender: { id: "" }, ...pageOnly, timestamp: 1, message_edit: { mid: "m_1", num_edit: 1 } },
      { ...pageOnly, timestamp: 1, read: { watermark: 1 } },
      { ...pageOnly, timestamp: 1, pass_thread_control: { new_owner_app_id: "1" } },
      { ...pageOnly, timestamp: 1, optin: { ref: "no-user-ref" } },
    ];
    for (const raw of cases) {
      const reason = toInboxEvent(raw, PAGE_ID, false, NOW);
      expect(typeof reason).toBe("string");
      expect(reason as string).toContain("names no person");
    }
    const parsed = parsedEvents(JSON.stringify(envelope([{ messaging: cases }])));
    expect(parsed.entries[0]!.events.every((e) => e.kind === "malformed" && e.userId === "")).toBe(true);
  });

  test("a sender id that is not a PSID (digits, at most 32) is malformed", () => {
    for (const id of ["../../me/messages", "6301234567890123 ", "abc", "1".repeat(33), "１２３"]) {
      const reason = toInboxEvent(item({ message: { mid: "m_1", text: "x" } }, id), PAGE_ID, false, NOW);
      expect(reason).toBe("malformed message item: sender.id is not a PSID (a string of at most 32 digits)");
    }
  });

  test("a user_ref that is not bounded printable ASCII is malformed", () => {
    for (const ref of ["", "a b", "x".repeat(257), "é", 5]) {
      const raw = { recipient: { id: PAGE_ID }, timestamp: 1, optin: { ref: "r", user_ref: ref } };
      expect(toInboxEvent(raw, PAGE_ID, false, NOW) as string).toContain("user_ref");
    }
  });

  test("Page-level events need no person: app_roles and policy_enforcement are user ''", () => {
    const roles = toInboxEvent({ recipient: { id: PAGE_ID }, timestamp: 1, app_roles: { "1": ["primary_receiver"] } }, PAGE_ID, false, NOW) as InboxEvent;
    expect(roles).toMatchObject({ kind: "app_roles", userId: "" });
    const policy = toInboxEvent({ sender: { id: "not-a-psid" }, timestamp: 1, "policy-enforcement": { action: "block" } }, PAGE_ID, false, NOW) as InboxEvent;
    expect(policy).toMatchObject({ kind: "policy_enforcement", userId: "" });
  });

  test("an unknown kind keeps a PSID when it has one, else ''", () => {
    expect((toInboxEvent(item({ brand_new: {} }), PAGE_ID, false, NOW) as InboxEvent).userId).toBe(PSID);
    expect((toInboxEvent(item({ brand_new: {} }, "x"), PAGE_ID, false, NOW) as InboxEvent).userId).toBe("");
  });

  test("an echo to a user_ref is about that user_ref", () => {
    const echo = { sender: { id: PAGE_ID }, recipient: { user_ref: "ur_9" }, timestamp: 1, message: { is_echo: true, mid: "m_e", text: "hi" } };
    expect(toInboxEvent(echo, PAGE_ID, false, NOW)).toMatchObject({ kind: "echo", userId: "user_ref:ur_9" });
  });
});

describe("unsent messages", () => {
  test("is_deleted: a message with a key of its own, not the unsent message's", () => {
    const unsent = item({ message: { mid: "m_gone", is_deleted: true } });
    const e = toInboxEvent(unsent, PAGE_ID, false, NOW) as InboxEvent;
    expect(e).toMatchObject({ kind: "message", dedupKey: "unsent:m_gone" });
    expect(isUnsent(e.item)).toBe(true);
    expect(isUnsent(textItem("m_here"))).toBe(false);
    expect(isUnsent(item({ message: { mid: "m", is_deleted: "true" } }))).toBe(false);
    expect(isUnsent(null)).toBe(false);
  });
});
