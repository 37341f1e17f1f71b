/**
 * What the fake answers on the wire: Graph's success and error envelopes (with its `x-fb-trace-id`
 * and `x-fb-rev` headers), and the broken answers a test can script — no answer at all, a 200 that
 * is not JSON, a JSON body cut off by a closed connection.
 */
import { randomBytes } from "node:crypto";
import type { ErrorSpec } from "./graph-errors.ts";

/** The connection is closed without an answer (a scripted network error, or a caller that gave up). */
export const NETWORK_ERROR = Symbol("network error");
export type Outcome = Response | typeof NETWORK_ERROR;

const TRANSIENT_CODES = new Set([2, 4, 17, 32, 613]);
/** Graph messages that carry no "(#code)" prefix. */
const UNPREFIXED_CODES = new Set([1, 2, 104, 190, 2500]);

function traceId(): string {
  return `A${randomBytes(16).toString("base64url").slice(0, 22)}`;
}

/** Graph's envelopes, all with the same revision header (one per fake, like one Graph deployment). */
export class Answers {
  readonly #rev = String(1_000_000_000 + Math.floor(Math.random() * 8_999_999_999));

  ok(body: unknown, headers: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(body), {
      status: 200,
      headers: { "content-type": "application/json; charset=UTF-8", "x-fb-trace-id": traceId(), "x-fb-rev": this.#rev, ...headers },
    });
  }

  /** `{error: {message, type, code, error_subcode?, is_transient?, fbtrace_id}}`, 403 for permission codes (200–299), else 400. */
  error(spec: ErrorSpec): Response {
    const fbtrace = traceId();
    let message = spec.message;
    if (!message.startsWith("(#") && !UNPREFIXED_CODES.has(spec.code) && spec.type !== "GraphMethodException") message = `(#${spec.code}) ${message}`;
    const error: Record<string, unknown> = { message, type: spec.type ?? "OAuthException", code: spec.code };
    if (spec.subcode !== undefined) error.error_subcode = spec.subcode;
    const transient = spec.isTransient ?? (TRANSIENT_CODES.has(spec.code) ? true : undefined);
    if (transient !== undefined) error.is_transient = transient;
    error.fbtrace_id = fbtrace;
    const status = spec.status ?? (spec.code >= 200 && spec.code <= 299 ? 403 : 400);
    return new Response(JSON.stringify({ error }), {
      status,
      headers: { "content-type": "application/json; charset=UTF-8", "x-fb-trace-id": fbtrace, "x-fb-rev": this.#rev, ...spec.headers },
    });
  }
}

const GARBLED = new WeakSet<Response>();

/** A 200 that a client cannot read: HTML from a proxy, or a JSON body cut off by a closed connection. */
export function garbledResponse(how: "not_json" | "cut_off"): Response {
  const response =
    how === "not_json" ? new Response("<html><body>Bad gateway, sort of</body></html>", { status: 200, headers: { "content-type": "text/html" } }) : cutOff();
  GARBLED.add(response);
  return response;
}

/** Whether an answer is garbled: its body must reach the client as it is (reading a clone would consume it first). */
export function isGarbled(response: Response): boolean {
  return GARBLED.has(response);
}

function cutOff(): Response {
  return new Response(
    new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"recipient_id":"'));
        setTimeout(() => controller.error(), 5);
      },
    }),
    { status: 200, headers: { "content-type": "application/json; charset=UTF-8" } },
  );
}

/** A Response whose body fails before anything is written: Bun closes the socket without an answer. */
export function brokenResponse(): Response {
  return new Response(
    new ReadableStream({
      start(controller) {
        controller.error();
      },
    }),
  );
}
