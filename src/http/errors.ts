/**
 * The error vocabulary of the server's HTTP answers: one closed list of codes, each with the status
 * it has, and the one renderer of the JSON every error answer carries:
 *
 *   { "error": "<code>", "message": "<what is wrong and what to do>" }   (+ x-request-id when known)
 *
 * A code names one meaning, wherever it is used (`too_large` is any body over
 * `[server] max_body_bytes`, the webhook's as the admin API's). Routes throw an `HttpError`, which
 * the app's error plugin (http/error-plugin.ts) renders here; code outside a route handler (the
 * webhook, which answers before it reads a schema) calls `errorResponse` directly. A schema can
 * name the code its refusals answer with (`refusal` below), where a query parameter has its own.
 */

/** Every error code the server answers with, and its status. Adding a code is adding a line here. */
export const ERROR_STATUS = {
  // Any route.
  not_found: 404,
  internal_error: 500,
  /** The body is not JSON, or not of the route's schema (the message names the first problem and its path). */
  invalid_body: 400,
  /** The query, path parameters or headers are not of the route's schema. */
  invalid_query: 400,
  invalid_params: 400,
  invalid_headers: 400,
  /** The body is over `[server] max_body_bytes`. */
  too_large: 413,
  /** The route takes only `content-type: application/json`. */
  json_only: 415,

  // The webhook (webhook/routes.ts).
  verification_failed: 403,
  signature_mismatch: 401,
  /** The events could not be stored (not for a reason of the storage): Facebook retries. */
  storage_failed: 500,
  /** The database does not take writes now (a full disk, a libSQL server that cannot be reached): Facebook retries. */
  storage_unavailable: 503,

  // Things named in a path, query or body that do not exist.
  unknown_endpoint: 404,
  unknown_page: 404,
  unknown_user: 404,
  unknown_contact: 404,
  unknown_session: 404,

  // The admin API (admin/).
  admin_api_off: 404,
  unauthorized: 401,
  /** Nothing to inject or send. */
  empty: 400,
  missing_user_id: 400,
  missing_filter: 400,
  invalid_limit: 400,
  invalid_day: 400,
  no_messenger_profile: 400,
  /** A settings reload found problems in the file (each with its key path, in `problems`): nothing was changed. */
  invalid_settings: 400,
  /** Not possible in the thread's state. */
  conflict: 409,
  /** The Page is paused (its token was refused): nothing can be asked of Meta for it. */
  page_paused: 503,
  /** Meta refused a Graph API call made for the request. */
  graph_error: 502,
  /** Meta's rate limit leaves no room now: `retry-after` says when to try again. */
  rate_limited: 429,
  transformer_off: 404,
  transformer_failed: 422,
  transformer_unavailable: 503,

  // The simulator's API (simulator/routes.ts).
  /** A request a browser marks as coming from another site. */
  cross_site: 403,
  /** A request addressed to a name this server is not reached by (DNS rebinding): simulator/hosts.ts. */
  host_not_allowed: 403,
  too_many_users: 409,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * The error answer: `{ error, message }` JSON with the code's status (and the request id, when there
 * is one). `details` are more fields of the answer, after those two (a 429's per-Page results).
 */
export function errorResponse(
  code: ErrorCode,
  message: string,
  requestId?: string,
  headers?: Record<string, string>,
  details?: Record<string, unknown>,
): Response {
  const all: Record<string, string> = { "content-type": "application/json; charset=utf-8", ...headers };
  if (requestId) all["x-request-id"] = requestId;
  return new Response(JSON.stringify({ error: code, message, ...details }), { status: ERROR_STATUS[code], headers: all });
}

/**
 * An error answer thrown from a route (or its hooks): the app's error plugin renders it with
 * `errorResponse`. `headers` go with the answer (`www-authenticate` on a 401, `retry-after` on a 429),
 * and so do `details` (see `errorResponse`).
 */
export class HttpError extends Error {
  override readonly name = "HttpError";

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers?: Record<string, string>,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  /** The status of the code (Elysia reads `status` from a thrown error, too). */
  get status(): number {
    return ERROR_STATUS[this.code];
  }

  // No `toResponse()`: Elysia would answer with it before any onError hook ran, and the error
  // plugin (http/error-plugin.ts) could not add the request id.
}

/** Where `refusal` keeps its code and message on a schema: a symbol, so that no JSON (an OpenAPI document) shows it. */
const REFUSAL = Symbol.for("messenger-endpoint.refusal");

export interface Refusal {
  code: ErrorCode;
  message: string;
}

/**
 * A schema option (spread it into the options of a TypeBox schema): a value this schema refuses is
 * answered with this code and message instead of the request part's `invalid_…` (http/error-plugin.ts).
 * For a query parameter that has its own code, such as `?limit=` (`invalid_limit`). (Typed as an
 * object of no string keys, which it is: it spreads into any options.)
 */
export function refusal(code: ErrorCode, message: string): Record<string, never> {
  return { [REFUSAL]: { code, message } } as Record<string, never>;
}

/** The refusal a schema names, if it names one. */
export function refusalOf(schema: unknown): Refusal | undefined {
  return typeof schema === "object" && schema !== null ? (schema as { [REFUSAL]?: Refusal })[REFUSAL] : undefined;
}
