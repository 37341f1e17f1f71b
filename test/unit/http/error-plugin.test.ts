/**
 * The one renderer of error answers (src/http/errors.ts) and the app's error plugin
 * (src/http/error-plugin.ts): thrown HttpErrors, schema refusals, unknown paths and bugs all
 * answer `{ error, message }` with the code's status, on every route mounted after the plugin.
 */
import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { ERROR_STATUS, HttpError, errorResponse, refusal } from "../../../src/http/errors.ts";
import { httpErrors } from "../../../src/http/error-plugin.ts";
import { readJsonBody, requireJsonContentType } from "../../../src/http/json-body.ts";
import { collectingLogger } from "../../helpers/log.ts";

const Body = Type.Object(
  { name: Type.String({ minLength: 1 }), tags: Type.Optional(Type.Array(Type.String())) },
  { additionalProperties: false, title: "greeting" },
);
const Query = Type.Object({ limit: Type.String({ pattern: "^[0-9]+$" }) }, { additionalProperties: true });
/** A parameter whose refusal has its own code and message. */
const OwnQuery = Type.Object({
  limit: Type.Optional(Type.String({ pattern: "^[0-9]+$", ...refusal("invalid_limit", "limit is a number") })),
  tag: Type.Optional(Type.String({ minLength: 1 })),
});

function app() {
  const logs = collectingLogger();
  const plugin = new Elysia()
    .onParse(async ({ request }) => {
      requireJsonContentType(request);
      return readJsonBody(request, 64, "greeting");
    })
    .post("/greet", ({ body }) => ({ hello: body.name }), { body: Body })
    .get("/list", ({ query }) => ({ limit: query.limit }), { query: Query })
    .get("/own", ({ query }) => ({ limit: query.limit }), { query: OwnQuery })
    .get("/limited", () => {
      throw new HttpError("rate_limited", "try again later", { "retry-after": "60" }, { pages: [{ id: "1" }] });
    })
    .derive(() => ({ requestId: "req-1" }))
    .get("/gone/:id", ({ params }) => {
      throw new HttpError("unknown_contact", `no contact ${params.id}`);
    })
    .get("/locked", () => {
      throw new HttpError("unauthorized", "send a key", { "www-authenticate": "Bearer" });
    })
    .get("/bug", () => {
      throw new Error("a bug");
    });
  const server = new Elysia({ normalize: false }).use(httpErrors(logs.log)).use(plugin);
  const call = async (method: string, path: string, init: { body?: string; type?: string } = {}) => {
    const response = await server.handle(
      new Request(`http://localhost${path}`, {
        method,
        ...(init.body === undefined ? {} : { body: init.body, headers: { "content-type": init.type ?? "application/json" } }),
      }),
    );
    return { status: response.status, headers: response.headers, body: (await response.json()) as { error: string; message: string } };
  };
  return { call, logs };
}

describe("errorResponse", () => {
  test("renders { error, message } with the code's status and the request id", async () => {
    const response = errorResponse("too_large", "the body is over 10 bytes", "abc-1");
    expect(response.status).toBe(413);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(response.headers.get("x-request-id")).toBe("abc-1");
    expect(await response.json()).toEqual({ error: "too_large", message: "the body is over 10 bytes" });
    expect(errorResponse("not_found", "x").headers.has("x-request-id")).toBe(false);
  });

  test("every code has an error status", () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) expect([code, status >= 400 && status <= 599]).toEqual([code, true]);
  });
});

