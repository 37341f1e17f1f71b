import { describe, expect, test } from "bun:test";
import { convertOutput, type MessengerMessage } from "../../../src/messenger/convert.ts";
import {
  BUTTONS_MAX,
  BUTTON_TEMPLATE_TEXT_MAX,
  BUTTON_TITLE_MAX,
  ELEMENT_SUBTITLE_MAX,
  ELEMENT_TITLE_MAX,
  GENERIC_ELEMENTS_MAX,
  PAYLOAD_MAX,
  QUICK_REPLIES_MAX,
  QUICK_REPLY_TITLE_MAX,
  TEXT_MAX,
  charLength,
  truncate,
} from "../../../src/messenger/limits.ts";
import type { Button, Card, Output, QuickReply } from "../../../src/flows/schema.ts";
import { validateSendBody } from "../../../src/simulator/messenger-limits.ts";
import { cp, hasLoneSurrogate, seeded, type Random } from "./random.ts";

/** What the Send API would answer for this message, sent as a reply. */
function verdict(message: MessengerMessage) {
  return validateSendBody({ recipient: { id: "1" }, messaging_type: "RESPONSE", message });
}

function expectAllAccepted(messages: MessengerMessage[]): void {
  for (const [i, message] of messages.entries()) {
    const v = verdict(message);
    if (!v.ok) throw new Error(`message ${i} would be rejected: ${v.message}\n${JSON.stringify(message).slice(0, 600)}`);
  }
}

const sentences = (count: number, start = 0) => Array.from({ length: count }, (_, i) => `This is sentence number ${start + i} of a long answer.`).join(" ");

type Template = { template_type: string; text?: string; buttons?: any[]; elements?: any[] };
const template = (m: MessengerMessage | undefined): Template => (m as any)?.attachment?.payload as Template;
const isButtonTemplate = (m: MessengerMessage) => template(m)?.template_type === "button";
const isGeneric = (m: MessengerMessage) => template(m)?.template_type === "generic";
const postback = (n: number, extra: Partial<Button> = {}): Button => ({ type: "postback", title: `Option ${n}`, payload: `OPT_${n}`, ...extra }) as Button;
const nonWs = (s: string) => s.replace(/\s+/g, "");

describe("limits helpers", () => {
  test("charLength counts code points; truncate ends with … only when it cut", () => {
    expect(charLength("😀é中")).toBe(3);
    expect(truncate("short", 20)).toBe("short");
    expect(truncate("x".repeat(20), 20)).toBe("x".repeat(20));
    expect(truncate("x".repeat(21), 20)).toBe(`${"x".repeat(19)}…`);
    const emoji = truncate("😀".repeat(30), 20);
    expect(cp(emoji)).toBe(20);
    expect(hasLoneSurrogate(emoji)).toBe(false);
  });
});

describe("convertOutput: text", () => {
  test("a short text is one text message, with no warnings", () => {
    expect(convertOutput({ text: "Hello there" })).toEqual({ messages: [{ text: "Hello there" }], warnings: [] });
  });

  test("an empty or whitespace-only text sends nothing", () => {
    expect(convertOutput({ text: "" }).messages).toEqual([]);
    expect(convertOutput({ text: "  \n " }).messages).toEqual([]);
    expect(convertOutput({}).messages).toEqual([]);
  });

  test("a text over 2000 characters is split at sentence ends into messages of at most 2000", () => {
    const text = sentences(120); // ~5000 characters
    const { messages, warnings } = convertOutput({ text });
    expect(messages.length).toBe(Math.ceil(text.length / TEXT_MAX));
    for (const m of messages) {
      expect(Object.keys(m)).toEqual(["text"]);
      expect(cp(m.text as string)).toBeLessThanOrEqual(TEXT_MAX);
      expect(m.text as string).toMatch(/^This is sentence number \d+ of a long answer\.$|answer\.$/);
    }
    expect(messages.map((m) => m.text).join(" ")).toBe(text);
    expect(warnings).toEqual([]);
    expectAllAccepted(messages);
  });

  test("preferParagraphs keeps paragraphs together", () => {
    const para = (n: number) => sentences(12, n * 100); // ~500 characters each
    const text = [para(1), para(2), para(3), para(4), para(5)].join("\n\n");
    const plain = convertOutput({ text }).messages.map((m) => m.text as string);
    const byParagraph = convertOutput({ text }, { preferParagraphs: true }).messages.map((m) => m.text as string);
    // Each message holds whole paragraphs: it starts where a paragraph starts.
    for (const m of byParagraph) expect(m).toMatch(/^This is sentence number \d00 /);
    expect(byParagraph.join("\n\n")).toBe(text);
    expect(plain.some((m) => !/^This is sentence number \d00 /.test(m))).toBe(true);
  });
});

