/** The texts a user reads in Send API messages, and Messenger's limits after translation (src/translation/messages.ts). */
import { describe, expect, test } from "bun:test";
import { convertOutput } from "../../../src/messenger/convert.ts";
import { fitted, slotsOf, type Message } from "../../../src/translation/messages.ts";

const texts = (m: Message, payloads = false) => slotsOf(m, payloads).map((s) => s.text);
/** Every text upper-cased, as a stand-in translation. */
const shout = (m: Message, payloads = false) => {
  for (const slot of slotsOf(m, payloads)) slot.set(slot.text.toUpperCase());
  return m;
};

describe("the texts of a message", () => {
  test("a text with quick replies: the text and the titles; payloads only when asked; email and phone quick replies have none", () => {
    const [m] = convertOutput({
      text: "Size?",
      quick_replies: [
        { title: "Small", payload: "S" },
        { title: "Large" },
        { type: "user_email" },
        { title: "", image_url: "https://x.example/i.png", payload: "I" },
      ],
    }).messages;
    expect(texts(m!)).toEqual(["Size?", "Small", "Large"]);
    expect(texts(m!, true)).toEqual(["Size?", "Small", "S", "Large", "Large", "I"]);
  });

  test("a button template: its text and the titles; postback payloads when asked, never a URL or a phone number", () => {
    const [m] = convertOutput({
      text: "Pick one",
      buttons: [
        { type: "postback", title: "Order", payload: "ORDER" },
        { type: "web_url", title: "Shop", url: "https://shop.example" },
        { type: "phone_number", title: "Call us", payload: "+4930123456" },
      ],
    }).messages;
    expect(texts(m!)).toEqual(["Pick one", "Order", "Shop", "Call us"]);
    expect(texts(m!, true)).toEqual(["Pick one", "Order", "ORDER", "Shop", "Call us"]);
    shout(m!);
    expect(JSON.stringify(m)).toContain('"url":"https://shop.example"');
    expect(JSON.stringify(m)).toContain('"payload":"+4930123456"');
  });

  test("cards: titles, subtitles, their buttons; images and links stay", () => {
    const [m] = convertOutput({
      cards: [
        { title: "Red shoe", subtitle: "Size 42", image_url: "https://x.example/r.png", buttons: [{ type: "postback", title: "Buy", payload: "BUY_R" }] },
      ],
    }).messages;
    expect(texts(m!)).toEqual(["Red shoe", "Size 42", "Buy"]);
    const element = (shout(m!) as any).attachment.payload.elements[0];
    expect(element).toEqual({
      title: "RED SHOE",
      subtitle: "SIZE 42",
      image_url: "https://x.example/r.png",
      buttons: [{ type: "postback", title: "BUY", payload: "BUY_R" }],
    });
  });

  test("a raw media template's buttons; other templates and attachments have nothing to translate", () => {
    const media = {
      attachment: {
        type: "template",
        payload: {
          template_type: "media",
          elements: [{ media_type: "image", url: "https://x", buttons: [{ type: "web_url", title: "See", url: "https://x" }] }],
        },
      },
    };
    expect(texts(media)).toEqual(["See"]);
    expect(texts({ attachment: { type: "template", payload: { template_type: "receipt", recipient_name: "Ada" } } })).toEqual([]);
    expect(texts({ attachment: { type: "image", payload: { url: "https://x" } } })).toEqual([]);
  });
});

describe("Messenger's limits after translation", () => {
  test("titles cut with … as the converter cuts them: quick replies and buttons 20, card titles and subtitles 80", () => {
    const [m] = convertOutput({ text: "Hi", quick_replies: [{ title: "Yes" }], buttons: [{ type: "postback", title: "Go", payload: "GO" }] }).messages;
    for (const slot of slotsOf(m!, false)) slot.set(`${slot.text} ${"long ".repeat(30)}`);
    const anyM = m as any;
    expect([...anyM.quick_replies[0].title]).toHaveLength(20);
    expect(anyM.quick_replies[0].title.endsWith("…")).toBe(true);
    expect([...anyM.attachment.payload.buttons[0].title]).toHaveLength(20);
    const [card] = convertOutput({ cards: [{ title: "T", subtitle: "S" }] }).messages;
    for (const slot of slotsOf(card!, false)) slot.set("x".repeat(100));
    expect((card as any).attachment.payload.elements[0].title).toHaveLength(80);
    expect((card as any).attachment.payload.elements[0].subtitle).toHaveLength(80);
  });

  test("a payload whose translation is over 1000 characters stays untranslated", () => {
    const m = { text: "Hi", quick_replies: [{ content_type: "text", title: "A", payload: "PAY" }] };
    for (const slot of slotsOf(m, true)) slot.set(slot.payload ? "p".repeat(1001) : slot.text);
    expect(m.quick_replies[0]!.payload).toBe("PAY");
  });

  test("a text over 2000 characters: split into messages at sentence ends, the quick replies (and the rest) on the last", () => {
    const sentence = "This sentence is about forty characters. ";
    const m = { text: sentence.repeat(60).trim(), quick_replies: [{ content_type: "text", title: "OK", payload: "OK" }] };
    const out = fitted(m);
    expect(out.length).toBe(2);
    expect(out.every((x) => [...(x.text as string)].length <= 2000)).toBe(true);
    expect(out[0]).toEqual({ text: expect.stringMatching(/characters\.$/) });
    expect(out[1]!.quick_replies).toEqual(m.quick_replies);
    expect(out.map((x) => x.text).join(" ")).toBe(m.text);
  });

  test("a button template's text over 640 characters: the text first as plain messages, the template with the last part", () => {
    const [m] = convertOutput({ text: "Hi", buttons: [{ type: "postback", title: "Go", payload: "GO" }] }).messages;
    const long = "Word ".repeat(200).trim();
    (m as any).attachment.payload.text = long;
    const out = fitted(m!);
    expect(out.length).toBe(2);
    expect(out[0]!.text).toBeString();
    const templateText = (out[1] as any).attachment.payload.text as string;
    expect([...templateText].length).toBeLessThanOrEqual(640);
    expect(`${out[0]!.text} ${templateText}`).toBe(long);
  });

  test("within the limits: the message as it is", () => {
    const m = { text: "short" };
    expect(fitted(m)).toEqual([m]);
  });
});
