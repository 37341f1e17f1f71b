/**
 * The reply lanes: one durable, ordered lane per (endpoint, Page, user) for everything sent to
 * that user (docs/reply-lanes.md). Lanes of different users run concurrently; within a lane one
 * item at a time, in `id` order. This file is the lane loop: what the head item needs now (a wait,
 * its outcome stored, a send), the waits, and stopping. The parts:
 *
 *   delivery.ts   one item: typing, delay, the "sending" mark, the Send API call
 *   failures.ts   retry (head-of-line, with backoff), drop, pause the Page, the echo wait
 *   outcomes.ts   what became of an item, stored on its row
 *   control.ts    a flow's handover (a "control" item), passed once everything before it is sent
 *   echo-proof.ts whether echoes of our sends are known to arrive for a Page
 *   open-items.ts each lane's open items, in order; store.ts the SQL
 *
 * Handover (handover/threads.ts): while another app owns the thread, or a person's reply paused
 * the bot, the lane holds everything (nothing is sent into a thread we do not own) and is woken
 * when the bot has the floor again.
 *
 * Crash safety: an item is marked "sending" (committed) before the Send API call and "sent"
 * after it. An item found "sending" at start was interrupted between the two: its echo (each send
 * carries `metadata` = "me:<install>:<id>") tells whether Facebook got it. The lane waits
 * `echoGraceMs` after start for that echo, and sends again only if none came.
 */
import type { InStatement } from "@libsql/client";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import { isStorageError, type StorageHealth } from "../db/health.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { realTimers, type Clock, type Timers } from "../core/clock.ts";
import { UserWorkers, type StepResult } from "../core/user-workers.ts";
import { isUserRef, userKeyId, type UserKey } from "../core/user-key.ts";
import type { Logger } from "../log/logger.ts";
import { userFields } from "../log/mask.ts";
import type { Registry } from "../metrics/registry.ts";
import type { TurnTimings } from "../metrics/turn-timings.ts";
import type { GraphClient } from "../messenger/graph.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import type { Threads } from "../handover/threads.ts";
import { ControlItems } from "./control.ts";
import { Delivery } from "./delivery.ts";
import { EchoProof } from "./echo-proof.ts";
import { SendFailures } from "./failures.ts";
import { OpenItems } from "./open-items.ts";
import type { OutboxItem } from "./outbox.ts";
import { Outcomes, type Settled } from "./outcomes.ts";
import { ReplyStore } from "./store.ts";
import { isFenced, soleOwner, type Ownership } from "../cluster/ownership.ts";
import { RecentIds } from "../core/recent-ids.ts";

export interface ReplyLanesDeps {
  config: Config;
  /** The endpoints now, and those a reload removed (config/live.ts `known`); by default those of `config`. */
  endpoints?: ReadonlyMap<string, EndpointSettings>;
  database: Database;
  writes: WriteQueue;
  graph: GraphClient;
  pages: PageDirectory;
  clock: Clock;
  /** For the delays, the retries' backoff and the echo waits (default: real timers). */
  timers?: Timers;
  log: Logger;
  metrics: Registry;
  /** How long after start to wait for the echo of an interrupted send before sending again. */
  echoGraceMs?: number;
  /** First retry delay; doubles per attempt up to `[graph] max_retry_delay_ms`. */
  minRetryDelayMs?: number;
  /** This database's install id, part of every message's `metadata` stamp (outbox.ts). */
  installId: string;
  /** Who has the floor per user: the lane holds while it is not the bot. */
  threads?: Threads;
  /** Whether the database takes writes: while it does not, the lanes wait (db/health.ts). */
  health?: StorageHealth;
  /** The statement that counts a message given up in the day's analytics (committed with its outcome). */
  failedSendCount?: (endpointId: string, at: number) => InStatement;
  /** Whose lanes this instance runs (cluster/): everyone's, unless `[cluster] enabled`. */
  ownership?: Ownership;
  /** Each step of a turn (metrics/turn-timings.ts): the first message's send. */
  timings?: TurnTimings;
}

