import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { signBody, verifySignature } from "../../../src/webhook/signature.ts";
import {
  attachment,
  deliverWebhook,
  delivery,
  echo,
  envelope,
  metaJson,
  multiEnvelope,
  passThreadControl,
  postback,
  read,
  referral,
  requestThreadControl,
  takeThreadControl,
  textMessage,
} from "../../../src/simulator/webhook-driver.ts";

const SECRET = "test_app_secret_0123";
const PAGE = "104857600012345";
const PSID = "6301234567890123";
const VECTOR = String.raw`{"object":"page","entry":[{"id":"104857600012345","time":1767225600123,"messaging":[{"sender":{"id":"6301234567890123"},"recipient":{"id":"104857600012345"},"timestamp":1767225599876,"message":{"mid":"m_test_0001","text":"caf\u00e9 http:\/\/x.test\/a"}}]}]}`;

describe("metaJson", () => {
  test("reproduces a body as Meta escapes it, byte for byte, and its signatures", () => {
    const value = {
      object: "page",
      entry: [
        {
          id: PAGE,
          time: 1767225600123,
          messaging: [
            { sender: { id: PSID }, recipient: { id: PAGE }, timestamp: 1767225599876, message: { mid: "m_test_0001", text: "café http://x.test/a" } },
          ],
        },
      ],
    };
    const body = metaJson(value);
    expect(body).toBe(VECTOR);
    expect(new TextEncoder().encode(body).byteLength).toBe(257);
    expect(signBody(SECRET, body)).toBe("sha256=a351a1f2fe2b6b20d78d042350731d36683cec725541b947588df10294f304b3");
    expect(`sha1=${createHmac("sha1", SECRET).update(body).digest("hex")}`).toBe("sha1=4cbee9751f3a0028ec46234cc75bca2caa1a0eb3");
  });

  test("the same builders produce the vector", () => {
    const item = textMessage(PAGE, PSID, "café http://x.test/a", { mid: "m_test_0001", timestamp: 1767225599876 });
    expect(metaJson(envelope(PAGE, [item], { time: 1767225600123 }))).toBe(VECTOR);
  });

  test("escapes emoji as two lower-case surrogate escapes and stays pure ASCII", () => {
    const body = metaJson({ t: "😀 Ä/ü\u2028" });
    expect(body).toBe(String.raw`{"t":"\ud83d\ude00 \u00c4\/\u00fc\u2028"}`);
    expect([...body].every((c) => c.charCodeAt(0) < 0x80)).toBe(true); // ASCII only
    expect(JSON.parse(body)).toEqual({ t: "😀 Ä/ü\u2028" });
  });
});

describe("envelopes", () => {
  test("messaging and standby entries", () => {
    const item = read(PAGE, PSID, 5, { timestamp: 6 });
    expect(envelope(PAGE, [item], { time: 7 })).toEqual({ object: "page", entry: [{ id: PAGE, time: 7, messaging: [item] }] });
    expect(envelope(PAGE, [item], { time: 7, standby: true })).toEqual({ object: "page", entry: [{ id: PAGE, time: 7, standby: [item] }] });
  });

  test("several entries in one body", () => {
    const a = textMessage(PAGE, PSID, "a");
    const b = textMessage("205030405060708", "7409876543210987", "b");
    const body = multiEnvelope([
      { pageId: PAGE, items: [a], time: 1 },
      { pageId: "205030405060708", items: [b], time: 2, standby: true },
    ]);
    expect(body.entry).toEqual([
      { id: PAGE, time: 1, messaging: [a] },
      { id: "205030405060708", time: 2, standby: [b] },
    ]);
  });
});

