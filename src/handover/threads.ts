/**
 * Handover (SPEC §11): who has the floor in each user's thread.
 *
 *   bot       our app owns the thread: the flow runs, the reply lane sends
 *   handover  another app owns it (the Page Inbox, where people answer): the flow is not run,
 *             the reply lane holds its messages, and after `timeout_minutes` without a person's
 *             reply we take the thread back (`take_thread_control`) and the flow runs once with
 *             `handover.status = "timeout"`
 *   paused    we own it, but a person answered from another app (an echo not ours): as in
 *             handover, until `pause_minutes` after the person's last message
 *
 * The state is a row in `threads` (no row: bot). Rows not in state bot are kept in memory too, so
 * the per-turn and per-send checks cost a map lookup; they are loaded at start and their timers
 * armed again (a deadline that passed while the server was down fires at once).
 *
 * Graph calls fail in two ways that matter here: transient (network, 5xx, rate limits) — tried
 * again later — and refused (Conversation Routing's "Handover Protocol APIs disabled for this
 * page.", a person who is gone): reported on the row (`last_error`), in the log and the metrics,
 * never retried in a loop, and the state is left as it was, which is what Meta has too.
 */
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../clock.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { userFields } from "../log/mask.ts";
import { GraphApiError, type GraphClient, type PageCredentials } from "../messenger/graph.ts";
import type { PageDirectory } from "../replies/pages.ts";
import { classifySendError } from "../replies/retry.ts";
import type { Inbox } from "../webhook/inbox.ts";
import { laneId, type LaneKey } from "../lanes.ts";

/** The Page Inbox's app id: passing the thread to it puts the conversation in front of people. */
export const PAGE_INBOX_APP_ID = "263902037430900";

export type Floor = "bot" | "handover" | "paused";

export interface ThreadState {
  state: Floor;
  ownerAppId: string | null;
  metadata: string | null;
  since: number;
  lastHumanAt: number | null;
  pausedUntil: number | null;
  lastError: string | null;
}

/** What the flow gets as `input.handover` when control comes back (SPEC §11). */
export interface HandoverOutcome {
  status: "completed" | "timeout" | "error";
  /** What came back with the thread (the other app's metadata), else what we sent. */
  metadata: string | null;
  /** The app that had the thread. */
  owner_app_id: string | null;
  /** When the thread left us (ISO time). */
  since: string | null;
  /** status "error": why the thread could not be passed. */
  error?: { message: string; code?: number };
}

/** The synthesized inbox event (kind "handover") that gives the flow its `source: "handover"` turn. */
export interface HandoverEvent {
  handover: HandoverOutcome;
}

export interface ThreadsDeps {
  config: Config;
  database: Database;
  writes: WriteQueue;
  graph: GraphClient;
  pages: PageDirectory;
  inbox: Inbox;
  clock: Clock;
  log: Logger;
  metrics: Registry;
}

/** The view the admin API shows. */
export interface ThreadView {
  endpoint_id: string;
  page_id: string;
  user_id: string;
  state: Floor;
  owner_app_id: string | null;
  metadata: string | null;
  since: string | null;
  last_human_at: string | null;
  paused_until: string | null;
  /** handover: when the thread is taken back if no person answers before. */
  timeout_at: string | null;
  last_error: string | null;
}

/** The app id a target names (`page_inbox` or an app id). */
export const targetAppId = (target: string): string => (target === "page_inbox" ? PAGE_INBOX_APP_ID : target);

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
/** setTimeout's limit (about 24.8 days); longer waits are armed again when this one ends. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A take that failed for a passing reason (network, rate limit) is tried again after this. */
const TAKE_RETRY_MS = 60_000;

const UPSERT_SQL =
  "INSERT INTO threads (endpoint_id, page_id, user_id, state, owner_app_id, metadata, since, last_human_at, paused_until, last_error, updated_at) " +
  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, page_id, user_id) DO UPDATE SET state = excluded.state, " +
  "owner_app_id = excluded.owner_app_id, metadata = excluded.metadata, since = excluded.since, last_human_at = excluded.last_human_at, " +
  "paused_until = excluded.paused_until, last_error = excluded.last_error, updated_at = excluded.updated_at";

export class Threads {
  readonly #endpoints: Map<string, EndpointSettings>;
  /** Threads not in state bot, by lane id. */
  readonly #open = new Map<string, { key: LaneKey; state: ThreadState }>();
  readonly #timers = new Map<string, Timer>();
  readonly #releaseListeners: ((key: LaneKey) => void)[] = [];
  /** Users whose flow asked for a handover that the reply lane has not made yet. */
  readonly #passing = new Set<string>();
  readonly #events;
  #stopped = false;

