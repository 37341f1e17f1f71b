/**
 * The client for a libSQL server (`storage.url` = `libsql://…`, `https://…`, `http://…`):
 * @libsql/client's HTTP client, whose requests get a time limit and whose transport failures get a
 * code that db/health.ts knows, so that a server that is down, stalls or answers nonsense pauses
 * processing (and webhooks are answered 503) instead of hanging every write behind one request.
 *
 * A request that runs out of time may still commit on the server: the caller sees a failure and
 * does the work again later, as after any answer lost on the way back.
 */
import { createClient, type Client } from "@libsql/client";

/** A request to the libSQL server failed on the way (the statement itself may or may not have run). */
export class RemoteError extends Error {
  constructor(
    message: string,
    /** `ETIMEDOUT` for a server that did not answer in time, `HRANA_PROTO_ERROR` for an answer that is not JSON. */
    readonly code: string,
  ) {
    super(message);
    this.name = "RemoteError";
  }
}

export function remoteClient(url: string, options: { authToken?: string; timeoutMs: number }): Client {
  return createClient({ url, authToken: options.authToken, concurrency: 1, fetch: timedFetch(options.timeoutMs) });
}

/**
 * fetch with a time limit on the whole answer (a server may stall after its headers). The body is
 * read here; a successful pipeline answer must be JSON (a proxy's page is not).
 */
function timedFetch(timeoutMs: number): (request: Request) => Promise<Response> {
  return async (request) => {
    const signal = AbortSignal.timeout(timeoutMs);
    let response: Response;
    let body: string;
    try {
      response = await fetch(request, { signal });
      body = await response.text();
    } catch (error) {
      if (signal.aborted) throw new RemoteError(`the libSQL server did not answer within ${timeoutMs} ms`, "ETIMEDOUT");
      throw error;
    }
    if (response.ok && request.url.endsWith("/pipeline")) {
      try {
        JSON.parse(body);
      } catch {
        throw new RemoteError(`the libSQL server's answer is not JSON (HTTP ${response.status}: ${JSON.stringify(body.slice(0, 80))})`, "HRANA_PROTO_ERROR");
      }
    }
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

/** What to do about a libSQL server that could not be used at open, or null when it is not about the server. */
export function remoteAdvice(error: unknown): string | null {
  const e = error as { code?: unknown; cause?: { status?: unknown } } | null;
  const status = e?.cause?.status;
  if (status === 401 || status === 403) {
    return `the libSQL server refused the credentials (HTTP ${status}): set storage.auth_token to a valid token for this database`;
  }
  if (typeof e?.code !== "string") return null;
  if (/^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH|ETIMEDOUT)$/.test(e.code)) {
    return "the libSQL server cannot be reached: check storage.url and that the server is running";
  }
  if (e.code === "SERVER_ERROR" || e.code === "HRANA_PROTO_ERROR")
    return "the libSQL server failed: check its logs, and that storage.url names a libSQL server";
  return null;
}
