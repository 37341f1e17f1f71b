import { describe, expect, test } from "bun:test";
import * as L from "../../../src/simulator/messenger-limits.ts";
import { validateSendBody } from "../../../src/simulator/messenger-limits.ts";

const recipient = { id: "6301234567890123" };
const msg = (message: unknown, extra: Record<string, unknown> = {}) => ({ recipient, messaging_type: "RESPONSE", message, ...extra });
const postbackButton = (title = "Talk to us", payload = "SUPPORT") => ({ type: "postback", title, payload });
const webButton = (title = "Track", url = "https://shop.example.test/o/42") => ({ type: "web_url", title, url });
const buttonTemplate = (text: string, buttons: unknown[]) => ({ attachment: { type: "template", payload: { template_type: "button", text, buttons } } });
const generic = (elements: unknown[]) => ({ attachment: { type: "template", payload: { template_type: "generic", elements } } });
const element = (extra: Record<string, unknown> = {}) => ({ title: "Order #42 shipped", subtitle: "Arrives Friday", ...extra });
const qr = (title: string, payload = "P", extra: Record<string, unknown> = {}) => ({ content_type: "text", title, payload, ...extra });
const s = (n: number, c = "a") => c.repeat(n);
// Four code points, eight UTF-16 units: limits count code points.
const emoji = (n: number) => "😀".repeat(n);

function rejects(body: unknown, fragment: string | RegExp, options?: L.ValidateOptions) {
  const result = validateSendBody(body, options);
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.code).toBe(100);
  expect(result.message.startsWith("(#100) ")).toBe(true);
  if (typeof fragment === "string") expect(result.message).toContain(fragment);
  else expect(result.message).toMatch(fragment);
}

function accepts(body: unknown, options?: L.ValidateOptions) {
  expect(validateSendBody(body, options)).toEqual({ ok: true });
}

describe("constants", () => {
  test("the documented limits", () => {
    expect([L.TEXT_MAX, L.QUICK_REPLIES_MAX, L.QUICK_REPLY_TITLE_MAX, L.PAYLOAD_MAX, L.BUTTONS_MAX, L.BUTTON_TITLE_MAX]).toEqual([2000, 13, 20, 1000, 3, 20]);
    expect([L.BUTTON_TEMPLATE_TEXT_MAX, L.GENERIC_ELEMENTS_MAX, L.ELEMENT_TITLE_MAX, L.ELEMENT_SUBTITLE_MAX, L.METADATA_MAX]).toEqual([640, 10, 80, 80, 1000]);
  });

  test("lengths are code points", () => {
    expect(L.charLength(emoji(3))).toBe(3);
  });
});

describe("message vs sender_action", () => {
  test("both → Cannot send both message and state", () => {
    rejects({ recipient, message: { text: "hi" }, sender_action: "typing_on" }, "(#100) Cannot send both message and state at the same time.");
  });
  test("neither", () => rejects({ recipient, messaging_type: "RESPONSE" }, "Must send either message or state"));
  test("sender action alone, with persona_id / notification_type", () => {
    accepts({ recipient, sender_action: "typing_on" });
    accepts({ recipient, sender_action: "mark_seen", persona_id: "123", notification_type: "SILENT_PUSH" });
  });
  test("sender action with other fields is rejected", () => {
    rejects({ recipient, sender_action: "typing_on", messaging_type: "RESPONSE" }, "messaging_type");
    rejects({ recipient, sender_action: "typing_on", tag: "HUMAN_AGENT" }, "tag");
  });
  test("unknown sender action", () => rejects({ recipient, sender_action: "dancing" }, "sender_action"));
  test("react needs a payload with message_id and a known reaction", () => {
    accepts({ recipient, sender_action: "react", payload: { message_id: "m_1", reaction: "love" } });
    accepts({ recipient, sender_action: "unreact", payload: { message_id: "m_1" } });
    rejects({ recipient, sender_action: "react", payload: { message_id: "m_1", reaction: "meh" } }, "reaction");
    rejects({ recipient, sender_action: "react" }, "payload");
  });
});

describe("recipient", () => {
  test("required", () => rejects({ messaging_type: "RESPONSE", message: { text: "hi" } }, "recipient"));
  test("exactly one known key", () => {
    accepts(msg({ text: "hi" }, { recipient: { user_ref: "ref-1" } }));
    accepts(msg({ text: "hi" }, { recipient: { comment_id: "1_2" } }));
    rejects(msg({ text: "hi" }, { recipient: {} }), "exactly one of");
    rejects(msg({ text: "hi" }, { recipient: { id: "1", user_ref: "2" } }), "exactly one of");
    rejects(msg({ text: "hi" }, { recipient: { email: "a@b.test" } }), "exactly one of");
    rejects(msg({ text: "hi" }, { recipient: { id: "" } }), "recipient[id]");
  });
});

