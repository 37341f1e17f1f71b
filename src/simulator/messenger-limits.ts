/**
 * The Send API's request rules as data (recipient, messaging type and tags, message, quick replies,
 * buttons, templates, sender actions), and a validator that answers like Graph does: code 100 with
 * a "(#100) …" message. The fake Graph API rejects with it; the product's converter can share the
 * same limits.
 * Lengths are counted in Unicode code points (`Array.from(s).length`), the way Messenger counts.
 */

// The numeric limits are the product's own (the converter keeps them, this validator enforces them).
export * from "../messenger/limits.ts";
import {
  BUTTONS_MAX,
  BUTTON_TEMPLATE_TEXT_MAX,
  BUTTON_TITLE_MAX,
  ELEMENT_SUBTITLE_MAX,
  ELEMENT_TITLE_MAX,
  GENERIC_ELEMENTS_MAX,
  METADATA_MAX,
  PAYLOAD_MAX,
  QUICK_REPLIES_MAX,
  QUICK_REPLY_TITLE_MAX,
  TEXT_MAX,
  charLength,
} from "../messenger/limits.ts";

/** Keys of `recipient`; exactly one must be present. */
export const RECIPIENT_KEYS = ["id", "user_ref", "comment_id", "post_id", "notification_messages_token", "one_time_notif_token", "phone_number"] as const;
export const MESSAGING_TYPES = ["RESPONSE", "UPDATE", "MESSAGE_TAG"] as const;
export const MESSAGE_TAGS = ["CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"] as const;
export const SENDER_ACTIONS = ["typing_on", "typing_off", "mark_seen", "react", "unreact"] as const;
export const NOTIFICATION_TYPES = ["REGULAR", "SILENT_PUSH", "NO_PUSH"] as const;
/** Top-level keys allowed next to `sender_action` (`payload` only for react / unreact). */
export const SENDER_ACTION_KEYS = ["recipient", "sender_action", "persona_id", "notification_type"] as const;
export const QUICK_REPLY_CONTENT_TYPES = ["text", "user_phone_number", "user_email"] as const;
export const MEDIA_TYPES = ["image", "audio", "video", "file"] as const;
export const ATTACHMENT_TYPES = [...MEDIA_TYPES, "template"] as const;
export const TEMPLATE_TYPES = ["generic", "button", "media", "receipt", "customer_feedback", "product"] as const;
export const BUTTON_TYPES = ["postback", "web_url", "phone_number", "account_link", "account_unlink", "game_play"] as const;
export const WEBVIEW_HEIGHT_RATIOS = ["compact", "tall", "full"] as const;
export const REACTIONS = ["smile", "angry", "sad", "wow", "love", "like", "dislike", "other"] as const;

export type SendValidation = { ok: true } | { ok: false; code: number; subcode?: number; message: string };

export interface ValidateOptions {
  /** A missing `messaging_type` is an error (Graph's docs call it required; old clients omitted it). */
  requireMessagingType?: boolean;
}

class Invalid extends Error {
  constructor(
    message: string,
    readonly subcode?: number,
  ) {
    super(message);
  }
}

function fail(message: string, subcode?: number): never {
  throw new Invalid(`(#100) ${message}`, subcode);
}

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function has(o: Obj, key: string): boolean {
  return o[key] !== undefined && o[key] !== null;
}

function oneOf<T extends string>(list: readonly T[], value: unknown): value is T {
  return typeof value === "string" && (list as readonly string[]).includes(value);
}

function requireObject(value: unknown, param: string): Obj {
  if (!isObject(value)) fail(`param ${param} must be an object`);
  return value;
}

function requireArray(value: unknown, param: string): unknown[] {
  if (!Array.isArray(value)) fail(`param ${param} must be an array`);
  return value;
}

