/**
 * Channel-neutral outputs (docs/flows.md) → Send API `message` objects. Messenger's limits are kept by
 * splitting and spilling over, never by letting the Send API reject the message:
 * - text over 2000 characters: several messages, cut at sentence or word boundaries;
 * - buttons: a button template per 3 buttons (its text at most 640 characters; longer text goes
 *   first as plain messages);
 * - cards: a carousel per 10 cards, 3 buttons per card (more follow the carousel in button
 *   templates titled with the card); a card with nothing but a title is sent as a text;
 * - postback buttons without a payload get their title as payload; buttons, cards and media
 *   whose URL or phone number Messenger would refuse are left out with a warning;
 * - quick replies: at most 13, on the output's last message;
 * - titles are shortened with "…"; what cannot be shortened (an over-long payload) is left out
 *   with a warning.
 * `messenger` is a raw message object and is sent exactly as given.
 */
import type { Button, Card, Output, QuickReply } from "../flows/schema.ts";
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
} from "./limits.ts";
import { splitText } from "./text.ts";

export type MessengerMessage = Record<string, unknown>;

export interface Converted {
  messages: MessengerMessage[];
  /** Things that were shortened or left out, for the log. */
  warnings: string[];
}

/** What Messenger accepts as a `phone_number` button's payload. */
const PHONE_NUMBER = /^\+\d[\d ()-]*$/;

/** Text of the follow-up button templates when more than three buttons spill over. */
const SPILL_TEXT = "…";

export function convertOutput(output: Output, options: { preferParagraphs?: boolean } = {}): Converted {
  const warnings: string[] = [];
  if (output.messenger) {
    const ignored = Object.keys(output).filter((k) => k !== "messenger" && output[k as keyof Output] !== undefined);
    if (ignored.length) warnings.push(`an output with "messenger" is sent as given; ignored: ${ignored.join(", ")}`);
    return { messages: [output.messenger], warnings };
  }

  const messages: MessengerMessage[] = [];
  const buttons = (output.buttons ?? []).map((b) => normalizeButton(b, warnings)).filter(isPresent);
  const text = output.text?.trim() ? output.text : undefined;

  if (buttons.length > 0) {
    const parts = text ? splitText(text, TEXT_MAX, options) : [];
    // The last part carries the first buttons and must fit a button template.
    const last = parts.pop();
    const tail = last === undefined ? [] : splitText(last, BUTTON_TEMPLATE_TEXT_MAX, options);
    const templateText = tail.pop() ?? SPILL_TEXT;
    for (const part of [...parts, ...tail]) messages.push({ text: part });
    for (let i = 0; i < buttons.length; i += BUTTONS_MAX) {
      messages.push(buttonTemplate(i === 0 ? templateText : SPILL_TEXT, buttons.slice(i, i + BUTTONS_MAX)));
    }
  } else if (text) {
    for (const part of splitText(text, TEXT_MAX, options)) messages.push({ text: part });
  }

  // A generic element needs its title and at least one more property; a card that has nothing
  // else is sent as a text. Buttons beyond three per card follow the carousel in button
  // templates titled with the card.
  const elements: MessengerMessage[] = [];
  const cardSpill: MessengerMessage[] = [];
  for (const card of output.cards ?? []) {
    if (!card.title.trim()) {
      warnings.push("a card without a title left out (Messenger requires one)");
      continue;
    }
    const { element, extraButtons } = normalizeCard(card, warnings);
    if (Object.keys(element).length === 1) {
      warnings.push(`card "${card.title}" has nothing but a title; sent as a text`);
      for (const part of splitText(card.title, TEXT_MAX, options)) messages.push({ text: part });
      continue;
    }
    elements.push(element);
    for (let i = 0; i < extraButtons.length; i += BUTTONS_MAX) {
      cardSpill.push(buttonTemplate(truncate(card.title, BUTTON_TEMPLATE_TEXT_MAX), extraButtons.slice(i, i + BUTTONS_MAX)));
    }
  }
  for (let i = 0; i < elements.length; i += GENERIC_ELEMENTS_MAX) {
    messages.push({
      attachment: { type: "template", payload: { template_type: "generic", elements: elements.slice(i, i + GENERIC_ELEMENTS_MAX) } },
    });
  }
  messages.push(...cardSpill);

  for (const type of ["image", "audio", "video", "file"] as const) {
    const url = output[type];
    if (!url) continue;
    if (isUrl(url)) messages.push({ attachment: { type, payload: { url, is_reusable: true } } });
    else warnings.push(`${type} left out: "${url}" is not a URL`);
  }

  const quickReplies = normalizeQuickReplies(output.quick_replies ?? [], warnings);
  if (quickReplies.length > 0) {
    const last = messages.at(-1);
    if (last) last.quick_replies = quickReplies;
    else warnings.push("quick replies need a text or attachment in the same output; left out");
  }
  return { messages, warnings };
}

function buttonTemplate(text: string, buttons: MessengerMessage[]): MessengerMessage {
  return { attachment: { type: "template", payload: { template_type: "button", text, buttons } } };
}

