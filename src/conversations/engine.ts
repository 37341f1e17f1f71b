/**
 * The conversation engine: drains the inbox through the flows into the reply lanes.
 *
 * Inbound lanes: events are processed per user (UserKey) in Facebook's timestamp order, one turn
 * at a time per user, all users concurrently; a slow or hanging agent holds only its own user's
 * lane. Each user's work list is kept in memory (pending.ts), filled from the inbox at start and
 * by the inbox after each commit. What one event does is decided here (`#process`): a flow turn
 * (turn.ts), a handover event (control.ts), or a "done" mark for what is not for the flow.
 *
 * State events (echoes, deliveries, reads) never run the flow; they are applied as soon as they
 * are stored, outside the lanes (state-events.ts).
 */
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import { sleep, type Clock, type Timers } from "../core/clock.ts";
import { UserWorkers, type StepResult } from "../core/user-workers.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { Database } from "../db/client.ts";
import { isStorageError, type StorageHealth } from "../db/health.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { FlowRegistry } from "../flows/index.ts";
import type { HandoverEvent, Threads } from "../handover/threads.ts";
import type { StoredEvent } from "../inbox/inbox.ts";
import type { Logger } from "../log/logger.ts";
import { userFields } from "../log/mask.ts";
import type { Registry } from "../metrics/registry.ts";
import type { TurnTimings } from "../metrics/turn-timings.ts";
import type { Contacts } from "../people/contacts.ts";
import { transcriptInsert } from "../people/transcripts.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import type { Transformers } from "../transformers/transformers.ts";
import { HANDOVER_KINDS, STATE_KINDS, USER_INPUT_KINDS, isUnsent } from "../inbox/events.ts";
import { AppliedControlEvents } from "./control.ts";
import { RecentErasures } from "./erasures.ts";
import { inputFromEvent } from "./input.ts";
import { PendingEvents, type PendingEvent } from "./pending.ts";
import type { SessionStore } from "./sessions.ts";
import { StateEventQueue } from "./state-events.ts";
import { ConversationStore } from "./store.ts";
import { FlowTurns, ShutdownAbort } from "./turn.ts";
import type { TurnTranslation, TurnUnderstanding } from "./language.ts";
import { isFenced, soleOwner, type Ownership } from "../cluster/ownership.ts";
import { RecentIds } from "../core/recent-ids.ts";

/** admin/ stores injected inputs in this shape. */
export type { InjectedInput } from "./input.ts";

/** Our own failures with one event (not the flow's) before it is set aside as failed. */
const MAX_ATTEMPTS = 5;

export interface EngineDeps {
  config: Config;
  /** The endpoints now, and those a reload removed (config/live.ts `known`); by default those of `config`. */
  endpoints?: ReadonlyMap<string, EndpointSettings>;
  database: Database;
  writes: WriteQueue;
  flows: FlowRegistry;
  replies: ReplyLanes;
  clock: Clock;
  /** For the retry pauses, the flows' time limit and the stop's grace. */
  timers: Timers;
  log: Logger;
  metrics: Registry;
  /** This database's install id: echoes stamped with another one are not ours (replies/outbox.ts). */
  installId: string;
  sessions: SessionStore;
  contacts: Contacts;
  /** The operator's transformer functions (transformers/), when any endpoint has them. */
  transformers?: Transformers;
  /** Who has the floor per user (handover/): while not the bot, user inputs are recorded, not run. */
  threads?: Threads;
  /** Whether the database takes writes: while it does not, no turn starts (db/health.ts). */
  health?: StorageHealth;
  /** The NLU connectors (src/nlu/), handed to the turns. */
  understanding?: TurnUnderstanding;
  /** Real-time translation (translation/), when an endpoint has it: the turns use it. */
  translation?: TurnTranslation;
  /** Whose turns this instance runs (cluster/): everyone's, unless `[cluster] enabled`. */
  ownership?: Ownership;
  /** Each step of a turn (metrics/turn-timings.ts). */
  timings?: TurnTimings;
}

