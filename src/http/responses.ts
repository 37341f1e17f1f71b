/** The one place that shapes HTTP answers: errors are `{ error, message }` JSON with a request id. */

export function errorResponse(status: number, error: string, message: string, requestId?: string): Response {
  return jsonResponse(status, { error, message }, requestId);
}

export function jsonResponse(status: number, body: unknown, requestId?: string): Response {
  const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
  if (requestId) headers["x-request-id"] = requestId;
  return new Response(JSON.stringify(body), { status, headers });
}

export function textResponse(status: number, body: string, requestId?: string): Response {
  const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
  if (requestId) headers["x-request-id"] = requestId;
  return new Response(body, { status, headers });
}