describe("convertOutput: buttons", () => {
  test("text and up to three buttons become one button template", () => {
    const buttons: Button[] = [
      postback(1),
      { type: "web_url", title: "Site", url: "https://shop.example.test/", webview_height_ratio: "tall" },
      { type: "phone_number", title: "Call us", payload: "+15551234567" },
    ];
    const { messages, warnings } = convertOutput({ text: "Pick one", buttons });
    expect(messages).toEqual([
      {
        attachment: {
          type: "template",
          payload: {
            template_type: "button",
            text: "Pick one",
            buttons: [
              { type: "postback", title: "Option 1", payload: "OPT_1" },
              { type: "web_url", title: "Site", url: "https://shop.example.test/", webview_height_ratio: "tall" },
              { type: "phone_number", title: "Call us", payload: "+15551234567" },
            ],
          },
        },
      },
    ]);
    expect(warnings).toEqual([]);
    expectAllAccepted(messages);
  });

  test("more than three buttons spill into further templates with the text …", () => {
    const buttons = Array.from({ length: 7 }, (_, i) => postback(i + 1));
    const { messages } = convertOutput({ text: "Pick one", buttons });
    expect(messages.map((m) => template(m).text)).toEqual(["Pick one", "…", "…"]);
    expect(messages.map((m) => template(m).buttons!.map((b) => b.payload))).toEqual([["OPT_1", "OPT_2", "OPT_3"], ["OPT_4", "OPT_5", "OPT_6"], ["OPT_7"]]);
    expectAllAccepted(messages);
  });

  test("buttons without text get the text …", () => {
    const { messages } = convertOutput({ buttons: [postback(1)] });
    expect(messages).toHaveLength(1);
    expect(template(messages[0]).text).toBe("…");
    expectAllAccepted(messages);
  });

  test("text over 640 characters goes first as plain messages; the last part (≤ 640) carries the buttons", () => {
    const text = sentences(30); // ~1300 characters
    const { messages } = convertOutput({ text, buttons: [postback(1), postback(2)] });
    const last = messages.at(-1)!;
    expect(isButtonTemplate(last)).toBe(true);
    expect(cp(template(last).text!)).toBeLessThanOrEqual(BUTTON_TEMPLATE_TEXT_MAX);
    const plain = messages.slice(0, -1);
    expect(plain.length).toBeGreaterThan(0);
    for (const m of plain) expect(Object.keys(m)).toEqual(["text"]);
    expect([...plain.map((m) => m.text), template(last).text].join(" ")).toBe(text);
    expectAllAccepted(messages);
  });

  test("text over 2000 characters with buttons: nothing lost, every message accepted", () => {
    const text = sentences(110); // ~4500 characters
    const { messages } = convertOutput({ text, buttons: Array.from({ length: 5 }, (_, i) => postback(i)) });
    const templates = messages.filter(isButtonTemplate);
    expect(templates).toHaveLength(2);
    const texts = messages.filter((m) => !isButtonTemplate(m)).map((m) => m.text);
    expect([...texts, template(templates[0]).text].join(" ")).toBe(text);
    expect(messages.indexOf(templates[0]!)).toBe(messages.length - 2);
    expectAllAccepted(messages);
  });

  test("a button title over 20 characters is shortened with …, with a warning", () => {
    const { messages, warnings } = convertOutput({ text: "x", buttons: [postback(1, { title: "A much too long button title" })] });
    expect(template(messages[0]).buttons![0].title).toBe(truncate("A much too long button title", BUTTON_TITLE_MAX));
    expect(template(messages[0]).buttons![0].title).toHaveLength(BUTTON_TITLE_MAX);
    expect(warnings.some((w) => w.includes("button title shortened"))).toBe(true);
    expectAllAccepted(messages);
  });

  test("a button whose payload is over 1000 characters is left out, with a warning", () => {
    const { messages, warnings } = convertOutput({ text: "x", buttons: [postback(1, { payload: "p".repeat(PAYLOAD_MAX + 1) }), postback(2)] });
    expect(template(messages[0]).buttons!.map((b) => b.payload)).toEqual(["OPT_2"]);
    expect(warnings.some((w) => w.includes("left out") && w.includes("payload"))).toBe(true);
    // A payload of exactly 1000 is fine.
    const ok = convertOutput({ text: "x", buttons: [postback(1, { payload: "p".repeat(PAYLOAD_MAX) })] });
    expect(template(ok.messages[0]).buttons).toHaveLength(1);
    expect(ok.warnings).toEqual([]);
  });

  test("when every button is left out, the text is sent as plain text", () => {
    const { messages } = convertOutput({ text: "Only text remains", buttons: [postback(1, { payload: "p".repeat(1500) })] });
    expect(messages).toEqual([{ text: "Only text remains" }]);
  });
});

