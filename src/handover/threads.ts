/**
 * Handover: who has the floor in each user's thread.
 *
 *   bot       our app owns the thread: the flow runs, the reply lane sends
 *   handover  another app owns it (the Page Inbox, where people answer): the flow is not run,
 *             the reply lane holds its messages, and after `timeout_minutes` without a person's
 *             reply we take the thread back (`take_thread_control`) and the flow runs once with
 *             `handover.status = "timeout"`
 *   paused    we own it, but a person answered from another app (an echo not ours): as in
 *             handover, until `pause_minutes` after the person's last message
 *
 * This file is the state machine: the transitions and the rules that make an event stale. The
 * state is a row in `threads` (store.ts; no row: bot). Rows not in state bot are kept in memory
 * too, so the per-turn and per-send checks cost a map lookup; they are loaded at start and their
 * deadlines armed again (deadlines.ts; one that passed while the server was down fires at once).
 * Our own pass and take, and their failures, are in calls.ts; the admin API's view in view.ts.
 */
import type { InStatement } from "@libsql/client";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { realTimers, type Clock, type Timers } from "../core/clock.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import { setNewest } from "../core/bounded.ts";
import type { Logger } from "../log/logger.ts";
import { userFields } from "../log/mask.ts";
import type { Registry } from "../metrics/registry.ts";
import type { GraphClient } from "../messenger/graph.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import type { Inbox } from "../inbox/inbox.ts";
import { ThreadStore, type Floor, type ThreadState } from "./store.ts";
import { ThreadDeadlines } from "./deadlines.ts";
import { ThreadCalls, type CallFailure } from "./calls.ts";
import { threadCounts, threadView, type ThreadView } from "./view.ts";
import { outcomeEvent, type HandoverOutcome } from "./outcome.ts";

export type { Floor, ThreadState, CallFailure, ThreadView };
export { PAGE_INBOX_APP_ID, targetAppId, type HandoverEvent, type HandoverOutcome } from "./outcome.ts";

export interface ThreadsDeps {
  config: Config;
  endpoints?: ReadonlyMap<string, EndpointSettings>; // config/live.ts `known`; by default those of `config`
  database: Database;
  writes: WriteQueue;
  graph: GraphClient;
  pages: PageDirectory;
  inbox: Inbox;
  clock: Clock;
  timers?: Timers; // for the timeout and pause deadlines (default: real timers)
  log: Logger;
  metrics: Registry;
}

/** Recently returned threads remembered (for stale events), and erased users. */
const RECENT = 10_000;
/** How far Meta's clock and ours may disagree, for events about our own passes and takes. */
const OWN_SKEW_MS = 2_000;

export class Threads {
  readonly #endpoints: ReadonlyMap<string, EndpointSettings>;
  readonly #store: ThreadStore;
  readonly #deadlines: ThreadDeadlines;
  readonly #calls: ThreadCalls;
  /** Threads not in state bot, by user. */
  readonly #open = new Map<string, { key: UserKey; state: ThreadState }>();
  /**
   * The time of the last Meta event that changed each thread (user → Meta's timestamp): an
   * event older than that is stale. Only Meta's times are compared with each other; our own
   * actions are not in this map (our clock and Meta's need not agree to the millisecond).
   */
  readonly #eventAt = new Map<string, number>();
  /**
   * When we last passed or took the thread ourselves (our clock). A user event that Meta stamped
   * before that (within OWN_SKEW_MS for the clocks) was routed by the owner before our change.
   */
  readonly #ownAt = new Map<string, number>();
  /** Users erased (user → time): a transition that started before is not written. */
  readonly #erasedAt = new Map<string, number>();
  readonly #releaseListeners: ((key: UserKey) => void)[] = [];
  readonly #leftListeners: ((key: UserKey) => void)[] = [];
  readonly #changeListeners: ((key: UserKey, floor: Floor) => void)[] = [];
  readonly #events;

