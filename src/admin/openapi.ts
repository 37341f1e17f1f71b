/**
 * `/api/openapi.json`: the admin API described as OpenAPI 3.1, made from the routes themselves —
 * each route's path and method, its `params`, `query` and `body` schemas (the very objects Elysia
 * checks requests against: TypeBox schemas are JSON Schema), and its `detail` (summary, answers).
 * A route with `detail.hide` is left out.
 *
 * (`@elysiajs/openapi` does this too, but documents a body read by a route's own parser, as the
 * admin API's are (guard.ts), with no media type; and it would have to be told which of the app's
 * routes are the admin API's. The admin API's own routes are what this file walks.)
 */
import type { TSchema } from "@sinclair/typebox";
import type { DocumentDecoration } from "elysia";
import { VERSION } from "../version.ts";

/** What the document needs of a route (Elysia's `app.routes` entries). */
export interface DocumentedRoute {
  method: string;
  path: string;
  hooks: { body?: unknown; query?: unknown; params?: unknown; detail?: DocumentDecoration };
}

type Json = Record<string, unknown>;

/** An answer of a route, as OpenAPI describes it (a route's `detail.responses` holds them by status). */
type Answer = NonNullable<DocumentDecoration["responses"]>[string];

const json = (schema: object) => ({ content: { "application/json": { schema } } });

/** An error answer of a route, for its `detail.responses`: `{ error, message }`. */
export const errorAnswer = (description: string): Answer => ({ description, ...json({ $ref: "#/components/schemas/Error" }) });

/** An answer of a route, for its `detail.responses`, with the shape of its JSON when given. */
export const answer = (description: string, schema?: Json): Answer => ({ description, ...(schema ? json(schema) : {}) });

/** The answers every admin route may give. */
const COMMON_ANSWERS = { "401": errorAnswer("no or wrong API key"), "404": errorAnswer("not found (or the admin API is off)") };

/**
 * The document of these routes. `named` schemas go to `components.schemas`, and a route whose body
 * is one of them refers to it there.
 */
export function openApiDocument(routes: readonly DocumentedRoute[], named: Record<string, TSchema>): Json {
  const refs = new Map(Object.entries(named).map(([name, schema]) => [schema as unknown, { $ref: `#/components/schemas/${name}` }]));
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes) {
    const { hide, ...detail } = route.hooks.detail ?? {};
    if (hide) continue;
    const path = route.path.replace(/:([^/]+)/g, "{$1}");
    const parameters = [...parametersOf(route.hooks.params, "path"), ...parametersOf(route.hooks.query, "query")];
    const body = route.hooks.body;
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = {
      ...detail,
      ...(parameters.length ? { parameters } : {}),
      ...(body ? { requestBody: { required: true, ...json(refs.get(body) ?? (body as object)) } } : {}),
      responses: { ...detail.responses, ...COMMON_ANSWERS },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "messenger-endpoint admin API",
      version: VERSION,
      description: "Operate the endpoints: inject, notify, contacts, sessions, transcripts, analytics.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "One of [admin] api_keys" } },
      schemas: {
        Error: { type: "object", properties: { error: { type: "string" }, message: { type: "string" } }, required: ["error", "message"] },
        ...named,
      },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

/** The properties of an object schema as OpenAPI parameters (their description beside the schema, as OpenAPI has it). */
function parametersOf(schema: unknown, where: "path" | "query"): Json[] {
  const { properties = {}, required = [] } = (schema ?? {}) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(properties).map(([name, { description, ...property }]) => ({
    name,
    in: where,
    required: where === "path" || required.includes(name),
    ...(description ? { description } : {}),
    schema: property,
  }));
}
