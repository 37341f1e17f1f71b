/**
 * The reply lanes (SPEC §6): one durable, ordered lane per (endpoint, Page, user) for everything
 * sent to that user. Lanes of different users run concurrently; within a lane one item at a time,
 * in `id` order:
 *
 *   typing_on (typing_indicators) → message_delay_ms → mark "sending" → Send API → mark "sent"
 *
 * Failures are classified by Graph `error.code` (retry.ts). Retries are head-of-line: the failed
 * item is tried again, with capped exponential backoff, before anything after it. Window and
 * "user unavailable" errors drop the item and record why; an invalid token (190) pauses the Page.
 *
 * Handover (src/handover/threads.ts): while another app owns the thread, or a person's reply
 * paused the bot, the lane holds everything (nothing is sent into a thread we do not own) and is
 * woken when the bot has the floor again. A "control" item — a flow's handover — passes the thread
 * once everything queued before it is sent.
 *
 * Crash safety: an item is marked "sending" (committed) before the Send API call and "sent"
 * after it. An item found "sending" at start was interrupted between the two: its echo (each send
 * carries `metadata` = "me:<id>") tells whether Facebook got it. The lane waits `echoGraceMs`
 * after start for that echo, and sends again only if none came.
 */
import type { InStatement } from "@libsql/client";
import type { Config } from "../config/load.ts";
import { countStatement } from "../people/analytics.ts";
import { userFields } from "../log/mask.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import { numberOrNull } from "../db/statement.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../core/clock.ts";
import { UserWorkers, type StepResult } from "../core/user-workers.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { GraphApiError, type GraphClient } from "../messenger/graph.ts";
import { stampFor, type ControlBody, type OutboxItem } from "./outbox.ts";
import { recipientOf, userRefRefusal } from "./recipient.ts";
import type { Threads } from "../handover/threads.ts";
import { passThreadControl, threadOwner } from "../messenger/thread-control.ts";
import type { PageDirectory } from "../messenger/pages.ts";
import { backoffDelay, classifySendError, type SendFailure } from "../messenger/retry.ts";
import { isStorageError, type StorageHealth } from "../db/health.ts";
import { scrub } from "../log/scrub.ts";

export type { UserKey };

export interface ReplyLanesDeps {
  config: Config;
  database: Database;
  writes: WriteQueue;
  graph: GraphClient;
  pages: PageDirectory;
  clock: Clock;
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
}

type Settled = "settled" | "open";

// Per-message statements are plain SQL (no query building on the hot path), with the status
// values as literals so that SQLite uses the partial index over open items.
// An echo may have marked the item sent since the lane looked at it (a late answer, a send
// interrupted by a crash): then nothing is to be sent, and the guard makes that visible.
const MARK_SENDING_SQL =
  "UPDATE outbox SET status = 'sending', attempts = ?, first_attempt_at = ? WHERE id = ? AND status IN ('pending', 'sending')";
const MARK_SENT_SQL = "UPDATE outbox SET status = 'sent', message_id = ?, sent_at = ?, next_attempt_at = NULL WHERE id = ?";
// Both only touch an item that is still open: an echo that marked it sent wins over a late error.
const REOPEN_SQL = "UPDATE outbox SET status = 'pending', next_attempt_at = ?, last_error = ? WHERE id = ? AND status IN ('pending', 'sending')";
const FINISH_SQL = "UPDATE outbox SET status = ?, last_error = ?, next_attempt_at = NULL WHERE id = ? AND status IN ('pending', 'sending')";
// Graph took it, but whether the user has it is not known: its echo, if one comes, makes it sent.
const MARK_UNCONFIRMED_SQL =
  "UPDATE outbox SET status = 'unconfirmed', sent_at = ?, last_error = ?, next_attempt_at = NULL WHERE id = ? AND status IN ('pending', 'sending')";
// An unclear answer, while the lane waits for the echo: the row stays "sending", marked.
const MARK_UNCLEAR_SQL = "UPDATE outbox SET last_error = ? WHERE id = ? AND status = 'sending'";
/** How long an echo of ours counts as proof that this endpoint receives echoes (see #noEcho). */
const ECHOES_PROVEN_MS = 7 * 24 * 3_600_000;
/** Remembered in `meta` at most this often per endpoint. */
const ECHOES_RECORD_EVERY_MS = 3_600_000;