export class ReplyLanes {
  readonly #endpoints: ReadonlyMap<string, EndpointSettings>;
  readonly #workers = new UserWorkers((key) => this.#step(key));
  readonly #timers: Timers;
  readonly #echoGraceMs: number;
  readonly #store: ReplyStore;
  readonly #items = new OpenItems();
  readonly #echoes: EchoProof;
  readonly #outcomes: Outcomes;
  readonly #failures: SendFailures;
  readonly #control: ControlItems;
  readonly #delivery: Delivery;
  /** The lanes' waits (delays, backoff, echo waits), each ended at once by the stop. */
  readonly #waits = new Set<(value: boolean) => void>();
  /** Lanes waiting for an echo (or its time), by user: an echo ends the wait early. */
  readonly #echoWaits = new Map<string, () => void>();
  #stopped = false;
  #startedAt = 0;
  readonly #ownership: Ownership;
  /** Scale-out: the newest outbox row looked at (pickUp), and the items this instance already took. */
  #cursor = 0;
  readonly #taken = new RecentIds(100_000);

  constructor(private readonly deps: ReplyLanesDeps) {
    this.#endpoints = deps.endpoints ?? new Map(deps.config.endpoints.map((e) => [e.id, e]));
    this.#timers = deps.timers ?? realTimers;
    this.#echoGraceMs = deps.echoGraceMs ?? 5_000;
    const sends = deps.metrics.counter("messenger_sends_total", "Send API calls for reply lane items by endpoint and result.");
    const sendSeconds = deps.metrics.histogram("messenger_send_seconds", "Send API call latency.");
    const depth = deps.metrics.gauge("messenger_reply_queue_depth", "Items waiting in reply lanes, by endpoint.");
    deps.metrics.onCollect(async () => {
      const counts = await this.queueDepth();
      for (const endpoint of this.#endpoints.keys()) depth.set({ endpoint }, counts.get(endpoint) ?? 0);
    });

    const { config, clock, pages, graph, threads } = deps;
    const ownership = (this.#ownership = deps.ownership ?? soleOwner);
    const store = (this.#store = new ReplyStore(deps.database, deps.writes, ownership));
    this.#echoes = new EchoProof(clock, store);
    const outcomes = (this.#outcomes = new Outcomes({ config, endpoints: this.#endpoints, store, clock, sends, failedSendCount: deps.failedSendCount }));
    this.#failures = new SendFailures({
      config,
      store,
      outcomes,
      pages,
      clock,
      echoes: this.#echoes,
      health: deps.health,
      sends,
      minRetryDelayMs: deps.minRetryDelayMs ?? 1_000,
      echoGraceMs: this.#echoGraceMs,
      givenUp: (item, key, error) => this.#control.givenUp(item, key, error),
    });
    this.#control = new ControlItems({ graph, pages, clock, threads, store, items: this.#items }, this.#failures);
    this.#delivery = new Delivery({
      endpoints: this.#endpoints,
      graph,
      pages,
      clock,
      threads,
      installId: deps.installId,
      store,
      outcomes,
      failures: this.#failures,
      control: this.#control,
      sends,
      sendSeconds,
      sleep: (ms) => this.#sleep(ms),
      ownsNow: (key) => ownership.ownsNow(key),
      timings: deps.timings,
      synced: () => deps.writes.synced(),
    });

    pages.onResume((endpointId, pageId) => this.#resumePage(endpointId, pageId));
    threads?.onRelease((key) => this.#workers.notify(key));
    threads?.onLeft((key) => void this.#control.supersede(key).catch((error) => deps.log.error("could not drop a superseded handover", { error })));
  }

  /** Resumes every lane with open items (after a restart) and starts taking work. */
  async start(): Promise<void> {
    this.#startedAt = this.deps.clock.now(); // the Pages' pauses are loaded first (app.ts)
    await this.#echoes.load();
    // With several instances, rows stored after this point are found by pickUp().
    if (this.#ownership.clustered) this.#cursor = await this.#store.maxOutboxId();
    this.#takeUp(await this.#store.openItems(), () => true, false);
  }

  /**
   * Scale-out: takes up the open items other instances stored since the last look (an operator's
   * notify sent to another instance), for the users this instance owns.
   */
  async pickUp(): Promise<void> {
    if (this.#startedAt === 0 || this.#stopped) return;
    const upTo = await this.#store.maxOutboxId();
    if (upTo <= this.#cursor) return;
    const open = await this.#store.openItemsBetween(this.#cursor, upTo);
    this.#cursor = upTo;
    this.#takeUp(open, () => true, true);
  }

  /**
   * This instance took these users' partitions: their open items join its lanes. One found
   * "sending" was interrupted at the instance that held it: its echo gets the usual time.
   */
  async gained(test: (key: UserKey) => boolean): Promise<void> {
    if (this.#startedAt === 0 || this.#stopped) return;
    this.#startedAt = this.deps.clock.now();
    // Not filtered by what was taken before: the lanes of these users were emptied when they went.
    this.#takeUp(await this.#store.openItems(), test, false);
  }

  /** These users' partitions went to another instance: their lanes are its to run. */
  lost(test: (key: UserKey) => boolean): void {
    for (const list of [...this.#items.lanes()]) {
      const head = list[0];
      if (head && test(head)) this.#items.forget(head);
    }
  }

  /** Open items read from the database, for the lanes of the users this instance owns and `test` picks. */
  #takeUp(open: { item: OutboxItem; unclear: boolean }[], test: (key: UserKey) => boolean, fresh: boolean): void {
    const items: OutboxItem[] = [];
    for (const { item, unclear } of open) {
      // An endpoint that is not in the settings keeps its items for when it comes back.
      if (!this.#endpoints.has(item.endpointId) || !test(item) || !this.#ownership.owns(item) || (fresh && this.#taken.has(item.id))) continue;
      // Marked unclear (store.ts markUnclear): its answer was unclear when the server stopped.
      if (unclear) item.unclearSince = this.#startedAt;
      items.push(item);
    }
    this.accept(items);
  }

  /** New items were committed (replies/outbox.ts enqueueReplies): add them to their lanes, in order, and run the lanes. */
  accept(items: OutboxItem[]): void {
    for (const item of items) {
      if (this.#ownership.clustered && this.#ownership.owns(item)) this.#taken.add(item.id);
      this.#items.add(item);
      this.#workers.notify({ endpointId: item.endpointId, pageId: item.pageId, userId: item.userId });
    }
  }

  /** The user's items are gone (an erasure): nothing more is sent (a send in flight ends). */
  forgetUser(key: UserKey): void {
    this.#items.forget(key);
  }

  /** Whether a handover the flow asked for (a "control" item) waits in this user's lane. */
  passWaiting(key: UserKey): boolean {
    return this.#items.of(key)?.some((i) => i.kind === "control") ?? false;
  }

  /** An echo of ours came back and the engine has committed its item as sent: a lane waiting for it goes on. */
  confirmed(key: UserKey, outboxId: number): void {
    const item = this.#items.of(key)?.find((i) => i.id === outboxId);
    if (!item) return;
    item.echoed = true;
    this.#echoWaits.get(userKeyId(key))?.(); // only waits for an echo register here
  }

  /**
   * An echo of ours came back for this endpoint and Page, so echoes reach it (echo-proof.ts). Returns
   * the statement that remembers it across restarts, at most once an hour (else null), to commit
   * with the echo.
   */
  ownEcho(endpointId: string, pageId: string): InStatement | null {
    return this.#echoes.ownEcho(endpointId, pageId);
  }

  /**
   * Whether a message queued now for this user would be sent at once, with nothing before it:
   * the lane is empty, the bot has the floor, the Page is not paused, no `message_delay_ms`, a
   * PSID, one instance on a local file. The turn then commits its first message already marked "sending"
   * (outbox.ts `markFirst`): the sync that covers the turn's commit is its mark (delivery.ts).
   */
  sendsAtOnce(key: UserKey, endpoint: EndpointSettings): boolean {
    // A local file only: a commit to a libSQL server may time out and still have gone through, and
    // the turn's retry must then find its reply pending, not seemingly interrupted (turn.ts #commit).
    const local = this.deps.database.durable !== undefined && !this.#ownership.clustered;
    const idle = local && this.#startedAt !== 0 && !this.#stopped && (this.#items.of(key)?.length ?? 0) === 0;
    const free = !this.deps.threads?.holds(key) && !this.deps.pages.isPaused(key.endpointId, key.pageId);
    return idle && free && endpoint.messenger.message_delay_ms === 0 && !isUserRef(key.userId);
  }

  /** Whether this item still waits in the user's lane: not sent, dropped or given up yet. */
  isOpen(key: UserKey, outboxId: number): boolean {
    return this.#items.of(key)?.some((i) => i.id === outboxId) ?? false;
  }

  /** Items waiting in this user's lane (held while another app or a person has the floor). */
  waiting(key: UserKey): number {
    return this.#items.of(key)?.length ?? 0;
  }

  /** Items waiting in open lanes, per endpoint (for /api/endpoints and the metrics). */
  queueDepth(): Promise<Map<string, number>> {
    return this.#store.queueDepth();
  }

  /** Lanes currently running (users with something to send). */
  get activeLanes(): number {
    return this.#workers.size;
  }

  /**
   * Stops: no new sends start, waiting lanes wake and end, a send in flight finishes and is
   * recorded. What is left stays in the database for the next start.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    const ended = this.#workers.stop(); // loops end after their current step
    for (const end of [...this.#waits]) end(false);
    await ended;
    // Sends Graph took whose outcome could not be stored (writes were failing): one more try, so
    // that the next start does not take them for interrupted sends and send them again.
    const taken = [...this.#items.lanes()].flatMap((list) => list.filter((i) => i.accepted && !i.echoed));
    for (const item of taken) {
      await this.#outcomes
        .recordAccepted(item, item)
        .catch((error) =>
          this.deps.log.warn(
            "the outcome of a message Graph took could not be stored before the stop; after the restart it counts as interrupted (sent again unless its echo comes)",
            { outbox_id: item.id, error },
          ),
        );
    }
    // Messages committed "sending" with their turn that no lane reached before the stop (store.ts `release`).
    for (const item of [...this.#items.lanes()].flatMap((list) => list.filter((i) => i.premarked))) {
      await this.#store.release(item).catch((error) => this.deps.log.warn("a message queued at the stop stays marked sending", { outbox_id: item.id, error }));
    }
  }

  /** One step of a user's lane: wait for the head item's time, or send it. */
  async #step(key: UserKey): Promise<StepResult> {
    const list = this.#items.of(key);
    const item = list?.[0];
    if (!item) return "idle";
    if (!this.#ownership.owns(key)) {
      this.#items.forget(key); // another instance runs this lane now
      return "idle";
    }
    const more = list!.length > 1;
    const log = this.deps.log.child(userFields(key, this.#endpoints.get(key.endpointId)?.data_protection.mask_logging ?? false));
    const health = this.deps.health;
    try {
      // While the database refuses writes nothing is sent: a send whose outcome cannot be stored
      // would be sent again.
      if (health && !health.healthy && !(await health.waitHealthy())) return "idle";
      const outcome = await this.#next(item, key, log);
      if (outcome === "idle") return "idle";
      // The head was the lane's only item and it is settled: no need to look again (a new item
      // notifies the lane, which then goes round once more).
      if (outcome === "settled") {
        this.#items.remove(key, item);
        if (!more) return "idle";
      }
    } catch (error) {
      if (isFenced(error)) {
        // The partition moved to another instance, or the item was finished there: not ours to send.
        log.info("a send was not started: its user's partition moved to another instance, or the item was finished there", { outbox_id: item.id });
        this.#items.remove(key, item);
        return "more";
      }
      if (isStorageError(error)) {
        // The database failed (db/health.ts logs it, at a bounded rate): wait until it takes
        // writes again. What Graph already took is kept in `item.accepted` and not sent again.
        health?.failed(error);
        log.debug("reply lane waits for the database", { outbox_id: item.id });
        return (await (health?.waitHealthy() ?? this.#sleep(1_000))) ? "more" : "idle";
      }
      // Our own failure, not Graph's: wait a little and look again.
      log.error("reply lane failed; retrying", { error, outbox_id: item.id });
      await this.#sleep(1_000);
    }
    return "more";
  }

  /** What the head item needs now: its outcome stored, a wait, or a send. */
  async #next(item: OutboxItem, key: UserKey, log: Logger): Promise<Settled | "idle"> {
    if (item.echoed) return "settled"; // its echo marked it sent meanwhile
    if (item.accepted) return this.#outcomes.recordAccepted(item, key); // Graph took it: only its outcome is left to store
    // A paused Page (resumed by onResume), or another app or a person has the floor (woken by
    // onRelease): the item waits, so one committed "sending" with its turn is pending again.
    if (this.deps.pages.isPaused(key.endpointId, key.pageId) || this.deps.threads?.holds(key)) {
      await this.#store.release(item);
      return "idle";
    }
    const now = this.deps.clock.now();
    if (item.echoWaitUntil !== undefined) {
      if (now < item.echoWaitUntil) {
        await this.#sleep(item.echoWaitUntil - now, key);
        return "open";
      }
      item.echoWaitUntil = undefined;
      return this.#failures.noEcho(item, key, log);
    }
    if (item.status === "sending" && !item.premarked) {
      // Interrupted between "sending" and "sent" before this start: give its echo time to arrive.
      const until = this.#startedAt + this.#echoGraceMs;
      if (now < until) {
        await this.#sleep(until - now, key);
        return "open";
      }
      if (item.unclearSince !== undefined) {
        // Its answer was unclear before the stop: the server was down since, so the echo may only
        // come with Facebook's later redeliveries. There is no telling: not sent again.
        return this.#failures.unconfirmed(item, key, log, "the answer was unclear before a restart, and no echo came");
      }
      log.warn("resending a message whose send was interrupted and whose echo did not arrive", { outbox_id: item.id });
    }
    if (item.nextAttemptAt !== null && item.nextAttemptAt > now) {
      await this.#sleep(item.nextAttemptAt - now);
      return "open";
    }
    return this.#delivery.deliver(item, key, log);
  }

  #resumePage(endpointId: string, pageId: string): void {
    for (const list of this.#items.lanes()) {
      const head = list[0];
      if (head && head.endpointId === endpointId && head.pageId === pageId) this.#workers.notify(head);
    }
  }

  /**
   * Resolves true after `ms`, or false at once when the lanes stop. With `echoOf`, an echo for
   * that lane (`confirmed`) ends the wait early (resolving true). (A set of waits rather than one
   * AbortSignal for the stop: thousands of lanes may wait at once, and a signal's listeners are
   * slow to add in such numbers.)
   */
  #sleep(ms: number, echoOf?: UserKey): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const lane = echoOf ? userKeyId(echoOf) : null;
      let cancel: (() => void) | undefined;
      const end = (value: boolean) => {
        cancel?.();
        this.#waits.delete(end);
        if (lane !== null && this.#echoWaits.get(lane) === early) this.#echoWaits.delete(lane);
        resolve(value);
      };
      const early = () => end(true);
      this.#waits.add(end);
      if (lane !== null) this.#echoWaits.set(lane, early);
      cancel = this.#timers.after(ms, () => end(true));
    });
  }
}
