import { describe, expect, test } from "bun:test";
import { parseWebhookBody, toInboxEvent, USER_INPUT_KINDS, type InboxEvent, type ParsedBody } from "../../../src/webhook/events.ts";
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
    expect(parsed).toEqual({ type: "events", entries: [{ pageId: PAGE_ID, events: [] }], skipped: [] });
  });

  test("an empty entry list is valid and has no events", () => {
    expect(parse(`{"object":"page","entry":[]}`)).toEqual({ type: "events", entries: [], skipped: [] });
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

  test("a missing or malformed entry is invalid", () => {
    expect(parse(`{"object":"page"}`).type).toBe("invalid");
    expect(parse(`{"object":"page","entry":{}}`).type).toBe("invalid");
    expect(parse(`{"object":"page","entry":[{"time":1}]}`).type).toBe("invalid");
    expect(parse(`{"object":"page","entry":[{"id":"1","messaging":{}}]}`).type).toBe("invalid");
  });

  test("a malformed item is kept as kind malformed with a reason; its neighbours are kept", () => {
    const text = JSON.stringify(
      envelope([{ messaging: [textItem("m_ok1"), { sender: { id: 123 }, recipient: { id: PAGE_ID }, message: { mid: "m_bad" } }, "junk", null, textItem("m_ok2")] }]),
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
