/**
 * One NLU call: tries of a connector, each with the time limit `timeout_ms` armed on the passed-in
 * timers, and more tries (`retries`) after a 5xx, a network error or a time limit — never after a
 * 4xx or an answer that is not valid: asking again would get the same. A stop of the server does
 * not cut a call short: like the input transformer's run, it ends by its own time limit, and the
 * turn it belongs to finishes within the stop's grace. Failures are NluFailures,
 * whose messages show URLs in their display form and quote answers without secrets (log/scrub.ts):
 * they become `input.nlu_error` and log lines.
 */
import { sleep, type Timers } from "../core/clock.ts";
import { scrub } from "../log/scrub.ts";

/** How a call ended, the `result` label of `messenger_nlu_requests_total`. */
export type NluOutcome = "ok" | "http_error" | "network_error" | "timeout" | "invalid_answer" | "script_error";

export class NluFailure extends Error {
  constructor(
    message: string,
    readonly outcome: Exclude<NluOutcome, "ok">,
    /** A try that failed this way may work the next time (a 5xx, a lost connection, a time limit). */
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** The pause before the next try: this many ms times the tries so far. */
export const RETRY_PAUSE_MS = 100;

export interface TryOptions {
  /** What is called, for messages: "the Rasa server at http://rasa:5005/model/parse". */
  what: string;
  timeoutMs: number;
  retries: number;
  timers: Timers;
  /** The connector keeps its own time limit (a script's worker): none is armed here. */
  ownTimeLimit?: boolean;
  /** Told before each further try. */
  onRetry?: (failure: NluFailure) => void;
}

/** Runs `attempt` until it succeeds, fails for good, or the tries are used up; rejects with the last NluFailure. */
export async function withRetries<T>(attempt: (signal: AbortSignal) => Promise<T>, options: TryOptions): Promise<T> {
  const { what, timeoutMs, retries, timers } = options;
  for (let tried = 1; ; tried++) {
    const controller = new AbortController();
    const cancel = options.ownTimeLimit
      ? () => {}
      : timers.after(timeoutMs, () => controller.abort(new NluFailure(`${what} did not answer within ${timeoutMs} ms`, "timeout", true)));
    // Whatever the attempt does with its signal, the time limit ends the wait.
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
    });
    aborted.catch(() => {});
    let failure: NluFailure;
    try {
      return await Promise.race([attempt(controller.signal), aborted]);
    } catch (error) {
      failure =
        controller.signal.aborted && controller.signal.reason instanceof NluFailure
          ? controller.signal.reason
          : error instanceof NluFailure
            ? error
            : new NluFailure(`${what} failed: ${(error as Error)?.message ?? String(error)}`, "network_error", false);
    } finally {
      cancel();
    }
    if (!failure.retryable || tried > retries) {
      if (tried > 1) failure.message += ` (${tried} tries)`;
      throw failure;
    }
    options.onRetry?.(failure);
    await sleep(timers, RETRY_PAUSE_MS * tried);
  }
}

export interface JsonPost {
  fetch: typeof fetch;
  url: string;
  /** What is called, for messages (its URL in the display form). */
  what: string;
  headers: Headers;
  body: unknown;
  signal: AbortSignal;
  /** Values that must not appear in a message (the connector's key, credential headers). */
  secrets: readonly string[];
}

/** A failed answer: the status and the body, quoted for a message. */
export class HttpAnswerError extends NluFailure {
  constructor(
    message: string,
    readonly status: number,
    readonly body: string,
  ) {
    // 5xx: the server's trouble, maybe passing; 4xx: ours, asking again gets the same.
    super(message, "http_error", status >= 500);
  }
}

/** POSTs JSON and reads a JSON answer. Rejects with an NluFailure (an HttpAnswerError for a non-2xx answer). */
export async function postJson(post: JsonPost): Promise<unknown> {
  const quote = (text: string) => scrub(text, post.secrets).slice(0, 200);
  let response: Response;
  try {
    response = await post.fetch(post.url, { method: "POST", headers: post.headers, body: JSON.stringify(post.body), signal: post.signal });
  } catch (error) {
    if (post.signal.aborted) throw post.signal.reason;
    throw new NluFailure(`cannot reach ${post.what}: ${quote(String((error as Error)?.message ?? error))}`, "network_error", true);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    if (post.signal.aborted) throw post.signal.reason;
    throw new NluFailure(`${post.what} broke off its answer: ${quote(String((error as Error)?.message ?? error))}`, "network_error", true);
  }
  if (!response.ok) throw new HttpAnswerError(`${post.what} answered HTTP ${response.status}: ${quote(text)}`, response.status, text);
  try {
    return JSON.parse(text);
  } catch {
    throw new NluFailure(`${post.what} answered with a body that is not JSON: ${quote(text)}`, "invalid_answer", false);
  }
}
