/**
 * One stored Messenger event → the flow's input (flows/schema.ts `FlowInput`). Postback and
 * quick-reply payloads become the text and `data.payload`; attachments become `data.attachments`
 * with their URL; referrals (from a referral event, a Get Started postback or a message)
 * `data.referral`; the raw event is `data.request`.
 */
import type { Attachment, FlowInput, InputSource } from "../flows/schema.ts";
import type { HandoverOutcome } from "../handover/threads.ts";

export interface InputContext {
  endpointId: string;
  pageId: string;
  userId: string;
  sessionId: string;
  contactId: string | null;
  context: Record<string, unknown>;
  contact: Record<string, unknown>;
  locale: string;
  source: InputSource;
}

/** What `POST /api/endpoints/{id}/inject` stored in the inbox (kind "inject"). */
export interface InjectedInput {
  text?: string;
  data?: Record<string, unknown>;
  /** The id chosen for the new session the caller was told about (there was no current one). */
  new_session_id?: string;
}

/** An injected input (admin API): the caller's text and data; `data.request` is absent. */
export function injectedInput(injected: InjectedInput, ctx: InputContext): FlowInput {
  const input = inputFromEvent({}, ctx);
  input.text = injected.text ?? "";
  input.data = { ...(injected.data ?? {}) };
  return input;
}

/** Control came back (or could not leave): `source: "handover"`, `input.handover` says how (handover/threads.ts). */
export function handoverInput(handover: HandoverOutcome, request: unknown, ctx: InputContext): FlowInput {
  const input = inputFromEvent({}, ctx);
  input.data = request === undefined ? {} : { request };
  input.handover = handover;
  return input;
}

export function inputFromEvent(event: Record<string, any>, ctx: InputContext): FlowInput {
  const data: FlowInput["data"] = { request: event };
  let text = "";
  const message = event.message;
  if (message) {
    if (typeof message.text === "string") text = message.text;
    const payload = message.quick_reply?.payload;
    if (typeof payload === "string") {
      data.payload = payload;
      text = payload;
    }
    if (Array.isArray(message.attachments) && message.attachments.length > 0) {
      data.attachments = message.attachments.map(toAttachment);
    }
    if (message.referral) data.referral = message.referral;
  } else if (event.postback) {
    if (typeof event.postback.payload === "string") {
      data.payload = event.postback.payload;
      text = event.postback.payload;
    }
    if (event.postback.referral) data.referral = event.postback.referral;
  } else if (event.referral) {
    data.referral = event.referral;
  } else if (event.optin) {
    data.optin = event.optin;
    if (typeof event.optin.payload === "string") data.payload = event.optin.payload;
  }
  return {
    endpoint_id: ctx.endpointId,
    page_id: ctx.pageId,
    user_id: ctx.userId,
    contact_id: ctx.contactId,
    session_id: ctx.sessionId,
    source: ctx.source,
    text,
    data,
    context: ctx.context,
    contact: ctx.contact,
    locale: ctx.locale,
    language: ctx.locale,
    nlu: null,
    handover: null,
  };
}

function toAttachment(raw: Record<string, any>): Attachment {
  const payload = raw?.payload ?? {};
  // `String()` of a hostile object (`{"toString": 1}`) would throw: only plain values are read.
  const attachment: Attachment = { type: typeof raw?.type === "string" ? raw.type : "unknown" };
  const url = payload?.url ?? raw?.url ?? raw?.URL;
  if (typeof url === "string") attachment.url = url;
  if (typeof raw?.title === "string") attachment.title = raw.title;
  if (payload?.sticker_id !== undefined) attachment.sticker_id = payload.sticker_id;
  if (payload?.coordinates) attachment.coordinates = payload.coordinates;
  return attachment;
}
