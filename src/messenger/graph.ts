/**
 * The Graph API client: one module for every call the product makes to Meta. Failures come in two
 * kinds, and retry decisions switch on the kind and `error.code`, never on message text:
 * - `GraphApiError`: Graph answered, with an error envelope (code, subcode, type, fbtrace_id).
 * - `GraphNetworkError`: Graph could not be reached or did not answer in time (the cause).
 *   `notSent` says the request certainly never reached Graph (refused, no such host, no route,
 *   TLS failed); otherwise (a timeout, a connection lost before the answer) it may have.
 * - `GraphUnreadableAnswer`: Graph answered 2xx, but the body was cut off or is not a JSON object.
 *   The call most likely succeeded; what it returned is unknown.
 */
import { createHmac } from "node:crypto";

export interface GraphOptions {
  /** https://graph.facebook.com, or a stand-in for tests and the simulator. */
  url: string;
  version: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** A Page as the client needs it: its token, and the App secret for `appsecret_proof`. */
export interface PageCredentials {
  pageId: string;
  accessToken: string;
  appSecret?: string | undefined;
}

export class GraphApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    readonly subcode: number | undefined,
    readonly type: string | undefined,
    readonly fbtraceId: string | undefined,
    message: string,
    readonly isTransient: boolean = false,
    /** False when the answer had no Graph error envelope (a proxy or load balancer answered). */
    readonly fromGraph: boolean = true,
  ) {
    super(message);
    this.name = "GraphApiError";
  }

  /** For logs and stored records: everything but the message text's secrets (it has none). */
  toJSON() {
    return { kind: "graph", status: this.status, code: this.code, subcode: this.subcode, type: this.type, fbtrace_id: this.fbtraceId, message: this.message };
  }
}

export class GraphNetworkError extends Error {
  constructor(
    message: string,
    readonly timedOut: boolean,
    options?: { cause?: unknown },
    /** The request certainly never reached Graph (no connection was made). */
    readonly notSent: boolean = false,
  ) {
    super(message, options);
    this.name = "GraphNetworkError";
  }

  toJSON() {
    return { kind: "network", timed_out: this.timedOut, not_sent: this.notSent, message: this.message };
  }
}

export class GraphUnreadableAnswer extends Error {
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "GraphUnreadableAnswer";
  }

  toJSON() {
    return { kind: "unreadable_answer", status: this.status, message: this.message };
  }
}

/** An error answer without Graph's error envelope (a proxy or load balancer answered): 5xx counts as Meta's transient code 2. */
function withoutEnvelope(status: number, message: string): GraphApiError {
  return new GraphApiError(status, status >= 500 ? 2 : 1, undefined, undefined, undefined, message, false, false);
}

export type GraphError = GraphApiError | GraphNetworkError | GraphUnreadableAnswer;

export function isGraphError(error: unknown): error is GraphError {
  return error instanceof GraphApiError || error instanceof GraphNetworkError || error instanceof GraphUnreadableAnswer;
}

/**
 * Connection failures that happen before any byte of the request leaves: the request cannot have
 * reached Graph. Everything else (a reset, a timeout) may have come after Graph took it.
 */
const NOT_SENT_CODES =
  /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EAI_NONAME|ENETUNREACH|EHOSTUNREACH|ConnectionRefused|FailedToOpenSocket|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT|ERR_TLS_CERT|ERR_SSL)/;

function notSent(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && NOT_SENT_CODES.test(code);
}

/** `appsecret_proof` = hex HMAC-SHA256 of the access token, keyed with the App secret. */
export function appSecretProof(appSecret: string, accessToken: string): string {
  return createHmac("sha256", appSecret).update(accessToken).digest("hex");
}

export interface GraphCall {
  /** send | profile | ids_for_pages | other */
  operation: string;
  seconds: number;
  result: "ok" | "graph_error" | "network_error" | "unreadable_answer";
}

function operationOf(method: string, path: string): string {
  if (path.endsWith("/messages")) return "send";
  if (path.endsWith("/ids_for_pages")) return "ids_for_pages";
  if (method === "GET" && /^\/[^/]+$/.test(path)) return "profile";
  return "other";
}

export interface SendResult {
  recipient_id?: string;
  message_id?: string;
}

export class GraphClient {
  readonly #base: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  /** `access_token` (and `appsecret_proof`) per token and secret: an HMAC per call adds up. */
  readonly #authQueries = new Map<string, string>();
  readonly #listeners: ((call: GraphCall) => void)[] = [];

  constructor(options: GraphOptions) {
    this.#base = `${options.url.replace(/\/+$/, "")}/${options.version}`;
    this.#timeoutMs = options.timeoutMs;
    this.#fetch = options.fetch ?? fetch;
  }

