import { afterAll, describe, expect, test } from "bun:test";
import { signBody } from "../../src/webhook/signature.ts";
import {
  APP_SECRET,
  PAGE_ID,
  PAGE_ID_2,
  PAGE_TOKEN,
  PAGE_TOKEN_2,
  PSID,
  PSID_2,
  UNLISTED_PAGE_ID,
  VERIFY_TOKEN,
  FIXED_NOW,
  envelope,
  fixtureJson,
  fixtureText,
  startTestApp,
  textBody,
  textItem,
  verificationGet,
  webhookPost,
  type TestApp,
  type TestAppOptions,
  type LogRecord,
} from "../helpers/index.ts";

// Every app, log line and response of this file, for the "no secret anywhere" check at the end.
const apps: TestApp[] = [];
const seen: string[] = [];
afterAll(async () => {
  for (const t of apps) await t.close();
});

async function app(options: TestAppOptions = {}): Promise<TestApp> {
  const t = await startTestApp(options);
  apps.push(t);
  return t;
}

interface Answer {
  status: number;
  text: string;
  headers: Headers;
}

async function send(t: TestApp, request: Request): Promise<Answer> {
  const response = await t.handle(request);
  const text = await response.text();
  seen.push(`${response.status} ${JSON.stringify([...response.headers])} ${text}`);
  return { status: response.status, text, headers: response.headers };
}

const post = (t: TestApp, body: string, options?: Parameters<typeof webhookPost>[2], endpoint = "support") => send(t, webhookPost(endpoint, body, options));

const warnings = (t: TestApp) => t.logs.records().filter((r) => r.level === "warn");

describe("GET verification", () => {
  test("subscribe with the right token: 200 and the raw challenge as text", async () => {
    const t = await app();
    const res = await send(t, verificationGet("support", { challenge: "1158201444" }));
    expect(res.status).toBe(200);
    expect(res.text).toBe("1158201444");
    expect(res.headers.get("content-type")).toStartWith("text/plain");
    const other = await send(t, verificationGet("support", { challenge: "CHALLENGE_ACCEPTED" }));
    expect(other.text).toBe("CHALLENGE_ACCEPTED");
  });

  test("a wrong or missing token: 403", async () => {
    const t = await app();
    expect((await send(t, verificationGet("support", { token: "wrong" }))).status).toBe(403);
    expect((await send(t, verificationGet("support", { token: `${VERIFY_TOKEN}x` }))).status).toBe(403);
    expect((await send(t, verificationGet("support", { token: null }))).status).toBe(403);
    expect((await send(t, verificationGet("support", { token: "" }))).status).toBe(403);
  });

  test("a wrong or missing mode: 403", async () => {
    const t = await app();
    expect((await send(t, verificationGet("support", { mode: "unsubscribe" }))).status).toBe(403);
    expect((await send(t, verificationGet("support", { mode: null }))).status).toBe(403);
  });

  test("no challenge, or an absurdly long one: 403", async () => {
    const t = await app();
    expect((await send(t, verificationGet("support", { challenge: null }))).status).toBe(403);
    expect((await send(t, verificationGet("support", { challenge: "9".repeat(5000) }))).status).toBe(403);
  });

  test("a failed verification is logged as a warning that names the endpoint, without the token", async () => {
    const t = await app();
    await send(t, verificationGet("support", { token: "guessed-token" }));
    const [warning] = warnings(t);
    expect(warning).toMatchObject({ level: "warn", endpoint: "support" });
    expect(t.logs.lines.join("\n")).not.toContain(VERIFY_TOKEN);
  });

  test("an unknown endpoint: 404", async () => {
    const t = await app();
    expect((await send(t, verificationGet("nope"))).status).toBe(404);
    expect((await post(t, textBody("m_1"), {}, "nope")).status).toBe(404);
    expect(await t.inboxRows()).toEqual([]);
  });
});

