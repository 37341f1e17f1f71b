/**
 * Reading a JSON body under the size limit, for an Elysia parser hook (`onParse`): what it returns
 * becomes the route's `body`, which Elysia then checks against the route's schema; what it throws
 * is answered by the error plugin (http/error-plugin.ts).
 */
import { HttpError } from "./errors.ts";

/** Refuses a body not declared as JSON (415): a browser cannot send one cross-origin without asking first (CORS preflight). */
export function requireJsonContentType(request: Request): void {
  if (!(request.headers.get("content-type") ?? "").toLowerCase().startsWith("application/json")) {
    throw new HttpError("json_only", "send the body as JSON with content-type: application/json");
  }
}

/**
 * The body as text; `too_large` (413) over `maxBytes`, checked on the declared length before
 * reading, and on what was read.
 */
export async function readBodyText(request: Request, maxBytes: number): Promise<string> {
  const tooLarge = () => new HttpError("too_large", `the body is over ${maxBytes} bytes ([server] max_body_bytes)`);
  if (Number(request.headers.get("content-length") ?? 0) > maxBytes) throw tooLarge();
  const text = await request.text();
  if (Buffer.byteLength(text) > maxBytes) throw tooLarge();
  return text;
}

/**
 * The body parsed as JSON; `too_large` (413) over `maxBytes` (see `readBodyText`), `invalid_body`
 * (400) when it is not JSON. `what` names the body in the message ("invalid simulator request: the
 * body is not JSON").
 */
export async function readJsonBody(request: Request, maxBytes: number, what = "body"): Promise<unknown> {
  const text = await readBodyText(request, maxBytes);
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError("invalid_body", `invalid ${what}: the body is not JSON`);
  }
}