function normalizeButton(button: Button, warnings: string[]): MessengerMessage | null {
  if (!button.title.trim()) {
    warnings.push("a button without a title left out (Messenger requires one)");
    return null;
  }
  const title = truncate(button.title, BUTTON_TITLE_MAX);
  if (title !== button.title) warnings.push(`button title shortened to ${BUTTON_TITLE_MAX} characters: "${title}"`);
  switch (button.type) {
    case "web_url":
      if (!isUrl(button.url)) {
        warnings.push(`button "${title}" left out: "${button.url}" is not a URL`);
        return null;
      }
      return { type: "web_url", title, url: button.url, ...(button.webview_height_ratio ? { webview_height_ratio: button.webview_height_ratio } : {}) };
    case "phone_number":
      if (!PHONE_NUMBER.test(button.payload)) {
        warnings.push(`button "${title}" left out: "${button.payload}" is not a phone number in the form +<country code><number>`);
        return null;
      }
      return { type: "phone_number", title, payload: button.payload };
    case "postback": {
      // Messenger rejects an empty payload; the title says what was tapped, as for quick replies.
      const payload = button.payload || button.title;
      if (charLength(payload) > PAYLOAD_MAX) {
        warnings.push(`button "${title}" left out: its payload is longer than ${PAYLOAD_MAX} characters`);
        return null;
      }
      return { type: "postback", title, payload };
    }
  }
}

/** The element of a generic template, and the buttons that did not fit on it. */
function normalizeCard(card: Card, warnings: string[]): { element: MessengerMessage; extraButtons: MessengerMessage[] } {
  const element: MessengerMessage = { title: truncate(card.title, ELEMENT_TITLE_MAX) };
  if (element.title !== card.title) warnings.push(`card title shortened to ${ELEMENT_TITLE_MAX} characters`);
  if (card.subtitle) {
    element.subtitle = truncate(card.subtitle, ELEMENT_SUBTITLE_MAX);
    if (element.subtitle !== card.subtitle) warnings.push(`card subtitle shortened to ${ELEMENT_SUBTITLE_MAX} characters`);
  }
  if (card.image_url) {
    if (isUrl(card.image_url)) element.image_url = card.image_url;
    else warnings.push(`card "${card.title}": image_url left out, "${card.image_url}" is not a URL`);
  }
  if (card.url) {
    if (isUrl(card.url)) element.default_action = { type: "web_url", url: card.url };
    else warnings.push(`card "${card.title}": url left out, "${card.url}" is not a URL`);
  }
  const buttons = (card.buttons ?? []).map((b) => normalizeButton(b, warnings)).filter(isPresent);
  if (buttons.length > BUTTONS_MAX)
    warnings.push(`card "${card.title}" has ${buttons.length} buttons; the ones after the first ${BUTTONS_MAX} follow the carousel`);
  if (buttons.length > 0) element.buttons = buttons.slice(0, BUTTONS_MAX);
  return { element, extraButtons: buttons.slice(BUTTONS_MAX) };
}

function normalizeQuickReplies(replies: QuickReply[], warnings: string[]): MessengerMessage[] {
  const out: MessengerMessage[] = [];
  for (const reply of replies) {
    if (!("title" in reply)) {
      out.push({ content_type: reply.type }); // user_email / user_phone_number
      continue;
    }
    let imageUrl = reply.image_url;
    if (imageUrl !== undefined && !isUrl(imageUrl)) {
      warnings.push(`quick reply "${reply.title}": image_url left out, "${imageUrl}" is not a URL`);
      imageUrl = undefined;
    }
    const payload = reply.payload ?? reply.title;
    if (charLength(payload) > PAYLOAD_MAX) {
      warnings.push(`quick reply "${reply.title}" left out: its payload is longer than ${PAYLOAD_MAX} characters`);
      continue;
    }
    if (!reply.title && !imageUrl) {
      warnings.push("a quick reply without title or image left out");
      continue;
    }
    if (!payload && !reply.title) {
      // An image-only quick reply: Messenger requires a non-empty payload, and there is no title to default to.
      warnings.push("an image-only quick reply without payload left out");
      continue;
    }
    const title = truncate(reply.title, QUICK_REPLY_TITLE_MAX);
    if (title !== reply.title) warnings.push(`quick reply title shortened to ${QUICK_REPLY_TITLE_MAX} characters: "${title}"`);
    out.push({ content_type: "text", title, payload: payload || title, ...(imageUrl ? { image_url: imageUrl } : {}) });
  }
  if (out.length > QUICK_REPLIES_MAX) {
    warnings.push(`${out.length} quick replies; only the first ${QUICK_REPLIES_MAX} fit`);
    return out.slice(0, QUICK_REPLIES_MAX);
  }
  return out;
}

/** An absolute http(s) URL, the only kind the Send API fetches. */
function isUrl(text: string): boolean {
  return /^https?:\/\//i.test(text) && URL.canParse(text);
}

function isPresent<T>(value: T | null): value is T {
  return value !== null;
}