describe("POST: storing events", () => {
  test("a signed message: 200 EVENT_RECEIVED after the row is stored", async () => {
    const t = await app();
    const res = await post(t, textBody("m_AbC123", { timestamp: 1767225599876 }));
    expect(res.status).toBe(200);
    expect(res.text).toBe("EVENT_RECEIVED");
    // The answer came after the commit: the row is already there.
    const rows = await t.inboxRows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      endpointId: "support",
      pageId: PAGE_ID,
      userId: PSID,
      kind: "message",
      standby: false,
      dedupKey: "message:m_AbC123",
      timestamp: 1767225599876,
      receivedAt: FIXED_NOW,
      status: "pending",
      attempts: 0,
    });
    expect(JSON.parse(rows[0]!.event)).toEqual(textItem("m_AbC123", "hi there", { timestamp: 1767225599876 }));
  });

  test("a batch of 2 entries × 3 items: all 6 stored by the one POST, in order", async () => {
    const t = await app();
    const res = await post(t, fixtureText("batched"));
    expect(res.status).toBe(200);
    const rows = await t.inboxRows();
    expect(rows.map((r) => [r.pageId, r.kind, r.dedupKey])).toEqual([
      [PAGE_ID, "message", "message:m_BATCH_A1"],
      [PAGE_ID, "message", "message:m_BATCH_A2"],
      [PAGE_ID, "postback", "postback:m_BATCH_A3"],
      [PAGE_ID_2, "message", "message:m_BATCH_B1"],
      [PAGE_ID_2, "read", `read:${PAGE_ID_2}:6301234567890999:1767225599102`],
      [PAGE_ID_2, "message", "message:m_BATCH_B3"],
    ]);
    expect(t.app.metrics.render()).toContain('messenger_webhook_events_total{endpoint="support",kind="message",result="stored"} 4');
  });

  test("standby items are stored flagged", async () => {
    const t = await app();
    expect((await post(t, fixtureText("standby"))).status).toBe(200);
    expect((await t.inboxRows()).map((r) => [r.kind, r.standby, r.userId])).toEqual([
      ["message", true, PSID],
      ["postback", true, PSID],
    ]);
  });

  test("every event kind is stored with its user, kind and timestamp", async () => {
    const t = await app();
    const cases: [string, [string, string, number][]][] = [
      ["echo", [["echo", PSID, 1767225602000]]],
      ["delivery", [["delivery", PSID, 1767225602500]]],
      ["read", [["read", PSID, 1767225603000]]],
      ["postback-referral", [["postback", PSID, 1767225604000]]],
      ["referral", [["referral", PSID, 1767225605000]]],
      ["quick-reply", [["message", PSID, 1767225601000]]],
      ["attachments", [["message", PSID, 1767225606000]]],
      [
        "reaction",
        [
          ["reaction", PSID, 1767225607000],
          ["reaction", PSID, 1767225607500],
        ],
      ],
      ["message-edit", [["message_edit", PSID, 1767225608000]]],
      [
        "handover",
        [
          ["pass_thread_control", PSID, 1767225620000],
          ["take_thread_control", PSID, 1767225621000],
          ["request_thread_control", PSID, 1767225622000],
          ["app_roles", "", 1767225623000],
          ["policy_enforcement", "", 1767225624000],
        ],
      ],
    ];
    for (const [fixture, expected] of cases) {
      const before = (await t.inboxRows()).length;
      const res = await post(t, fixtureText(fixture));
      expect(res.status).toBe(200);
      const rows = (await t.inboxRows()).slice(before);
      expect(rows.map((r) => [r.kind, r.userId, r.timestamp])).toEqual(expected);
      expect(rows.every((r) => r.pageId === PAGE_ID && !r.standby)).toBe(true);
    }
  });

  test("the stored event is the item exactly as Facebook sent it", async () => {
    const t = await app();
    await post(t, fixtureText("postback-referral"));
    const [row] = await t.inboxRows();
    expect(JSON.parse(row!.event)).toEqual(fixtureJson("postback-referral").entry[0].messaging[0]);
  });

  test("the Meta-escaped body of the signature test vector is accepted and stored", async () => {
    const t = await app();
    const body = String.raw`{"object":"page","entry":[{"id":"104857600012345","time":1767225600123,"messaging":[{"sender":{"id":"6301234567890123"},"recipient":{"id":"104857600012345"},"timestamp":1767225599876,"message":{"mid":"m_test_0001","text":"caf\u00e9 http:\/\/x.test\/a"}}]}]}`;
    const res = await post(t, body, { signature: "sha256=a351a1f2fe2b6b20d78d042350731d36683cec725541b947588df10294f304b3" });
    expect(res.status).toBe(200);
    const [row] = await t.inboxRows();
    expect(JSON.parse(row!.event).message.text).toBe("café http://x.test/a");
  });

  test("an endpoint without app_secret accepts unsigned POSTs", async () => {
    const t = await app({ endpoints: [{ id: "open", appSecret: null }] });
    expect((await post(t, textBody("m_open"), { secret: null }, "open")).status).toBe(200);
    expect((await t.inboxRows()).map((r) => r.dedupKey)).toEqual(["message:m_open"]);
  });

  test("a malformed item is kept as malformed and logged; the rest of the POST is stored", async () => {
    const t = await app();
    const body = JSON.stringify(envelope([{ messaging: [textItem("m_ok1"), { sender: { id: 42 } }, textItem("m_ok2")] }]));
    expect((await post(t, body)).status).toBe(200);
    const rows = await t.inboxRows();
    expect(rows.map((r) => r.kind)).toEqual(["message", "malformed", "message"]);
    expect(rows.map((r) => r.dedupKey).filter((k) => k.startsWith("message:"))).toEqual(["message:m_ok1", "message:m_ok2"]);
    expect(JSON.parse(rows[1]!.event)).toEqual({ reason: "malformed messaging item at /sender/id: Expected string", raw: { sender: { id: 42 } } });
    expect(warnings(t).some((w) => w.msg.includes('stored as "malformed"'))).toBe(true);
    // A redelivery stores the malformed item once.
    expect((await post(t, body)).status).toBe(200);
    expect(await t.inboxRows()).toHaveLength(3);
  });

  test("bodies sent in chunks (no content-length) are read whole", async () => {
    const t = await app();
    const body = new TextEncoder().encode(textBody("m_chunked"));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(body.slice(0, 10));
        controller.enqueue(body.slice(10));
        controller.close();
      },
    });
    const request = new Request("http://localhost/webhooks/support", {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": signBody(APP_SECRET, body) },
      body: stream,
    });
    expect((await send(t, request)).status).toBe(200);
    expect((await t.inboxRows()).map((r) => r.dedupKey)).toEqual(["message:m_chunked"]);
  });
});

