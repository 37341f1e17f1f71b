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
import { numberOrNull, stringOrNull } from "../db/statement.ts";
import type { InStatement } from "@libsql/client";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { userFields } from "../log/mask.ts";
import { GraphApiError, type GraphClient } from "../messenger/graph.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import { classifySendError } from "../messenger/retry.ts";
import { describeCallError as describe, refusalHint as hint, passThreadControl, takeThreadControl } from "../messenger/thread-control.ts";
import type { Inbox } from "../inbox/inbox.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import { setNewest } from "../core/bounded.ts";

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
  /** A take to try again then (it failed for a passing reason). */
  retryAt: number | null;
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
  /** The Messenger event that brought the thread back (a pass_thread_control), for `data.request`. */
  request?: unknown;
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
  "INSERT INTO threads (endpoint_id, page_id, user_id, state, owner_app_id, metadata, since, last_human_at, paused_until, last_error, retry_at, updated_at) " +
  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, page_id, user_id) DO UPDATE SET state = excluded.state, " +
  "owner_app_id = excluded.owner_app_id, metadata = excluded.metadata, since = excluded.since, last_human_at = excluded.last_human_at, " +
  "paused_until = excluded.paused_until, last_error = excluded.last_error, retry_at = excluded.retry_at, updated_at = excluded.updated_at";
const COLUMNS = "state, owner_app_id, metadata, since, last_human_at, paused_until, last_error, retry_at";
/** Recently returned threads remembered (for stale events), and erased users. */
const RECENT = 10_000;
/** How far Meta's clock and ours may disagree, for events about our own passes and takes. */
const OWN_SKEW_MS = 2_000;

/** What a take or pass the operator asked for came to: null when done. */
export interface CallFailure {
  /** 503: we could not even ask (the Page is paused); 502: Meta refused. */
  status: 502 | 503;
  message: string;
}