export class ReplyLanes {
  readonly #endpoints: Map<string, EndpointSettings>;
  readonly #workers = new UserWorkers((key) => this.#step(key));
  readonly #timers = new Set<{ timer: Timer; wake: () => void }>();
  readonly #echoGraceMs: number;
  readonly #minRetryDelayMs: number;
  readonly #sends;
  readonly #sendSeconds;
  #stopping = false;
  #startedAt = 0;
  /**
   * Each lane's open items in `id` order: the lanes' work list, so a send does not start with a
   * query. The table stays the truth: filled from it at start, and by `accept` after each commit
   * that adds items; an item leaves once its outcome is committed. If an echo marks an item sent
   * behind the list's back, the guarded "sending" mark finds it closed and nothing is sent.
   */
  readonly #open = new Map<string, OutboxItem[]>();
  /** Lanes sleeping until an echo (or its time) comes, by lane id: an echo wakes them early. */
  readonly #echoSleepers = new Map<string, () => void>();
  /** When an echo of ours last came back, per endpoint and Page, and when that was last stored. */
  readonly #echoSeen = new Map<string, { at: number; recorded: number }>();

  constructor(private readonly deps: ReplyLanesDeps) {
    this.#endpoints = new Map(deps.config.endpoints.map((e) => [e.id, e]));
    this.#echoGraceMs = deps.echoGraceMs ?? 5_000;
    this.#minRetryDelayMs = deps.minRetryDelayMs ?? 1_000;
    this.#sends = deps.metrics.counter("messenger_sends_total", "Send API calls for reply lane items by endpoint and result.");
    this.#sendSeconds = deps.metrics.histogram("messenger_send_seconds", "Send API call latency.");
    const depth = deps.metrics.gauge("messenger_reply_queue_depth", "Items waiting in reply lanes, by endpoint.");
    deps.metrics.onCollect(async () => {
      const counts = await this.queueDepth();
      for (const endpoint of this.#endpoints.keys()) depth.set({ endpoint }, counts.get(endpoint) ?? 0);
    });
    deps.pages.onResume((endpointId, pageId) => this.#resumePage(endpointId, pageId));
    deps.threads?.onRelease((key) => this.#workers.notify(key));
    deps.threads?.onLeft((key) => void this.#supersedePasses(key).catch((error) => deps.log.error("could not drop a superseded handover", { error })));
  }

  /** Resumes every lane with open items (after a restart) and starts taking work. */
  async start(): Promise<void> {
    this.#startedAt = this.deps.clock.now(); // the Pages' pauses are loaded first (app.ts)
    const seen = await this.deps.database.client.execute("SELECT key, value FROM meta WHERE key LIKE 'echoes_seen:%'");
    for (const r of seen.rows) {
      const at = Number(r[1]);
      // `echoes_seen:<endpoint>:<page>` (Page ids are digits, so the last ":" splits them).
      if (Number.isFinite(at)) this.#echoSeen.set(String(r[0]).slice("echoes_seen:".length), { at, recorded: at });
    }
    const rows = await this.deps.database.client.execute(
      "SELECT id, endpoint_id, page_id, user_id, kind, body, status, attempts, next_attempt_at, first_attempt_at, last_error FROM outbox " +
        "WHERE status IN ('pending', 'sending') ORDER BY id",
    );
    this.accept(
      rows.rows.map((r) => {
        const item: OutboxItem = {
          id: Number(r[0]),
          endpointId: String(r[1]),
          pageId: String(r[2]),
          userId: String(r[3]),
          kind: String(r[4]),
          body: String(r[5]),
          status: String(r[6]) as OutboxItem["status"],
          attempts: Number(r[7]),
          nextAttemptAt: numberOrNull(r[8]),
          firstAttemptAt: numberOrNull(r[9]),
        };
        // Marked by MARK_UNCLEAR_SQL: its answer was unclear when the server stopped.
        if (item.status === "sending" && typeof r[10] === "string" && r[10].includes('"unclear":true')) item.unclearSince = this.#startedAt;
        return item;
      }),
    );
  }

  /** New items were committed (replies/outbox.ts enqueueReplies): add them to their lanes, in order, and run the lanes. */
  accept(items: OutboxItem[]): void {
    for (const item of items) {
      const key = { endpointId: item.endpointId, pageId: item.pageId, userId: item.userId };
      const id = userKeyId(key);
      let list = this.#open.get(id);
      if (!list) this.#open.set(id, (list = []));
      if (!list.some((i) => i.id === item.id)) list.push(item);
      this.#workers.notify(key);
    }
  }

  /** The user's items are gone (an erasure): nothing more is sent (a send in flight ends). */
  forgetUser(key: UserKey): void {
    this.#open.delete(userKeyId(key));
  }

  /** Whether a handover the flow asked for (a "control" item) waits in this user's lane. */
  passWaiting(key: UserKey): boolean {
    return this.#open.get(userKeyId(key))?.some((i) => i.kind === "control") ?? false;
  }

  /** An echo of ours came back and the engine has committed its item as sent: a lane waiting for it goes on. */
  confirmed(key: UserKey, outboxId: number): void {
    const item = this.#open.get(userKeyId(key))?.find((i) => i.id === outboxId);
    if (!item) return;
    item.echoed = true;
    this.#echoSleepers.get(userKeyId(key))?.(); // only sleeps that wait for an echo register here
  }

  /**
   * An echo of ours came back for this endpoint and Page, so echoes reach it (see #noEcho). Returns the
   * statement that remembers it across restarts, at most once an hour (else null), to commit with
   * the echo.
   */
  ownEcho(endpointId: string, pageId: string): InStatement | null {
    const now = this.deps.clock.now();
    const page = `${endpointId}:${pageId}`;
    const seen = this.#echoSeen.get(page);
    const due = !seen || now - seen.recorded >= ECHOES_RECORD_EVERY_MS;
    this.#echoSeen.set(page, { at: now, recorded: due ? now : seen.recorded });
    if (!due) return null;
    return {
      sql: "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      args: [`echoes_seen:${page}`, String(now), now],
    };
  }

  /** Whether echoes of our sends are known to reach this endpoint for this Page (one came back lately). */
  #echoesArrive(key: UserKey): boolean {
    const seen = this.#echoSeen.get(`${key.endpointId}:${key.pageId}`);
    return seen !== undefined && this.deps.clock.now() - seen.at < ECHOES_PROVEN_MS;
  }

  /** Items waiting in this user's lane (held while another app or a person has the floor). */
  waiting(key: UserKey): number {
    return this.#open.get(userKeyId(key))?.length ?? 0;
  }

  /** Items waiting in open lanes, per endpoint (for /api/endpoints and the metrics). */
  async queueDepth(): Promise<Map<string, number>> {
    const rows = await this.deps.database.client.execute(
      "SELECT endpoint_id, count(*) FROM outbox WHERE status IN ('pending', 'sending') GROUP BY endpoint_id",
    );
    return new Map(rows.rows.map((r) => [String(r[0]), Number(r[1])]));
  }

  /** Lanes currently running (users with something to send). */
  get activeLanes(): number {
    return this.#workers.size;
  }

  /**
   * Stops: no new sends start, sleeping lanes wake and end, a send in flight finishes and is
   * recorded. What is left stays in the database for the next start.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    const ended = this.#workers.stop(); // loops end after their current step
    for (const t of this.#timers) {
      clearTimeout(t.timer);
      t.wake();
    }
    this.#timers.clear();
    await ended;
    // Sends Graph took whose outcome could not be stored (writes were failing): one more try, so
    // that the next start does not take them for interrupted sends and send them again.
    const taken = [...this.#open.values()].flatMap((list) => list.filter((i) => i.accepted && !i.echoed));
    for (const item of taken) {
      await this.#recordAccepted(item, item, this.deps.log).catch((error) =>
        this.deps.log.warn("the outcome of a message Graph took could not be stored before the stop; after the restart it counts as interrupted (sent again unless its echo comes)", { outbox_id: item.id, error }),
      );
    }
  }

  /** One step of a user's lane: wait for the head item's time, or send it. */
  async #step(key: UserKey): Promise<StepResult> {
    const list = this.#open.get(userKeyId(key));
    const item = list?.[0];
    if (!item) return "idle";
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
        this.#settled(key, item);
        if (!more) return "idle";
      }
    } catch (error) {
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
    if (item.accepted) return this.#recordAccepted(item, key, log); // Graph took it: only its outcome is left to store
    if (this.deps.pages.isPaused(key.endpointId, key.pageId)) return "idle"; // resumed by onResume
    if (this.deps.threads?.holds(key)) return "idle"; // another app or a person has the floor: woken by onRelease
    const now = this.deps.clock.now();
    if (item.echoWaitUntil !== undefined) {
      if (now < item.echoWaitUntil) {
        await this.#sleep(item.echoWaitUntil - now, key);
        return "open";
      }
      item.echoWaitUntil = undefined;
      return this.#noEcho(item, key, log);
    }
    if (item.status === "sending") {
      // Interrupted between "sending" and "sent" before this start: give its echo time to arrive.
      const until = this.#startedAt + this.#echoGraceMs;
      if (now < until) {
        await this.#sleep(until - now, key);
        return "open";
      }
      if (item.unclearSince !== undefined) {
        // Its answer was unclear before the stop: the server was down since, so the echo may only
        // come with Facebook's later redeliveries. There is no telling: not sent again.
        return this.#unconfirmed(item, key, log, "the answer was unclear before a restart, and no echo came");
      }
      log.warn("resending a message whose send was interrupted and whose echo did not arrive", { outbox_id: item.id });
    }
    if (item.nextAttemptAt !== null && item.nextAttemptAt > now) {
      await this.#sleep(item.nextAttemptAt - now);
      return "open";
    }
    return this.#deliver(item, key, log);
  }

  /** Sends the item; "settled" when it has left the lane (sent, dropped, given up), "open" when it stays. */
  async #deliver(item: OutboxItem, key: UserKey, log: Logger): Promise<Settled> {
    const endpoint = this.#endpoints.get(key.endpointId);
    const page = this.deps.pages.credentials(key.endpointId, key.pageId);
    if (!endpoint || !page) {
      await this.#finish(item, "failed", { reason: "the endpoint or Page is no longer in the settings" });
      return "settled";
    }
    const body = JSON.parse(item.body) as Record<string, unknown>;
    const recipient = recipientOf(key.userId);
    const refused = "user_ref" in recipient ? await userRefRefusal(this.deps.database.client, item) : null;
    if (refused) {
      this.#sends.inc({ endpoint: key.endpointId, result: "dropped" });
      log.warn(`${refused}: the item was dropped`, { outbox_id: item.id });
      await this.#finish(item, "dropped", { reason: refused });
      await this.#passGivenUp(item, key, new Error(refused));
      return "settled";
    }

    if (item.kind === "message") {
      if (endpoint.messenger.typing_indicators && !("user_ref" in recipient)) {
        try {
          await this.deps.graph.send(page, { recipient, sender_action: "typing_on" });
        } catch (error) {
          const failure = classifySendError(error);
          if (failure.action === "pause_page") {
            await this.deps.pages.pause(key.endpointId, key.pageId, failure.reason);
            return "open";
          }
          // A failed typing indicator is cosmetic; the message itself decides what happens next.
          log.debug("typing indicator failed", { error });
        }
      }
      const delay = endpoint.messenger.message_delay_ms;
      if (delay > 0 && !(await this.#sleep(delay))) return "open"; // stopping: the item stays pending
    }

    // The thread may have left us during the typing delay (another app took it, a person answered).
    if (this.deps.threads?.holds(key)) return "open";
    // Mark "sending" before the call, so a crash in between is recognised at the next start.
    const interrupted = item.status === "sending";
    const now = this.deps.clock.now();
    const [marked] = await this.deps.writes.run([{ sql: MARK_SENDING_SQL, args: [item.attempts + 1, item.firstAttemptAt ?? now, item.id] }]);
    if (marked!.rowsAffected === 0) return "settled"; // its echo arrived meanwhile: already sent
    item.status = "sending";
    item.attempts += 1;
    item.firstAttemptAt ??= now;

    if (item.kind === "control") return this.#passThread(item, key, body as unknown as ControlBody, log, interrupted);
    const payload: Record<string, unknown> = { recipient, ...body };
    if (item.kind === "message") payload.message = { ...(body.message as object), metadata: stampFor(this.deps.installId, item.id) };
    const started = performance.now();
    try {
      const result = await this.deps.graph.send(page, payload);
      this.#sendSeconds.observe({ endpoint: key.endpointId }, (performance.now() - started) / 1000);
      this.#sends.inc({ endpoint: key.endpointId, result: "sent" });
      item.accepted = { status: "sent", messageId: result.message_id ?? null };
      return this.#recordAccepted(item, key, log);
    } catch (error) {
      this.#sendSeconds.observe({ endpoint: key.endpointId }, (performance.now() - started) / 1000);
      return this.#failed(item, key, error, log);
    }
  }

  /**
   * Stores the outcome of a call Graph took. If this write fails (a full disk), the lane waits
   * and tries the write again — never the call: `item.accepted` stays set until it commits.
   */
  async #recordAccepted(item: OutboxItem, key: UserKey, _log: Logger): Promise<Settled> {
    const accepted = item.accepted!;
    const now = this.deps.clock.now();
    // No fsync of its own: the next "sending" mark's fsync covers it (RunOptions).
    const statement =
      accepted.status === "sent"
        ? { sql: MARK_SENT_SQL, args: [accepted.messageId, now, item.id] }
        : { sql: MARK_UNCONFIRMED_SQL, args: [now, this.#errorText(accepted.error ?? {}), item.id] };
    await this.deps.writes.run([statement], { durable: false });
    if (accepted.status === "unconfirmed") this.#sends.inc({ endpoint: key.endpointId, result: "unconfirmed" });
    return "settled";
  }

  /**
   * The last call's answer was unclear and no echo came in `[graph] resend_after_ms`. Where echoes
   * of our sends are known to arrive for this Page (one came back within the last week), and our
   * own webhook took every write meanwhile (a full disk answers Facebook's echo with a 500, and
   * its redelivery may come much later), no echo means Graph did not take it: it is tried again
   * like any passing failure. Otherwise there is no telling, and a message is sent twice rather
   * than not at all only when Graph certainly did not take it: it is marked "unconfirmed" (its
   * echo, if one comes later, still marks it sent).
   */
  async #noEcho(item: OutboxItem, key: UserKey, log: Logger): Promise<Settled> {
    const since = item.unclearSince ?? 0;
    const storageFailed = (this.deps.health?.lastFailureAt ?? 0) >= since;
    if (this.#echoesArrive(key) && !storageFailed) {
      return this.#failed(item, key, new Error("no echo came after an unclear answer"), log, { action: "retry", throttled: false, reason: "no echo after an unclear answer" });
    }
    if (storageFailed) return this.#unconfirmed(item, key, log, "writes to the database failed while its echo was awaited");
    log.warn(
      `the Send API's answer to a message was lost and no echo came within ${this.#echoGraceMs} ms; it is marked unconfirmed and not sent again, ` +
        "since Facebook may have delivered it. Subscribe the App's webhook to message_echoes so that the server can tell (then a message Facebook did not take is sent again)",
      { outbox_id: item.id },
    );
    return this.#unconfirmed(item, key, log, "unclear answer, no echo");
  }

  /** Graph may have the message and no echo said so: recorded as unconfirmed, never sent again. */
  #unconfirmed(item: OutboxItem, key: UserKey, log: Logger, reason: string): Promise<Settled> {
    if (reason !== "unclear answer, no echo") log.warn(`a message whose answer was unclear is marked unconfirmed and not sent again: ${reason}`, { outbox_id: item.id });
    item.accepted = { status: "unconfirmed", messageId: null, error: { reason } };
    return this.#recordAccepted(item, key, log);
  }

  /** A flow's handover, after everything before it was sent (the item is marked "sending"). */
  async #passThread(item: OutboxItem, key: UserKey, body: ControlBody, log: Logger, interrupted: boolean): Promise<Settled> {
    const page = this.deps.pages.credentials(key.endpointId, key.pageId)!;
    const threads = this.deps.threads;
    const startedAt = this.deps.clock.now(); // an erasure meanwhile keeps its state from being written back
    try {
      // A crash may have come after Meta passed the thread and before we recorded it: ask first.
      const done = (interrupted || item.maybeDone === true) && (await threadOwner(this.deps.graph, page, key.userId).catch(() => null)) === body.target_app_id;
      if (!done) await passThreadControl(this.deps.graph, page, key.userId, body.target_app_id, body.metadata);
    } catch (error) {
      return this.#failed(item, key, error, log);
    }
    // The floor changes before the item is closed (the lane's next look already holds), in one
    // commit with its "sent" mark: a restart never passes the thread a second time.
    const sent = { sql: MARK_SENT_SQL, args: [null, this.deps.clock.now(), item.id] };
    if (threads) await threads.handedOver(key, body.target_app_id, body.metadata, "passed", { byLane: true, extra: [sent], startedAt });
    else await this.deps.writes.run([sent], { durable: false });
    await this.#supersedePasses(key); // one handover at a time: those queued after it are moot
    return "settled";
  }

