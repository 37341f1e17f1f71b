/**
 * One call to a translation provider, as every provider makes it: a time limit per try
 * (`timeout_ms`), more tries (`retries`) for what may pass — a timeout, a network error, a 5xx,
 * a 429 (after its Retry-After, at most the time limit) — and none for what will not (a 4xx:
 * a refused key, an unknown language, DeepL's 456 when the quota is used up). What failed is a
 * `ProviderError` with a message for the log that says what to do; it never holds the key.
 */
import { sleep, type Timers } from "../../core/clock.ts";
import { scrub } from "../../log/scrub.ts";

/** How a call ended, for the metrics (`result`) and the log. */
export type CallResult = "ok" | "timeout" | "network_error" | "rate_limited" | "quota_exceeded" | "refused" | "server_error" | "unreadable_answer";

export class ProviderError extends Error {
  constructor(
    readonly result: Exclude<CallResult, "ok">,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface CallOptions {
  /** The provider's name in messages: `deepl`, `google` … */
  provider: string;
  timeoutMs: number;
  retries: number;
  timers: Timers;
  fetch: typeof fetch;
  /** Secrets to keep out of messages (the key, a URL's credentials). */
  secrets: readonly string[];
  /** No more tries once this is aborted (the server stops); the try in progress ends by its time limit. */
  stopping?: AbortSignal;
  /** What the provider's error answer says (its `message`), for the log. */
  errorText(status: number, body: string): string;
  /** Advice for a status that will not pass by itself (a refused key, a used-up quota). */
  advice?(status: number, body: string): string | undefined;
  /** Whether a 4xx says the quota is used up (DeepL's 456 always does). */
  quota?(status: number, body: string): boolean;
  /** Whether a 4xx other than 429 says "too many requests" (Google's 403 rateLimitExceeded): tried again. */
  rateLimited?(status: number, body: string): boolean;
}

/** Waits before another try: 250 ms, 500 ms, 1 s … at most 2 s. */
const backoff = (attempt: number) => Math.min(2_000, 250 * 2 ** attempt);

/** POSTs `request` (a fresh one per try) and resolves with the answer's JSON, or throws a ProviderError. */
export async function callProvider(options: CallOptions, request: () => { url: string; init: RequestInit }): Promise<unknown> {
  for (let attempt = 0; ; attempt++) {
    const last = attempt >= options.retries || options.stopping?.aborted === true;
    let wait = backoff(attempt);
    try {
      return await once(options, request());
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error;
      const passing = error.result === "timeout" || error.result === "network_error" || error.result === "server_error" || error.result === "rate_limited";
      if (!passing || last) throw error;
      if (error instanceof RateLimited && error.retryAfterMs !== null) wait = Math.min(error.retryAfterMs, options.timeoutMs);
    }
    if (!(await sleep(options.timers, wait, options.stopping))) throw new ProviderError("timeout", `${options.provider}: the server is stopping`);
  }
}

class RateLimited extends ProviderError {
  constructor(
    message: string,
    readonly retryAfterMs: number | null,
  ) {
    super("rate_limited", message, 429);
  }
}

async function once(options: CallOptions, { url, init }: { url: string; init: RequestInit }): Promise<unknown> {
  const { provider } = options;
  const controller = new AbortController();
  let timedOut = false;
  const cancel = options.timers.after(options.timeoutMs, () => {
    timedOut = true;
    controller.abort();
  });
  // The time limit also covers reading the body: a server that sends its headers and then stalls is not waited for.
  const timeout = new Promise<never>((_, reject) =>
    controller.signal.addEventListener("abort", () => reject(new ProviderError("timeout", `${provider} did not answer within ${options.timeoutMs} ms`)), {
      once: true,
    }),
  );
  timeout.catch(() => {}); // raced below; a rejection nobody awaits any more is not an error
  try {
    let response: Response;
    try {
      response = await Promise.race([options.fetch(url, { ...init, method: "POST", signal: controller.signal }), timeout]);
    } catch (error) {
      if (timedOut || error instanceof ProviderError) throw new ProviderError("timeout", `${provider} did not answer within ${options.timeoutMs} ms`);
      throw new ProviderError("network_error", `cannot reach ${provider}: ${scrub(String((error as Error)?.message ?? error), options.secrets)}`);
    }
    const body = await Promise.race([response.text(), timeout]).catch((error) => {
      if (error instanceof ProviderError) throw error;
      return "";
    });
    if (response.ok) {
      try {
        return JSON.parse(body);
      } catch {
        throw new ProviderError("unreadable_answer", `${provider} answered with a body that is not JSON: ${quote(body, options.secrets)}`);
      }
    }
    const status = response.status;
    const said = scrub(options.errorText(status, body), options.secrets).slice(0, 300);
    const advice = options.advice?.(status, body);
    const message = `${provider} answered HTTP ${status}${said ? `: ${said}` : ""}${advice ? ` — ${advice}` : ""}`;
    if (status === 429 || options.rateLimited?.(status, body)) throw new RateLimited(message, retryAfter(response.headers.get("retry-after")));
    if (status >= 500) throw new ProviderError("server_error", message, status);
    throw new ProviderError(status === 456 || options.quota?.(status, body) ? "quota_exceeded" : "refused", message, status);
  } finally {
    cancel();
  }
}

/** Retry-After in seconds (or an HTTP date) → ms, or null. */
function retryAfter(value: string | null): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}

function quote(text: string, secrets: readonly string[]): string {
  return scrub(text, secrets).slice(0, 200);
}

/** The `message` of a JSON error answer (`{ message }`, `{ error: { message } }`, `{ error: "…" }`), or the body's start. */
export function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown; error?: unknown; detail?: unknown };
    const error = parsed.error as { message?: unknown } | string | undefined;
    const found = typeof error === "string" ? error : typeof error?.message === "string" ? error.message : parsed.message;
    if (typeof found === "string") return typeof parsed.detail === "string" ? `${found} (${parsed.detail})` : found;
  } catch {
    // not JSON: the text itself
  }
  return body.trim().slice(0, 200);
}
