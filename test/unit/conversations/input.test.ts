import { describe, expect, test } from "bun:test";
import { inputFromEvent, type InputContext } from "../../../src/conversations/input.ts";
import { PAGE_ID, PSID, fixtureJson, postbackItem, textItem } from "../../helpers/index.ts";

const ctx: InputContext = {
  endpointId: "support",
  pageId: PAGE_ID,
  userId: PSID,
  sessionId: "s_0001",
  contactId: "c_0001",
  context: { count: 2, history: [] },
  contact: { first_name: "Ann", last_name: "Lee" },
  locale: "fr",
  source: "user",
};

/** The first messaging item of a fixture. */
const itemOf = (fixture: string): Record<string, any> => fixtureJson(fixture).entry[0].messaging[0];

describe("inputFromEvent: the fields around the event", () => {
  test("ids, session, source, context, contact and locale come from the context; nlu and handover are null", () => {
    const event = textItem("m_1", "hello");
    const input = inputFromEvent(event, ctx);
    expect(input).toEqual({
      endpoint_id: "support",
      page_id: PAGE_ID,
      user_id: PSID,
      contact_id: "c_0001",
      session_id: "s_0001",
      source: "user",
      text: "hello",
      data: { request: event },
      context: { count: 2, history: [] },
      contact: { first_name: "Ann", last_name: "Lee" },
      locale: "fr",
      language: "fr",
      nlu: null,
      handover: null,
    });
  });

  test("the raw event is data.request, the very object", () => {
    const event = textItem("m_2");
    expect(inputFromEvent(event, ctx).data.request).toBe(event);
  });

  test("a contact id of null and other sources are passed on", () => {
    const input = inputFromEvent(textItem("m_3"), { ...ctx, contactId: null, source: "inject" });
    expect(input.contact_id).toBeNull();
    expect(input.source).toBe("inject");
    expect(inputFromEvent(textItem("m_4"), { ...ctx, source: "handover" }).source).toBe("handover");
  });
});

describe("inputFromEvent: messages", () => {
  test("a text message: its text, no payload", () => {
    const input = inputFromEvent(textItem("m_5", "I want to order"), ctx);
    expect(input.text).toBe("I want to order");
    expect(input.data.payload).toBeUndefined();
    expect(input.data.attachments).toBeUndefined();
    expect(Object.keys(input.data)).toEqual(["request"]);
  });

  test("a quick reply: the payload becomes the text and data.payload; the title stays in data.request", () => {
    const event = itemOf("quick-reply");
    const input = inputFromEvent(event, ctx);
    expect(input.text).toBe("COLOR_BLUE");
    expect(input.data.payload).toBe("COLOR_BLUE");
    expect((input.data.request as any).message.text).toBe("Blue");
  });

  test("attachments: type and URL; fallback with URL and title; stickers; locations", () => {
    const input = inputFromEvent(itemOf("attachments"), ctx);
    expect(input.text).toBe("");
    expect(input.data.attachments).toEqual([
      { type: "image", url: "https://cdn.example.test/abc.jpg" },
      { type: "fallback", url: "https://news.example.test/x", title: "Some article" },
      { type: "location", coordinates: { lat: 48.8566, long: 2.3522 } },
    ]);

    const sticker = inputFromEvent(
      {
        sender: { id: PSID },
        recipient: { id: PAGE_ID },
        message: {
          mid: "m_S1",
          attachments: [
            { type: "sticker", payload: { url: "https://cdn.example.test/sticker.png", sticker_id: 369239263222822 } },
            { type: "image", payload: { url: "https://cdn.example.test/sticker.png", sticker_id: 369239263222822 } },
          ],
        },
      },
      ctx,
    );
    expect(sticker.data.attachments).toEqual([
      { type: "sticker", url: "https://cdn.example.test/sticker.png", sticker_id: 369239263222822 },
      { type: "image", url: "https://cdn.example.test/sticker.png", sticker_id: 369239263222822 },
    ]);
  });

  test("odd attachments: lower-case url on the attachment, no payload, no type", () => {
    const input = inputFromEvent({ message: { mid: "m_O1", attachments: [{ type: "fallback", url: "https://a.example.test/" }, { type: "file" }, {}] } }, ctx);
    expect(input.data.attachments).toEqual([{ type: "fallback", url: "https://a.example.test/" }, { type: "file" }, { type: "unknown" }]);
  });

  test("an empty attachments list is no attachments", () => {
    expect(inputFromEvent({ message: { mid: "m_E1", text: "x", attachments: [] } }, ctx).data.attachments).toBeUndefined();
  });

  test("a text with attachments keeps both", () => {
    const input = inputFromEvent(
      { message: { mid: "m_T1", text: "look", attachments: [{ type: "image", payload: { url: "https://i.example.test/1.png" } }] } },
      ctx,
    );
    expect(input.text).toBe("look");
    expect(input.data.attachments).toEqual([{ type: "image", url: "https://i.example.test/1.png" }]);
  });

  test("a message with a referral (from a shop product) has data.referral", () => {
    const referral = { product: { id: "1234" }, source: "SHOPS" };
    const input = inputFromEvent({ message: { mid: "m_R1", text: "about this", referral } }, ctx);
    expect(input.text).toBe("about this");
    expect(input.data.referral).toEqual(referral);
  });
});

describe("inputFromEvent: postbacks, referrals, optins", () => {
  test("a postback: the payload is the text and data.payload", () => {
    const input = inputFromEvent(postbackItem("m_P1", "ORDER"), ctx);
    expect(input.text).toBe("ORDER");
    expect(input.data.payload).toBe("ORDER");
    expect(input.data.referral).toBeUndefined();
  });

  test("a Get Started postback with a referral: data.referral from postback.referral", () => {
    const input = inputFromEvent(itemOf("postback-referral"), ctx);
    expect(input.text).toBe("GET_STARTED");
    expect(input.data.payload).toBe("GET_STARTED");
    expect(input.data.referral).toEqual({ ref: "spring-promo", source: "SHORTLINK", type: "OPEN_THREAD" });
  });

  test("a postback without payload (standby) has an empty text", () => {
    const input = inputFromEvent({ postback: { mid: "m_P2", title: "Menu" } }, ctx);
    expect(input.text).toBe("");
    expect(input.data.payload).toBeUndefined();
  });

  test("a referral event: data.referral, an empty text", () => {
    const input = inputFromEvent(itemOf("referral"), ctx);
    expect(input.text).toBe("");
    expect(input.data.referral).toEqual({ ref: "summer-sale", source: "SHORTLINK", type: "OPEN_THREAD" });
    expect(input.data.payload).toBeUndefined();
  });

  test("an optin: data.optin, and its payload as data.payload (the text stays empty)", () => {
    const optin = { type: "notification_messages", payload: "weekly-deals", notification_messages_token: "NMT_abc" };
    const input = inputFromEvent({ sender: { id: PSID }, recipient: { id: PAGE_ID }, optin }, ctx);
    expect(input.data.optin).toEqual(optin);
    expect(input.data.payload).toBe("weekly-deals");
    expect(input.text).toBe("");
    const legacy = inputFromEvent({ optin: { ref: "data-ref", user_ref: "u_1" } }, ctx);
    expect(legacy.data.optin).toEqual({ ref: "data-ref", user_ref: "u_1" });
    expect(legacy.data.payload).toBeUndefined();
  });

  test("an event of another kind: only the raw event", () => {
    const event = { reaction: { reaction: "love", action: "react", mid: "m_E05" } };
    const input = inputFromEvent(event, ctx);
    expect(input.text).toBe("");
    expect(input.data).toEqual({ request: event });
  });
});