describe("the error plugin", () => {
  test("a thrown HttpError: its code, status, message and headers; the route's request id", async () => {
    const { call } = app();
    const gone = await call("GET", "/gone/42");
    expect([gone.status, gone.body]).toEqual([404, { error: "unknown_contact", message: "no contact 42" }]);
    expect(gone.headers.get("x-request-id")).toBe("req-1");
    const locked = await call("GET", "/locked");
    expect(locked.status).toBe(401);
    expect(locked.headers.get("www-authenticate")).toBe("Bearer");
  });

  test("a body refused by its schema: invalid_body, naming the schema's title, the first problem and its path", async () => {
    const { call } = app();
    expect((await call("POST", "/greet", { body: JSON.stringify({ name: "Ann" }) })).body).toEqual({ hello: "Ann" } as never);
    const missing = await call("POST", "/greet", { body: "{}" });
    expect([missing.status, missing.body]).toEqual([400, { error: "invalid_body", message: "invalid greeting: /name: Expected required property" }]);
    const nested = await call("POST", "/greet", { body: JSON.stringify({ name: "Ann", tags: ["a", 1] }) });
    expect(nested.body.message).toBe("invalid greeting: /tags/1: Expected string");
    // Unknown properties are refused, not trimmed (the app's normalize: false).
    const extra = await call("POST", "/greet", { body: JSON.stringify({ name: "Ann", admin: true }) });
    expect([extra.status, extra.body.message]).toEqual([400, "invalid greeting: unknown property /admin"]);
    for (const body of ["null", "0", "false", '""', "[]"]) {
      const odd = await call("POST", "/greet", { body });
      expect([body, odd.status, odd.body.error]).toEqual([body, 400, "invalid_body"]);
    }
  });

  test("what a parser throws is answered as thrown: not JSON, too large, not declared as JSON", async () => {
    const { call } = app();
    expect((await call("POST", "/greet", { body: "{nope" })).body).toEqual({ error: "invalid_body", message: "invalid greeting: the body is not JSON" });
    const large = await call("POST", "/greet", { body: JSON.stringify({ name: "x".repeat(100) }) });
    expect([large.status, large.body.error]).toEqual([413, "too_large"]);
    const plain = await call("POST", "/greet", { body: "{}", type: "text/plain" });
    expect([plain.status, plain.body.error]).toEqual([415, "json_only"]);
  });

  test("a query refused by its schema: invalid_query", async () => {
    const { call } = app();
    expect((await call("GET", "/list?limit=5&other=1")).body).toEqual({ limit: "5" } as never);
    const bad = await call("GET", "/list?limit=five");
    expect([bad.status, bad.body.error]).toEqual([400, "invalid_query"]);
    expect(bad.body.message).toStartWith("invalid query: /limit: ");
  });

  test("a refusal by a schema that names its own code and message: that code and message", async () => {
    const { call } = app();
    const bad = await call("GET", "/own?limit=five");
    expect([bad.status, bad.body]).toEqual([400, { error: "invalid_limit", message: "limit is a number" }]);
    // Another parameter's refusal is the query's.
    const other = await call("GET", "/own?limit=5&tag=");
    expect([other.status, other.body.error]).toEqual([400, "invalid_query"]);
    // The refusal is kept under a symbol: JSON of the schema (an OpenAPI document) does not show it.
    expect(JSON.stringify(OwnQuery)).not.toContain("invalid_limit");
  });

  test("an HttpError's details are more fields of the answer", async () => {
    const { call } = app();
    const limited = await call("GET", "/limited");
    expect([limited.status, limited.headers.get("retry-after"), limited.body]).toEqual([
      429,
      "60",
      { error: "rate_limited", message: "try again later", pages: [{ id: "1" }] } as never,
    ]);
  });

  test("an unknown path: not_found; a bug: internal_error, logged with the error", async () => {
    const { call, logs } = app();
    expect(await call("GET", "/nothing/here")).toMatchObject({ status: 404, body: { error: "not_found", message: "no route for GET /nothing/here" } });
    const bug = await call("GET", "/bug");
    expect([bug.status, bug.body]).toEqual([500, { error: "internal_error", message: "internal error; see the server log" }]);
    expect(logs.records()).toContainEqual(
      expect.objectContaining({ level: "error", msg: "unhandled error while answering a request", path: "/bug", request_id: "req-1" }),
    );
  });
});
