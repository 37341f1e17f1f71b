/**
 * Our own pass and take (the Graph calls are in messenger/thread-control.ts), and what their
 * failures do to the thread. A call fails in two ways that matter here: passing (network, 5xx,
 * rate limits, a paused Page) — a timeout's take is tried again a minute later — and refused
 * (Conversation Routing's "Handover Protocol APIs disabled for this page.", a person who is gone):
 * reported on the row (`last_error`), in the log and the metrics, never retried in a loop, and the
 * state is left as it was, which is what Meta has too.
 */
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { Logger } from "../log/logger.ts";
import { GraphApiError, type GraphClient } from "../messenger/graph.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import { classifySendError } from "../messenger/retry.ts";
import { describeCallError as describe, refusalHint as hint, passThreadControl, takeThreadControl } from "../messenger/thread-control.ts";
import type { ThreadState } from "./store.ts";
import type { Threads } from "./threads.ts";
import { iso } from "./view.ts";

/** A take that failed for a passing reason (network, rate limit) is tried again after this. */
export const TAKE_RETRY_MS = 60_000;

/** What a take or pass the operator asked for came to: null when done. */
export interface CallFailure {
  /** 503: we could not even ask (the Page is paused); 502: Meta refused. */
  status: 502 | 503;
  message: string;
}

export interface ThreadCallsDeps {
  graph: GraphClient;
  pages: PageDirectory;
  clock: Clock;
  /** The state machine whose transitions the calls' outcomes are. */
  threads: Pick<Threads, "current" | "floor" | "failed" | "handedOver" | "returned" | "storeOutcome">;
  /** When the thread is taken back by itself (handover/deadlines.ts). */
  takeAt(key: UserKey, state: ThreadState): number | null;
  log(key: UserKey): Logger;
}

export class ThreadCalls {
  constructor(private readonly deps: ThreadCallsDeps) {}

  /**
   * Our `pass_thread_control` (the operator's, or a request honoured). Resolves with null, or what
   * went wrong (then nothing changed but `last_error`).
   */
  async pass(key: UserKey, targetApp: string, metadata: string | null): Promise<CallFailure | null> {
    const { threads } = this.deps;
    const page = this.deps.pages.activeCredentials(key.endpointId, key.pageId);
    if (!page) return pausedPage(key);
    const startedAt = this.deps.clock.now();
    try {
      await passThreadControl(this.deps.graph, page, key.userId, targetApp, metadata);
    } catch (error) {
      const message = describe(error);
      await threads.failed(key, `pass_thread_control: ${message}`, null, startedAt);
      this.deps.log(key).error(`could not pass the thread to app ${targetApp}: ${message}${hint(error)}`);
      return { status: 502, message: `${message}${hint(error)}` };
    }
    await threads.handedOver(key, targetApp, metadata, "passed", { startedAt });
    return null;
  }

  /**
   * Our `take_thread_control`: on the timeout (then the flow runs once with status "timeout") or
   * for the operator (who may take a thread we did not know was elsewhere: the call is made unless
   * the bot is only paused). Resolves with null, or what went wrong (then the thread stays where
   * it is, with `last_error`; a passing failure of a timeout take is tried again a minute later).
   */
  async take(key: UserKey, reason: "timeout" | "operator"): Promise<CallFailure | null> {
    const { threads } = this.deps;
    const open = threads.current(key);
    const log = this.deps.log(key);
    const startedAt = this.deps.clock.now();
    if (open?.state !== "paused") {
      const page = this.deps.pages.activeCredentials(key.endpointId, key.pageId);
      if (!page) {
        const failure = pausedPage(key);
        if (reason === "timeout") {
          log.warn(`could not take the thread back after the handover timeout: ${failure.message}; trying again in ${TAKE_RETRY_MS / 1000} s`);
          await threads.failed(key, `take_thread_control: ${failure.message}`, startedAt + TAKE_RETRY_MS, startedAt);
        }
        return failure;
      }
      try {
        await takeThreadControl(this.deps.graph, page, key.userId, reason === "timeout" ? "timeout: no reply from a person" : "taken back by the operator");
      } catch (error) {
        const message = describe(error);
        const verdict = classifySendError(error);
        // A refused token pauses the Page (as for sends); the take is tried again once it is replaced.
        if (verdict.action === "pause_page") await this.deps.pages.pause(key.endpointId, key.pageId, verdict.reason);
        const passing = verdict.action === "retry" || verdict.action === "pause_page" || verdict.action === "unclear";
        // A passing failure keeps a timer: the timeout's take is tried again a minute later, and an
        // operator's failed take leaves the timeout where it was.
        const retryAt = !passing ? null : reason === "timeout" ? startedAt + TAKE_RETRY_MS : open ? this.deps.takeAt(key, open) : null;
        await threads.failed(key, `take_thread_control: ${message}`, retryAt, startedAt);
        if (passing) log.warn(`could not take the thread back (${message})${reason === "timeout" ? `; trying again in ${TAKE_RETRY_MS / 1000} s` : ""}`);
        else log.error(`could not take the thread back${reason === "timeout" ? " after the handover timeout" : ""}: ${message}${hint(error)}`);
        return { status: 502, message: passing ? `${message}: a passing failure, try again` : `${message}${hint(error)}` };
      }
    }
    await threads.returned(
      key,
      reason === "timeout" ? "timeout" : "resumed",
      undefined,
      // The flow's "timeout" turn is stored before the state changes, under a key made from the
      // handover it ends: a crash in between and the take made again store it once.
      reason === "timeout"
        ? (previous) =>
            threads.storeOutcome(
              key,
              { status: "timeout", metadata: previous.metadata, owner_app_id: previous.ownerAppId, since: iso(previous.since) },
              `since:${previous.since}`,
            )
        : undefined,
    );
    return null;
  }

  /** A flow's pass (a reply lane's handover item) failed for good: the flow is told once (`source: "handover"`, status "error"). */
  async passFailed(key: UserKey, targetApp: string, metadata: string | null, error: unknown): Promise<void> {
    const { threads } = this.deps;
    const message = describe(error);
    const log = this.deps.log(key);
    if (threads.floor(key) === "handover") {
      // Refused because another app took the thread meanwhile: nothing for the flow to hear now.
      log.warn(`a queued handover to app ${targetApp} was refused while another app has the thread; dropped: ${message}`);
      return;
    }
    await threads.failed(key, `pass_thread_control: ${message}`);
    log.error(
      `could not pass the thread to app ${targetApp}; the bot keeps the conversation and the flow is told (handover.status "error"): ${message}${hint(error)}`,
    );
    await threads.storeOutcome(
      key,
      { status: "error", metadata, owner_app_id: targetApp, since: null, error: { message, ...(error instanceof GraphApiError ? { code: error.code } : {}) } },
      `at:${this.deps.clock.now()}`,
    );
  }
}

function pausedPage(key: UserKey): CallFailure {
  return {
    status: 503,
    message: `Page ${key.pageId} is paused (Meta refused its access token) or not in the settings: replace its access_token and reload the settings (SIGHUP or POST /api/reload)`,
  };
}