describe("messaging_type and tag", () => {
  test("known values only", () => {
    accepts(msg({ text: "hi" }, { messaging_type: "UPDATE" }));
    rejects(msg({ text: "hi" }, { messaging_type: "NON_PROMOTIONAL_SUBSCRIPTION" }), "messaging_type");
  });
  test("missing is accepted unless required", () => {
    accepts({ recipient, message: { text: "hi" } });
    rejects({ recipient, message: { text: "hi" } }, "messaging_type is required", { requireMessagingType: true });
  });
  test("MESSAGE_TAG needs a valid tag", () => {
    accepts(msg({ text: "hi" }, { messaging_type: "MESSAGE_TAG", tag: "POST_PURCHASE_UPDATE" }));
    accepts(msg({ text: "hi" }, { messaging_type: "MESSAGE_TAG", tag: "HUMAN_AGENT" }));
    rejects(msg({ text: "hi" }, { messaging_type: "MESSAGE_TAG" }), "tag is required");
    rejects(msg({ text: "hi" }, { messaging_type: "MESSAGE_TAG", tag: "PROMO" }), "param tag");
  });
  test("a tag without MESSAGE_TAG is rejected", () => {
    rejects(msg({ text: "hi" }, { messaging_type: "RESPONSE", tag: "HUMAN_AGENT" }), "MESSAGE_TAG");
    rejects({ recipient, message: { text: "hi" }, tag: "HUMAN_AGENT" }, "MESSAGE_TAG");
  });
  test("notification_type", () => {
    accepts(msg({ text: "hi" }, { notification_type: "NO_PUSH" }));
    rejects(msg({ text: "hi" }, { notification_type: "LOUD" }), "notification_type");
  });
});

describe("message body", () => {
  test("exactly one of text or attachment", () => {
    rejects(msg({}), "Message cannot be empty");
    rejects(msg({ text: "hi", attachment: { type: "image", payload: { url: "https://x.test/a.png" } } }), "Only one of");
  });
  test("text is 1–2000 code points", () => {
    accepts(msg({ text: s(2000) }));
    accepts(msg({ text: emoji(2000) }));
    rejects(msg({ text: s(2001) }), "Length of param message[text] must be less than or equal to 2000");
    rejects(msg({ text: emoji(2001) }), "message[text]");
    rejects(msg({ text: "" }), "message[text]");
  });
  test("metadata ≤ 1000", () => {
    accepts(msg({ text: "hi", metadata: s(1000) }));
    rejects(msg({ text: "hi", metadata: s(1001) }), "message[metadata]");
  });
});

describe("quick replies", () => {
  test("at most 13", () => {
    accepts(msg({ text: "pick", quick_replies: Array.from({ length: 13 }, (_, i) => qr(`Q${i}`)) }));
    rejects(msg({ text: "pick", quick_replies: Array.from({ length: 14 }, (_, i) => qr(`Q${i}`)) }), "message[quick_replies]");
  });
  test("content types", () => {
    accepts(msg({ text: "pick", quick_replies: [{ content_type: "user_email" }, { content_type: "user_phone_number" }] }));
    rejects(msg({ text: "pick", quick_replies: [{ content_type: "location" }] }), "content_type");
  });
  test("text title: non-empty, ≤ 20, unless an image is given", () => {
    accepts(msg({ text: "pick", quick_replies: [qr(s(20))] }));
    accepts(msg({ text: "pick", quick_replies: [qr(emoji(20))] }));
    rejects(msg({ text: "pick", quick_replies: [qr(s(21))] }), "[title]");
    rejects(msg({ text: "pick", quick_replies: [qr("")] }), "[title]");
    rejects(msg({ text: "pick", quick_replies: [{ content_type: "text", payload: "P" }] }), "[title]");
    accepts(msg({ text: "pick", quick_replies: [qr("", "P", { image_url: "https://x.test/red.png" })] }));
    accepts(msg({ text: "pick", quick_replies: [{ content_type: "text", payload: "P", image_url: "https://x.test/red.png" }] }));
  });
  test("text payload: required, ≤ 1000", () => {
    accepts(msg({ text: "pick", quick_replies: [qr("A", s(1000))] }));
    rejects(msg({ text: "pick", quick_replies: [qr("A", s(1001))] }), "[payload]");
    rejects(msg({ text: "pick", quick_replies: [{ content_type: "text", title: "A" }] }), "[payload]");
  });
  test("can accompany an attachment", () => {
    accepts(msg({ attachment: { type: "image", payload: { url: "https://x.test/a.png" } }, quick_replies: [qr("A")] }));
  });
});