describe("POST: redeliveries", () => {
  test("the same POST twice: 200 both times, stored once", async () => {
    const t = await app();
    const body = fixtureText("batched");
    expect((await post(t, body)).status).toBe(200);
    expect((await post(t, body)).status).toBe(200);
    expect(await t.inboxRows()).toHaveLength(6);
    expect(t.app.metrics.render()).toContain('messenger_webhook_events_total{endpoint="support",kind="any",result="duplicate"} 6');
  });

  test("the same event in two concurrent POSTs: stored once", async () => {
    const t = await app();
    const a = textBody("m_race", { text: "first copy" });
    const b = JSON.stringify(envelope([{ time: 1767225600999, messaging: [textItem("m_race", "second copy"), textItem("m_other")] }]));
    const reported: string[] = [];
    t.app.inbox.onStored((_endpoint, events) => reported.push(...events.map((e) => e.dedupKey)));
    const [ra, rb] = await Promise.all([post(t, a), post(t, b)]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    const rows = await t.inboxRows();
    expect(rows.map((r) => r.dedupKey).sort()).toEqual(["message:m_other", "message:m_race"]);
    // Each stored event is handed on for processing exactly once, and counted once.
    expect(reported.sort()).toEqual(["message:m_other", "message:m_race"]);
    const metrics = t.app.metrics.render();
    expect(metrics).toContain('messenger_webhook_events_total{endpoint="support",kind="message",result="stored"} 2');
    expect(metrics).toContain('messenger_webhook_events_total{endpoint="support",kind="any",result="duplicate"} 1');
  });

  test("many concurrent POSTs of the same event: one row", async () => {
    const t = await app();
    const body = textBody("m_storm");
    const reported: string[] = [];
    t.app.inbox.onStored((_endpoint, events) => reported.push(...events.map((e) => e.dedupKey)));
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(t, body)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(await t.inboxRows()).toHaveLength(1);
    expect(reported).toEqual(["message:m_storm"]);
  });

  test("a redelivery is the same event at the same time: the dedup index is keyed by endpoint, time and key", async () => {
    const t = await app();
    expect((await post(t, textBody("m_twice", { timestamp: 1767225600100 }))).status).toBe(200);
    expect((await post(t, textBody("m_twice", { timestamp: 1767225600100, text: "again" }))).status).toBe(200);
    expect((await post(t, textBody("m_later", { timestamp: 1767225600200 }))).status).toBe(200);
    expect((await t.inboxRows()).map((r) => r.dedupKey)).toEqual(["message:m_twice", "message:m_later"]);
    // The unique index new events land in leads with their time (and no other index on the key is written).
    const indexes = await t.database.client.execute(
      "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'inbox' AND sql LIKE '%dedup_key%'",
    );
    expect(indexes.rows.map((r) => [String(r[0]), String(r[1]).replace(/.*\((.*)\).*/, "$1")])).toEqual([
      ["inbox_dedup_time", "`endpoint_id`,`timestamp`,`dedup_key`"],
    ]);
  });

  test("a malformed item is one event whatever the entry's time (it is keyed by its own time, else 0, and its content)", async () => {
    const t = await app();
    const bad = { sender: { id: 42 } };
    const timed = { sender: { id: 43 }, timestamp: 1767225600300 };
    for (const time of [1767225600001, 1767225600002, "not a time"]) {
      const body = JSON.stringify({ object: "page", entry: [{ id: PAGE_ID, time, messaging: [bad, timed] }] });
      expect((await post(t, body)).status).toBe(200);
    }
    const rows = await t.inboxRows();
    expect(rows.map((r) => [r.kind, r.timestamp])).toEqual([
      ["malformed", 0],
      ["malformed", 1767225600300],
    ]);
  });

  test("one mid at two times in one POST: two events, each handed on with its own row", async () => {
    const t = await app();
    const reported: [number, number][] = [];
    t.app.inbox.onStored((_endpoint, events) => reported.push(...events.map((e) => [e.timestamp, e.inboxId] as [number, number])));
    const body = JSON.stringify(
      envelope([{ messaging: [textItem("m_same", "one", { timestamp: 1767225600400 }), textItem("m_same", "two", { timestamp: 1767225600500 })] }]),
    );
    expect((await post(t, body)).status).toBe(200);
    const rows = await t.inboxRows();
    expect(rows.map((r) => [r.timestamp, r.id])).toEqual(reported);
    expect(reported.map(([time]) => time)).toEqual([1767225600400, 1767225600500]);
  });

  test("events without mid are deduplicated by kind, user and timestamp", async () => {
    const t = await app();
    await post(t, fixtureText("read"));
    await post(t, fixtureText("read"));
    await post(t, fixtureText("delivery"));
    await post(t, fixtureText("delivery"));
    expect((await t.inboxRows()).map((r) => r.kind)).toEqual(["read", "delivery"]);
  });

  test("dedup is per endpoint: the same event on two endpoints is stored for each", async () => {
    const t = await app({
      endpoints: [
        { id: "one", pages: [{ id: PAGE_ID, token: PAGE_TOKEN }] },
        { id: "two", pages: [{ id: PAGE_ID, token: PAGE_TOKEN }] },
      ],
    });
    const body = textBody("m_shared");
    expect((await post(t, body, {}, "one")).status).toBe(200);
    expect((await post(t, body, {}, "two")).status).toBe(200);
    expect((await t.inboxRows()).map((r) => r.endpointId)).toEqual(["one", "two"]);
  });
});

describe("POST: refusals", () => {
  test("no signature: 401, nothing stored", async () => {
    const t = await app();
    const res = await post(t, textBody("m_1"), { secret: null });
    expect(res.status).toBe(401);
    expect(await t.inboxRows()).toEqual([]);
    expect(t.app.metrics.render()).toContain('outcome="bad_signature"');
  });

  test("a wrong signature: 401, nothing stored, and the answer never reveals the expected digest", async () => {
    const t = await app();
    const body = textBody("m_1");
    const expected = signBody(APP_SECRET, body);
    for (const options of [
      { secret: "not-the-app-secret" },
      { signature: signBody(APP_SECRET, textBody("m_2")) },
      { signature: expected.replace("sha256=", "sha1=") },
      { signature: "sha256=" },
      { signature: expected.toUpperCase() },
    ]) {
      const res = await post(t, body, options);
      expect(res.status).toBe(401);
      expect(res.text).not.toContain(expected.slice("sha256=".length));
      expect(res.text).not.toContain(expected.slice("sha256=".length, 20));
      expect([...res.headers.values()].join(" ")).not.toContain(expected.slice("sha256=".length, 20));
    }
    expect(await t.inboxRows()).toEqual([]);
    expect(t.logs.lines.join("\n")).not.toContain(expected.slice("sha256=".length));
  });

  test("a digest that differs from the right one only in its last hex digit: 401", async () => {
    // A comparison of a prefix of the digest would pass every other test of this file.
    const t = await app();
    const body = textBody("m_last_digit");
    const right = signBody(APP_SECRET, body);
    const wrong = right.slice(0, -1) + (right.endsWith("0") ? "1" : "0");
    expect((await post(t, body, { signature: wrong })).status).toBe(401);
    expect(await t.inboxRows()).toEqual([]);
    expect((await post(t, body, { signature: right })).status).toBe(200);
  });

  test("a signature over the re-serialized body does not pass", async () => {
    const t = await app();
    const raw = String.raw`{"object":"page","entry":[{"id":"104857600012345","time":1,"messaging":[{"sender":{"id":"6301234567890123"},"recipient":{"id":"104857600012345"},"timestamp":1,"message":{"mid":"m_esc","text":"caf\u00e9 \/"}}]}]}`;
    const res = await post(t, raw, { signature: signBody(APP_SECRET, JSON.stringify(JSON.parse(raw))) });
    expect(res.status).toBe(401);
  });

  test("a body over server.max_body_bytes: 413, nothing stored", async () => {
    const t = await app({ maxBodyBytes: 1024 });
    const big = textBody("m_big", { text: "x".repeat(2000) });
    const res = await post(t, big);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text)).toMatchObject({ error: "too_large" });
    expect(await t.inboxRows()).toEqual([]);
  });

  test("a declared content-length over the limit: 413 without reading; under it: 200", async () => {
    const t = await app({ maxBodyBytes: 1024 });
    const big = textBody("m_big", { text: "x".repeat(2000) });
    const over = webhookPost("support", big, { headers: { "content-length": String(Buffer.byteLength(big)) } });
    expect(over.headers.get("content-length")).toBe(String(Buffer.byteLength(big)));
    expect((await send(t, over)).status).toBe(413);
    const small = textBody("m_small");
    const under = webhookPost("support", small, { headers: { "content-length": String(Buffer.byteLength(small)) } });
    expect((await send(t, under)).status).toBe(200);
    expect((await t.inboxRows()).map((r) => r.dedupKey)).toEqual(["message:m_small"]);
  });

  test("a chunked body over the limit: 413", async () => {
    const t = await app({ maxBodyBytes: 1024 });
    const chunk = new TextEncoder().encode("x".repeat(600));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk);
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const request = new Request("http://localhost/webhooks/support", { method: "POST", headers: { "x-hub-signature-256": "sha256=00" }, body: stream });
    expect((await send(t, request)).status).toBe(413);
  });

  test("a body of exactly server.max_body_bytes is accepted", async () => {
    const t = await app({ maxBodyBytes: 1024 });
    const base = textBody("m_edge", { text: "" });
    const body = textBody("m_edge", { text: "y".repeat(1024 - base.length) });
    expect(new TextEncoder().encode(body).byteLength).toBe(1024);
    expect((await post(t, body)).status).toBe(200);
    expect(await t.inboxRows()).toHaveLength(1);
  });

  test("malformed JSON: 400, nothing stored", async () => {
    const t = await app();
    const res = await post(t, '{"object":"page","entry":[');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ error: "invalid_body" });
    expect(await t.inboxRows()).toEqual([]);
  });

  test("a bad signature wins over malformed JSON: 401", async () => {
    const t = await app();
    expect((await post(t, "not json", { secret: "wrong-secret" })).status).toBe(401);
    expect((await post(t, "not json", { secret: null })).status).toBe(401);
  });

  test("object instagram: 400, nothing stored", async () => {
    const t = await app();
    const res = await post(t, JSON.stringify(envelope([{ messaging: [textItem("m_ig")] }], "instagram")));
    expect(res.status).toBe(400);
    expect(res.text).toContain("instagram");
    expect(await t.inboxRows()).toEqual([]);
  });

  test("an envelope without entry: 400", async () => {
    const t = await app();
    expect((await post(t, '{"object":"page"}')).status).toBe(400);
  });

  test("errors are JSON with a request id", async () => {
    const t = await app();
    const res = await post(t, textBody("m_1"), { secret: null });
    expect(res.headers.get("content-type")).toStartWith("application/json");
    expect(JSON.parse(res.text)).toEqual({ error: "signature_mismatch", message: expect.any(String) });
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });
});

