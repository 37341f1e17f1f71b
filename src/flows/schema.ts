/**
 * The flow protocol (docs/flows.md): what a flow receives (`FlowInput`) and what it returns
 * (`FlowResult`). The result is checked against this schema at the boundary; everything after it
 * trusts the shape.
 */
import { Type, type Static } from "@sinclair/typebox";
import { checker, firstProblem } from "../core/checks.ts";

const Str = Type.String();

export const QuickReply = Type.Union([
  Type.Object({
    type: Type.Optional(Type.Literal("text")),
    title: Str,
    payload: Type.Optional(Str),
    image_url: Type.Optional(Str),
  }),
  Type.Object({ type: Type.Union([Type.Literal("user_email"), Type.Literal("user_phone_number")]) }),
]);

export const Button = Type.Union([
  Type.Object({ type: Type.Literal("postback"), title: Str, payload: Str }),
  Type.Object({
    type: Type.Literal("web_url"),
    title: Str,
    url: Str,
    webview_height_ratio: Type.Optional(Type.Union([Type.Literal("compact"), Type.Literal("tall"), Type.Literal("full")])),
  }),
  Type.Object({ type: Type.Literal("phone_number"), title: Str, payload: Str }),
]);

export const Card = Type.Object({
  title: Str,
  subtitle: Type.Optional(Str),
  image_url: Type.Optional(Str),
  /** Opens when the card itself is tapped. */
  url: Type.Optional(Str),
  buttons: Type.Optional(Type.Array(Button)),
});

export const Output = Type.Object({
  text: Type.Optional(Str),
  quick_replies: Type.Optional(Type.Array(QuickReply)),
  buttons: Type.Optional(Type.Array(Button)),
  cards: Type.Optional(Type.Array(Card)),
  image: Type.Optional(Str),
  audio: Type.Optional(Str),
  video: Type.Optional(Str),
  file: Type.Optional(Str),
  /** A raw Send API `message` object, sent as given. */
  messenger: Type.Optional(Type.Record(Str, Type.Unknown())),
});

/** Pass the thread to people (docs/handover.md): `page_inbox` or an app id; metadata as Meta allows (1,000 characters). */
export const Handover = Type.Object({
  target: Type.Optional(Type.String({ pattern: "^(page_inbox|[0-9]+)$" })),
  metadata: Type.Optional(Type.String({ maxLength: 1000 })),
});

export const FlowResult = Type.Object({
  outputs: Type.Optional(Type.Array(Output)),
  context: Type.Optional(Type.Record(Str, Type.Unknown())),
  handover: Type.Optional(Handover),
  /** The session ends with this turn: the user's next input starts a new one, with an empty context. */
  end_session: Type.Optional(Type.Boolean()),
  /** Fields merged into the person's contact profile (`input.contact`); null deletes one (people/contact-fields.ts). */
  contact: Type.Optional(Type.Record(Str, Type.Unknown())),
});

export type QuickReply = Static<typeof QuickReply>;
export type Button = Static<typeof Button>;
export type Card = Static<typeof Card>;
export type Output = Static<typeof Output>;
export type FlowResult = Static<typeof FlowResult>;

/** Compiled when the module loads: compiling takes about 10 ms, which the first turn would wait for. */
const checkResult = checker(FlowResult);

/** The result, or a sentence saying what is wrong with it (for the log). */
export function validateFlowResult(value: unknown): { ok: true; result: FlowResult } | { ok: false; problem: string } {
  if (value === null || value === undefined) return { ok: true, result: {} };
  if (checkResult.Check(value)) return { ok: true, result: value };
  const first = firstProblem(FlowResult, value);
  return { ok: false, problem: `invalid flow result at ${first?.path || "/"}: ${first?.message ?? "unexpected shape"}` };
}

export type InputSource = "user" | "inject" | "handover";

export interface Attachment {
  type: string;
  url?: string;
  [key: string]: unknown;
}

/** What the flow receives for one user event. */
export interface FlowInput {
  endpoint_id: string;
  page_id: string;
  user_id: string;
  contact_id: string | null;
  session_id: string;
  source: InputSource;
  text: string;
  data: {
    request?: unknown;
    payload?: string;
    attachments?: Attachment[];
    referral?: unknown;
    profile?: Record<string, unknown>;
    [key: string]: unknown;
  };
  context: Record<string, unknown>;
  contact: Record<string, unknown>;
  locale: string;
  /** The user's language: the endpoint's locale, or what translation detected or was told (docs/translation.md). */
  language: string;
  /** What the NLU connector understood (docs/nlu.md), or null. */
  nlu: unknown;
  /** Why the NLU call failed, when it did (the flow runs with `nlu: null`). */
  nlu_error?: string;
  handover: unknown;
}