describe("media attachments", () => {
  test("url or attachment_id", () => {
    for (const type of ["image", "audio", "video", "file"]) {
      accepts(msg({ attachment: { type, payload: { url: "https://x.test/a", is_reusable: true } } }));
      accepts(msg({ attachment: { type, payload: { attachment_id: "1234567890" } } }));
      rejects(msg({ attachment: { type, payload: {} } }), "url or attachment_id");
    }
    rejects(msg({ attachment: { type: "image", payload: { url: "https://x.test/a", attachment_id: "1" } } }), "url or attachment_id");
    rejects(msg({ attachment: { type: "image", payload: { url: "not a url" } } }), "url");
  });
  test("unknown attachment type", () => rejects(msg({ attachment: { type: "sticker", payload: { url: "https://x.test/a" } } }), "type"));
});

describe("generic template", () => {
  test("1–10 elements", () => {
    accepts(msg(generic(Array.from({ length: 10 }, () => element()))));
    rejects(msg(generic([])), "elements");
    rejects(msg(generic(Array.from({ length: 11 }, () => element()))), "elements");
  });
  test("title required, ≤ 80; subtitle ≤ 80", () => {
    accepts(msg(generic([element({ title: s(80), subtitle: s(80) })])));
    rejects(msg(generic([element({ title: s(81) })])), "[title]");
    rejects(msg(generic([{ subtitle: "no title" }])), "[title]");
    rejects(msg(generic([element({ subtitle: s(81) })])), "[subtitle]");
  });
  test("≤ 3 buttons per element, each valid", () => {
    accepts(msg(generic([element({ buttons: [webButton(), postbackButton(), postbackButton("B")] })])));
    rejects(msg(generic([element({ buttons: [webButton(), postbackButton(), postbackButton("B"), postbackButton("C")] })])), "[buttons]");
    rejects(msg(generic([element({ buttons: [postbackButton(s(21))] })])), "[buttons][0][title]");
  });
  test("default_action is a URL button without a title", () => {
    accepts(msg(generic([element({ default_action: { type: "web_url", url: "https://x.test/" } })])));
    rejects(msg(generic([element({ default_action: { type: "web_url", url: "https://x.test/", title: "T" } })])), "default_action");
  });
});

describe("button template", () => {
  test("text non-empty, ≤ 640", () => {
    accepts(msg(buttonTemplate(s(640), [postbackButton()])));
    rejects(msg(buttonTemplate(s(641), [postbackButton()])), "[text]");
    rejects(msg(buttonTemplate("", [postbackButton()])), "[text]");
  });
  test("1–3 buttons", () => {
    accepts(msg(buttonTemplate("t", [postbackButton(), postbackButton("B"), webButton()])));
    rejects(msg(buttonTemplate("t", [])), "[buttons]");
    rejects(msg(buttonTemplate("t", [postbackButton(), postbackButton(), postbackButton(), postbackButton()])), "[buttons]");
  });
  test("unknown template type", () => rejects(msg({ attachment: { type: "template", payload: { template_type: "list" } } }), "template_type"));
});

describe("buttons", () => {
  const one = (button: unknown) => msg(buttonTemplate("t", [button]));
  test("postback: title ≤ 20, payload ≤ 1000", () => {
    accepts(one(postbackButton(s(20), s(1000))));
    rejects(one(postbackButton(s(21))), "[title]");
    rejects(one(postbackButton("T", s(1001))), "[payload]");
    rejects(one({ type: "postback", title: "T" }), "[payload]");
  });
  test("web_url: needs url, title ≤ 20", () => {
    accepts(one(webButton(s(20))));
    rejects(one({ type: "web_url", title: "T" }), "[url]");
    rejects(one(webButton(s(21))), "[title]");
    rejects(one({ ...webButton(), webview_height_ratio: "huge" }), "webview_height_ratio");
  });
  test("phone_number: payload is a phone number", () => {
    accepts(one({ type: "phone_number", title: "Call", payload: "+15105551234" }));
    rejects(one({ type: "phone_number", title: "Call", payload: "call me" }), "phone number");
  });
  test("unknown type", () => rejects(one({ type: "teleport", title: "T" }), "[type]"));
});
