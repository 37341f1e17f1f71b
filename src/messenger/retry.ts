/**
 * What to do when a send fails, decided by the kind of failure and Graph's `error.code`, never by
 * message text. A send is repeated only when Graph certainly did not take it: it answered with an
 * error, or no connection was made. An answer that leaves it open (a timeout, a connection lost
 * before the answer) is "unclear", and a 2xx whose body cannot be read is "accepted": see
 * docs/reply-lanes.md for what the lane does with each.
 */
import { GraphApiError, GraphNetworkError, GraphUnreadableAnswer } from "./graph.ts";

export type SendFailure =
  /** Try the same message again later; the lane waits (head-of-line). */
  | { action: "retry"; throttled: boolean; reason: string }
  /** Give this message up and go on with the next one; recorded on the message. */
  | { action: "drop"; reason: "outside_window" | "user_unavailable" | "rejected" }
  /** The Page's token is unusable: stop all its lanes until the token is replaced. */
  | { action: "pause_page"; reason: string }
  /** Graph may or may not have taken it (no answer in time, the connection lost before the answer, a gateway's 5xx). */
  | { action: "unclear"; reason: string }
  /** Graph answered 2xx, but its answer could not be read: taken, without a message id. */
  | { action: "accepted"; reason: string };

const THROTTLING = new Set([4, 17, 32, 613]);
const TRANSIENT = new Set([1, 2]);
const WINDOW_SUBCODES = new Set([2018278, 2534022, 2018065, 2018108]);

export function classifySendError(error: unknown): SendFailure {
  if (error instanceof GraphUnreadableAnswer) return { action: "accepted", reason: `HTTP ${error.status} with an unreadable answer` };
  if (error instanceof GraphNetworkError) {
    if (error.notSent) return { action: "retry", throttled: false, reason: "network" };
    return { action: "unclear", reason: error.timedOut ? "timeout" : "network" };
  }
  if (!(error instanceof GraphApiError)) return { action: "drop", reason: "rejected" };
  const { code, subcode, status } = error;
  // A 5xx from a proxy or gateway in front of Graph, with no Graph answer behind it: 500, 502 and
  // 504 may come after Graph took the call (its answer was lost on the way back). A 503 says the
  // service did not take it.
  if (!error.fromGraph && (status === 500 || status === 502 || status === 504)) return { action: "unclear", reason: `HTTP ${status} without a Graph answer` };
  // Marketing-message frequency limits (4/2018354, 9/2018352): retrying within the window cannot help.
  if ((code === 4 && subcode === 2018354) || (code === 9 && subcode === 2018352)) return { action: "drop", reason: "rejected" };
  if (code === 190) return { action: "pause_page", reason: `access token rejected (190${subcode ? `/${subcode}` : ""})` };
  if (THROTTLING.has(code) || (code >= 80000 && code <= 80014)) return { action: "retry", throttled: true, reason: `rate limited (${code})` };
  if (TRANSIENT.has(code) || status >= 500) return { action: "retry", throttled: false, reason: `transient (${code})` };
  if (code === 551 || subcode === 1545041) return { action: "drop", reason: "user_unavailable" };
  if (code === 10 && (subcode === undefined || WINDOW_SUBCODES.has(subcode))) return { action: "drop", reason: "outside_window" };
  return { action: "drop", reason: "rejected" };
}

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
}

/**
 * Capped exponential backoff with jitter: min, 2·min, 4·min …, each ±20 %, never above max.
 * Rate limits start four times higher: Meta's limits recover in seconds to minutes.
 */
export function backoffDelay(attempt: number, throttled: boolean, options: BackoffOptions, random: () => number = Math.random): number {
  const base = options.minMs * (throttled ? 4 : 1) * 2 ** Math.max(0, attempt - 1);
  return Math.round(Math.min(options.maxMs, base * (0.8 + 0.4 * random())));
}