  /** POST /{page}/messages: a message or a sender action. The body carries `recipient`. */
  send(page: PageCredentials, body: Record<string, unknown>): Promise<SendResult> {
    return this.request<SendResult>(page, "POST", `/${page.pageId}/messages`, body);
  }

  /** GET /{psid}?fields=... (User Profile API). */
  profile(page: PageCredentials, psid: string, fields: readonly string[]): Promise<Record<string, unknown>> {
    return this.request(page, "GET", `/${encodeURIComponent(psid)}`, undefined, { fields: fields.join(",") });
  }

  /** One page of GET /{psid}/ids_for_pages; `appsecret_proof` is mandatory here. */
  idsForPages(
    page: PageCredentials,
    psid: string,
    after?: string,
  ): Promise<{ data?: { id: string; page?: { id: string; name?: string } }[]; paging?: { cursors?: { after?: string }; next?: string } }> {
    return this.request(page, "GET", `/${encodeURIComponent(psid)}/ids_for_pages`, undefined, after ? { after } : {});
  }

  #auth(page: PageCredentials): string {
    const key = `${page.accessToken}\u0000${page.appSecret ?? ""}`;
    let query = this.#authQueries.get(key);
    if (query === undefined) {
      const params = new URLSearchParams({ access_token: page.accessToken });
      if (page.appSecret) params.set("appsecret_proof", appSecretProof(page.appSecret, page.accessToken));
      query = params.toString();
      if (this.#authQueries.size >= 1000) this.#authQueries.clear();
      this.#authQueries.set(key, query);
    }
    return query;
  }

  /** Called after every Graph call (for the metrics). */
  onCall(listener: (call: GraphCall) => void): void {
    this.#listeners.push(listener);
  }

  /** Any Graph call on behalf of a Page. */
  async request<T>(page: PageCredentials, method: "GET" | "POST" | "DELETE", path: string, body?: unknown, query: Record<string, string> = {}): Promise<T> {
    if (this.#listeners.length === 0) return this.#request(page, method, path, body, query);
    const started = performance.now();
    let result: GraphCall["result"] = "ok";
    try {
      return await this.#request<T>(page, method, path, body, query);
    } catch (error) {
      result = error instanceof GraphApiError ? "graph_error" : error instanceof GraphUnreadableAnswer ? "unreadable_answer" : "network_error";
      throw error;
    } finally {
      const call: GraphCall = { operation: operationOf(method, path), seconds: (performance.now() - started) / 1000, result };
      for (const listener of this.#listeners) listener(call);
    }
  }

  async #request<T>(page: PageCredentials, method: "GET" | "POST" | "DELETE", path: string, body?: unknown, query: Record<string, string> = {}): Promise<T> {
    const extra = new URLSearchParams(query).toString();
    const url = `${this.#base}${path}?${extra ? `${extra}&` : ""}${this.#auth(page)}`;
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      const timedOut = (error as Error)?.name === "TimeoutError";
      throw new GraphNetworkError(
        timedOut
          ? `Graph API did not answer within ${this.#timeoutMs} ms (${method} ${path})`
          : `could not reach the Graph API (${method} ${path}): ${(error as Error)?.message}`,
        timedOut,
        { cause: error },
        !timedOut && notSent(error),
      );
    }
    // From here on Graph has answered with a status: on 2xx it took the call, whatever the body.
    const unreadable = (why: string, cause?: unknown) =>
      new GraphUnreadableAnswer(response.status, `Graph answered HTTP ${response.status} to ${method} ${path}, but ${why}: the call most likely succeeded`, {
        cause,
      });
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (response.ok) throw unreadable("the answer was cut off", error);
      throw withoutEnvelope(response.status, `HTTP ${response.status}, its body cut off`);
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      if (response.ok) throw unreadable("its body is not JSON");
      throw withoutEnvelope(response.status, `HTTP ${response.status} without a Graph error body`);
    }
    const isObject = typeof json === "object" && json !== null;
    const error = isObject ? (json as { error?: Record<string, unknown> }).error : undefined;
    if (!response.ok || error) {
      if (error && typeof error.code === "number") {
        throw new GraphApiError(
          response.status,
          error.code,
          typeof error.error_subcode === "number" ? error.error_subcode : undefined,
          typeof error.type === "string" ? error.type : undefined,
          typeof error.fbtrace_id === "string" ? error.fbtrace_id : undefined,
          typeof error.message === "string" ? error.message : `Graph error ${error.code}`,
          error.is_transient === true,
        );
      }
      // No Graph envelope: a proxy or load balancer answered. 5xx counts as Meta's transient code 2.
      throw withoutEnvelope(response.status, `HTTP ${response.status} without a Graph error body`);
    }
    // `null`, a number or a string: not an answer Graph gives.
    if (!isObject) throw unreadable("its body is not a JSON object");
    return json as T;
  }
}