/** A string (or number, which Graph coerces) no longer than `max`; non-empty unless `allowEmpty`. */
function checkString(value: unknown, param: string, max: number, options: { allowEmpty?: boolean } = {}): string {
  if (typeof value === "number") value = String(value);
  if (typeof value !== "string") fail(`param ${param} must be a string`);
  if (!options.allowEmpty && value.length === 0) fail(`param ${param} must be non-empty`);
  if (charLength(value) > max) fail(`Length of param ${param} must be less than or equal to ${max}`);
  return value;
}

function checkCount(list: unknown[], param: string, min: number, max: number): void {
  if (list.length < min) fail(`param ${param} must have at least ${min} element${min === 1 ? "" : "s"}`);
  if (list.length > max) fail(`param ${param} must have at most ${max} elements`);
}

function checkUrl(value: unknown, param: string): void {
  const url = checkString(value, param, Number.MAX_SAFE_INTEGER);
  if (!URL.canParse(url)) fail(`param ${param} must be a valid URL`);
}

/**
 * A button of a template (or a generic element's `default_action` with `asDefaultAction`, a URL
 * button without a title).
 */
export function validateButton(value: unknown, param: string, options: { asDefaultAction?: boolean } = {}): void {
  const button = requireObject(value, param);
  if (!oneOf(BUTTON_TYPES, button.type)) fail(`param ${param}[type] must be one of {${BUTTON_TYPES.join(", ")}}`);
  if (options.asDefaultAction) {
    if (button.type !== "web_url") fail(`param ${param}[type] must be web_url`);
    if (has(button, "title")) fail(`param ${param}[title] is not allowed in a default_action`);
  }
  const needsTitle = !options.asDefaultAction && button.type !== "account_unlink" && button.type !== "account_link";
  if (needsTitle || has(button, "title")) checkString(button.title, `${param}[title]`, BUTTON_TITLE_MAX);
  switch (button.type) {
    case "postback":
      checkString(button.payload, `${param}[payload]`, PAYLOAD_MAX);
      break;
    case "phone_number": {
      const payload = checkString(button.payload, `${param}[payload]`, PAYLOAD_MAX);
      if (!/^\+\d[\d ()-]*$/.test(payload)) fail(`param ${param}[payload] must be a phone number in the format +<country code><number>`);
      break;
    }
    case "web_url":
    case "account_link":
      if (!has(button, "url")) fail(`param ${param}[url] is required`);
      checkUrl(button.url, `${param}[url]`);
      if (has(button, "webview_height_ratio") && !oneOf(WEBVIEW_HEIGHT_RATIOS, button.webview_height_ratio)) {
        fail(`param ${param}[webview_height_ratio] must be one of {${WEBVIEW_HEIGHT_RATIOS.join(", ")}}`);
      }
      if (has(button, "fallback_url")) checkUrl(button.fallback_url, `${param}[fallback_url]`);
      break;
  }
}

function validateButtons(value: unknown, param: string, min: number): void {
  const buttons = requireArray(value, param);
  checkCount(buttons, param, min, BUTTONS_MAX);
  for (const [i, b] of buttons.entries()) validateButton(b, `${param}[${i}]`);
}

function validateQuickReplies(value: unknown): void {
  const replies = requireArray(value, "message[quick_replies]");
  checkCount(replies, "message[quick_replies]", 0, QUICK_REPLIES_MAX);
  replies.forEach((r, i) => {
    const param = `message[quick_replies][${i}]`;
    const reply = requireObject(r, param);
    if (!oneOf(QUICK_REPLY_CONTENT_TYPES, reply.content_type)) {
      fail(`param ${param}[content_type] must be one of {${QUICK_REPLY_CONTENT_TYPES.join(", ")}}`);
    }
    if (reply.content_type !== "text") return;
    const hasImage = has(reply, "image_url");
    if (hasImage) checkUrl(reply.image_url, `${param}[image_url]`);
    if (hasImage && !has(reply, "title")) {
      // An image alone is a valid quick reply.
    } else {
      checkString(reply.title, `${param}[title]`, QUICK_REPLY_TITLE_MAX, { allowEmpty: hasImage });
    }
    if (!has(reply, "payload")) fail(`param ${param}[payload] is required`);
    checkString(reply.payload, `${param}[payload]`, PAYLOAD_MAX);
  });
}