  /**
   * The thread left us otherwise (a person took it, a request was honoured, the operator passed
   * it): a handover still waiting in the lane is moot — made later, it would pass the thread away
   * again right after it came back. Dropped and recorded ("superseded").
   */
  async #supersedePasses(key: UserKey): Promise<void> {
    const list = this.#open.get(userKeyId(key));
    const moot = list?.filter((i) => i.kind === "control" && i.status === "pending") ?? [];
    if (moot.length === 0) return;
    for (const item of moot) list!.splice(list!.indexOf(item), 1);
    if (list!.length === 0) this.#open.delete(userKeyId(key));
    await this.deps.writes.run(moot.map((item) => ({ sql: FINISH_SQL, args: ["dropped", JSON.stringify({ reason: "superseded: the thread left the bot otherwise first" }), item.id] })), { durable: false });
  }

  /** A handover item given up: the flow is told (handover.status "error"), once. */
  async #passGivenUp(item: OutboxItem, key: UserKey, error: unknown): Promise<void> {
    if (item.kind !== "control" || !this.deps.threads) return;
    if (!this.#open.get(userKeyId(key))?.includes(item)) return; // the user was erased meanwhile
    const body = JSON.parse(item.body) as ControlBody;
    await this.deps.threads.passFailed(key, body.target_app_id, body.metadata, error);
  }

  async #failed(item: OutboxItem, key: UserKey, error: unknown, log: Logger, failure: SendFailure = classifySendError(error)): Promise<Settled> {
    const recorded = error instanceof Error && "toJSON" in error ? (error as GraphApiError).toJSON() : { message: String(error) };
    const now = this.deps.clock.now();
    const attempts = item.attempts; // counted when the item was marked "sending"
    switch (failure.action) {
      case "retry": {
        const graph = this.deps.config.graph;
        const firstAttemptAt = item.firstAttemptAt ?? now;
        if (now - firstAttemptAt >= graph.retry_for_minutes * 60_000) {
          this.#sends.inc({ endpoint: key.endpointId, result: "failed" });
          log.error(`gave up a message after retrying for ${graph.retry_for_minutes} minutes: ${failure.reason}`, { outbox_id: item.id, error: recorded });
          await this.#finish(item, "failed", { ...recorded, reason: `gave up after ${attempts} attempts: ${failure.reason}` });
          await this.#passGivenUp(item, key, error);
          return "settled";
        }
        const delay = backoffDelay(attempts, failure.throttled, { minMs: this.#minRetryDelayMs, maxMs: graph.max_retry_delay_ms });
        this.#sends.inc({ endpoint: key.endpointId, result: "retry" });
        log.warn(`send failed (${failure.reason}); retrying in ${delay} ms before anything else for this user`, { outbox_id: item.id, attempt: attempts, error: recorded });
        await this.#reopen(item, now + delay, { ...recorded, reason: failure.reason });
        return "open";
      }
      case "drop": {
        this.#sends.inc({ endpoint: key.endpointId, result: "dropped" });
        const why = {
          outside_window: "the user's 24-hour messaging window is closed (10/2018278); the message was dropped",
          user_unavailable: "the user cannot be reached (551); the message was dropped",
          rejected: "Graph rejected the message; it was dropped",
        }[failure.reason];
        log.warn(why, { outbox_id: item.id, error: recorded });
        await this.#finish(item, "dropped", { ...recorded, reason: failure.reason });
        await this.#passGivenUp(item, key, error);
        return "settled";
      }
      case "pause_page":
        this.#sends.inc({ endpoint: key.endpointId, result: "paused" });
        await this.#reopen(item, item.nextAttemptAt, { ...recorded, reason: failure.reason });
        await this.deps.pages.pause(key.endpointId, key.pageId, failure.reason);
        return "open";
      case "accepted":
        // Graph answered 2xx and only its answer could not be read: taken, never sent again.
        log.warn(`Graph took a message but its answer could not be read (${failure.reason}); marked unconfirmed, not sent again: its echo confirms it`, { outbox_id: item.id, error: recorded });
        item.accepted = { status: "unconfirmed", messageId: null, error: { ...recorded, reason: failure.reason } };
        return this.#recordAccepted(item, key, log);
      case "unclear":
        this.#sends.inc({ endpoint: key.endpointId, result: "unclear" });
        if (item.kind === "action") {
          // A sender action (mark_seen) has no echo, and showing it twice does no harm.
          item.accepted = { status: "sent", messageId: null };
          return this.#recordAccepted(item, key, log);
        }
        if (item.kind === "control") {
          // Passed or not: the next attempt asks Graph who owns the thread before passing again.
          item.maybeDone = true;
          return this.#failed(item, key, error, log, { action: "retry", throttled: false, reason: `unclear answer (${failure.reason})` });
        }
        // A message: its echo, if it comes, says Graph has it. Until then the lane waits (order).
        log.warn(`the Send API did not answer clearly (${failure.reason}); waiting up to ${this.#echoGraceMs} ms for the message's echo before deciding whether to send it again`, { outbox_id: item.id, error: recorded });
        item.echoWaitUntil = now + this.#echoGraceMs;
        item.unclearSince = now;
        // Kept on the row: after a restart it is not taken for a send the crash interrupted.
        await this.deps.writes.run([{ sql: MARK_UNCLEAR_SQL, args: [this.#errorText({ ...recorded, reason: failure.reason, unclear: true }), item.id] }], { durable: false });
        return "open";
    }
  }

  /**
   * Gives an item up. Only an item that is still open: its echo may have marked it sent while the
   * failed call was under way (the answer lost or late, the message delivered), and that stands.
   */
  async #finish(item: OutboxItem, status: "failed" | "dropped", error: Record<string, unknown>): Promise<void> {
    const statements: InStatement[] = [{ sql: FINISH_SQL, args: [status, this.#errorText(error), item.id] }];
    if (this.#endpoints.get(item.endpointId)?.data_protection.collect_analytics && item.kind === "message") {
      statements.push(countStatement(item.endpointId, this.deps.clock.now(), { failedSends: 1 }));
    }
    await this.deps.writes.run(statements, { durable: false });
  }

  /** Puts an item back to be tried again (at `nextAttemptAt`), unless its echo has meanwhile marked it sent. */
  async #reopen(item: OutboxItem, nextAttemptAt: number | null, error: Record<string, unknown>): Promise<void> {
    await this.deps.writes.run([{ sql: REOPEN_SQL, args: [nextAttemptAt, this.#errorText(error), item.id] }], { durable: false });
    item.status = "pending";
    item.nextAttemptAt = nextAttemptAt;
  }

  /** An error as stored on its row (`last_error`): JSON, with no secret of the settings in it (a network error's text may quote anything). */
  #errorText(error: Record<string, unknown>): string {
    return scrub(JSON.stringify(error), this.deps.config.secrets);
  }

  /** The item's outcome is committed: it leaves the lane's list. */
  #settled(key: UserKey, item: OutboxItem): void {
    const id = userKeyId(key);
    const list = this.#open.get(id);
    if (!list) return;
    const at = list.indexOf(item);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#open.delete(id);
  }

  #resumePage(endpointId: string, pageId: string): void {
    for (const list of this.#open.values()) {
      const head = list[0];
      if (head && head.endpointId === endpointId && head.pageId === pageId) this.#workers.notify(head);
    }
  }

  /**
   * Resolves true after `ms`, or false at once when the lanes stop. With `echoOf`, an echo for
   * that lane (`echoed`) ends the sleep early (resolving true).
   */
  #sleep(ms: number, echoOf?: UserKey): Promise<boolean> {
    if (this.#stopping) return Promise.resolve(false);
    return new Promise((resolve) => {
      const lane = echoOf ? userKeyId(echoOf) : null;
      const end = (value: boolean) => {
        clearTimeout(entry.timer);
        this.#timers.delete(entry);
        if (lane !== null && this.#echoSleepers.get(lane) === early) this.#echoSleepers.delete(lane);
        resolve(value);
      };
      const early = () => end(true);
      const entry = { timer: setTimeout(() => end(true), ms), wake: () => end(false) };
      this.#timers.add(entry);
      if (lane !== null) this.#echoSleepers.set(lane, early);
    });
  }
}
