/**
 * The admin API's request bodies (SPEC §10): one TypeBox schema each, checked at the boundary.
 * The same schemas describe the API in `/api/openapi.json`.
 */
import { Type, type Static } from "@sinclair/typebox";
import { Output } from "../flows/schema.ts";

const UserId = Type.String({ minLength: 1, maxLength: 256, pattern: "^[0-9]+$", description: "The user's PSID on the Page" });
const PageId = Type.String({ pattern: "^[0-9]+$", description: "The Page, when the PSID is known on several of the endpoint's Pages" });

export const InjectBody = Type.Object(
  {
    user_id: UserId,
    page_id: Type.Optional(PageId),
    text: Type.Optional(Type.String({ maxLength: 10_000 })),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false, description: "Runs the flow as if the user had said it (source: inject)." },
);

export const NotifyBody = Type.Object(
  {
    user_id: UserId,
    page_id: Type.Optional(PageId),
    text: Type.Optional(Type.String({ maxLength: 10_000 })),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: "Output fields (quick_replies, buttons, cards, image, messenger ...)" })),
    output: Type.Optional(Output),
    messaging_type: Type.Optional(Type.Union([Type.Literal("RESPONSE"), Type.Literal("UPDATE"), Type.Literal("MESSAGE_TAG")], { default: "UPDATE" })),
    tag: Type.Optional(Type.String({ description: "With messaging_type MESSAGE_TAG, e.g. ACCOUNT_UPDATE" })),
  },
  { additionalProperties: false, description: "Sends to the user through their reply lane, without the flow." },
);

export const ThreadBody = Type.Object(
  {
    action: Type.Union([Type.Literal("take"), Type.Literal("pass"), Type.Literal("pause"), Type.Literal("resume")], {
      description: "take: the bot has the thread again now; pass: to people (target); pause: the bot is silent for `minutes`; resume: end a pause",
    }),
    page_id: Type.Optional(PageId),
    target: Type.Optional(Type.String({ pattern: "^(page_inbox|[0-9]+)$", description: "pass: page_inbox (default: handover.target) or an app id" })),
    metadata: Type.Optional(Type.String({ maxLength: 1000, description: "pass: given to the other app" })),
    minutes: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10_080, description: "pause: how long (default: handover.pause_minutes)" })),
  },
  { additionalProperties: false, description: "Changes who has the floor in a user's thread (SPEC §11)." },
);

export type ThreadBody = Static<typeof ThreadBody>;
export type InjectBody = Static<typeof InjectBody>;
export type NotifyBody = Static<typeof NotifyBody>;