describe("convertOutput: cards", () => {
  const card = (n: number, extra: Partial<Card> = {}): Card => ({ title: `Card ${n}`, subtitle: `Subtitle ${n}`, ...extra });

  test("a card becomes a generic template element; url becomes default_action", () => {
    const { messages, warnings } = convertOutput({
      cards: [card(1, { image_url: "https://img.example.test/1.png", url: "https://shop.example.test/1", buttons: [postback(1)] }), { title: "Bare" }],
    });
    expect(messages).toEqual([
      // A card with nothing but a title is not a valid element: it goes as a text.
      { text: "Bare" },
      {
        attachment: {
          type: "template",
          payload: {
            template_type: "generic",
            elements: [
              {
                title: "Card 1",
                subtitle: "Subtitle 1",
                image_url: "https://img.example.test/1.png",
                default_action: { type: "web_url", url: "https://shop.example.test/1" },
                buttons: [{ type: "postback", title: "Option 1", payload: "OPT_1" }],
              },
            ],
          },
        },
      },
    ]);
    expect(warnings).toEqual(['card "Bare" has nothing but a title; sent as a text']);
    expectAllAccepted(messages);
  });

  test("25 cards become carousels of 10, 10 and 5, in order", () => {
    const { messages } = convertOutput({ cards: Array.from({ length: 25 }, (_, i) => card(i)) });
    expect(messages.map((m) => template(m).elements!.length)).toEqual([10, 10, 5]);
    expect(messages.flatMap((m) => template(m).elements!.map((e) => e.title))).toEqual(Array.from({ length: 25 }, (_, i) => `Card ${i}`));
    for (const m of messages) expect(template(m).elements!.length).toBeLessThanOrEqual(GENERIC_ELEMENTS_MAX);
    expectAllAccepted(messages);
  });

  test("titles and subtitles over 80 characters are shortened with …, with warnings", () => {
    const long = "T".repeat(100);
    const { messages, warnings } = convertOutput({ cards: [{ title: long, subtitle: "S".repeat(81) }] });
    const element = template(messages[0]).elements![0];
    expect(element.title).toBe(`${"T".repeat(ELEMENT_TITLE_MAX - 1)}…`);
    expect(element.subtitle).toBe(`${"S".repeat(ELEMENT_SUBTITLE_MAX - 1)}…`);
    expect(warnings.some((w) => w.includes("card title shortened"))).toBe(true);
    expect(warnings.some((w) => w.includes("card subtitle shortened"))).toBe(true);
    expectAllAccepted(messages);
  });

  test("a card's buttons after the third follow the carousel in button templates titled with the card", () => {
    const { messages, warnings } = convertOutput({
      cards: [card(1, { buttons: Array.from({ length: 8 }, (_, i) => postback(i)) }), card(2, { buttons: [postback(9)] })],
    });
    expect(messages).toHaveLength(3);
    expect(template(messages[0]).elements!.map((e: any) => e.buttons.map((b: any) => b.payload))).toEqual([["OPT_0", "OPT_1", "OPT_2"], ["OPT_9"]]);
    expect(messages.slice(1).map((m) => [template(m).text, template(m).buttons!.map((b: any) => b.payload)])).toEqual([
      ["Card 1", ["OPT_3", "OPT_4", "OPT_5"]],
      ["Card 1", ["OPT_6", "OPT_7"]],
    ]);
    expect(warnings.some((w) => w.includes("8 buttons") && w.includes(`first ${BUTTONS_MAX}`))).toBe(true);
    expectAllAccepted(messages);
  });

  test("an empty subtitle and an empty button list are left out of the element", () => {
    const { messages } = convertOutput({ cards: [{ title: "T", subtitle: "", buttons: [], image_url: "https://img.example.test/t.png" }] });
    expect(template(messages[0]).elements).toEqual([{ title: "T", image_url: "https://img.example.test/t.png" }]);
  });

  test("a card with nothing but a title (an empty subtitle, no buttons) is sent as a text", () => {
    const { messages, warnings } = convertOutput({ cards: [{ title: "T", subtitle: "", buttons: [] }] });
    expect(messages).toEqual([{ text: "T" }]);
    expect(warnings).toEqual(['card "T" has nothing but a title; sent as a text']);
  });

  test("URLs and phone numbers Messenger would refuse are left out with a warning; an empty postback payload is the title", () => {
    const { messages, warnings } = convertOutput({
      text: "Pick",
      buttons: [
        { type: "web_url", title: "Site", url: "not a url" },
        { type: "phone_number", title: "Call", payload: "0049 30 1234" },
        { type: "postback", title: "Order", payload: "" },
      ],
      cards: [{ title: "C", subtitle: "s", image_url: "img.png", url: "/relative" }],
      image: "ftp://files.example.test/x.png",
      quick_replies: [{ title: "Red", image_url: "red.png" }],
    });
    expect(template(messages[0]).buttons).toEqual([{ type: "postback", title: "Order", payload: "Order" }]);
    expect(template(messages[1]).elements).toEqual([{ title: "C", subtitle: "s" }]);
    expect(messages).toHaveLength(2);
    expect(messages[1]!.quick_replies).toEqual([{ content_type: "text", title: "Red", payload: "Red" }]);
    expect(warnings).toHaveLength(6);
    expectAllAccepted(messages);
  });
});

