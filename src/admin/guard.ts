/**
 * The admin API's guard: who may call, the request's id and logger, and how a body is read. Every
 * admin route group uses `guard.plugin`, and names how its routes read their bodies (`jsonBody`,
 * `anyBody`, `noBody`).
 *
 *   no `[admin] api_keys`                          → 404 admin_api_off: the API is off
 *   no `Authorization: Bearer <one of the keys>`   → 401 unauthorized, with `www-authenticate`
 *
 * The presented key is compared with every key, each in constant time (http/secrets.ts), so the
 * time taken tells neither which key matched nor whether one did.
 *
 * Elysia reads a route's body (its parse phase) before the route's transform hooks run, and checks
 * the body, query and path against the route's schemas after them. A request is therefore admitted
 * by whichever comes first: the body reader (before a byte of the body is read) or the transform
 * hook (a route without a body) — in any case before a schema is checked, so a caller without a key
 * learns nothing about the route. Admission happens once per request: it draws the request id and
 * makes the logger, both put into the context (the error plugin, http/error-plugin.ts, answers
 * errors with the id as `x-request-id`; the routes' answers carry it too).
 */
import { Elysia } from "elysia";
import type { TSchema } from "@sinclair/typebox";
import type { Logger } from "../log/logger.ts";
import { HttpError } from "../http/errors.ts";
import { readBodyText, readJsonBody } from "../http/json-body.ts";
import { nextRequestId } from "../http/request-id.ts";
import { sameSecret } from "../http/secrets.ts";

export interface AdminGuardOptions {
  /** `[admin] api_keys` now (a settings reload changes them: config/live.ts); none: the API is off. */
  keys: () => readonly string[];
  log: Logger;
  /** `[server] max_body_bytes`: a larger body is refused (413 too_large). */
  maxBodyBytes: number;
}

/** What an admitted request carries in its context. */
export type Admission = {
  requestId: string;
  /** The logger of the request: `request_id` and `api` (`POST /api/endpoints/:id/inject`) on every line. */
  log: Logger;
};

export const API_OFF_MESSAGE = "the admin API is off: set [admin] api_keys in the settings";

/** What the route's context holds when its body is read (Elysia's context, before the transform hooks). */
type ParseContext = { request: Request; route?: string } & Partial<Admission>;

export type AdminGuard = ReturnType<typeof adminGuard>;

export function adminGuard({ keys, log, maxBodyBytes }: AdminGuardOptions) {
  const admitted = new WeakMap<Request, Admission>();

  /** The request's admission, made by the first hook that asks; or the refusal. */
  const admit = (request: Request, route: string | undefined): Admission => {
    const known = admitted.get(request);
    if (known) return known;
    const requestId = nextRequestId();
    // A refusal is thrown before the id is in the context: it carries the id itself.
    const withId = { "x-request-id": requestId };
    const current = keys();
    if (current.length === 0) throw new HttpError("admin_api_off", API_OFF_MESSAGE, withId);
    const presented = /^Bearer\s+(.+)$/i.exec(request.headers.get("authorization") ?? "")?.[1]?.trim();
    let matched = false;
    if (presented !== undefined) for (const key of current) matched = sameSecret(presented, key) || matched;
    if (!matched) {
      throw new HttpError("unauthorized", "send Authorization: Bearer <one of [admin] api_keys>", {
        ...withId,
        "www-authenticate": 'Bearer realm="messenger-endpoint"',
      });
    }
    const admission = { requestId, log: log.child({ request_id: requestId, api: `${request.method} ${route ?? new URL(request.url).pathname}` }) };
    admitted.set(request, admission);
    return admission;
  };

  /** A body reader (an Elysia parse hook): admits the request first, and puts the admission into the context. */
  const reader =
    (read: (request: Request) => Promise<unknown>) =>
    (context: ParseContext): Promise<unknown> => {
      Object.assign(context, admit(context.request, context.route));
      return read(context.request);
    };

  return {
    /** Admits every request of the routes of the group that uses it, and adds `requestId` and `log` to their context. */
    plugin: new Elysia({ name: "admin-guard" }).derive({ as: "scoped" }, ({ request, route }): Admission => admit(request, route)),

    /**
     * Route options: a JSON body of this schema, read under the size limit (413), refused when not
     * JSON (400, named by the schema's title: "invalid inject body: the body is not JSON").
     */
    jsonBody: <T extends TSchema>(schema: T) => ({
      body: schema,
      parse: reader((request) => readJsonBody(request, maxBodyBytes, schema.title ?? "body")),
    }),

    /** Route options: any body, under the size limit: the value when it is JSON, else the text. */
    anyBody: {
      parse: reader(async (request) => {
        const text = await readBodyText(request, maxBodyBytes);
        try {
          return JSON.parse(text) as unknown;
        } catch {
          return text;
        }
      }),
    },

    /** Route options: no body; whatever is sent is not read. */
    noBody: { parse: "none" as const },
  };
}