describe("POST: what cannot be understood is kept or ignored, never refused", () => {
  const item = (extra: Record<string, unknown>) => ({ sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: 1767225610000, ...extra });

  test('a good message next to items with "postback": null, "reaction": null, "message_edit": null: 200, all stored, once', async () => {
    const t = await app();
    const body = JSON.stringify(
      envelope([{ messaging: [textItem("m_good"), item({ postback: null }), item({ reaction: null }), item({ message_edit: null })] }]),
    );
    const res = await post(t, body);
    expect(res.status).toBe(200);
    const rows = await t.inboxRows();
    expect(rows.map((r) => r.kind)).toEqual(["message", "malformed", "malformed", "malformed"]);
    expect(JSON.parse(rows[1]!.event)).toEqual({ reason: 'malformed messaging item: "postback" is null, not an object', raw: item({ postback: null }) });
    const warning = warnings(t).find((w) => w.msg.includes('stored as "malformed"'))!;
    expect(warning).toMatchObject({ malformed: 3, page: PAGE_ID });
    expect(t.app.metrics.render()).toContain('messenger_webhook_events_total{endpoint="support",kind="any",result="malformed"} 3');
    // Facebook redelivers the same body: nothing new.
    expect((await post(t, body)).status).toBe(200);
    expect(await t.inboxRows()).toHaveLength(4);
  });

  test('entries with "messaging": null, "time": "x" or "id": true next to a good entry: 200, the good one stored, the bad id reported', async () => {
    const t = await app();
    const body = JSON.stringify({
      object: "page",
      entry: [
        { id: PAGE_ID, time: 1, messaging: null },
        { id: true, time: 1, messaging: [textItem("m_no_page")] },
        { id: PAGE_ID, time: "x", messaging: [textItem("m_kept")] },
      ],
    });
    expect((await post(t, body)).status).toBe(200);
    expect((await t.inboxRows()).map((r) => r.dedupKey)).toEqual(["message:m_kept"]);
    expect(warnings(t).some((w) => w.msg.includes("no usable Page id") && w.ignored_entries === 1)).toBe(true);
    expect(t.app.metrics.render()).toContain('messenger_webhook_events_total{endpoint="support",kind="any",result="ignored_entry"} 1');
  });

  test("an item nested 50,000 levels deep: 200, stored as malformed with its JSON cut to 64 KiB, its neighbours stored", async () => {
    const t = await app({ maxBodyBytes: 4 * 1024 * 1024 });
    const deep = `${'{"a":'.repeat(50_000)}1${"}".repeat(50_000)}`;
    const body = `{"object":"page","entry":[{"id":"${PAGE_ID}","messaging":[${JSON.stringify(textItem("m_1"))},${JSON.stringify(item({ message: { mid: "m_deep", text: "x" } })).slice(0, -1)},"x":${deep}},${JSON.stringify(textItem("m_2"))}]}]}`;
    const res = await post(t, body);
    expect(res.status).toBe(200);
    const rows = await t.inboxRows();
    expect(rows.map((r) => r.kind)).toEqual(["message", "malformed", "message"]);
    const stored = JSON.parse(rows[1]!.event);
    expect(stored).toMatchObject({ truncated: true, reason: "malformed messaging item: nested deeper than 64 levels" });
    expect(stored.raw_json).toHaveLength(64 * 1024);
    expect((await post(t, body)).status).toBe(200);
    expect(await t.inboxRows()).toHaveLength(3);
  });

  test("numbers that cannot be stored (a watermark or timestamp of 1e400, which is Infinity): 200, malformed, not a storage failure", async () => {
    const t = await app();
    const delivery = `{"sender":{"id":"${PSID}"},"recipient":{"id":"${PAGE_ID}"},"delivery":{"mids":["m_x"],"watermark":1e400}}`;
    const late = `{"sender":{"id":"${PSID}"},"recipient":{"id":"${PAGE_ID}"},"timestamp":1e400,"message":{"mid":"m_inf","text":"x"}}`;
    const body = `{"object":"page","entry":[{"id":"${PAGE_ID}","time":1e400,"messaging":[${delivery},${late},${JSON.stringify(textItem("m_fine"))}]}]}`;
    expect((await post(t, body)).status).toBe(200);
    expect((await t.inboxRows()).map((r) => r.kind)).toEqual(["malformed", "malformed", "message"]);
  });

  test("an event about nobody (no sender, only the Page) is stored as malformed with the reason, not as user ''", async () => {
    const t = await app();
    const nobody = { recipient: { id: PAGE_ID }, timestamp: 1767225610000, message: { mid: "m_nobody", text: "who am I" } };
    expect((await post(t, JSON.stringify(envelope([{ messaging: [nobody] }])))).status).toBe(200);
    const [row] = await t.inboxRows();
    expect(row).toMatchObject({ kind: "malformed", userId: "" });
    expect(JSON.parse(row!.event).reason).toContain("names no person");
  });

  test("a sender id that is not a PSID never becomes a user", async () => {
    const t = await app();
    const hostile = { sender: { id: "../../me/messages" }, recipient: { id: PAGE_ID }, timestamp: 1, message: { mid: "m_h", text: "x" } };
    expect((await post(t, JSON.stringify(envelope([{ messaging: [hostile] }])))).status).toBe(200);
    expect((await t.inboxRows()).map((r) => [r.kind, r.userId])).toEqual([["malformed", ""]]);
  });

  test("a mid SQLite cannot give back as written (a NUL) is keyed without it, and the event is handed on for processing", async () => {
    const t = await app();
    const reported: string[] = [];
    t.app.inbox.onStored((_endpoint, events) => reported.push(...events.map((e) => e.dedupKey)));
    expect((await post(t, JSON.stringify(envelope([{ messaging: [item({ message: { mid: "m_\u0000x", text: "x" } })] }])))).status).toBe(200);
    expect(reported).toEqual([`message:${PAGE_ID}:${PSID}:1767225610000`]);
  });

  test("still 400: a body that is not a Messenger envelope as a whole", async () => {
    const t = await app();
    for (const body of [
      "not json",
      "[]",
      '"page"',
      '{"object":"user","entry":[]}',
      '{"object":"page"}',
      '{"object":"page","entry":{}}',
      '{"object":"page","entry":null}',
      '{"object":7}',
    ]) {
      const res = await post(t, body);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: "invalid_body" });
    }
    expect(await t.inboxRows()).toEqual([]);
  });
});