describe("convertOutput: media", () => {
  test("image, audio, video and file become reusable URL attachments, in that order", () => {
    const { messages } = convertOutput({
      file: "https://cdn.example.test/doc.pdf",
      video: "https://cdn.example.test/clip.mp4",
      image: "https://cdn.example.test/pic.png",
      audio: "https://cdn.example.test/sound.mp3",
    });
    expect(messages).toEqual([
      { attachment: { type: "image", payload: { url: "https://cdn.example.test/pic.png", is_reusable: true } } },
      { attachment: { type: "audio", payload: { url: "https://cdn.example.test/sound.mp3", is_reusable: true } } },
      { attachment: { type: "video", payload: { url: "https://cdn.example.test/clip.mp4", is_reusable: true } } },
      { attachment: { type: "file", payload: { url: "https://cdn.example.test/doc.pdf", is_reusable: true } } },
    ]);
    expectAllAccepted(messages);
  });

  test("text, buttons, cards and media of one output come in that order", () => {
    const { messages } = convertOutput({
      text: "Look",
      buttons: [postback(1)],
      cards: [{ title: "C", subtitle: "c" }],
      image: "https://cdn.example.test/p.png",
    });
    expect(messages.map((m) => (m.text ? "text" : (template(m)?.template_type ?? (m.attachment as any).type)))).toEqual(["button", "generic", "image"]);
  });
});