  constructor(private readonly deps: ThreadsDeps) {
    this.#endpoints = deps.endpoints ?? new Map(deps.config.endpoints.map((e) => [e.id, e]));
    this.#store = new ThreadStore(deps.database, deps.writes);
    this.#deadlines = new ThreadDeadlines(
      { clock: deps.clock, timers: deps.timers ?? realTimers, timeoutMinutes: (endpointId) => this.#endpoints.get(endpointId)?.handover.timeout_minutes ?? 0 },
      {
        current: (key) => this.current(key),
        pauseOver: (key) => void this.returned(key, "resumed").catch((error) => this.#log(key).error("could not end a pause", { error })),
        takeDue: (key) => void this.take(key, "timeout").catch((error) => this.#log(key).error("could not take the thread back", { error })),
      },
    );
    this.#calls = new ThreadCalls({
      graph: deps.graph,
      pages: deps.pages,
      clock: deps.clock,
      threads: this,
      takeAt: (key, state) => this.#deadlines.takeAt(key, state),
      log: (key) => this.#log(key),
    });
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

  /** Reads the threads the bot does not own (of the users this instance runs) and arms their deadlines. */
  async load(owns: (key: UserKey) => boolean = () => true): Promise<void> {
    await this.gained(owns);
    // When the latest threads came back: a redelivered event from before that stays stale.
    for (const { key, since } of await this.#store.recentlyReturned(RECENT)) setNewest(this.#eventAt, userKeyId(key), since, RECENT);
  }

  stop(): void {
    this.#deadlines.stop();
  }

  /** Scale-out: these users are this instance's (again): their threads are read afresh. */
  async gained(test: (key: UserKey) => boolean): Promise<void> {
    this.lost(test);
    const open = (await this.#store.open()).filter(({ key }) => test(key));
    for (const { key, state } of open) this.#open.set(userKeyId(key), { key, state });
    for (const { key, state } of open) this.#deadlines.arm(key, state);
  }

  /** Scale-out: these users went to another instance: their threads and deadlines are its now. */
  lost(test: (key: UserKey) => boolean): void {
    const going = [...this.#open].filter(([, { key }]) => test(key));
    for (const [id, { key }] of going) this.#open.delete(id) && this.#deadlines.cancel(key);
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
    return threadCounts(this.#open.values());
  }

  /** The thread as the admin API shows it (a user never handed over: bot). */
  async view(key: UserKey): Promise<ThreadView> {
    const stored = await this.#store.read(key);
    return threadView(key, this.floor(key), stored, stored ? this.#deadlines.takeAt(key, stored) : null);
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
    const state: ThreadState = {
      state: "handover",
      ownerAppId,
      metadata,
      since,
      lastHumanAt: options.lastHumanAt ?? null,
      pausedUntil: null,
      lastError: null,
      retryAt: null,
    };
    if (!(await this.#set(key, state, options))) return false;
    if (!options.byLane) for (const listener of this.#leftListeners) listener(key);
    this.#events.inc({ endpoint: key.endpointId, event });
    this.#log(key).info(
      event === "passed"
        ? "thread passed to another app; the bot is silent for this user until it comes back"
        : "another app has the thread; the bot is silent for this user until it comes back",
      {
        owner_app_id: ownerAppId,
      },
    );
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
    this.#log(key).info(event === "resumed" ? "the bot answers this user again" : "the thread is back; the bot answers this user again", {
      was: previous.state,
    });
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
      await this.#set(
        key,
        { ...open, ownerAppId: open.ownerAppId ?? (standby ? appId : null), lastHumanAt: at, ...(retrying ? { retryAt: null, lastError: null } : {}) },
        { startedAt },
      );
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
    await this.#set(
      key,
      { state: "paused", ownerAppId: null, metadata: open?.metadata ?? null, since, lastHumanAt: at, pausedUntil: until, lastError: null, retryAt: null },
      { startedAt },
    );
    if (open?.state !== "paused") {
      this.#events.inc({ endpoint: key.endpointId, event: "paused" });
      this.#log(key).info(`a person answered from another app; the bot is paused for this user until ${new Date(until).toISOString()}`, { app_id: appId });
    }
  }

  /** The operator pauses the bot for this user (admin API). */
  async pause(key: UserKey, minutes: number): Promise<void> {
    const now = this.deps.clock.now();
    const open = this.current(key);
    await this.#set(key, {
      state: "paused",
      ownerAppId: null,
      metadata: open?.metadata ?? null,
      since: now,
      lastHumanAt: open?.lastHumanAt ?? null,
      pausedUntil: now + minutes * 60_000,
      lastError: null,
      retryAt: null,
    });
    this.#events.inc({ endpoint: key.endpointId, event: "paused" });
  }

  /** A handover call failed: kept on the row for the admin API (the state does not change). */
  async failed(key: UserKey, message: string, retryAt: number | null = null, startedAt?: number): Promise<void> {
    const open = this.current(key);
    const state: ThreadState = open
      ? { ...open, lastError: message, retryAt }
      : {
          state: "bot",
          ownerAppId: null,
          metadata: null,
          since: this.deps.clock.now(),
          lastHumanAt: null,
          pausedUntil: null,
          lastError: message,
          retryAt: null,
        };
    await this.#set(key, state, { startedAt });
    this.#events.inc({ endpoint: key.endpointId, event: "failed" });
  }

  /** Our `pass_thread_control` for the operator or a request honoured (calls.ts). */
  pass(key: UserKey, targetApp: string, metadata: string | null): Promise<CallFailure | null> {
    return this.#calls.pass(key, targetApp, metadata);
  }

  /** Our `take_thread_control`, on the timeout or for the operator (calls.ts). */
  take(key: UserKey, reason: "timeout" | "operator"): Promise<CallFailure | null> {
    return this.#calls.take(key, reason);
  }

  /** A reply lane's pass failed for good: the flow is told once (calls.ts). */
  passFailed(key: UserKey, targetApp: string, metadata: string | null, error: unknown): Promise<void> {
    return this.#calls.passFailed(key, targetApp, metadata, error);
  }

  /** Forgets an erased user (the rows are deleted with the rest of the user's data). */
  forgetUser(key: UserKey): void {
    const id = userKeyId(key);
    this.#open.delete(id);
    this.#eventAt.delete(id);
    this.#ownAt.delete(id);
    setNewest(this.#erasedAt, id, this.deps.clock.now(), RECENT);
    this.#deadlines.cancel(key);
  }

  // --- internals ------------------------------------------------------------------------

  /**
   * Stores the flow's `source: "handover"` turn as an inbox event (durable; it runs in the user's
   * lane). `unique` names what it ends, so that storing it again (after a crash) is a no-op;
   * `timestamp` places it in the lane (default now).
   */
  async storeOutcome(key: UserKey, outcome: HandoverOutcome, unique: string, timestamp = this.deps.clock.now(), request?: unknown): Promise<void> {
    await this.deps.inbox.store(key.endpointId, [outcomeEvent(key, outcome, unique, timestamp, request)]);
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
    this.#deadlines.arm(key, state);
    await this.#store.save(key, state, this.deps.clock.now(), options.extra);
    if (wasOpen && state.state === "bot") for (const listener of this.#releaseListeners) listener(key);
    if (wasOpen !== (state.state !== "bot") || state.state !== "bot") for (const listener of this.#changeListeners) listener(key, this.floor(key));
    return true;
  }

  #log(key: UserKey): Logger {
    return this.deps.log.child(userFields(key, this.#endpoints.get(key.endpointId)?.data_protection.mask_logging ?? false));
  }
}
