/**
 * The admin API's request shapes: one TypeBox schema each for the bodies, the queries and the path
 * parameters, declared on the routes (Elysia checks them before a handler runs) and described from
 * the same objects at `/api/openapi.json` (openapi.ts).
 *
 * A body's `title` names it in the refusal ("invalid inject body: /user_id: …", http/error-plugin.ts).
 * Queries allow parameters they do not name (a cache buster, say): they are ignored.
 */
import { Type, type Static } from "@sinclair/typebox";
import { refusal } from "../http/errors.ts";
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
  { additionalProperties: false, title: "inject body", description: "Runs the flow as if the user had said it (source: inject)." },
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
  { additionalProperties: false, title: "notify body", description: "Sends to the user through their reply lane, without the flow." },
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
  { additionalProperties: false, title: "thread body", description: "Changes who has the floor in a user's thread (docs/handover.md)." },
);

export type InjectBody = Static<typeof InjectBody>;
export type NotifyBody = Static<typeof NotifyBody>;
export type ThreadBody = Static<typeof ThreadBody>;

// --- path parameters ---------------------------------------------------------------------------

const EndpointId = Type.String({ description: "The endpoint id" });

export const EndpointParams = Type.Object({ id: EndpointId });
export const EndpointUserParams = Type.Object({ id: EndpointId, userId: Type.String({ description: "The user's PSID" }) });
export const ContactParams = Type.Object({ id: Type.String({ description: "The contact id (c_...)" }) });
export const SessionParams = Type.Object({ id: Type.String({ description: "The session id (s_...)" }) });
/** `/webhooks/{endpointId}/…`: the webhook's own route names the segment so, and the router wants one name per segment. */
export const WebhookParams = Type.Object({ endpointId: EndpointId });

// --- queries -----------------------------------------------------------------------------------

const EndpointFilter = Type.Optional(Type.String({ description: "Only this endpoint" }));

/** `?user_id=` (required) of the contacts and sessions. */
export const UserQuery = Type.Object(
  {
    user_id: Type.String({ minLength: 1, description: "The user's PSID", ...refusal("missing_user_id", "give ?user_id=<PSID>") }),
    endpoint_id: EndpointFilter,
  },
  { additionalProperties: true },
);

export const ThreadQuery = Type.Object(
  { page_id: Type.Optional(Type.String({ description: "The Page, when the PSID is known on several of the endpoint's Pages" })) },
  { additionalProperties: true },
);

/** `?limit=` arrives as text: the route makes it a number before the check (conversations.ts). */
export const ConversationsQuery = Type.Object(
  {
    user_id: Type.Optional(Type.String({ description: "The user's PSID" })),
    session_id: Type.Optional(Type.String({ description: "The session id (s_...)" })),
    contact_id: Type.Optional(Type.String({ description: "The contact id (c_...): the entries of all its PSIDs" })),
    endpoint_id: EndpointFilter,
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000,
        default: 100,
        description: "How many entries: the last ones",
        ...refusal("invalid_limit", "limit is a whole number from 1 to 1000"),
      }),
    ),
  },
  { additionalProperties: true },
);

const day = (description: string) =>
  Type.String({ pattern: "^\\d{4}-\\d{2}-\\d{2}$", description, ...refusal("invalid_day", "from and to are days: YYYY-MM-DD (UTC)") });

export const AnalyticsQuery = Type.Object(
  {
    endpoint_id: EndpointFilter,
    from: Type.Optional(day("The first day, YYYY-MM-DD (UTC); default: 29 days before today")),
    to: Type.Optional(day("The last day, YYYY-MM-DD (UTC); default: today")),
  },
  { additionalProperties: true },
);
