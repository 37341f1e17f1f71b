/** JSON and text answers, with the request id when there is one. Error answers: errors.ts. */

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