export class ConversationEngine {
  readonly #endpoints: ReadonlyMap<string, EndpointSettings>;
  readonly #store: ConversationStore;
  readonly #inboundLanes = new UserWorkers((key) => this.#step(key));
  /** The users' pending events, in their order: the inbound lanes' work list (pending.ts). */
  readonly #pending = new PendingEvents();
  /** Aborted at the stop: retry pauses end, a turn waiting for the database gives up. */
  readonly #stopping = new AbortController();
  readonly #erasures = new RecentErasures();
  readonly #turns: FlowTurns;
  readonly #stateEvents: StateEventQueue;
  readonly #controls: AppliedControlEvents;
  /** Until start() has scanned the inbox, new events wait in `#early` (and in the inbox). */
  #started = false;
  #early: { endpointId: string; events: StoredEvent[] }[] = [];
  readonly #ownership: Ownership;
  /** Scale-out: the newest inbox row looked at (pickUp), and the rows this instance already took. */
  #cursor = 0;
  readonly #taken = new RecentIds(100_000);
  readonly #pickupSeconds;
  readonly #noticeListeners: ((kind: "erased" | "thread_changed", key: UserKey) => void)[] = [];

  constructor(private readonly deps: EngineDeps) {
    const { config, database, clock } = deps;
    this.#endpoints = deps.endpoints ?? new Map(config.endpoints.map((e) => [e.id, e]));
    this.#ownership = deps.ownership ?? soleOwner;
    this.#store = new ConversationStore(database, clock, config.secrets, this.#ownership);
    this.#pickupSeconds = deps.metrics.histogram(
      "messenger_cluster_pickup_seconds",
      "With several instances: from an event stored by another instance to its owner taking it up (docs/scale-out.md).",
    );
    this.#turns = new FlowTurns({ ...deps, store: this.#store, erasures: this.#erasures, stopping: this.#stopping.signal });
    this.#stateEvents = new StateEventQueue({ ...deps, endpoints: this.#endpoints, store: this.#store, erasures: this.#erasures });
    this.#controls = new AppliedControlEvents(deps.threads);
  }

  /** Picks up what was stored and not finished before this start. */
  async start(): Promise<void> {
    // Events the inbox commits while the scans below run wait in #early; no lane runs before
    // both are merged, so an event seen by both is queued once (by its row) and run once.
    // With several instances, rows stored after this point are found by pickUp().
    if (this.#ownership.clustered) this.#cursor = await this.#store.maxInboxId();
    const owned = this.#ownedKnown();
    const state = (await this.#store.pendingStateEvents()).filter((e) => this.#endpoints.has(e.key.endpointId) && owned(e.key, e.inboxId));
    // Everything else that was stored and not finished, into the users' work lists.
    const waiting = (await this.#store.pendingInboundEvents()).filter((e) => this.#endpoints.has(e.key.endpointId) && owned(e.key, e.event.id));
    for (const { key, event } of waiting) this.#pending.add(key, event);
    // State updates are idempotent: an event in both the scan and #early may be applied twice.
    this.#started = true;
    this.#stateEvents.add(state);
    for (const { endpointId, events } of this.#early.splice(0)) this.accept(endpointId, events);
    for (const { key } of waiting) this.notify(key);
  }

  /**
   * Scale-out: takes up the pending rows other instances stored since the last look, for the users
   * this instance owns (the owner learns of them here; `[cluster] poll_ms`).
   */
  async pickUp(): Promise<void> {
    if (!this.#started) return;
    const upTo = await this.#store.maxInboxId();
    if (upTo <= this.#cursor) return;
    const rows = await this.#store.pendingBetween(this.#cursor, upTo);
    this.#cursor = upTo;
    const now = this.deps.clock.now();
    const owned = this.#ownedKnown();
    for (const row of rows) {
      if (!this.#endpoints.has(row.key.endpointId) || !owned(row.key, row.event.id)) continue;
      this.#pickupSeconds.observe({}, Math.max(0, now - (row.receivedAt ?? now)) / 1000);
      this.#takeUp(row.key, row.event);
    }
  }

  /** This instance took these users' partitions: their pending events join its work lists. */
  async gained(test: (key: UserKey) => boolean): Promise<void> {
    if (!this.#started) return;
    // Not filtered by what was taken before: these users' work lists were emptied when they went.
    const picks = (key: UserKey) => this.#endpoints.has(key.endpointId) && test(key) && this.#ownership.owns(key);
    for (const e of await this.#store.pendingStateEvents()) if (picks(e.key)) this.#takeUp(e.key, { ...e, id: e.inboxId, timestamp: 0, attempts: 0 });
    for (const { key, event } of await this.#store.pendingInboundEvents()) if (picks(key)) this.#takeUp(key, event);
  }

  /** Called when another instance erased a person this instance runs, or changed their thread (notices.ts). */
  onNotice(listener: (kind: "erased" | "thread_changed", key: UserKey) => void): void {
    this.#noticeListeners.push(listener);
  }

  /** These users' partitions went to another instance: their events are its to run. */
  lost(test: (key: UserKey) => boolean): void {
    this.#pending.dropWhere(test);
  }

  /** Owned and not taken yet by this instance (a row it has taken is remembered, so it runs once). */
  #ownedKnown(): (key: UserKey, id: number) => boolean {
    return (key, id) => this.#ownership.owns(key) && !this.#taken.has(id);
  }

  /** A pending row found in the database: applied (state events) or queued in its user's lane. */
  #takeUp(key: UserKey, event: PendingEvent): void {
    this.#taken.add(event.id);
    if (event.kind === "erased" || event.kind === "thread_changed") {
      // Another instance changed what this one holds of the person (notices.ts).
      for (const listener of this.#noticeListeners) listener(event.kind, key);
      void this.deps.writes
        .run([this.#store.done(event.id, null)], { durable: false })
        .catch((error) => this.deps.log.warn("could not mark an erasure notice done; it is read again at the next start", { error }));
      return;
    }
    if (STATE_KINDS.has(event.kind)) {
      this.#stateEvents.add([{ key, kind: event.kind, standby: event.standby, item: event.item, inboxId: event.id }]);
      return;
    }
    const endpoint = this.#endpoints.get(key.endpointId);
    if (endpoint && HANDOVER_KINDS.has(event.kind)) this.#controls.onArrival(endpoint, key, event, this.#log(key, endpoint));
    this.#pending.add(key, event);
    this.notify(key);
  }

  /** The inbox committed these events: apply state events, queue the others in their users' lanes. */
  accept(endpointId: string, events: StoredEvent[]): void {
    if (!this.#started) {
      this.#early.push({ endpointId, events });
      return;
    }
    if (this.#ownership.clustered) {
      // Another instance's users are its to run (it finds the rows with pickUp). A row this
      // instance's poller or a lane's look (#stillOwned) took up while the commit waited for its
      // fsync is queued already, and may be done: not again.
      events = events.filter((e) => this.#ownership.owns({ endpointId, pageId: e.pageId, userId: e.userId }) && !this.#taken.has(e.inboxId));
      for (const e of events) this.#taken.add(e.inboxId);
    }
    const state = events.filter((e) => STATE_KINDS.has(e.kind));
    if (state.length > 0) {
      const key = (e: StoredEvent) => ({ endpointId, pageId: e.pageId, userId: e.userId });
      this.#stateEvents.add(state.map((e) => ({ key: key(e), kind: e.kind, standby: e.standby, item: e.item, inboxId: e.inboxId })));
    }
    for (const e of events) {
      if (STATE_KINDS.has(e.kind)) continue;
      const key = { endpointId, pageId: e.pageId, userId: e.userId };
      const event: PendingEvent = { id: e.inboxId, kind: e.kind, standby: e.standby, timestamp: e.timestamp, item: e.item, attempts: 0 };
      const endpoint = this.#endpoints.get(endpointId);
      if (endpoint && HANDOVER_KINDS.has(e.kind)) this.#controls.onArrival(endpoint, key, event, this.#log(key, endpoint));
      this.#pending.add(key, event);
      this.notify(key);
    }
  }

  notify(key: UserKey): void {
    if (this.#started) this.#inboundLanes.notify(key);
  }

  /**
   * Stops taking turns. Turns in progress get `graceMs` to finish; after that their flows are
   * abandoned and their events stay pending, to run again after the restart.
   */
  async stop(graceMs = 10_000): Promise<void> {
    const all = this.#inboundLanes.stop();
    this.#stopping.abort();
    let cancelGrace = () => {};
    const timedOut = new Promise<"timeout">((resolve) => (cancelGrace = this.deps.timers.after(graceMs, () => resolve("timeout"))));
    if ((await Promise.race([all, timedOut])) === "timeout") {
      this.#turns.abandon();
      await all;
    }
    cancelGrace();
    await this.#stateEvents.idle();
  }

  /** Events stored and not yet processed, per endpoint (for /api/endpoints). */
  async pendingByEndpoint(): Promise<Map<string, number>> {
    return this.#pending.countByEndpoint();
  }

  /**
   * The person's pending events are gone (erased): forget them, and keep a turn in progress from
   * writing anything of theirs when it ends.
   */
  forgetUser(key: UserKey): void {
    this.#pending.drop(key);
    this.#controls.forgetUser(key);
    this.#erasures.add(key);
  }

  /** One event of this user's inbound lane: the oldest pending one by Facebook's timestamp. */
  async #step(key: UserKey): Promise<StepResult> {
    const health = this.deps.health;
    // While the database refuses writes no turn starts: its outcome could not be stored.
    if (health && !health.healthy && !(await health.waitHealthy())) return "idle";
    if (this.#ownership.clustered && !(await this.#stillOwned(key))) return "idle";
    const { event, more } = this.#pending.next(key);
    if (!event) return "idle";
    const log = this.#log(key, this.#endpoints.get(key.endpointId));
    try {
      await this.#process(event, key, log);
    } catch (error) {
      if (error instanceof ShutdownAbort) return "idle"; // left pending for the restart
      if (isFenced(error)) {
        // The partition moved to another instance, or the event was finished there: nothing of
        // this turn was committed, and it is not this instance's to run again.
        log.info("a turn was not committed: its user's partition moved to another instance, or the event was finished there", { inbox_id: event.id });
        this.#pending.remove(key, event.id);
        // Finished by an earlier try whose answer was lost: its replies are in the database, not yet in the lane.
        if (!this.#ownership.clustered && this.#ownership.owns(key)) void this.deps.replies.gained((k) => userKeyId(k) === userKeyId(key));
        return "more";
      }
      if (isStorageError(error)) {
        // Not the event's fault, and nothing of it was committed: not counted as an attempt. The
        // lanes wait until writes work again (db/health.ts logs it, at a bounded rate).
        health?.failed(error);
        log.debug("an event waits for the database", { inbox_id: event.id });
        return (await (health?.waitHealthy() ?? this.#pause(1_000).then(() => true))) ? "more" : "idle";
      }
      if (await this.#recordFailure(event, error, log)) this.#pending.remove(key, event.id);
      return "more";
    }
    this.#pending.remove(key, event.id); // its "done" mark is committed
    return more ? "more" : "idle";
  }

  /**
   * Scale-out, before each step: whether this instance still runs the user, and the user's events
   * other instances stored meanwhile (so that the order is the user's, whichever instance got
   * which message).
   */
  async #stillOwned(key: UserKey): Promise<boolean> {
    if (!this.#ownership.owns(key)) {
      this.#pending.drop(key);
      return false;
    }
    for (const { event } of await this.#store.pendingOfUser(key)) {
      this.#taken.add(event.id);
      this.#pending.add(key, event);
    }
    return true;
  }

  /** What one event does: a flow turn, a handover event applied, or only its "done" mark. */
  async #process(row: PendingEvent, key: UserKey, log: Logger): Promise<void> {
    const { threads, replies, writes } = this.deps;
    const endpoint = this.#endpoints.get(key.endpointId);
    if (endpoint && HANDOVER_KINDS.has(row.kind)) {
      await this.#controls.inLane(endpoint, key, row, log);
      await writes.run(this.#store.finish(key, row.id, null), { durable: false });
      return;
    }
    if (endpoint && row.kind === "handover") {
      const outcome = (row.item as unknown as HandoverEvent).handover;
      if (outcome.status !== "error" && threads?.floor(key) === "handover") {
        // The thread left again before this turn ran (a take right after the "Done"): not now.
        log.info(`the thread came back (${outcome.status}) and left again before the flow heard it; the flow is not run`);
        await writes.run(this.#store.finish(key, row.id, null), { durable: false });
        return;
      }
      return this.#turns.run(row, key, endpoint, log, outcome);
    }
    // A message the user unsent has nothing for the flow (its text is gone): recorded as done below.
    const userInput = USER_INPUT_KINDS.has(row.kind) && !isUnsent(row.item);
    // messaging[] / standby[] say who owns the thread, whatever we recorded (Meta returns threads
    // without telling, and hands them on): the thread state follows them.
    const back = userInput && endpoint ? await threads?.userSpoke(key, row.timestamp, row.standby) : null;
    // While another app owns the thread (standby, or our own record of it) or a person's reply
    // paused the bot, what the user says is kept in the transcript and the flow is not run; so too
    // once the flow asked for a handover that waits in the reply lane behind its last outputs
    // (what the user says then is for the people the conversation is going to).
    const held = userInput && (row.standby || threads?.holds(key) === true || replies.passWaiting(key));
    if (endpoint && back) {
      // The thread came back without a pass_thread_control: the flow hears it with this message.
      log.info("the user writes in messaging[]: the thread is ours again (Meta gave it back without a pass_thread_control)");
      return this.#turns.run(row, key, endpoint, log, undefined, {
        status: "completed",
        metadata: back.metadata,
        owner_app_id: back.ownerAppId,
        since: new Date(back.since).toISOString(),
      });
    }
    if (endpoint && (row.kind === "inject" || (userInput && !held))) return this.#turns.run(row, key, endpoint, log);
    // Not for the flow: reactions, edits, app_roles ... (or an endpoint removed from the
    // settings). Recorded as done.
    const statements = this.#store.finish(key, row.id, null);
    if (endpoint && held && endpoint.data_protection.collect_conversations) statements.push(await this.#heldTranscript(row, key, endpoint));
    await writes.run(statements, { durable: false });
  }

  /** A user input the flow did not get (another app or a person had the floor), for the transcript. */
  async #heldTranscript(row: PendingEvent, key: UserKey, endpoint: EndpointSettings) {
    const now = this.deps.clock.now();
    const session = await this.deps.sessions.current(key, now, endpoint.session.expiration_minutes);
    const input = inputFromEvent(row.item, {
      ...key,
      sessionId: session.id,
      contactId: null,
      context: {},
      contact: {},
      locale: endpoint.locale,
      source: "user",
    });
    const { request: _raw, ...data } = input.data;
    return transcriptInsert(
      key,
      null,
      session.isNew ? null : session.id,
      [{ direction: "in", source: row.standby ? "standby" : "held", text: input.text, data }],
      now,
      { hideExternalReferences: endpoint.data_protection.hide_external_references },
    );
  }

  /**
   * Our own failure (not the flow's): try the event again a few times, then set it aside.
   * Returns true when the event was set aside.
   */
  async #recordFailure(row: PendingEvent, error: unknown, log: Logger): Promise<boolean> {
    const attempts = row.attempts + 1;
    const giveUp = attempts >= MAX_ATTEMPTS;
    log.error(giveUp ? `could not process an event after ${attempts} attempts; it is set aside as failed` : "could not process an event; retrying", {
      error,
      inbox_id: row.id,
    });
    row.attempts = attempts; // counted in memory too: a failing record must not make the tries endless
    try {
      await this.deps.writes.run([this.#store.attemptFailed(row.id, attempts, (error as Error)?.message ?? String(error), giveUp)]);
    } catch (recordError) {
      // The event stays pending in the inbox. Given up, it leaves the work list all the same (the
      // next start tries it again); otherwise it is tried again after the usual pause.
      log.error("could not record the failure of an event", { error: recordError, inbox_id: row.id });
    }
    if (!giveUp) await this.#pause(200 * 2 ** attempts);
    return giveUp;
  }

  /** Waits `ms`, or less when the engine stops (a stop must not wait for a retry's pause). */
  #pause(ms: number): Promise<boolean> {
    return sleep(this.deps.timers, ms, this.#stopping.signal);
  }

  #log(key: UserKey, endpoint: EndpointSettings | undefined): Logger {
    return this.deps.log.child(userFields(key, endpoint?.data_protection.mask_logging ?? false));
  }
}