describe("convertOutput: quick replies", () => {
  test("quick replies go on the last message only", () => {
    const { messages } = convertOutput({ text: sentences(100), image: "https://cdn.example.test/p.png", quick_replies: [{ title: "Yes", payload: "YES" }] });
    expect(messages.length).toBeGreaterThan(2);
    for (const m of messages.slice(0, -1)) expect(m.quick_replies).toBeUndefined();
    expect(messages.at(-1)!.quick_replies).toEqual([{ content_type: "text", title: "Yes", payload: "YES" }]);
    expectAllAccepted(messages);
  });

  test("the payload defaults to the (whole) title; titles over 20 characters are shortened", () => {
    const title = "A rather long answer title";
    const { messages, warnings } = convertOutput({ text: "?", quick_replies: [{ title: "Yes" }, { type: "text", title }] });
    expect(messages[0]!.quick_replies).toEqual([
      { content_type: "text", title: "Yes", payload: "Yes" },
      { content_type: "text", title: truncate(title, QUICK_REPLY_TITLE_MAX), payload: title },
    ]);
    expect(cp((messages[0]!.quick_replies as any)[1].title)).toBe(QUICK_REPLY_TITLE_MAX);
    expect(warnings.some((w) => w.includes("quick reply title shortened"))).toBe(true);
    expectAllAccepted(messages);
  });

  test("an empty payload falls back to the title; image_url is kept", () => {
    const { messages } = convertOutput({ text: "?", quick_replies: [{ title: "Red", payload: "", image_url: "https://img.example.test/red.png" }] });
    expect(messages[0]!.quick_replies).toEqual([{ content_type: "text", title: "Red", payload: "Red", image_url: "https://img.example.test/red.png" }]);
  });

  test("user_email and user_phone_number", () => {
    const { messages } = convertOutput({ text: "Contact?", quick_replies: [{ type: "user_email" }, { type: "user_phone_number" }] });
    expect(messages[0]!.quick_replies).toEqual([{ content_type: "user_email" }, { content_type: "user_phone_number" }]);
    expectAllAccepted(messages);
  });

  test("at most 13 are kept, with a warning", () => {
    const replies: QuickReply[] = Array.from({ length: 20 }, (_, i) => ({ title: `R${i}` }));
    const { messages, warnings } = convertOutput({ text: "?", quick_replies: replies });
    expect((messages[0]!.quick_replies as any[]).map((r) => r.title)).toEqual(Array.from({ length: QUICK_REPLIES_MAX }, (_, i) => `R${i}`));
    expect(warnings.some((w) => w.includes("20 quick replies") && w.includes(`first ${QUICK_REPLIES_MAX}`))).toBe(true);
    expectAllAccepted(messages);
  });

  test("a quick reply with an over-long payload is left out, with a warning (before the 13 are counted)", () => {
    const replies: QuickReply[] = [{ title: "Bad", payload: "p".repeat(PAYLOAD_MAX + 1) }, ...Array.from({ length: 13 }, (_, i) => ({ title: `R${i}` }))];
    const { messages, warnings } = convertOutput({ text: "?", quick_replies: replies });
    const kept = (messages[0]!.quick_replies as any[]).map((r) => r.title);
    expect(kept).toEqual(Array.from({ length: 13 }, (_, i) => `R${i}`));
    expect(warnings.some((w) => w.includes('"Bad" left out'))).toBe(true);
    // A title over 1000 characters without a payload has an over-long default payload too.
    const longTitle = convertOutput({ text: "?", quick_replies: [{ title: "t".repeat(1001) }, { title: "ok" }] });
    expect((longTitle.messages[0]!.quick_replies as any[]).map((r) => r.title)).toEqual(["ok"]);
    expectAllAccepted(longTitle.messages);
  });

  test("a quick reply without title and image is left out, with a warning", () => {
    const { messages, warnings } = convertOutput({ text: "?", quick_replies: [{ title: "" }, { title: "ok" }] });
    expect((messages[0]!.quick_replies as any[]).map((r) => r.title)).toEqual(["ok"]);
    expect(warnings.some((w) => w.includes("without title or image"))).toBe(true);
  });

  test("an image-only quick reply (empty title, no payload) is never sent with an empty payload", () => {
    const { messages, warnings } = convertOutput({ text: "?", quick_replies: [{ title: "", image_url: "https://img.example.test/dot.png" }, { title: "ok" }] });
    expect(messages).toHaveLength(1);
    expectAllAccepted(messages);
    // Messenger requires a non-empty payload and there is no title to default to: left out, reported.
    expect((messages[0]!.quick_replies as any[]).map((r) => r.payload)).toEqual(["ok"]);
    expect(warnings.some((w) => w.includes("without payload left out"))).toBe(true);
  });

  test("an image-only quick reply with a payload is kept", () => {
    const { messages } = convertOutput({ text: "?", quick_replies: [{ title: "", payload: "DOT", image_url: "https://img.example.test/dot.png" }] });
    expect(messages[0]!.quick_replies).toEqual([{ content_type: "text", title: "", payload: "DOT", image_url: "https://img.example.test/dot.png" }]);
    expectAllAccepted(messages);
  });

  test("quick replies with nothing to carry them are left out, with a warning", () => {
    const { messages, warnings } = convertOutput({ text: "  ", quick_replies: [{ title: "Yes" }] });
    expect(messages).toEqual([]);
    expect(warnings.some((w) => w.includes("quick replies need a text or attachment"))).toBe(true);
  });

  test("quick replies ride on a carousel or a media attachment when that comes last", () => {
    const carousel = convertOutput({ cards: [{ title: "C", subtitle: "c" }], quick_replies: [{ title: "More" }] });
    expect(carousel.messages[0]!.quick_replies).toEqual([{ content_type: "text", title: "More", payload: "More" }]);
    const media = convertOutput({ text: "Here", audio: "https://cdn.example.test/a.mp3", quick_replies: [{ title: "More" }] });
    expect(media.messages[0]!.quick_replies).toBeUndefined();
    expect(media.messages[1]!.quick_replies).toHaveLength(1);
    expectAllAccepted([...carousel.messages, ...media.messages]);
  });
});