describe("POST: acknowledged and ignored", () => {
  test("the App Dashboard test ping: 200, nothing stored", async () => {
    const t = await app();
    const res = await post(t, fixtureText("dashboard-ping"));
    expect(res.status).toBe(200);
    expect(await t.inboxRows()).toEqual([]);
    expect(t.app.metrics.render()).toContain('outcome="ignored"');
  });

  test("a Page feed change (changes[] only): 200, nothing stored", async () => {
    const t = await app();
    expect((await post(t, fixtureText("feed-changes"))).status).toBe(200);
    expect(await t.inboxRows()).toEqual([]);
  });

  test("a disabled endpoint: 200, nothing stored, counted", async () => {
    const t = await app({ endpoints: [{ id: "paused", enabled: false }] });
    const res = await post(t, fixtureText("batched"), {}, "paused");
    expect(res.status).toBe(200);
    expect(await t.inboxRows()).toEqual([]);
    expect(t.app.metrics.render()).toContain('messenger_webhook_requests_total{endpoint="paused",outcome="disabled"} 1');
  });

  test("a disabled endpoint still checks the signature", async () => {
    const t = await app({ endpoints: [{ id: "paused", enabled: false }] });
    expect((await post(t, textBody("m_1"), { secret: null }, "paused")).status).toBe(401);
  });

  test("events for a Page not listed: 200, not stored, warned once", async () => {
    const t = await app();
    const body = textBody("m_stranger", { pageId: UNLISTED_PAGE_ID });
    expect((await post(t, body)).status).toBe(200);
    expect((await post(t, textBody("m_stranger_2", { pageId: UNLISTED_PAGE_ID }))).status).toBe(200);
    expect(await t.inboxRows()).toEqual([]);
    const about = warnings(t).filter((w) => w.msg.includes(UNLISTED_PAGE_ID));
    expect(about).toHaveLength(1);
    expect(about[0]).toMatchObject({ endpoint: "support", page: UNLISTED_PAGE_ID });
    expect(t.app.metrics.render()).toContain('messenger_webhook_events_total{endpoint="support",kind="any",result="unknown_page"} 2');
  });

  test("a batch mixing a listed and an unlisted Page stores the listed Page's events", async () => {
    const t = await app();
    const body = JSON.stringify(
      envelope([
        { id: UNLISTED_PAGE_ID, messaging: [textItem("m_x", "x", { pageId: UNLISTED_PAGE_ID })] },
        { id: PAGE_ID, messaging: [textItem("m_y", "y", { psid: PSID_2 })] },
      ]),
    );
    expect((await post(t, body)).status).toBe(200);
    expect((await t.inboxRows()).map((r) => [r.pageId, r.userId])).toEqual([[PAGE_ID, PSID_2]]);
  });
});

