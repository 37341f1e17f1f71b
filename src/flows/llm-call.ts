/**
 * One chat completions request of an `llm` flow (llm.ts), tried again on 429, 5xx and network
 * errors up to `retries` times: after the answer's `Retry-After` (seconds or an HTTP date), else
 * after 500 ms, 1 s, 2 s … at most 8 s. A wait that would end after the turn's deadline is not
 * made: the error is thrown at once. A 4xx other than 429 is not tried again. The waits run on the
 * passed-in timers, so tests move time with the manual clock (test/helpers/manual-clock.ts).
 */
import { type Clock, sleep, type Timers } from "../core/clock.ts";
import { scrub } from "../log/scrub.ts";
import { FlowError } from "./flow.ts";

export const DEFAULT_LLM_RETRIES = 2;
const MAX_BACKOFF_MS = 8_000;

/** The wait before try `attempt + 1` when the answer gave no Retry-After. */
export const llmBackoff = (attempt: number) => Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt);

export interface ChatCall {
  /** The full request URL (with `?api-version=` for Azure). */
  url: string;
  /** The URL as error messages show it (log/scrub.ts displayUrl). */
  shown: string;
  headers: Record<string, string>;
  retries: number;
  timeoutMs: number;
  secrets: readonly string[];
  fetch: typeof fetch;
  timers: Timers;
  clock: Clock;
}

/** POSTs `body` and resolves with the answer's text (a 2xx), or throws a FlowError saying why not. */
export async function postChat(call: ChatCall, body: string, signal: AbortSignal, deadline: number): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    let failure: FlowError;
    let retryAfterMs: number | null = null;
    try {
      const response = await call.fetch(call.url, { method: "POST", headers: call.headers, body, signal });
      const text = await response.text().catch(() => "");
      if (response.ok) return text;
      failure = new FlowError(`the LLM at ${call.shown} answered HTTP ${response.status}: ${scrub(text, call.secrets).slice(0, 200)}`);
      if (response.status !== 429 && response.status < 500) throw failure;
      if (response.status === 429) retryAfterMs = retryAfter(response.headers.get("retry-after"), call.clock.now());
    } catch (error) {
      if (signal.aborted) throw new FlowError(`the LLM at ${call.shown} did not answer within ${call.timeoutMs} ms`, { cause: error });
      if (error instanceof FlowError) throw error;
      failure = new FlowError(`cannot reach the LLM at ${call.shown}: ${scrub(String((error as Error)?.message), call.secrets)}`, { cause: error });
    }
    if (attempt >= call.retries) throw new FlowError(`${failure.message} (after ${attempt + 1} tries)`);
    const wait = retryAfterMs ?? llmBackoff(attempt);
    if (call.clock.now() + wait >= deadline) {
      throw new FlowError(`${failure.message} (not tried again: the wait of ${wait} ms would pass the flow's timeout_ms of ${call.timeoutMs} ms)`);
    }
    if (!(await sleep(call.timers, wait, signal))) throw new FlowError(`the LLM at ${call.shown} did not answer within ${call.timeoutMs} ms`);
  }
}

/** Retry-After in seconds or as an HTTP date → ms from `now`, or null. */
export function retryAfter(value: string | null, now: number): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (value.trim() !== "" && Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : null;
}