describe("convertOutput: raw messenger messages", () => {
  test("sent exactly as given", () => {
    const raw = { attachment: { type: "template", payload: { template_type: "receipt", recipient_name: "Ann", order_number: "42" } } };
    const result = convertOutput({ messenger: raw });
    expect(result).toEqual({ messages: [raw], warnings: [] });
    expect(result.messages[0]).toBe(raw);
  });

  test("other fields next to messenger are ignored, with a warning naming them", () => {
    const raw = { text: "raw" };
    const { messages, warnings } = convertOutput({ messenger: raw, text: "ignored", quick_replies: [{ title: "x" }], image: "https://cdn.example.test/i.png" });
    expect(messages).toEqual([raw]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("text, quick_replies, image");
  });

  test("an undefined field next to messenger is not reported", () => {
    expect(convertOutput({ messenger: { text: "raw" }, text: undefined }).warnings).toEqual([]);
  });
});

// --- generated outputs: "never rejected for a limit the converter could keep" -----------------

const WORDS = ["word", "Hello.", "Why?", "Great!", "😀", "👍🏽", "éàü", "中文", "3.14", "https://example.test/a/b?c=d", "\n", "\n\n"];

function randomText(r: Random, words: number): string {
  let s = "";
  for (let i = 0; i < words; i++) {
    s += r.chance(0.01) ? r.pick(["x", "😀", "é"]).repeat(r.between(100, 2600)) : r.pick(WORDS);
    s += r.pick([" ", " ", " ", "\n", "  "]);
  }
  return s;
}

/** A non-empty title of up to `max` code points (emoji included), never only whitespace. */
function randomTitle(r: Random, max: number): string {
  const n = r.between(1, max);
  const chars = Array.from({ length: n }, () => r.pick(["a", "B", "😀", "é", " ", "中", "-"]));
  chars[0] = "T";
  return chars.join("");
}

function randomButton(r: Random): Button {
  const title = randomTitle(r, r.pick([8, 20, 21, 60, 300]));
  switch (r.int(3)) {
    case 0:
      return { type: "postback", title, payload: randomTitle(r, r.pick([10, 999, 1000, 1001, 1400])) };
    case 1:
      return {
        type: "web_url",
        title,
        url: `https://shop.example.test/${"p".repeat(r.int(3000))}`,
        ...(r.chance(0.3) ? { webview_height_ratio: r.pick(["compact", "tall", "full"] as const) } : {}),
      };
    default:
      return { type: "phone_number", title, payload: `+1555${r.between(100000, 999999)}` };
  }
}

function randomQuickReply(r: Random): QuickReply {
  if (r.chance(0.15)) return { type: r.pick(["user_email", "user_phone_number"] as const) };
  const title = r.chance(0.05) ? "" : randomTitle(r, r.pick([5, 20, 21, 100, 1200]));
  const reply: QuickReply = { title };
  if (r.chance(0.15)) reply.type = "text";
  if (r.chance(0.5)) reply.payload = r.chance(0.1) ? "" : randomTitle(r, r.pick([10, 1000, 1001, 1500]));
  if (r.chance(0.2) || title === "") reply.image_url = "https://img.example.test/q.png";
  return reply;
}

function randomCard(r: Random): Card {
  const card: Card = { title: randomTitle(r, r.pick([10, 80, 81, 500])) };
  if (r.chance(0.7)) card.subtitle = r.chance(0.1) ? "" : randomTitle(r, r.pick([10, 80, 81, 500]));
  if (r.chance(0.5)) card.image_url = "https://img.example.test/c.png";
  if (r.chance(0.5)) card.url = "https://shop.example.test/card";
  if (r.chance(0.7)) card.buttons = Array.from({ length: r.int(8) }, () => randomButton(r));
  return card;
}

function randomOutput(r: Random): Output {
  const output: Output = {};
  if (r.chance(0.8)) output.text = r.chance(0.05) ? " \n " : randomText(r, r.pick([1, 5, 50, 300, 900]));
  if (r.chance(0.5)) output.buttons = Array.from({ length: r.pick([1, 3, 4, 7, 30]) }, () => randomButton(r));
  if (r.chance(0.35)) output.cards = Array.from({ length: r.pick([1, 9, 10, 11, 25]) }, () => randomCard(r));
  if (r.chance(0.5)) output.quick_replies = Array.from({ length: r.pick([1, 5, 13, 14, 20]) }, () => randomQuickReply(r));
  for (const media of ["image", "audio", "video", "file"] as const) if (r.chance(0.1)) output[media] = `https://cdn.example.test/${media}`;
  return output;
}

describe("convertOutput: generated outputs are never rejected for a limit", () => {
  test("500 random outputs: every message passes the Send API checks", () => {
    const r = seeded(20260101);
    let checked = 0;
    for (let n = 0; n < 500; n++) {
      const output = randomOutput(r);
      const preferParagraphs = r.chance(0.5);
      const { messages, warnings } = convertOutput(output, { preferParagraphs });
      try {
        expectAllAccepted(messages);
        checked += messages.length;

        // Quick replies: only on the last message, at most 13.
        for (const m of messages.slice(0, -1)) expect(m.quick_replies).toBeUndefined();
        const qr = (messages.at(-1)?.quick_replies as unknown[] | undefined) ?? [];
        expect(qr.length).toBeLessThanOrEqual(QUICK_REPLIES_MAX);

        // Every button whose payload fits is sent, in order, at most 3 per template: the output's
        // own, then those of each card beyond its third.
        const fits = (b: Button) => b.type === "web_url" || charLength(b.payload || b.title) <= PAYLOAD_MAX;
        const keptButtons = (output.buttons ?? []).filter(fits);
        const cards = output.cards ?? [];
        const isBare = (c: Card) => !c.subtitle && !c.image_url && !c.url && !(c.buttons ?? []).some(fits);
        const cardSpill = cards.filter((c) => !isBare(c)).flatMap((c) => (c.buttons ?? []).filter(fits).slice(BUTTONS_MAX));
        const templates = messages.filter(isButtonTemplate);
        expect(templates.flatMap((t) => template(t).buttons!.map((b) => b.type))).toEqual([...keptButtons, ...cardSpill].map((b) => b.type));

        // Every card is sent, at most 10 per carousel; one with nothing but a title as a text.
        const carousels = messages.filter(isGeneric);
        expect(carousels.reduce((n, m) => n + template(m).elements!.length, 0)).toBe(cards.filter((c) => !isBare(c)).length);

        // No text is lost: the plain texts and the first template's text hold all of it (and the
        // titles of the bare cards).
        const bareTitles = cards.filter(isBare).map((c) => c.title);
        if (output.text?.trim() || bareTitles.length > 0) {
          const withTemplateText = keptButtons.length > 0 && output.text?.trim();
          const texts = messages.flatMap((m) => (typeof m.text === "string" ? [m.text] : withTemplateText && m === templates[0] ? [template(m).text!] : []));
          expect(nonWs(texts.join(""))).toBe(nonWs((output.text?.trim() ? output.text : "") + bareTitles.join("")));
        }

        // Whatever was shortened or left out is reported.
        const needsWarning =
          (output.buttons ?? []).some((b) => cp(b.title) > BUTTON_TITLE_MAX || (b.type !== "web_url" && cp(b.payload) > PAYLOAD_MAX)) ||
          (output.quick_replies?.length ?? 0) > QUICK_REPLIES_MAX ||
          (output.cards ?? []).some(
            (c) => cp(c.title) > ELEMENT_TITLE_MAX || cp(c.subtitle ?? "") > ELEMENT_SUBTITLE_MAX || (c.buttons?.length ?? 0) > BUTTONS_MAX,
          );
        if (needsWarning) expect(warnings.length).toBeGreaterThan(0);
      } catch (error) {
        throw new Error(`output ${n}: ${(error as Error).message}\n${JSON.stringify(output).slice(0, 400)}`);
      }
    }
    expect(checked).toBeGreaterThan(500);
  });

  test("extremes: a huge text, 30 buttons, 25 cards, 20 quick replies, long titles, all at once", () => {
    const long = (c: string, n: number) => c.repeat(n);
    const output: Output = {
      text: `${sentences(1000)} ${long("😀", 5000)}\n\n${sentences(50)}`,
      buttons: Array.from({ length: 30 }, (_, i) => postback(i, { title: long("B", 50) + i })),
      cards: Array.from({ length: 25 }, (_, i) => ({
        title: long("T", 200) + i,
        subtitle: long("S", 200),
        url: "https://shop.example.test/",
        buttons: Array.from({ length: 6 }, (_, j) => postback(j)),
      })),
      quick_replies: Array.from({ length: 20 }, (_, i) => ({ title: long("Q", 40) + i })),
      image: "https://cdn.example.test/i.png",
    };
    for (const preferParagraphs of [false, true]) {
      const { messages, warnings } = convertOutput(output, { preferParagraphs });
      expectAllAccepted(messages);
      expect(messages.filter(isButtonTemplate)).toHaveLength(10 + 25); // 30 buttons, and each card's last 3
      expect(messages.filter(isGeneric)).toHaveLength(3);
      expect(messages.at(-1)!.attachment).toMatchObject({ type: "image" });
      expect(messages.at(-1)!.quick_replies).toHaveLength(13);
      expect(warnings.length).toBeGreaterThan(0);
    }
  });
});

describe("empty titles", () => {
  test("buttons and cards without a title are left out with a warning", () => {
    const { messages, warnings } = convertOutput({
      text: "Pick",
      buttons: [
        { type: "postback", title: " ", payload: "A" },
        { type: "postback", title: "B", payload: "B" },
      ],
      cards: [{ title: "" }, { title: "Card", subtitle: "x" }],
    });
    expect(messages).toHaveLength(2);
    expect((messages[0] as any).attachment.payload.buttons).toEqual([{ type: "postback", title: "B", payload: "B" }]);
    expect((messages[1] as any).attachment.payload.elements).toEqual([{ title: "Card", subtitle: "x" }]);
    expect(warnings).toEqual(["a button without a title left out (Messenger requires one)", "a card without a title left out (Messenger requires one)"]);
  });
});
