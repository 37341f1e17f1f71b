/**
 * The texts a user reads in Send API messages (as messenger/convert.ts makes them, or as a flow's
 * raw `messenger` output gives them): the message's `text`, its quick replies' titles, and in
 * templates the button template's `text`, the buttons' titles, the cards' (generic elements')
 * titles and subtitles, the media template's buttons. Payloads only with `translate_payloads`.
 * URLs, images, phone numbers and other templates (receipt …) are left as they are.
 *
 * A translation may be longer than its original: afterwards the limits of messenger/limits.ts
 * hold again as the converter keeps them — titles cut with "…", a text over 2000 characters split
 * into several messages (the quick replies on the last), a button template's text over 640
 * characters sent before it as plain messages; a payload whose translation is over 1000
 * characters stays untranslated.
 */
import {
  BUTTON_TEMPLATE_TEXT_MAX,
  BUTTON_TITLE_MAX,
  ELEMENT_SUBTITLE_MAX,
  ELEMENT_TITLE_MAX,
  PAYLOAD_MAX,
  QUICK_REPLY_TITLE_MAX,
  TEXT_MAX,
  charLength,
  truncate,
} from "../messenger/limits.ts";
import { splitText } from "../messenger/text.ts";

export type Message = Record<string, unknown>;

/** One text of a message: what it says, and how to put its translation in its place. */
export interface Slot {
  readonly text: string;
  readonly payload: boolean;
  set(translated: string): void;
}

type Obj = Record<string, unknown>;

const isObject = (value: unknown): value is Obj => typeof value === "object" && value !== null && !Array.isArray(value);
const objects = (value: unknown): Obj[] => (Array.isArray(value) ? value.filter(isObject) : []);

/** The texts of a message, in reading order. */
export function slotsOf(message: Message, payloads: boolean): Slot[] {
  const slots: Slot[] = [];
  const add = (owner: Obj, field: string, max: number | null, payload = false) => {
    const text = owner[field];
    if (typeof text !== "string" || text === "") return;
    slots.push({
      text,
      payload,
      set(translated) {
        if (payload) owner[field] = charLength(translated) <= PAYLOAD_MAX && translated !== "" ? translated : text;
        else owner[field] = max === null ? translated : truncate(translated, max);
      },
    });
  };
  const buttons = (list: unknown) => {
    for (const button of objects(list)) {
      add(button, "title", BUTTON_TITLE_MAX);
      if (payloads && button.type === "postback") add(button, "payload", null, true);
    }
  };
  add(message, "text", null); // split afterwards (`fitted`)
  for (const reply of objects(message.quick_replies)) {
    if (reply.content_type !== undefined && reply.content_type !== "text") continue; // user_email, user_phone_number
    add(reply, "title", QUICK_REPLY_TITLE_MAX);
    if (payloads) add(reply, "payload", null, true);
  }
  const attachment = isObject(message.attachment) ? message.attachment : null;
  const template = attachment?.type === "template" && isObject(attachment.payload) ? attachment.payload : null;
  if (template?.template_type === "button") {
    add(template, "text", null); // split afterwards (`fitted`)
    buttons(template.buttons);
  } else if (template?.template_type === "generic") {
    for (const element of objects(template.elements)) {
      add(element, "title", ELEMENT_TITLE_MAX);
      add(element, "subtitle", ELEMENT_SUBTITLE_MAX);
      buttons(element.buttons);
    }
  } else if (template?.template_type === "media") {
    for (const element of objects(template.elements)) buttons(element.buttons);
  }
  return slots;
}

/**
 * The message within Messenger's limits again after its texts were translated: a text over 2000
 * characters becomes several messages (everything else of the message on the last one), a button
 * template's text over 640 characters goes first as plain messages. Returns the messages to send.
 */
export function fitted(message: Message): Message[] {
  if (typeof message.text === "string" && charLength(message.text) > TEXT_MAX) {
    const parts = splitText(message.text, TEXT_MAX);
    const last = parts.pop() ?? "";
    return [...parts.map((text) => ({ text })), { ...message, text: last }];
  }
  const attachment = isObject(message.attachment) ? message.attachment : null;
  const template = attachment?.type === "template" && isObject(attachment.payload) ? attachment.payload : null;
  if (template?.template_type === "button" && typeof template.text === "string" && charLength(template.text) > BUTTON_TEMPLATE_TEXT_MAX) {
    const parts = splitText(template.text, TEXT_MAX);
    const tail = splitText(parts.pop() ?? "", BUTTON_TEMPLATE_TEXT_MAX);
    template.text = tail.pop() ?? "…";
    return [...[...parts, ...tail].map((text) => ({ text })), message];
  }
  return [message];
}