function validateMedia(payload: Obj, param: string): void {
  const byUrl = has(payload, "url");
  const byId = has(payload, "attachment_id");
  if (byUrl === byId) fail(`param ${param} must have exactly one of url or attachment_id`);
  if (byUrl) checkUrl(payload.url, `${param}[url]`);
  else checkString(payload.attachment_id, `${param}[attachment_id]`, Number.MAX_SAFE_INTEGER);
}

function validateTemplate(payload: Obj, param: string): void {
  const type = payload.template_type;
  if (!oneOf(TEMPLATE_TYPES, type)) fail(`param ${param}[template_type] must be one of {${TEMPLATE_TYPES.join(", ")}}`);
  switch (type) {
    case "generic": {
      const elements = requireArray(payload.elements, `${param}[elements]`);
      checkCount(elements, `${param}[elements]`, 1, GENERIC_ELEMENTS_MAX);
      elements.forEach((e, i) => {
        const p = `${param}[elements][${i}]`;
        const element = requireObject(e, p);
        checkString(element.title, `${p}[title]`, ELEMENT_TITLE_MAX);
        if (has(element, "subtitle")) checkString(element.subtitle, `${p}[subtitle]`, ELEMENT_SUBTITLE_MAX, { allowEmpty: true });
        if (has(element, "image_url")) checkUrl(element.image_url, `${p}[image_url]`);
        if (has(element, "default_action")) validateButton(element.default_action, `${p}[default_action]`, { asDefaultAction: true });
        if (has(element, "buttons")) validateButtons(element.buttons, `${p}[buttons]`, 0);
        if (!["subtitle", "image_url", "default_action", "buttons"].some((k) => has(element, k))) {
          fail(`param ${p} must have at least one of subtitle, image_url, default_action or buttons besides its title`);
        }
      });
      if (has(payload, "image_aspect_ratio") && !oneOf(["horizontal", "square"], payload.image_aspect_ratio)) {
        fail(`param ${param}[image_aspect_ratio] must be one of {horizontal, square}`);
      }
      break;
    }
    case "button":
      checkString(payload.text, `${param}[text]`, BUTTON_TEMPLATE_TEXT_MAX);
      validateButtons(payload.buttons, `${param}[buttons]`, 1);
      break;
    case "media": {
      const elements = requireArray(payload.elements, `${param}[elements]`);
      checkCount(elements, `${param}[elements]`, 1, 1);
      elements.forEach((e, i) => {
        const p = `${param}[elements][${i}]`;
        const element = requireObject(e, p);
        if (!oneOf(["image", "video"], element.media_type)) fail(`param ${p}[media_type] must be one of {image, video}`);
        validateMedia(element, p);
        if (has(element, "buttons")) validateButtons(element.buttons, `${p}[buttons]`, 0);
      });
      break;
    }
    default:
      // receipt, customer_feedback, product: accepted without a deeper check.
      break;
  }
}

function validateMessage(value: unknown): void {
  const message = requireObject(value, "message");
  const hasText = has(message, "text");
  const hasAttachment = has(message, "attachment");
  if (hasText && hasAttachment) fail("Only one of message[text] or message[attachment] can be specified");
  if (!hasText && !hasAttachment) fail("Message cannot be empty, must provide valid attachment or text");
  if (hasText) checkString(message.text, "message[text]", TEXT_MAX);
  if (hasAttachment) {
    const attachment = requireObject(message.attachment, "message[attachment]");
    if (!oneOf(ATTACHMENT_TYPES, attachment.type)) fail(`param message[attachment][type] must be one of {${ATTACHMENT_TYPES.join(", ")}}`);
    const payload = requireObject(attachment.payload, "message[attachment][payload]");
    if (attachment.type === "template") validateTemplate(payload, "message[attachment][payload]");
    else validateMedia(payload, "message[attachment][payload]");
  }
  if (has(message, "quick_replies")) validateQuickReplies(message.quick_replies);
  if (has(message, "metadata")) checkString(message.metadata, "message[metadata]", METADATA_MAX);
}

