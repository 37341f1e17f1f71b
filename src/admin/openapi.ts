/**
 * `/api/openapi.json`: the admin API described as OpenAPI 3.1, with the request bodies taken from
 * the very schemas the API checks (TypeBox schemas are JSON Schema).
 */
import { InjectBody, NotifyBody, ThreadBody } from "./schemas.ts";
import { VERSION } from "../version.ts";

const json = (schema: unknown) => ({ content: { "application/json": { schema } } });
const error = (description: string) => ({ description, ...json({ $ref: "#/components/schemas/Error" }) });
const userQuery = { name: "user_id", in: "query", required: true, schema: { type: "string" }, description: "The user's PSID" };
const endpointQuery = { name: "endpoint_id", in: "query", required: false, schema: { type: "string" } };
const idPath = (description: string) => ({ name: "id", in: "path", required: true, schema: { type: "string" }, description });
const common = { "401": error("no or wrong API key"), "404": error("not found (or the admin API is off)") };

let document: Record<string, unknown> | null = null;

export function openApiDocument(): Record<string, unknown> {
  document ??= {
    openapi: "3.1.0",
    info: { title: "messenger-endpoint admin API", version: VERSION, description: "Operate the endpoints: inject, notify, contacts, sessions, transcripts, analytics." },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "One of [admin] api_keys" } },
      schemas: {
        Error: { type: "object", properties: { error: { type: "string" }, message: { type: "string" } }, required: ["error", "message"] },
        InjectBody,
        NotifyBody,
        ThreadBody,
      },
    },
    security: [{ bearer: [] }],
    paths: {
      "/api/endpoints/{id}/inject": {
        post: {
          summary: "Run the flow as if the user had said it (source: inject); replies go through the user's lane",
          parameters: [idPath("The endpoint id")],
          requestBody: { required: true, ...json({ $ref: "#/components/schemas/InjectBody" }) },
          responses: { "202": { description: "stored; runs in the user's lane", ...json({ type: "object", properties: { session_id: { type: "string" } } }) }, "400": error("invalid or empty body"), ...common },
        },
      },
      "/api/endpoints/{id}/notify": {
        post: {
          summary: "Send to the user through their reply lane, without the flow",
          parameters: [idPath("The endpoint id")],
          requestBody: { required: true, ...json({ $ref: "#/components/schemas/NotifyBody" }) },
          responses: { "202": { description: "queued", ...json({ type: "object", properties: { messages: { type: "integer" } } }) }, "400": error("invalid body, or nothing to send"), ...common },
        },
      },
      "/api/contacts": { get: { summary: "The contact of a PSID: profile fields, linked PSIDs per Page", parameters: [userQuery, endpointQuery], responses: { "200": { description: "the contact" }, "400": error("no user_id"), ...common } } },
      "/api/contacts/{id}": {
        get: { summary: "A contact", parameters: [idPath("The contact id (c_...)")], responses: { "200": { description: "the contact" }, ...common } },
        delete: { summary: "GDPR erasure: the contact and everything stored about its PSIDs (events, messages, sessions, transcripts)", parameters: [idPath("The contact id")], responses: { "200": { description: "erased" }, ...common } },
      },
      "/api/contacts/{id}/export": { get: { summary: "GDPR export: everything stored about the contact's PSIDs", parameters: [idPath("The contact id")], responses: { "200": { description: "the export" }, ...common } } },
      "/api/endpoints/{id}/users/{userId}/export": {
        get: { summary: "GDPR export by PSID (the whole contact when the PSID has one)", parameters: [idPath("The endpoint id"), { name: "userId", in: "path", required: true, schema: { type: "string" } }], responses: { "200": { description: "the export" }, ...common } },
      },
      "/api/endpoints/{id}/users/{userId}": {
        delete: { summary: "GDPR erasure by PSID (the whole contact when the PSID has one); works with contact_profiles = false", parameters: [idPath("The endpoint id"), { name: "userId", in: "path", required: true, schema: { type: "string" } }], responses: { "200": { description: "erased" }, ...common } },
      },
      "/api/endpoints/{id}/users/{userId}/thread": {
        get: {
          summary: "Who has the floor in the user's thread: bot, handover (another app owns it) or paused (a person answered), with the timeout and the last handover error",
          parameters: [idPath("The endpoint id"), { name: "userId", in: "path", required: true, schema: { type: "string" } }, { name: "page_id", in: "query", schema: { type: "string" } }],
          responses: { "200": { description: "the thread" }, ...common },
        },
        post: {
          summary: "Change it: take (the bot has it again), pass (to people), pause, resume",
          parameters: [idPath("The endpoint id"), { name: "userId", in: "path", required: true, schema: { type: "string" } }],
          requestBody: { required: true, ...json({ $ref: "#/components/schemas/ThreadBody" }) },
          responses: { "200": { description: "the thread after the change" }, "400": error("invalid body"), "409": error("not possible in the thread's state"), "502": error("Meta refused the handover call"), "503": error("the Page is paused (Meta refused its token)"), ...common },
        },
      },
      "/api/endpoints/{id}/messenger-profile": {
        post: { summary: "Apply the declared Messenger profile to each Page now", parameters: [idPath("The endpoint id")], responses: { "200": { description: "per-Page results" }, "400": error("no [endpoints.messenger_profile]"), "429": error("Meta's rate limit leaves no room"), "502": error("Meta refused it for a Page"), ...common } },
      },
      "/api/sessions": { get: { summary: "A PSID's sessions, newest first", parameters: [userQuery, endpointQuery], responses: { "200": { description: "sessions" }, ...common } } },
      "/api/sessions/{id}": { delete: { summary: "Reset: the user's next input starts a new session with an empty context", parameters: [idPath("The session id (s_...)")], responses: { "200": { description: "reset" }, ...common } } },
      "/api/conversations": {
        get: {
          summary: "Transcript entries, oldest first (the last `limit`)",
          parameters: [
            { ...userQuery, required: false },
            { name: "session_id", in: "query", schema: { type: "string" } },
            { name: "contact_id", in: "query", schema: { type: "string" } },
            endpointQuery,
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: { "200": { description: "entries" }, "400": error("no filter, or a bad limit"), ...common },
        },
      },
      "/api/endpoints": { get: { summary: "Endpoints with Page status and queue depths", responses: { "200": { description: "endpoints" }, ...common } } },
      "/api/analytics": {
        get: {
          summary: "Counts per endpoint and UTC day: inputs, outputs, sessions, users, failed sends",
          parameters: [endpointQuery, { name: "from", in: "query", schema: { type: "string", format: "date" } }, { name: "to", in: "query", schema: { type: "string", format: "date" } }],
          responses: { "200": { description: "days" }, "400": error("bad day"), ...common },
        },
      },
    },
  };
  return document;
}