export class Threads {
  readonly #endpoints: Map<string, EndpointSettings>;
  /** Threads not in state bot, by lane id. */
  readonly #open = new Map<string, { key: UserKey; state: ThreadState }>();
  /**
   * The time of the last Meta event that changed each thread (lane id → Meta's timestamp): an
   * event older than that is stale. Only Meta's times are compared with each other; our own
   * actions are not in this map (our clock and Meta's need not agree to the millisecond).
   */
  readonly #eventAt = new Map<string, number>();
  /**
   * When we last passed or took the thread ourselves (our clock). A user event that Meta stamped
   * before that (within OWN_SKEW_MS for the clocks) was routed by the owner before our change.
   */
  readonly #ownAt = new Map<string, number>();
  /** Users erased (lane id → time): a transition that started before is not written. */
  readonly #erasedAt = new Map<string, number>();
  readonly #timers = new Map<string, Timer>();
  readonly #releaseListeners: ((key: UserKey) => void)[] = [];
  readonly #leftListeners: ((key: UserKey) => void)[] = [];
  readonly #changeListeners: ((key: UserKey, floor: Floor) => void)[] = [];
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
    const rows = await this.deps.database.client.execute(`SELECT endpoint_id, page_id, user_id, ${COLUMNS} FROM threads WHERE state <> 'bot'`);
    for (const r of rows.rows) {
      const key = { endpointId: String(r[0]), pageId: String(r[1]), userId: String(r[2]) };
      const state = rowState([r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]]);
      this.#open.set(userKeyId(key), { key, state });
      this.#arm(key, state);
    }
    // When the latest threads came back: a redelivered event from before that stays stale.
    const back = await this.deps.database.client.execute({
      sql: "SELECT endpoint_id, page_id, user_id, since FROM threads WHERE state = 'bot' ORDER BY updated_at DESC LIMIT ?",
      args: [RECENT],
    });
    for (const r of back.rows.toReversed()) setNewest(this.#eventAt, userKeyId({ endpointId: String(r[0]), pageId: String(r[1]), userId: String(r[2]) }), Number(r[3]), RECENT);
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  /** Called when the bot has the floor again: the reply lane sends what it held. */
  onRelease(listener: (key: UserKey) => void): void {
    this.#releaseListeners.push(listener);
  }

  /** Called after every change of a thread's state (the simulator shows it). */
  onChange(listener: (key: UserKey, floor: Floor) => void): void {
    this.#changeListeners.push(listener);
  }

  /** Called when the thread left us other than by the reply lane's own handover: handovers still queued there are moot. */
  onLeft(listener: (key: UserKey) => void): void {
    this.#leftListeners.push(listener);
  }

  /** Who has the floor now. */
  floor(key: UserKey): Floor {
    const open = this.#open.get(userKeyId(key));
    if (!open) return "bot";
    // A pause whose time is up is over even before its timer has written so.
    if (open.state.state === "paused" && (open.state.pausedUntil ?? 0) <= this.deps.clock.now()) return "bot";
    return open.state.state;
  }

  /** True while the bot must not send to this user. */
  holds(key: UserKey): boolean {
    return this.#open.size > 0 && this.floor(key) !== "bot";
  }

  /** The open thread's state (not bot), if any. */
  current(key: UserKey): ThreadState | null {
    return this.#open.get(userKeyId(key))?.state ?? null;
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
  async view(key: UserKey): Promise<ThreadView> {
    const rows = await this.deps.database.client.execute({
      sql: `SELECT ${COLUMNS} FROM threads WHERE endpoint_id = ? AND page_id = ? AND user_id = ?`,
      args: [key.endpointId, key.pageId, key.userId],
    });
    const r = rows.rows[0];
    const s = r ? rowState([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]]) : null;
    const floor = this.floor(key);
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
      // Exactly what the timer acts on: null when nothing will take the thread back by itself.
      timeout_at: iso(s && floor === "handover" ? this.#takeAt(key, s) : null),
      last_error: s?.lastError ?? null,
    };
  }

  // --- transitions ----------------------------------------------------------------------
  // Transitions driven by Meta's events carry the event's time (`at`): one not newer than the last
  // event that changed the thread is stale (the events of one POST, or redeliveries, arrive in any
  // order; the lane may see again what `accept` applied) and changes nothing.

  #stale(key: UserKey, at: number | undefined, orEqual: boolean): boolean {
    if (at === undefined) return false;
    const last = this.#eventAt.get(userKeyId(key)) ?? 0;
    return orEqual ? at <= last : at < last;
  }

  #sawEvent(key: UserKey, at: number | undefined): void {
    if (at !== undefined) setNewest(this.#eventAt, userKeyId(key), at, RECENT);
  }

  /**
   * Another app owns the thread now: we passed it (`passed`), or it took it or was given it
   * (`taken_by_other`). Returns false when the event is stale. `extra` is committed with the change.
   */
  async handedOver(
    key: UserKey,
    ownerAppId: string | null,
    metadata: string | null,
    event: "passed" | "taken_by_other",
    options: { at?: number; extra?: InStatement[]; byLane?: boolean; startedAt?: number; lastHumanAt?: number } = {},
  ): Promise<boolean> {
    if (this.#stale(key, options.at, true)) return false;
    this.#sawEvent(key, options.at);
    const since = options.at ?? this.deps.clock.now();
    if (options.at === undefined) setNewest(this.#ownAt, userKeyId(key), since, RECENT);
    const state: ThreadState = { state: "handover", ownerAppId, metadata, since, lastHumanAt: options.lastHumanAt ?? null, pausedUntil: null, lastError: null, retryAt: null };
    if (!(await this.#set(key, state, options))) return false;
    if (!options.byLane) for (const listener of this.#leftListeners) listener(key);
    this.#events.inc({ endpoint: key.endpointId, event });
    this.#log(key).info(event === "passed" ? "thread passed to another app; the bot is silent for this user until it comes back" : "another app has the thread; the bot is silent for this user until it comes back", {
      owner_app_id: ownerAppId,
    });
    return true;
  }

  /**
   * The thread is ours again (a `pass_thread_control` to us, a user message in messaging[], our
   * take, the operator). Returns the state it left (handover or paused), or null when the bot had
   * it already or the event is stale.
   */
  async returned(
    key: UserKey,
    event: "returned" | "timeout" | "resumed",
    at?: number,
    /** Runs once the change is decided, before it is written: stores what the flow is to hear (durable first). */
    before?: (previous: ThreadState) => Promise<void>,
  ): Promise<ThreadState | null> {
    if (this.#stale(key, at, false)) return null;
    // Seen even when it changes nothing: a take older than this "Done" must not hand over again.
    this.#sawEvent(key, at);
    const previous = this.current(key);
    if (!previous) return null;
    const since = at ?? this.deps.clock.now();
    if (at === undefined) setNewest(this.#ownAt, userKeyId(key), since, RECENT);
    await before?.(previous);
    // Something newer happened while `before` wrote (a take in the same POST, say): that stands.
    const now = this.current(key);
    if (!now || now.since !== previous.since || (at !== undefined && (this.#eventAt.get(userKeyId(key)) ?? 0) > at)) return null;
    if (!(await this.#set(key, { ...previous, state: "bot", since, pausedUntil: null, lastError: null, retryAt: null }))) return null;
    this.#events.inc({ endpoint: key.endpointId, event });
    this.#log(key).info(event === "resumed" ? "the bot answers this user again" : "the thread is back; the bot answers this user again", { was: previous.state });
    return previous;
  }

  /**
   * A user event (in its lane, in order): `messaging[]` while we think another app has the thread
   * means Meta gave it back without telling us (Conversation Routing, the 24-hour idle rule, a lost
   * pass): it is ours again, and the previous state is returned. `standby[]` while we think we have
   * it means another app has it: recorded with an unknown owner (no timeout take: we do not know
   * whose thread we would take; a later messaging[] event gives it back).
   */
  async userSpoke(key: UserKey, at: number, standby: boolean): Promise<ThreadState | null> {
    // Sent before our own pass or take, or before the thread left (which `since` keeps across
    // restarts): Meta routed it by the owner of that moment.
    if (this.#ownAt.size > 0 && at <= (this.#ownAt.get(userKeyId(key)) ?? 0) + OWN_SKEW_MS) return null;
    const floor = this.floor(key);
    if (floor === "handover" && at <= this.current(key)!.since) return null;
    if (!standby && floor === "handover") return this.returned(key, "returned", at);
    if (standby && floor !== "handover") await this.handedOver(key, null, null, "taken_by_other", { at });
    return null;
  }

  /**
   * A person answered from another app (an echo that is not ours, at `at`). In handover it resets
   * the timeout; while the bot owns the thread it pauses the bot (`pause_on_human_reply`). In
   * standby (another app owns the thread without our knowing) it records the handover.
   */
  async humanReplied(key: UserKey, at: number, appId: string | null, standby: boolean): Promise<void> {
    const endpoint = this.#endpoints.get(key.endpointId);
    if (!endpoint) return;
    const startedAt = this.deps.clock.now();
    const open = this.current(key);
    if (open?.state === "handover") {
      if ((open.lastHumanAt ?? 0) >= at) return;
      // The person's app is the owner we did not know (a standby message told us only "not us").
      // A take waiting to be tried again is off: the timeout counts from this reply now.
      const retrying = open.retryAt !== null;
      await this.#set(key, { ...open, ownerAppId: open.ownerAppId ?? (standby ? appId : null), lastHumanAt: at, ...(retrying ? { retryAt: null, lastError: null } : {}) }, { startedAt });
      return;
    }
    // An answer sent before the thread came back (it arrives with, or after, the "Done").
    if (this.#stale(key, at, true)) return;
    if (standby) {
      await this.handedOver(key, appId, null, "taken_by_other", { at, startedAt, lastHumanAt: at });
      return;
    }
    const settings = endpoint.handover;
    if (!settings.pause_on_human_reply || settings.pause_minutes <= 0) return;
    const until = at + settings.pause_minutes * 60_000;
    if (open?.state === "paused" && (open.pausedUntil ?? 0) >= until) return;
    if (until <= this.deps.clock.now()) return; // an old echo: its quiet time is over
    const since = open?.state === "paused" ? open.since : at;
    await this.#set(key, { state: "paused", ownerAppId: null, metadata: open?.metadata ?? null, since, lastHumanAt: at, pausedUntil: until, lastError: null, retryAt: null }, { startedAt });
    if (open?.state !== "paused") {
      this.#events.inc({ endpoint: key.endpointId, event: "paused" });
      this.#log(key).info(`a person answered from another app; the bot is paused for this user until ${new Date(until).toISOString()}`, { app_id: appId });
    }
  }

  /** The operator pauses the bot for this user (admin API). */
  async pause(key: UserKey, minutes: number): Promise<void> {
    const now = this.deps.clock.now();
    const open = this.current(key);
    await this.#set(key, { state: "paused", ownerAppId: null, metadata: open?.metadata ?? null, since: now, lastHumanAt: open?.lastHumanAt ?? null, pausedUntil: now + minutes * 60_000, lastError: null, retryAt: null });
    this.#events.inc({ endpoint: key.endpointId, event: "paused" });
  }

  /** A handover call failed: kept on the row for the admin API (the state does not change). */
  async failed(key: UserKey, message: string, retryAt: number | null = null, startedAt?: number): Promise<void> {
    const open = this.current(key);
    const state: ThreadState = open
      ? { ...open, lastError: message, retryAt }
      : { state: "bot", ownerAppId: null, metadata: null, since: this.deps.clock.now(), lastHumanAt: null, pausedUntil: null, lastError: message, retryAt: null };
    await this.#set(key, state, { startedAt });
    this.#events.inc({ endpoint: key.endpointId, event: "failed" });
  }

  /**
   * Our `pass_thread_control` (the operator's, or a request honoured). Resolves with null, or what
   * went wrong (then nothing changed but `last_error`).
   */
  async pass(key: UserKey, targetApp: string, metadata: string | null): Promise<CallFailure | null> {
    const page = this.deps.pages.activeCredentials(key.endpointId, key.pageId);
    if (!page) return pausedPage(key);
    const startedAt = this.deps.clock.now();
    try {
      await passThreadControl(this.deps.graph, page, key.userId, targetApp, metadata);
    } catch (error) {
      const message = describe(error);
      await this.failed(key, `pass_thread_control: ${message}`, null, startedAt);
      this.#log(key).error(`could not pass the thread to app ${targetApp}: ${message}${hint(error)}`);
      return { status: 502, message: `${message}${hint(error)}` };
    }
    await this.handedOver(key, targetApp, metadata, "passed", { startedAt });
    return null;
  }

  /**
   * Our `take_thread_control`: on the timeout (then the flow runs once with status "timeout") or
   * for the operator (who may take a thread we did not know was elsewhere: the call is made unless
   * the bot is only paused). Resolves with null, or what went wrong (then the thread stays where
   * it is, with `last_error`; a passing failure of a timeout take is tried again a minute later).
   */
  async take(key: UserKey, reason: "timeout" | "operator"): Promise<CallFailure | null> {
    const open = this.current(key);
    const log = this.#log(key);
    const startedAt = this.deps.clock.now();
    if (open?.state !== "paused") {
      const page = this.deps.pages.activeCredentials(key.endpointId, key.pageId);
      if (!page) {
        const failure = pausedPage(key);
        if (reason === "timeout") {
          log.warn(`could not take the thread back after the handover timeout: ${failure.message}; trying again in ${TAKE_RETRY_MS / 1000} s`);
          await this.failed(key, `take_thread_control: ${failure.message}`, startedAt + TAKE_RETRY_MS, startedAt);
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
        const retryAt = !passing ? null : reason === "timeout" ? startedAt + TAKE_RETRY_MS : open ? this.#takeAt(key, open) : null;
        await this.failed(key, `take_thread_control: ${message}`, retryAt, startedAt);
        if (passing) log.warn(`could not take the thread back (${message})${reason === "timeout" ? `; trying again in ${TAKE_RETRY_MS / 1000} s` : ""}`);
        else log.error(`could not take the thread back${reason === "timeout" ? " after the handover timeout" : ""}: ${message}${hint(error)}`);
        return { status: 502, message: passing ? `${message}: a passing failure, try again` : `${message}${hint(error)}` };
      }
    }
    await this.returned(
      key,
      reason === "timeout" ? "timeout" : "resumed",
      undefined,
      // The flow's "timeout" turn is stored before the state changes, under a key made from the
      // handover it ends: a crash in between and the take made again store it once.
      reason === "timeout"
        ? (previous) => this.storeOutcome(key, { status: "timeout", metadata: previous.metadata, owner_app_id: previous.ownerAppId, since: iso(previous.since) }, `since:${previous.since}`)
        : undefined,
    );
    return null;
  }

  /** Our pass failed for good: the flow is told once (`source: "handover"`, status "error"). */
  async passFailed(key: UserKey, targetApp: string, metadata: string | null, error: unknown): Promise<void> {
    const message = describe(error);
    if (this.floor(key) === "handover") {
      // Refused because another app took the thread meanwhile: nothing for the flow to hear now.
      this.#log(key).warn(`a queued handover to app ${targetApp} was refused while another app has the thread; dropped: ${message}`);
      return;
    }
    await this.failed(key, `pass_thread_control: ${message}`);
    this.#log(key).error(`could not pass the thread to app ${targetApp}; the bot keeps the conversation and the flow is told (handover.status "error"): ${message}${hint(error)}`);
    await this.storeOutcome(
      key,
      { status: "error", metadata, owner_app_id: targetApp, since: null, error: { message, ...(error instanceof GraphApiError ? { code: error.code } : {}) } },
      `at:${this.deps.clock.now()}`,
    );
  }

  /** Forgets an erased user (the rows are deleted with the rest of the user's data). */
  forgetUser(key: UserKey): void {
    const id = userKeyId(key);
    this.#open.delete(id);
    this.#eventAt.delete(id);
    this.#ownAt.delete(id);
    setNewest(this.#erasedAt, id, this.deps.clock.now(), RECENT);
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
  }

  // --- internals ------------------------------------------------------------------------

  /**
   * Stores the flow's `source: "handover"` turn as an inbox event (durable; it runs in the user's
   * lane). `unique` names what it ends, so that storing it again (after a crash) is a no-op;
   * `timestamp` places it in the lane (default now).
   */
  async storeOutcome(key: UserKey, outcome: HandoverOutcome, unique: string, timestamp = this.deps.clock.now(), request?: unknown): Promise<void> {
    const event: HandoverEvent = { handover: outcome, ...(request !== undefined ? { request } : {}) };
    await this.deps.inbox.store(key.endpointId, [
      { pageId: key.pageId, userId: key.userId, kind: "handover", standby: false, dedupKey: `handover:${outcome.status}:${key.pageId}:${key.userId}:${unique}`, timestamp, item: event as never },
    ]);
  }

  /**
   * Writes the state (durably: what the lanes hold depends on it), updates memory, timers and
   * listeners. Not when the user was erased after the transition began (`startedAt`): false.
   */
  async #set(key: UserKey, state: ThreadState, options: { extra?: InStatement[]; startedAt?: number } = {}): Promise<boolean> {
    const id = userKeyId(key);
    const erased = this.#erasedAt.get(id);
    if (erased !== undefined && erased >= (options.startedAt ?? this.deps.clock.now())) return false;
    const wasOpen = this.#open.has(id);
    // Memory first: a send or turn that looks while the commit runs already sees the new floor.
    if (state.state === "bot") this.#open.delete(id);
    else this.#open.set(id, { key, state });
    this.#arm(key, state);
    const now = this.deps.clock.now();
    await this.deps.writes.run([
      {
        sql: UPSERT_SQL,
        args: [key.endpointId, key.pageId, key.userId, state.state, state.ownerAppId, state.metadata, state.since, state.lastHumanAt, state.pausedUntil, state.lastError, state.retryAt, now],
      },
      ...(options.extra ?? []),
    ]);
    if (wasOpen && state.state === "bot") for (const listener of this.#releaseListeners) listener(key);
    if (wasOpen !== (state.state !== "bot") || state.state !== "bot") for (const listener of this.#changeListeners) listener(key, this.floor(key));
    return true;
  }

  /**
   * When the bot takes a handed-over thread back by itself: a take to try again, else the timeout
   * after the handover or the person's last reply. Never after a refused take (the error is on
   * the row; the thread waits for the other app, "Done" in the Page Inbox, or the operator), nor
   * for a thread whose owner we do not know.
   */
  #takeAt(key: UserKey, state: ThreadState): number | null {
    if (state.retryAt !== null) return state.retryAt;
    if (state.lastError !== null || state.ownerAppId === null) return null;
    const minutes = this.#endpoints.get(key.endpointId)?.handover.timeout_minutes ?? 0;
    if (minutes <= 0) return null;
    return Math.max(state.since, state.lastHumanAt ?? 0) + minutes * 60_000;
  }

  /** (Re)arms the user's one timer for the state's deadline. */
  #arm(key: UserKey, state: ThreadState): void {
    const id = userKeyId(key);
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
    if (this.#stopped) return;
    if (state.state === "paused" && state.pausedUntil !== null) {
      this.#schedule(key, state.pausedUntil - this.deps.clock.now(), () => {
        const open = this.current(key);
        if (open?.state === "paused" && (open.pausedUntil ?? 0) <= this.deps.clock.now()) void this.returned(key, "resumed").catch((error) => this.#log(key).error("could not end a pause", { error }));
        else if (open) this.#arm(key, open);
      });
    } else if (state.state === "handover") {
      const at = this.#takeAt(key, state);
      if (at === null) return;
      this.#schedule(key, at - this.deps.clock.now(), () => {
        const open = this.current(key);
        if (open?.state !== "handover") return;
        const due = this.#takeAt(key, open);
        if (due !== null && due <= this.deps.clock.now()) void this.take(key, "timeout").catch((error) => this.#log(key).error("could not take the thread back", { error }));
        else this.#arm(key, open);
      });
    }
  }

  #schedule(key: UserKey, ms: number, run: () => void): void {
    const id = userKeyId(key);
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

  #log(key: UserKey): Logger {
    return this.deps.log.child(userFields(key, this.#endpoints.get(key.endpointId)?.data_protection.mask_logging ?? false));
  }
}

function pausedPage(key: UserKey): CallFailure {
  return { status: 503, message: `Page ${key.pageId} is paused (Meta refused its access token) or not in the settings: replace its access_token and restart` };
}

function rowState(r: readonly unknown[]): ThreadState {
  return {
    state: String(r[0]) as Floor,
    ownerAppId: stringOrNull(r[1]),
    metadata: stringOrNull(r[2]),
    since: Number(r[3]),
    lastHumanAt: numberOrNull(r[4]),
    pausedUntil: numberOrNull(r[5]),
    lastError: stringOrNull(r[6]),
    retryAt: numberOrNull(r[7]),
  };
}