function validateRecipient(value: unknown): void {
  if (value === undefined || value === null) fail("The parameter recipient is required");
  const recipient = requireObject(value, "recipient");
  const present = RECIPIENT_KEYS.filter((k) => has(recipient, k));
  const unknown = Object.keys(recipient).filter((k) => !(RECIPIENT_KEYS as readonly string[]).includes(k));
  if (present.length !== 1 || unknown.length > 0) fail(`param recipient must have exactly one of {${RECIPIENT_KEYS.join(", ")}}`);
  const key = present[0]!;
  const id = recipient[key];
  if (!(typeof id === "string" && id.length > 0) && !(typeof id === "number" && Number.isSafeInteger(id))) {
    fail(`param recipient[${key}] must be a non-empty string`);
  }
}

function validateSenderAction(body: Obj): void {
  const action = body.sender_action;
  if (!oneOf(SENDER_ACTIONS, action)) fail(`param sender_action must be one of {${SENDER_ACTIONS.join(", ")}}`);
  const reacting = action === "react" || action === "unreact";
  const extra = Object.keys(body).filter(
    (k) => body[k] !== undefined && !(SENDER_ACTION_KEYS as readonly string[]).includes(k) && !(reacting && k === "payload"),
  );
  if (extra.length > 0) fail(`Sender action cannot be sent with other parameters: ${extra.join(", ")}`);
  if (reacting) {
    const payload = requireObject(body.payload, "payload");
    checkString(payload.message_id, "payload[message_id]", Number.MAX_SAFE_INTEGER);
    if (action === "react" && !oneOf(REACTIONS, payload.reaction)) fail(`param payload[reaction] must be one of {${REACTIONS.join(", ")}}`);
  }
}

/**
 * Checks a Send API body (`POST /me/messages`) the way Graph does. The body is the request's
 * parameters without `access_token` / `appsecret_proof`.
 */
export function validateSendBody(body: unknown, options: ValidateOptions = {}): SendValidation {
  try {
    const b = requireObject(body, "body");
    const hasMessage = has(b, "message");
    const hasAction = has(b, "sender_action");
    if (hasMessage && hasAction) fail("Cannot send both message and state at the same time.");
    if (!hasMessage && !hasAction) fail("Must send either message or state");
    validateRecipient(b.recipient);
    if (has(b, "notification_type") && !oneOf(NOTIFICATION_TYPES, b.notification_type)) {
      fail(`param notification_type must be one of {${NOTIFICATION_TYPES.join(", ")}}`);
    }
    if (has(b, "persona_id")) checkString(b.persona_id, "persona_id", Number.MAX_SAFE_INTEGER);
    if (hasAction) {
      validateSenderAction(b);
      return { ok: true };
    }
    if (has(b, "messaging_type")) {
      if (!oneOf(MESSAGING_TYPES, b.messaging_type)) fail(`param messaging_type must be one of {${MESSAGING_TYPES.join(", ")}}`);
    } else if (options.requireMessagingType) {
      fail("The parameter messaging_type is required");
    }
    if (b.messaging_type === "MESSAGE_TAG") {
      if (!has(b, "tag")) fail("The parameter tag is required when messaging_type is MESSAGE_TAG");
      if (!oneOf(MESSAGE_TAGS, b.tag)) fail(`param tag must be one of {${MESSAGE_TAGS.join(", ")}}`);
    } else if (has(b, "tag")) {
      fail("param tag can only be used with messaging_type MESSAGE_TAG");
    }
    validateMessage(b.message);
    return { ok: true };
  } catch (error) {
    if (error instanceof Invalid) {
      return error.subcode === undefined
        ? { ok: false, code: 100, message: error.message }
        : { ok: false, code: 100, subcode: error.subcode, message: error.message };
    }
    throw error;
  }
}