  constructor(private readonly deps: ThreadsDeps) {
    this.#endpoints = new Map(deps.config.endpoints.map((e) => [e.id, e]));
    this.#events = deps.metrics.counter(
      "messenger_handover_events_total",
      "Handover events by endpoint and event (passed, taken_by_other, returned, timeout, paused, resumed, failed).",
    );
    const open = deps.metrics.gauge("messenger_threads_held", "Users whose bot does not have the floor, by endpoint and state (handover, paused).");
    deps.metrics.onCollect(() => {
      const counts = this.counts();
      for (const endpoint of this.#endpoints.keys()) {
        for (const state of ["handover", "paused"] as const) open.set({ endpoint, state }, counts.get(endpoint)?.[state] ?? 0);
      }
    });
  }

  /** Reads the threads the bot does not own and arms their timers. */
  async load(): Promise<void> {
    const rows = await this.deps.database.client.execute(
      "SELECT endpoint_id, page_id, user_id, state, owner_app_id, metadata, since, last_human_at, paused_until, last_error FROM threads WHERE state <> 'bot'",
    );
    for (const r of rows.rows) {
      const key = { endpointId: String(r[0]), pageId: String(r[1]), userId: String(r[2]) };
      const state = rowState([r[3], r[4], r[5], r[6], r[7], r[8], r[9]]);
      this.#open.set(laneId(key), { key, state });
      this.#arm(key, state);
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  /** Called when the bot has the floor again: the reply lane sends what it held. */
  onRelease(listener: (key: LaneKey) => void): void {
    this.#releaseListeners.push(listener);
  }

  /** Who has the floor now. */
  floor(key: LaneKey): Floor {
    const open = this.#open.get(laneId(key));
    if (!open) return "bot";
    // A pause whose time is up is over even before its timer has written so.
    if (open.state.state === "paused" && (open.state.pausedUntil ?? 0) <= this.deps.clock.now()) return "bot";
    return open.state.state;
  }

  /** True while the bot must not run the flow or send to this user. */
  holds(key: LaneKey): boolean {
    return this.#open.size > 0 && this.floor(key) !== "bot";
  }

  /**
   * True while the flow must not run for this user: the bot does not have the floor, or a handover
   * the flow asked for is queued behind its last outputs (what the user says meanwhile is for the
   * people the conversation is going to).
   */
  holdsInput(key: LaneKey): boolean {
    return this.holds(key) || (this.#passing.size > 0 && this.#passing.has(laneId(key)));
  }

  /** A handover item is queued in the user's reply lane (see holdsInput). */
  passQueued(key: LaneKey): void {
    this.#passing.add(laneId(key));
  }

  /** That handover item was made or given up. */
  passSettled(key: LaneKey): void {
    this.#passing.delete(laneId(key));
  }

  /** The open thread's state (not bot), if any. */
  current(key: LaneKey): ThreadState | null {
    return this.#open.get(laneId(key))?.state ?? null;
  }

  /** Users not in state bot, per endpoint. */
  counts(): Map<string, { handover: number; paused: number }> {
    const counts = new Map<string, { handover: number; paused: number }>();
    for (const { key, state } of this.#open.values()) {
      const c = counts.get(key.endpointId) ?? { handover: 0, paused: 0 };
      if (state.state === "handover") c.handover++;
      else if (state.state === "paused") c.paused++;
      counts.set(key.endpointId, c);
    }
    return counts;
  }

  /** The thread as the admin API shows it (a user never handed over: bot). */
  async view(key: LaneKey): Promise<ThreadView> {
    const rows = await this.deps.database.client.execute({
      sql: "SELECT state, owner_app_id, metadata, since, last_human_at, paused_until, last_error FROM threads WHERE endpoint_id = ? AND page_id = ? AND user_id = ?",
      args: [key.endpointId, key.pageId, key.userId],
    });
    const r = rows.rows[0];
    const s = r ? rowState([r[0], r[1], r[2], r[3], r[4], r[5], r[6]]) : null;
    const floor = this.floor(key);
    const deadline = s && floor === "handover" ? this.#timeoutAt(key, s) : null;
    return {
      endpoint_id: key.endpointId,
      page_id: key.pageId,
      user_id: key.userId,
      state: floor,
      owner_app_id: floor === "handover" ? (s?.ownerAppId ?? null) : null,
      metadata: s?.metadata ?? null,
      since: iso(s?.since ?? null),
      last_human_at: iso(s?.lastHumanAt ?? null),
      paused_until: floor === "paused" ? iso(s?.pausedUntil ?? null) : null,
      timeout_at: iso(deadline),
      last_error: s?.lastError ?? null,
    };
  }

  // --- transitions ----------------------------------------------------------------------

  /** Another app owns the thread now (we passed it, it took it, or it was passed on). */
  async handedOver(key: LaneKey, ownerAppId: string | null, metadata: string | null, event: "passed" | "taken_by_other"): Promise<void> {
    const now = this.deps.clock.now();
    await this.#set(key, { state: "handover", ownerAppId, metadata, since: now, lastHumanAt: null, pausedUntil: null, lastError: null });
    this.#events.inc({ endpoint: key.endpointId, event });
    this.#log(key).info(event === "passed" ? "thread passed to another app; the bot is silent for this user until it comes back" : "another app took the thread; the bot is silent for this user until it comes back", {
      owner_app_id: ownerAppId,
    });
  }

  /**
   * The thread is ours again (a `pass_thread_control` to us, our take, the operator). Returns the
   * state it left (handover or paused), or null when the bot had it already.
   */
  async returned(key: LaneKey, event: "returned" | "timeout" | "resumed"): Promise<ThreadState | null> {
    const previous = this.current(key);
    if (!previous) return null;
    await this.#set(key, { ...previous, state: "bot", pausedUntil: null, lastError: null });
    this.#events.inc({ endpoint: key.endpointId, event });
    this.#log(key).info(event === "resumed" ? "the pause is over; the bot answers this user again" : "the thread is back; the bot answers this user again", { was: previous.state });
    return previous;
  }

  /**
   * A person answered from another app (an echo that is not ours, at `at`). In handover it resets
   * the timeout; while the bot owns the thread it pauses the bot (`pause_on_human_reply`). In
   * standby (another app owns the thread without our knowing) it records the handover.
   */
  async humanReplied(key: LaneKey, at: number, appId: string | null, standby: boolean): Promise<void> {
    const endpoint = this.#endpoints.get(key.endpointId);
    if (!endpoint) return;
    const open = this.current(key);
    if (open?.state === "handover") {
      if ((open.lastHumanAt ?? 0) >= at) return;
      await this.#set(key, { ...open, lastHumanAt: at });
      return;
    }
    if (standby) {
      const now = this.deps.clock.now();
      await this.#set(key, { state: "handover", ownerAppId: appId, metadata: null, since: now, lastHumanAt: at, pausedUntil: null, lastError: null });
      this.#events.inc({ endpoint: key.endpointId, event: "taken_by_other" });
      this.#log(key).info("a person answers from another app that owns the thread; the bot is silent for this user until it comes back", { owner_app_id: appId });
      return;
    }
    const settings = endpoint.handover;
    if (!settings.pause_on_human_reply || settings.pause_minutes <= 0) return;
    const until = at + settings.pause_minutes * 60_000;
    if (open?.state === "paused" && (open.pausedUntil ?? 0) >= until) return;
    if (until <= this.deps.clock.now()) return; // an old echo: its quiet time is over
    await this.#set(key, { state: "paused", ownerAppId: null, metadata: open?.metadata ?? null, since: open?.state === "paused" ? open.since : this.deps.clock.now(), lastHumanAt: at, pausedUntil: until, lastError: null });
    if (open?.state !== "paused") {
      this.#events.inc({ endpoint: key.endpointId, event: "paused" });
      this.#log(key).info(`a person answered from another app; the bot is paused for this user until ${new Date(until).toISOString()}`, { app_id: appId });
    }
  }

  /** The operator pauses the bot for this user (admin API). */
  async pause(key: LaneKey, minutes: number): Promise<void> {
    const now = this.deps.clock.now();
    const open = this.current(key);
    await this.#set(key, { state: "paused", ownerAppId: null, metadata: open?.metadata ?? null, since: now, lastHumanAt: open?.lastHumanAt ?? null, pausedUntil: now + minutes * 60_000, lastError: null });
    this.#events.inc({ endpoint: key.endpointId, event: "paused" });
  }

  /** A handover call failed: kept on the row for the admin API (the state does not change). */
  async failed(key: LaneKey, message: string): Promise<void> {
    const open = this.current(key);
    const state: ThreadState = open
      ? { ...open, lastError: message }
      : { state: "bot", ownerAppId: null, metadata: null, since: this.deps.clock.now(), lastHumanAt: null, pausedUntil: null, lastError: message };
    await this.#set(key, state);
    this.#events.inc({ endpoint: key.endpointId, event: "failed" });
  }

  /**
   * Our `pass_thread_control` (the operator's, or a request honoured directly). Resolves with null,
   * or the Graph error's message (then nothing changed but `last_error`).
   */
  async pass(key: LaneKey, targetApp: string, metadata: string | null): Promise<string | null> {
    const page = this.deps.pages.activeCredentials(key.endpointId, key.pageId);
    if (!page) return `Page ${key.pageId} is paused or not in the settings`;
    try {
      await passThreadControl(this.deps.graph, page, key.userId, targetApp, metadata);
    } catch (error) {
      const message = describe(error);
      await this.failed(key, `pass_thread_control: ${message}`);
      this.#log(key).error(`could not pass the thread to app ${targetApp}: ${message}${hint(error)}`);
      return message;
    }
    await this.handedOver(key, targetApp, metadata, "passed");
    return null;
  }

  /**
   * Our `take_thread_control`: on the timeout (then the flow runs once with status "timeout") or
   * for the operator. Resolves with null, or the Graph error's message (then the thread stays
   * where it is, with `last_error`).
   */
  async take(key: LaneKey, reason: "timeout" | "operator"): Promise<string | null> {
    const open = this.current(key);
    const page = this.deps.pages.activeCredentials(key.endpointId, key.pageId);
    if (!page) return `Page ${key.pageId} is paused or not in the settings`;
    const log = this.#log(key);
    if (open?.state === "handover") {
      try {
        await this.deps.graph.request(page, "POST", `/${key.pageId}/take_thread_control`, {
          recipient: { id: key.userId },
          metadata: reason === "timeout" ? "timeout: no reply from a person" : "taken back by the operator",
        });
      } catch (error) {
        const message = describe(error);
        await this.failed(key, `take_thread_control: ${message}`);
        const passing = classifySendError(error).action === "retry";
        if (reason === "timeout" && passing && !this.#stopped) {
          log.warn(`could not take the thread back after the handover timeout (${message}); trying again in ${TAKE_RETRY_MS / 1000} s`);
          this.#schedule(key, TAKE_RETRY_MS, () => void this.take(key, "timeout"));
        } else {
          log.error(`could not take the thread back${reason === "timeout" ? " after the handover timeout" : ""}: ${message}${hint(error)}`);
        }
        return message;
      }
    }
    const previous = await this.returned(key, reason === "timeout" ? "timeout" : "resumed");
    if (reason === "timeout" && previous) await this.#storeOutcome(key, { status: "timeout", metadata: previous.metadata, owner_app_id: previous.ownerAppId, since: iso(previous.since) });
    return null;
  }

  /** Our pass failed for good: the flow is told once (`source: "handover"`, status "error"). */
  async passFailed(key: LaneKey, targetApp: string, metadata: string | null, error: unknown): Promise<void> {
    const message = describe(error);
    await this.failed(key, `pass_thread_control: ${message}`);
    this.#log(key).error(`could not pass the thread to app ${targetApp}; the bot keeps the conversation and the flow is told (handover.status "error"): ${message}${hint(error)}`);
    await this.#storeOutcome(key, {
      status: "error",
      metadata,
      owner_app_id: targetApp,
      since: null,
      error: { message, ...(error instanceof GraphApiError ? { code: error.code } : {}) },
    });
  }

  /** Forgets an erased user (the rows are deleted with the rest of the user's data). */
  forgetUser(key: LaneKey): void {
    const id = laneId(key);
    this.#open.delete(id);
    this.#passing.delete(id);
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
  }

  // --- internals ------------------------------------------------------------------------

  async #storeOutcome(key: LaneKey, outcome: HandoverOutcome): Promise<void> {
    const now = this.deps.clock.now();
    const event: HandoverEvent = { handover: outcome };
    await this.deps.inbox.store(key.endpointId, [
      { pageId: key.pageId, userId: key.userId, kind: "handover", standby: false, dedupKey: `handover:${outcome.status}:${key.pageId}:${key.userId}:${now}`, timestamp: now, item: event as never },
    ]);
  }

  /** Writes the state (durably: what the lanes hold depends on it), updates memory, timers, listeners. */
  async #set(key: LaneKey, state: ThreadState): Promise<void> {
    const id = laneId(key);
    const wasOpen = this.#open.has(id);
    // Memory first: a send or turn that looks while the commit runs already sees the new floor.
    if (state.state === "bot") this.#open.delete(id);
    else this.#open.set(id, { key, state });
    this.#arm(key, state);
    const now = this.deps.clock.now();
    await this.deps.writes.run([
      {
        sql: UPSERT_SQL,
        args: [key.endpointId, key.pageId, key.userId, state.state, state.ownerAppId, state.metadata, state.since, state.lastHumanAt, state.pausedUntil, state.lastError, now],
      },
    ]);
    if (wasOpen && state.state === "bot") for (const listener of this.#releaseListeners) listener(key);
  }

  /** When the bot takes the thread back on its own, if no person answers before. */
  #timeoutAt(key: LaneKey, state: ThreadState): number | null {
    const minutes = this.#endpoints.get(key.endpointId)?.handover.timeout_minutes ?? 0;
    if (minutes <= 0) return null;
    return Math.max(state.since, state.lastHumanAt ?? 0) + minutes * 60_000;
  }

  /** (Re)arms the user's one timer for the state's deadline. */
  #arm(key: LaneKey, state: ThreadState): void {
    const id = laneId(key);
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
    if (this.#stopped) return;
    if (state.state === "paused" && state.pausedUntil !== null) {
      this.#schedule(key, state.pausedUntil - this.deps.clock.now(), () => {
        const open = this.current(key);
        if (open?.state === "paused" && (open.pausedUntil ?? 0) <= this.deps.clock.now()) void this.returned(key, "resumed").catch((error) => this.#log(key).error("could not end a pause", { error }));
        else if (open) this.#arm(key, open);
      });
    } else if (state.state === "handover" && !state.lastError) {
      // After a failed take, no timer: the error is on the row, and the thread waits for the other
      // app (a pass back, "Done" in the Page Inbox) or the operator.
      const at = this.#timeoutAt(key, state);
      if (at === null) return;
      this.#schedule(key, at - this.deps.clock.now(), () => {
        const open = this.current(key);
        if (open?.state !== "handover") return;
        const due = this.#timeoutAt(key, open);
        if (due !== null && due <= this.deps.clock.now()) void this.take(key, "timeout").catch((error) => this.#log(key).error("could not take the thread back", { error }));
        else this.#arm(key, open);
      });
    }
  }

  #schedule(key: LaneKey, ms: number, run: () => void): void {
    const id = laneId(key);
    clearTimeout(this.#timers.get(id));
    const delay = Math.max(0, Math.min(ms, MAX_TIMER_MS));
    const timer = setTimeout(() => {
      this.#timers.delete(id);
      if (this.#stopped) return;
      if (delay < ms) this.#schedule(key, ms - delay, run);
      else run();
    }, delay);
    this.#timers.set(id, timer);
  }

  #log(key: LaneKey): Logger {
    return this.deps.log.child(userFields(key, this.#endpoints.get(key.endpointId)?.data_protection.mask_logging ?? false));
  }
}

/** `POST /{page}/pass_thread_control` (the reply lane's handover items and the operator's pass). */
export function passThreadControl(graph: GraphClient, page: PageCredentials, userId: string, targetApp: string, metadata: string | null): Promise<unknown> {
  return graph.request(page, "POST", `/${page.pageId}/pass_thread_control`, { recipient: { id: userId }, target_app_id: targetApp, ...(metadata !== null ? { metadata } : {}) });
}

function rowState(r: readonly unknown[]): ThreadState {
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const str = (v: unknown) => (v === null || v === undefined ? null : String(v));
  return {
    state: String(r[0]) as Floor,
    ownerAppId: str(r[1]),
    metadata: str(r[2]),
    since: Number(r[3]),
    lastHumanAt: num(r[4]),
    pausedUntil: num(r[5]),
    lastError: str(r[6]),
  };
}

function describe(error: unknown): string {
  if (error instanceof GraphApiError) return `${error.message} (code ${error.code}${error.subcode ? `/${error.subcode}` : ""})`;
  return error instanceof Error ? error.message : String(error);
}

/** How to fix the usual refusals. */
export function hint(error: unknown): string {
  if (!(error instanceof GraphApiError)) return "";
  if (/Handover Protocol APIs disabled/i.test(error.message)) {
    return ": this Page uses Conversation Routing, where only pass works; make this app the Page's default app in Meta Business Suite (Settings > Advanced messaging), or set handover.timeout_minutes = 0 and let people mark conversations Done";
  }
  if (error.code === 200 || error.code === 10) return ": the app lacks a role for this Page's conversations; give it the pages_messaging permission and a handover role (Page settings > Advanced messaging)";
  if (error.code === 100) return ": check the target app id (page_inbox is 263902037430900) and that the user still talks to this Page";
  return "";
}