describe("storage failure", () => {
  test("events that cannot be stored are not acknowledged: 500, so Facebook retries", async () => {
    const t = await app();
    t.database.close();
    const res = await post(t, textBody("m_lost"));
    expect(res.status).toBe(500);
    expect(t.logs.records().some((r) => r.level === "error" && r.endpoint === "support")).toBe(true);
  });
});

describe("log lines", () => {
  test("are JSON with level, endpoint and request_id, and the request id is the one answered", async () => {
    const t = await app();
    const res = await post(t, textBody("m_1"), { secret: null });
    const records: LogRecord[] = t.logs.records();
    expect(records.length).toBeGreaterThan(0);
    const line = records.find((r) => r.level === "warn")!;
    expect(line).toMatchObject({ level: "warn", endpoint: "support", request_id: res.headers.get("x-request-id") });
    expect(typeof line.time).toBe("string");
    expect(typeof line.msg).toBe("string");
  });

  test("every webhook log line carries endpoint and request_id", async () => {
    const t = await app();
    await post(t, textBody("m_1"));
    await post(t, textBody("m_2", { pageId: UNLISTED_PAGE_ID }));
    await post(t, "{", {});
    await send(t, verificationGet("support"));
    await send(t, verificationGet("support", { token: "bad" }));
    for (const r of t.logs.records()) {
      expect(r.endpoint).toBe("support");
      expect(typeof r.request_id).toBe("string");
      expect(["debug", "info", "warn", "error"]).toContain(r.level);
    }
  });
});

test("no secret appears in any log line or response of this file", () => {
  expect(apps.length).toBeGreaterThan(10);
  const everything = [...seen, ...apps.flatMap((t) => t.logs.lines)].join("\n");
  expect(everything.length).toBeGreaterThan(0);
  for (const secret of [APP_SECRET, VERIFY_TOKEN, PAGE_TOKEN, PAGE_TOKEN_2]) expect(everything).not.toContain(secret);
});
