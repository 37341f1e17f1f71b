/**
 * The app's one error hook (an Elysia plugin, used once at the root by app.ts): whatever a route
 * throws or Elysia refuses becomes an `{ error, message }` answer from http/errors.ts.
 *
 *   HttpError (thrown by a route, a guard or a parser)  → its code and message
 *   a schema refusing the body, query, params, headers  → invalid_body, invalid_query, … (400), naming
 *                                                         the first problem and its path (core/checks.ts);
 *                                                         or the code and message the refusing (sub)schema
 *                                                         names (`refusal` in http/errors.ts)
 *   an unknown path                                     → not_found (404)
 *   anything else                                       → internal_error (500), logged with the error
 *
 * A route that has a request id (a `requestId` it derived into the context) gets it back as
 * `x-request-id` on its errors too.
 */
import { Elysia } from "elysia";
import { Kind, type TSchema } from "@sinclair/typebox";
import { describeProblem, firstProblem } from "../core/checks.ts";
import type { Logger } from "../log/logger.ts";
import { HttpError, errorResponse, refusalOf, type ErrorCode } from "./errors.ts";

/** What a schema was checking, as Elysia names it, and the code of a refusal. */
const VALIDATION_CODES: Record<string, ErrorCode> = {
  body: "invalid_body",
  query: "invalid_query",
  params: "invalid_params",
  headers: "invalid_headers",
  cookie: "invalid_headers",
};

export function httpErrors(log: Logger) {
  // Scoped: the hook lifts to the app that uses the plugin, and reaches every route mounted after it.
  return new Elysia().onError({ as: "scoped" }, (context) => {
    const { code, error, request } = context;
    const given = (context as { requestId?: unknown }).requestId;
    const requestId = typeof given === "string" ? given : undefined;
    // A parser's error arrives wrapped by Elysia (a ParseError whose cause is what was thrown).
    const thrown = code === "PARSE" && error.cause instanceof HttpError ? error.cause : error;
    if (thrown instanceof HttpError) return errorResponse(thrown.code, thrown.message, requestId, thrown.headers, thrown.details);
    switch (code) {
      case "VALIDATION": {
        const validationCode = VALIDATION_CODES[error.type];
        if (validationCode) {
          const { code: refusedAs, message } = validationRefusal(error.type, error.validator, error.value);
          return errorResponse(refusedAs ?? validationCode, message, requestId);
        }
        break; // the answer of a route failing its own response schema: our bug, logged below
      }
      case "PARSE":
        return errorResponse(
          "invalid_body",
          `the body could not be read as its content-type says: ${(error.cause as Error | undefined)?.message ?? "unreadable"}`,
          requestId,
        );
      case "NOT_FOUND":
        return errorResponse("not_found", `no route for ${request.method} ${new URL(request.url).pathname}`, requestId);
    }
    log.error("unhandled error while answering a request", { error, path: new URL(request.url).pathname, ...(requestId ? { request_id: requestId } : {}) });
    return errorResponse("internal_error", "internal error; see the server log", requestId);
  });
}

/**
 * `invalid <what>: <first problem>`. `<what>` is the schema's `title` when it has one (a route's
 * name for its body, such as "simulator request"), else the part of the request. When the schema
 * that refused the first problem names a refusal (`refusal` in http/errors.ts): its code and message.
 */
function validationRefusal(part: string, validator: unknown, value: unknown): { code?: ErrorCode; message: string } {
  const schema = schemaOf(validator);
  if (!schema) return { message: `invalid ${part}` };
  const problem = firstProblem(schema, value);
  const named = refusalOf(problem?.schema);
  if (named) return named;
  const what = typeof schema.title === "string" ? schema.title : part;
  return { message: `invalid ${what}: ${describeProblem(problem)}` };
}

/** The TypeBox schema behind Elysia's validator (its own wrapper, a compiled TypeCheck, or the schema). */
function schemaOf(validator: unknown): TSchema | undefined {
  if (typeof validator !== "object" || validator === null) return undefined;
  if (Kind in validator) return validator as TSchema;
  const wrapped = validator as { schema?: unknown; Schema?: () => TSchema };
  if (typeof wrapped.schema === "object" && wrapped.schema !== null && Kind in wrapped.schema) return wrapped.schema as TSchema;
  return typeof wrapped.Schema === "function" ? wrapped.Schema() : undefined;
}