describe("event factories", () => {
  test("auto-increment mids and strictly increasing timestamps", () => {
    const a = textMessage(PAGE, PSID, "a") as any;
    const b = textMessage(PAGE, PSID, "b") as any;
    expect(a.message.mid).not.toBe(b.message.mid);
    expect(b.timestamp).toBeGreaterThan(a.timestamp);
    expect(String(a.timestamp)).toHaveLength(13);
  });

  test("user → page events: snake_case, string IDs", () => {
    expect(textMessage(PAGE, PSID, "Blue", { mid: "m1", timestamp: 1, quickReplyPayload: "COLOR_BLUE" })).toEqual({
      sender: { id: PSID },
      recipient: { id: PAGE },
      timestamp: 1,
      message: { mid: "m1", text: "Blue", quick_reply: { payload: "COLOR_BLUE" } },
    });
    expect(postback(PAGE, PSID, "GET_STARTED", { title: "Get Started", mid: "m2", timestamp: 2, referral: { ref: "spring-promo" } })).toEqual({
      sender: { id: PSID },
      recipient: { id: PAGE },
      timestamp: 2,
      postback: { mid: "m2", title: "Get Started", payload: "GET_STARTED", referral: { source: "SHORTLINK", type: "OPEN_THREAD", ref: "spring-promo" } },
    });
    expect((postback(PAGE, PSID, "X", { standby: true }) as any).postback.payload).toBeUndefined();
    expect(attachment(PAGE, PSID, "image", "https://cdn.example.test/a.jpg", { mid: "m3", timestamp: 3 })).toEqual({
      sender: { id: PSID },
      recipient: { id: PAGE },
      timestamp: 3,
      message: { mid: "m3", attachments: [{ type: "image", payload: { url: "https://cdn.example.test/a.jpg" } }] },
    });
    expect((attachment(PAGE, PSID, "fallback", undefined) as any).message.attachments[0].payload).toBeNull();
    expect(referral(PAGE, PSID, { ref: "summer-sale" }, { timestamp: 4 })).toEqual({
      sender: { id: PSID },
      recipient: { id: PAGE },
      timestamp: 4,
      referral: { source: "SHORTLINK", type: "OPEN_THREAD", ref: "summer-sale" },
    });
  });

  test("echo: page → user, app_id a number", () => {
    const e = echo(PAGE, PSID, { appId: "987654321098765", text: "Your order shipped", metadata: "order-42", mid: "m_E05", timestamp: 5 });
    expect(e).toEqual({
      sender: { id: PAGE },
      recipient: { id: PSID },
      timestamp: 5,
      message: { is_echo: true, app_id: 987654321098765, metadata: "order-42", mid: "m_E05", text: "Your order shipped" },
    });
    expect(metaJson(e)).toContain(`"app_id":987654321098765`);
  });

  test("delivery has no timestamp; read has one", () => {
    expect(delivery(PAGE, PSID, 10, ["m_1"])).toEqual({ sender: { id: PSID }, recipient: { id: PAGE }, delivery: { mids: ["m_1"], watermark: 10 } });
    expect(read(PAGE, PSID, 10, { timestamp: 11 })).toEqual({ sender: { id: PSID }, recipient: { id: PAGE }, timestamp: 11, read: { watermark: 10 } });
  });

  test("handover events", () => {
    expect((passThreadControl(PAGE, PSID, "111", "back to bot", { previousOwnerAppId: "263902037430900" }) as any).pass_thread_control).toEqual({
      previous_owner_app_id: "263902037430900",
      new_owner_app_id: "111",
      metadata: "back to bot",
    });
    expect((takeThreadControl(PAGE, PSID, "111", "taken") as any).take_thread_control).toEqual({ previous_owner_app_id: "111", metadata: "taken" });
    expect((requestThreadControl(PAGE, PSID, "123456789", "please") as any).request_thread_control).toEqual({
      requested_owner_app_id: 123456789,
      metadata: "please",
    });
  });
});

describe("deliverWebhook", () => {
  let server: ReturnType<typeof Bun.serve>;
  const received: { headers: Headers; bytes: Uint8Array }[] = [];
  beforeAll(() => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request) {
        received.push({ headers: request.headers, bytes: new Uint8Array(await request.arrayBuffer()) });
        return new Response("EVENT_RECEIVED");
      },
    });
  });
  afterAll(() => server.stop(true));

  test("POSTs the exact bytes with both signatures", async () => {
    const response = await deliverWebhook(`http://127.0.0.1:${server.port}/webhook`, VECTOR, SECRET);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("EVENT_RECEIVED");
    const got = received.at(-1)!;
    expect(new TextDecoder().decode(got.bytes)).toBe(VECTOR);
    expect(got.headers.get("content-type")).toBe("application/json");
    expect(got.headers.get("x-hub-signature-256")).toBe("sha256=a351a1f2fe2b6b20d78d042350731d36683cec725541b947588df10294f304b3");
    expect(got.headers.get("x-hub-signature")).toBe("sha1=4cbee9751f3a0028ec46234cc75bca2caa1a0eb3");
    expect(verifySignature(SECRET, got.bytes, got.headers.get("x-hub-signature-256"))).toBe(true);
  });

  test("without a secret: no signature headers", async () => {
    await deliverWebhook(`http://127.0.0.1:${server.port}/webhook`, "{}");
    const got = received.at(-1)!;
    expect(got.headers.get("x-hub-signature-256")).toBeNull();
    expect(got.headers.get("x-hub-signature")).toBeNull();
  });
});
