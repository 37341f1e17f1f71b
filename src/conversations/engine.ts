/**
 * The conversation engine: drains the inbox through the flows into the reply lanes.
 *
 * Inbound lanes: events are processed per (endpoint, Page, user) in Facebook's timestamp order,
 * one turn at a time per user, all users concurrently; a slow or hanging agent holds only its
 * own user's lane. Each user's work list is kept in memory (pending.ts), filled from the inbox
 * at start and by the inbox after each commit. A turn's outputs, the session and the "done" mark of its event are committed
 * in one transaction, so a crash before that commit re-runs the flow and a crash after it never
 * loses or repeats the outputs.
 *
 * State events (echoes, deliveries, reads) never run the flow; they are applied as soon as they
 * are stored, outside the lanes, so that an echo confirms a send even while the user's lane is
 * busy with a slow agent.
 */
import { and, asc, eq, sql } from "drizzle-orm";
import type { InStatement, ResultSet } from "@libsql/client";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import { inbox } from "../db/schema.ts";
import { statement } from "../db/statement.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { FlowError, type Flow } from "../flows/flow.ts";
import type { FlowRegistry } from "../flows/index.ts";
import { validateFlowResult, type FlowResult } from "../flows/schema.ts";
import { convertOutput } from "../messenger/convert.ts";
import { HANDOVER_KINDS, USER_INPUT_KINDS, isUnsent, type EventKind } from "../webhook/events.ts";
import { targetAppId, type HandoverEvent, type HandoverOutcome, type Threads } from "../handover/threads.ts";
import type { StoredEvent } from "../inbox/inbox.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import { UserWorkers, type StepResult } from "../core/user-workers.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import { setNewest } from "../core/bounded.ts";
import { enqueueReplies, outboxIdFromStamp, type NewReply } from "../replies/outbox.ts";
import { isUserRef } from "../replies/recipient.ts";
import { handoverInput, inputFromEvent, injectedInput } from "./input.ts";
import type { Contacts } from "../people/contacts.ts";
import type { Transformers } from "../transformers/transformers.ts";
import { countStatement, dayOf } from "../people/analytics.ts";
import { messageText, transcriptInsert, type TranscriptLine } from "../people/transcripts.ts";
import { maskMessage, userFields } from "../log/mask.ts";
import { scrub } from "../log/scrub.ts";
import type { SessionStore } from "./sessions.ts";
import { PendingEvents, type PendingEvent } from "./pending.ts";
import { isStorageError, type StorageHealth } from "../db/health.ts";

/** Kinds applied on arrival instead of in the user's lane. */
export const STATE_KINDS: readonly EventKind[] = ["echo", "delivery", "read"];
const MAX_ATTEMPTS = 5;

export interface EngineDeps {
  config: Config;
  database: Database;
  writes: WriteQueue;
  flows: FlowRegistry;
  replies: ReplyLanes;
  clock: Clock;
  log: Logger;
  metrics: Registry;
  /** This database's install id: echoes stamped with another one are not ours (replies/outbox.ts). */
  installId: string;
  sessions: SessionStore;
  contacts: Contacts;
  /** The operator's transformer functions (SPEC §9), when any endpoint has them. */
  transformers?: Transformers;
  /** Who has the floor per user (SPEC §11): while not the bot, user inputs are recorded, not run. */
  threads?: Threads;
  /** Whether the database takes writes: while it does not, no turn starts (db/health.ts). */
  health?: StorageHealth;
}

/** What `POST /api/endpoints/{id}/inject` stored in the inbox (kind "inject"). */
export interface InjectedInput {
  text?: string;
  data?: Record<string, unknown>;
  /** The id chosen for the new session the caller was told about (there was no current one). */
  new_session_id?: string;
}

class ShutdownAbort extends Error {}

export class ConversationEngine {
  readonly #endpoints: Map<string, EndpointSettings>;
  readonly #workers = new UserWorkers((key) => this.#step(key));
  readonly #turnControllers = new Set<AbortController>();
  /** Retry pauses in progress: a stop ends them. */
  readonly #pauses = new Set<() => void>();
  readonly #turns;
  readonly #turnSeconds;
  /** Until start() has scanned the inbox, new events wait in `#early` (and in the inbox). */
  #started = false;
  #early: { endpointId: string; events: StoredEvent[] }[] = [];
  #statePending: (StateEvent & { endpointId: string })[] = [];
  /** Handover events applied when they were stored, by inbox id: their lane step picks up the result. */
  readonly #appliedEarly = new Map<number, { lane: string; applied: Promise<boolean> }>();
  /** The users' pending events, in their order: the lanes' work list (pending.ts). */
  readonly #pending = new PendingEvents();
  #stateRunning: Promise<void> | null = null;
  /** Users erased recently (their lanes' ids) with the erasure's number, for turns in progress. */
  readonly #erased = new Map<string, number>();
  #erasures = 0;
  readonly #inputs;
  readonly #outputs;
  readonly #sessionsStarted;

  constructor(private readonly deps: EngineDeps) {
    this.#endpoints = new Map(deps.config.endpoints.map((e) => [e.id, e]));
    this.#turns = deps.metrics.counter("messenger_turns_total", "Flow turns by endpoint and result (ok, flow_error, invalid_result, timeout).");
    this.#turnSeconds = deps.metrics.histogram("messenger_turn_seconds", "Time a flow took to answer one input.");
    this.#inputs = deps.metrics.counter("messenger_inputs_total", "Inputs given to the flow, by endpoint and source (user, inject).");
    this.#outputs = deps.metrics.counter("messenger_outputs_total", "Messages the flow queued for users, by endpoint.");
    this.#sessionsStarted = deps.metrics.counter("messenger_sessions_started_total", "Sessions started, by endpoint.");
  }

  /** Picks up what was stored and not finished before this start. */
  async start(): Promise<void> {
    // Events the inbox commits while the scans below run wait in #early; no lane runs before
    // both are merged, so an event seen by both is queued once (by its row) and run once.
    const { db } = this.deps.database;
    const pendingState = await db
      .select({ id: inbox.id, endpointId: inbox.endpointId, pageId: inbox.pageId, userId: inbox.userId, kind: inbox.kind, standby: inbox.standby, event: inbox.event })
      .from(inbox)
      .where(and(sql`status = 'pending'`, sql`${inbox.kind} IN ('echo', 'delivery', 'read')`))
      .orderBy(asc(inbox.id));
    const byEndpoint = new Map<string, StateEvent[]>();
    for (const row of pendingState) {
      const list = byEndpoint.get(row.endpointId) ?? [];
      list.push({ key: { endpointId: row.endpointId, pageId: row.pageId, userId: row.userId }, kind: row.kind as EventKind, standby: row.standby, item: JSON.parse(row.event), inboxId: row.id });
      byEndpoint.set(row.endpointId, list);
    }
    // Everything else that was stored and not finished, into the users' work lists.
    const rows = await this.deps.database.client.execute(
      "SELECT id, endpoint_id, page_id, user_id, kind, standby, timestamp, event, attempts FROM inbox " +
        "WHERE status = 'pending' AND kind NOT IN ('echo', 'delivery', 'read') ORDER BY timestamp, id",
    );
    const waiting: UserKey[] = [];
    for (const r of rows.rows) {
      const key = { endpointId: String(r[1]), pageId: String(r[2]), userId: String(r[3]) };
      this.#pending.add(key, { id: Number(r[0]), kind: String(r[4]) as EventKind, standby: Number(r[5]) === 1, timestamp: Number(r[6]), item: JSON.parse(String(r[7])), attempts: Number(r[8]) });
      waiting.push(key);
    }
    // State updates are idempotent: an event in both the scan and #early may be applied twice.
    this.#started = true;
    for (const [endpointId, events] of byEndpoint) this.#enqueueState(endpointId, events);
    for (const { endpointId, events } of this.#early.splice(0)) this.accept(endpointId, events);
    for (const key of waiting) this.notify(key);
  }

  /** The inbox committed these events: apply state events, queue the others in their users' lanes. */
  accept(endpointId: string, events: StoredEvent[]): void {
    if (!this.#started) {
      this.#early.push({ endpointId, events });
      return;
    }
    const state = events.filter((e) => STATE_KINDS.includes(e.kind));
    if (state.length > 0) {
      this.#enqueueState(
        endpointId,
        state.map((e) => ({ key: { endpointId, pageId: e.pageId, userId: e.userId }, kind: e.kind, standby: e.standby, item: e.item, dedupKey: e.dedupKey })),
      );
    }
    for (const e of events) {
      if (STATE_KINDS.includes(e.kind)) continue;
      const key = { endpointId, pageId: e.pageId, userId: e.userId };
      const endpoint = this.#endpoints.get(endpointId);
      if (endpoint && HANDOVER_KINDS.has(e.kind)) {
        // Now, not behind a turn that may be running: a person taking the thread must stop the
        // bot's queued messages at once. The lane then does what follows, in order.
        const log = this.deps.log.child(userFields(key, endpoint.data_protection.mask_logging));
        const applied = this.#applyControl(endpoint, key, e.kind, e.item as Record<string, any>, e.standby, e.timestamp, log).then(
          () => true,
          (error) => {
            log.error("could not apply a handover event; it is applied again in the user's lane", { error });
            return false;
          },
        );
        this.#appliedEarly.set(e.inboxId, { lane: userKeyId(key), applied });
      }
      this.#pending.add(key, { id: e.inboxId, kind: e.kind, standby: e.standby, timestamp: e.timestamp, item: e.item, attempts: 0 });
      this.notify(key);
    }
  }

  notify(key: UserKey): void {
    if (this.#started) this.#workers.notify(key);
  }

  /**
   * Stops taking turns. Turns in progress get `graceMs` to finish; after that their flows are
   * abandoned and their events stay pending, to run again after the restart.
   */
  async stop(graceMs = 10_000): Promise<void> {
    const all = this.#workers.stop();
    for (const end of [...this.#pauses]) end();
    let timer: Timer | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), graceMs)));
    if ((await Promise.race([all, timedOut])) === "timeout") {
      for (const controller of this.#turnControllers) controller.abort(new ShutdownAbort("server stopping"));
      await all;
    }
    clearTimeout(timer);
    await this.#stateRunning;
  }

  // --- inbound lanes ---------------------------------------------------------------------

  /** One event of this user's lane: the oldest pending one by Facebook's timestamp. */
  async #step(key: UserKey): Promise<StepResult> {
    const health = this.deps.health;
    // While the database refuses writes no turn starts: its outcome could not be stored.
    if (health && !health.healthy && !(await health.waitHealthy())) return "idle";
    const { event, more } = this.#pending.next(key);
    if (!event) return "idle";
    const log = this.deps.log.child(userFields(key, this.#endpoints.get(key.endpointId)?.data_protection.mask_logging ?? false));
    try {
      await this.#process(event, key, log);
    } catch (error) {
      if (error instanceof ShutdownAbort) return "idle"; // left pending for the restart
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

  async #process(row: PendingEvent, key: UserKey, log: Logger): Promise<void> {
    const endpoint = this.#endpoints.get(key.endpointId);
    if (endpoint && HANDOVER_KINDS.has(row.kind)) return this.#control(row, key, endpoint, log);
    if (endpoint && row.kind === "handover") {
      const outcome = (row.item as unknown as HandoverEvent).handover;
      if (outcome.status !== "error" && this.deps.threads?.floor(key) === "handover") {
        // The thread left again before this turn ran (a take right after the "Done"): not now.
        log.info(`the thread came back (${outcome.status}) and left again before the flow heard it; the flow is not run`);
        await this.deps.writes.run([this.#done(row.id, null)], { durable: false });
        return;
      }
      return this.#turn(row, key, endpoint, log, outcome);
    }
    // A message the user unsent has nothing for the flow (its text is gone): recorded as done below.
    const userInput = USER_INPUT_KINDS.has(row.kind) && !isUnsent(row.item);
    // messaging[] / standby[] say who owns the thread, whatever we recorded (Meta returns threads
    // without telling, and hands them on): the thread state follows them.
    const back = userInput && endpoint ? await this.deps.threads?.userSpoke(key, row.timestamp, row.standby) : null;
    // While another app owns the thread (standby, or our own record of it) or a person's reply
    // paused the bot, what the user says is kept in the transcript and the flow is not run; so too
    // once the flow asked for a handover that waits in the reply lane behind its last outputs
    // (what the user says then is for the people the conversation is going to).
    const held = userInput && (row.standby || this.deps.threads?.holds(key) === true || this.deps.replies.passWaiting(key));
    if (endpoint && back) {
      // The thread came back without a pass_thread_control: the flow hears it with this message.
      log.info("the user writes in messaging[]: the thread is ours again (Meta gave it back without a pass_thread_control)");
      return this.#turn(row, key, endpoint, log, undefined, { status: "completed", metadata: back.metadata, owner_app_id: back.ownerAppId, since: new Date(back.since).toISOString() });
    }
    if (endpoint && (row.kind === "inject" || (userInput && !held))) return this.#turn(row, key, endpoint, log);
    // Not for the flow: reactions, edits, app_roles ... (or an endpoint removed from the
    // settings). Recorded as done.
    const statements = [this.#done(row.id, null)];
    if (endpoint && held && endpoint.data_protection.collect_conversations) statements.push(await this.#heldTranscript(row, key, endpoint));
    await this.deps.writes.run(statements, { durable: false });
  }

  /** A user input the flow did not get (another app or a person had the floor), for the transcript. */
  async #heldTranscript(row: PendingEvent, key: UserKey, endpoint: EndpointSettings): Promise<InStatement> {
    const now = this.deps.clock.now();
    const session = await this.deps.sessions.current(key, now, endpoint.session.expiration_minutes);
    const input = inputFromEvent(row.item, { ...key, sessionId: session.id, contactId: null, context: {}, contact: {}, locale: endpoint.locale, source: "user" });
    const { request: _raw, ...data } = input.data;
    return transcriptInsert(key, null, session.isNew ? null : session.id, [{ direction: "in", source: row.standby ? "standby" : "held", text: input.text, data }], now);
  }

  /**
   * Handover protocol events (SPEC §11), in the user's lane. Who has the floor was changed when
   * the event was stored (`accept`); here it is only applied if that did not happen (stored before
   * this start, or it failed: here a failure is retried).
   */
  async #control(row: PendingEvent, key: UserKey, endpoint: EndpointSettings, log: Logger): Promise<void> {
    const early = this.#appliedEarly.get(row.id);
    if (!(early && (await early.applied))) await this.#applyControl(endpoint, key, row.kind, row.item as Record<string, any>, row.standby, row.timestamp, log);
    this.#appliedEarly.delete(row.id);
    await this.deps.writes.run([this.#done(row.id, null)], { durable: false });
  }

  /**
   * Applies a handover event to the thread's state: a pass to us returns it — the flow's
   * `handover.status = "completed"` turn is stored first, as an inbox event placed at the pass's
   * time in the user's lane (once, whatever is applied twice) — a take or a pass to another app
   * hands it over, a request is honoured (`honour_requests`) by passing at once; what is queued
   * for the user is then held.
   */
  async #applyControl(
    endpoint: EndpointSettings,
    key: UserKey,
    kind: EventKind,
    item: Record<string, any>,
    standby: boolean,
    at: number,
    log: Logger,
  ): Promise<void> {
    const threads = this.deps.threads;
    if (!threads) return;
    const appIdOf = (v: unknown) => (v === null || v === undefined || v === "" ? null : String(v));
    const ours = (appId: string | null) => (endpoint.app_id ? appId === endpoint.app_id : null);
    const metadataOf = (body: Record<string, unknown>) => (typeof body.metadata === "string" ? body.metadata : null);
    if (kind === "pass_thread_control") {
      const body = item.pass_thread_control ?? {};
      const newOwner = appIdOf(body.new_owner_app_id);
      // Without app_id in the settings: a pass that reaches us in messaging[] (not standby) is to us.
      if (ours(newOwner) ?? !standby) {
        await threads.returned(key, "returned", at, async (previous) => {
          if (previous.state !== "handover") return; // a pause, say: nothing to tell the flow
          const outcome: HandoverOutcome = {
            status: "completed",
            metadata: metadataOf(body) ?? previous.metadata,
            owner_app_id: previous.ownerAppId ?? appIdOf(body.previous_owner_app_id),
            since: new Date(previous.since).toISOString(),
          };
          await threads.storeOutcome(key, outcome, `pass:${at}`, at, item);
        });
        return;
      }
      if (newOwner) await threads.handedOver(key, newOwner, metadataOf(body), "taken_by_other", { at });
    } else if (kind === "take_thread_control") {
      const body = item.take_thread_control ?? {};
      const newOwner = appIdOf(body.new_owner_app_id);
      if (!ours(newOwner)) await threads.handedOver(key, newOwner, metadataOf(body), "taken_by_other", { at });
    } else if (kind === "request_thread_control") {
      const body = item.request_thread_control ?? {};
      const requested = appIdOf(body.requested_owner_app_id);
      if (!requested || ours(requested)) {
        // nothing to pass
      } else if (!endpoint.handover.honour_requests) {
        log.info(`app ${requested} asked for the thread; not passed (handover.honour_requests is off)`);
      } else if (threads.floor(key) === "handover") {
        log.info(`app ${requested} asked for the thread, which another app owns already`);
      } else {
        await threads.pass(key, requested, metadataOf(body));
      }
    }
  }

  /**
   * One flow turn. `handover`: the turn of a thread that came back (`source: "handover"`);
   * `returned`: a user's message that brought it back (`source: "user"` with `input.handover`).
   */
  async #turn(row: PendingEvent, key: UserKey, endpoint: EndpointSettings, log: Logger, handover?: HandoverOutcome, returned?: HandoverOutcome): Promise<void> {
    const clock = this.deps.clock;
    const erasuresAtStart = this.#erasures;
    const protection = endpoint.data_protection;
    const injected = row.kind === "inject" ? (row.item as InjectedInput) : null;
    // Not to a person known only by a user_ref: Messenger takes no sender action there (replies/recipient.ts).
    if (endpoint.messenger.mark_seen && !injected && !handover && !isUserRef(key.userId)) {
      const seen = enqueueReplies([{ ...key, source: "seen", senderAction: "mark_seen", inboxId: row.id }], clock.now())!;
      const [result] = await this.deps.writes.run([seen.statement], { durable: false });
      this.deps.replies.accept(seen.items(result!));
    }

    let session = await this.deps.sessions.current(key, clock.now(), endpoint.session.expiration_minutes);
    // An inject told its caller the session it would run in: keep that id if a new one starts.
    if (injected?.new_session_id && session.isNew) session = { ...session, id: injected.new_session_id };
    const person = await this.deps.contacts.forTurn(key, endpoint, log);
    const turnLog = log.child({ session: session.id });
    const flow = this.deps.flows.get(endpoint.flow)!;
    const inputContext = {
      ...key,
      sessionId: session.id,
      contactId: person.contactId,
      context: session.context,
      contact: person.contact,
      locale: endpoint.locale,
      source: injected ? ("inject" as const) : handover ? ("handover" as const) : ("user" as const),
    };
    const input = injected
      ? injectedInput(injected, inputContext)
      : handover
        ? handoverInput(handover, (row.item as unknown as HandoverEvent).request, inputContext)
        : inputFromEvent(row.item, inputContext);
    if (person.profile) input.data.profile = person.profile;
    if (returned) input.handover = returned;
    const transformers = this.deps.transformers;
    if (!injected && !handover && transformers?.enabled(key.endpointId, "handleInput")) {
      const request = { body: { object: "page", entry: [{ id: key.pageId, time: row.timestamp, messaging: [row.item] }] } };
      const verdict = await transformers.input(endpoint, { request, event: row.item }, turnLog);
      if (verdict.action !== "continue") {
        // Dropped by the transformer (a falsy return), or stopped by abort_on_error: no flow.
        turnLog.debug(verdict.action === "drop" ? "input dropped by the input transformer" : "input stopped: the input transformer failed (abort_on_error)");
        await this.deps.writes.run([this.#done(row.id, verdict.action === "abort" ? `input transformer failed: ${verdict.reason}` : null)], { durable: false });
        return;
      }
      const changes = verdict.value;
      if (changes) {
        if (changes.user_id !== undefined) input.user_id = changes.user_id;
        if (changes.session_id !== undefined) input.session_id = changes.session_id;
        if (changes.text !== undefined) input.text = changes.text;
        // The raw event and the profile stay unless the transformer's data sets them.
        if (changes.data !== undefined) input.data = { request: input.data.request, ...(input.data.profile ? { profile: input.data.profile } : {}), ...changes.data };
      }
    }

    const outcome = await this.#runFlow(flow, input, turnLog, protection.mask_logging);
    const now = clock.now();
    const replies: NewReply[] = [];
    let context = session.context;
    const source = injected ? "inject" : "flow";
    if (outcome.ok) {
      if (outcome.result.context) context = outcome.result.context;
      const transformOutput = transformers?.enabled(key.endpointId, "handleOutput") === true;
      for (const output of outcome.result.outputs ?? []) {
        const converted = convertOutput(output, { preferParagraphs: flow.kind === "llm" });
        for (const warning of converted.warnings) turnLog.warn(`output adjusted to Messenger's limits: ${maskMessage(warning, protection.mask_logging)}`);
        const messages: Record<string, unknown>[] = [];
        let stopped = false;
        for (const message of converted.messages) {
          let sent = message;
          if (transformOutput) {
            const verdict = await transformers!.output(endpoint, { output, processedOutput: message, userId: input.user_id, sessionId: input.session_id }, turnLog);
            if (verdict.action === "drop") continue;
            if (verdict.action === "abort") {
              stopped = true; // abort_on_error stops the whole output, all the messages it became
              break;
            }
            if (verdict.value) sent = verdict.value;
          }
          messages.push(sent);
        }
        if (!stopped) for (const message of messages) replies.push({ ...key, source, inboxId: row.id, sessionId: session.id, message });
      }
      const wanted = outcome.result.handover;
      if (wanted && handover?.status === "error") {
        // The pass just failed; passing again from the flow's answer to that could go round forever.
        turnLog.warn("the flow asked for a handover in its answer to a failed handover; not passed again");
      } else if (wanted && (this.deps.threads?.floor(key) === "handover" || this.deps.replies.passWaiting(key))) {
        // An inject's turn while people have the thread, or while a handover waits to be made.
        turnLog.warn("the flow asked for a handover while the thread is with people or on its way to them; not passed again");
      } else if (wanted) {
        // After the outputs, in the user's reply lane: the thread leaves once they are sent.
        const passThread = { targetAppId: targetAppId(wanted.target ?? endpoint.handover.target), metadata: wanted.metadata ?? null };
        replies.push({ ...key, source: "handover", inboxId: row.id, sessionId: session.id, passThread });
      }
    }
    if ((this.#erased.get(userKeyId(key)) ?? -1) > erasuresAtStart) {
      // The person was erased while the flow ran: nothing of this turn is kept or sent.
      await this.deps.writes.run([this.#done(row.id, outcome.ok ? null : outcome.error)], { durable: false });
      return;
    }
    const messageCount = replies.filter((r) => !r.passThread).length;
    const saved = this.deps.sessions.save(key, session, context, now);
    const statements: InStatement[] = [...saved.statements, ...person.statements];
    if (protection.collect_conversations) {
      // One multi-row INSERT: the input, then each message it queued.
      const { request: _raw, ...data } = input.data;
      const lines: TranscriptLine[] = [{ direction: "in", source: input.source, text: input.text, data }];
      for (const reply of replies) {
        if (reply.passThread) lines.push({ direction: "out", source: "handover", text: null, data: { handover: { target_app_id: reply.passThread.targetAppId, metadata: reply.passThread.metadata } } });
        else lines.push({ direction: "out", source: reply.source, text: messageText(reply.message), data: reply.message });
      }
      statements.push(transcriptInsert(key, person.contactId, session.id, lines, now));
    }
    if (protection.collect_analytics) {
      const newToday = session.lastActiveAt === null || dayOf(session.lastActiveAt) !== dayOf(now);
      statements.push(countStatement(key.endpointId, now, { inputs: 1, outputs: messageCount, sessions: session.isNew ? 1 : 0, users: newToday ? 1 : 0 }));
    }
    const enqueue = enqueueReplies(replies, now);
    if (enqueue) statements.push(enqueue.statement);
    statements.push(this.#done(row.id, outcome.ok ? null : outcome.error));
    const results = await this.#commitTurn(statements, row, key, erasuresAtStart, turnLog);
    if (results === null) return; // erased while it waited for the database: nothing kept
    saved.committed();
    person.committed(results.slice(saved.statements.length, saved.statements.length + person.statements.length));
    this.#inputs.inc({ endpoint: key.endpointId, source: input.source });
    if (session.isNew) this.#sessionsStarted.inc({ endpoint: key.endpointId });
    if (messageCount > 0) this.#outputs.inc({ endpoint: key.endpointId }, messageCount);
    if (enqueue) this.deps.replies.accept(enqueue.items(results[statements.indexOf(enqueue.statement)]!));
    // The turn is committed: whatever fails from here on must not run it again.
    try {
      await transformers?.executionFinished(endpoint, { userId: input.user_id, sessionId: input.session_id }, turnLog);
    } catch (error) {
      turnLog.error("the execution-finished transformer failed after the turn was stored", { error });
    }
  }

  /**
   * Commits a turn: its outputs, the session and the event's "done" mark, in one transaction. When
   * the storage fails (a full disk), the same statements are committed once writes work again —
   * the flow is not asked again for an input it has answered. Only a stop meanwhile loses them
   * (the event is still pending, and the flow runs again after the restart). Resolves null when the
   * person was erased while the turn waited: then only the "done" mark is stored.
   */
  async #commitTurn(statements: InStatement[], row: PendingEvent, key: UserKey, erasuresAtStart: number, log: Logger): Promise<ResultSet[] | null> {
    let waited = false;
    for (;;) {
      if (waited && (this.#erased.get(userKeyId(key)) ?? -1) > erasuresAtStart) {
        await this.deps.writes.run([this.#done(row.id, null)], { durable: false });
        return null;
      }
      try {
        // Nothing leaves the process before the lane's fsynced "sending" mark, which covers this too.
        return await this.deps.writes.run(statements, { durable: false });
      } catch (error) {
        if (!isStorageError(error)) throw error;
        this.deps.health?.failed(error);
        if (!waited) log.warn("the outcome of a turn could not be stored; it is kept and stored once the database takes writes again (the flow is not asked again)", { inbox_id: row.id });
        waited = true;
        if (!(await (this.deps.health?.waitHealthy() ?? this.#pause(1_000).then(() => !this.#workers.stopping)))) throw new ShutdownAbort("server stopping while a turn's outcome waited for the database");
      }
    }
  }

  /** Waits `ms`, or less when the engine stops (a stop must not wait for a retry's pause). */
  #pause(ms: number): Promise<void> {
    if (this.#workers.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.#pauses.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.#pauses.add(end);
    });
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
    const lane = userKeyId(key);
    for (const [id, early] of this.#appliedEarly) if (early.lane === lane) this.#appliedEarly.delete(id);
    setNewest(this.#erased, userKeyId(key), ++this.#erasures, 10_000);
  }

  async #runFlow(
    flow: Flow,
    input: Parameters<Flow["run"]>[0],
    log: Logger,
    mask: boolean,
  ): Promise<{ ok: true; result: FlowResult } | { ok: false; error: string }> {
    const controller = new AbortController();
    this.#turnControllers.add(controller);
    const timer = setTimeout(() => controller.abort(new FlowError(`flow ${flow.name} did not answer within ${flow.timeoutMs} ms`)), flow.timeoutMs);
    const aborted = new Promise<never>((_, reject) => controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true }));
    const started = performance.now();
    let result: "ok" | "flow_error" | "invalid_result" | "timeout" = "ok";
    try {
      const raw = await Promise.race([flow.run(input, { signal: controller.signal, log }), aborted]);
      const checked = validateFlowResult(raw);
      if (!checked.ok) {
        result = "invalid_result";
        log.error(`flow ${flow.name} returned an invalid result; nothing was sent for this input: ${maskMessage(checked.problem, mask)}`);
        return { ok: false, error: checked.problem };
      }
      return { ok: true, result: checked.result };
    } catch (error) {
      if (error instanceof ShutdownAbort) throw error;
      result = controller.signal.aborted ? "timeout" : "flow_error";
      const message = error instanceof Error ? error.message : String(error);
      log.error(`flow ${flow.name} failed; nothing was sent for this input: ${maskMessage(message, mask)}`);
      return { ok: false, error: message };
    } finally {
      clearTimeout(timer);
      this.#turnControllers.delete(controller);
      this.#turns.inc({ endpoint: input.endpoint_id, result });
      this.#turnSeconds.observe({ endpoint: input.endpoint_id }, (performance.now() - started) / 1000);
    }
  }

  #done(id: number, error: string | null): InStatement {
    return { sql: "UPDATE inbox SET status = 'done', processed_at = ?, last_error = ? WHERE id = ?", args: [this.deps.clock.now(), error === null ? null : this.#storable(error), id] };
  }

  /** An error as stored: without the secrets a log line would lose (log/scrub.ts); backups of the database travel further than the log. */
  #storable(error: string): string {
    return scrub(error, this.deps.config.secrets);
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
      await this.deps.writes.run([
        statement(
          this.deps.database.db
            .update(inbox)
            .set({ attempts, lastError: this.#storable((error as Error)?.message ?? String(error)), ...(giveUp ? { status: "failed", processedAt: this.deps.clock.now() } : {}) })
            .where(eq(inbox.id, row.id)),
        ),
      ]);
    } catch (recordError) {
      // The event stays pending in the inbox. Given up, it leaves the work list all the same (the
      // next start tries it again); otherwise it is tried again after the usual pause.
      log.error("could not record the failure of an event", { error: recordError, inbox_id: row.id });
      if (!giveUp) await this.#pause(200 * 2 ** attempts);
      return giveUp;
    }
    if (!giveUp) await this.#pause(200 * 2 ** attempts);
    return giveUp;
  }

  // --- state events ----------------------------------------------------------------------

  #enqueueState(endpointId: string, events: StateEvent[]): void {
    for (const e of events) this.#statePending.push({ ...e, endpointId });
    if (this.#stateRunning === null) this.#stateRunning = this.#drainState();
  }

  /**
   * Applies everything that arrived meanwhile in one commit per round, in arrival order, so the
   * work keeps up with any webhook rate. Failures are logged; the events stay pending in the
   * inbox and are applied at the next start.
   *
   * The loop's last look at the list and the end of the round (`#stateRunning = null`) happen
   * with no await in between, so an event queued at any moment is either seen by this loop or
   * starts a new one. (Clearing it in a `.finally()` left a gap of a few microtasks in which
   * events were queued for a loop that had already ended.)
   */
  async #drainState(): Promise<void> {
    await Promise.resolve(); // let #enqueueState assign #stateRunning first
    while (this.#statePending.length > 0) {
      const batch = this.#statePending.splice(0);
      const erasuresAtTake = this.#erasures;
      const confirmed: { key: UserKey; outboxId: number }[] = [];
      try {
        // Lost in a power cut, they are applied again from the inbox: no fsync of their own.
        await this.deps.writes.run(batch.flatMap((e) => this.#stateStatementsOrDone(e, confirmed)), { durable: false });
      } catch (error) {
        if (isStorageError(error) && this.deps.health) {
          // Applied once the database takes writes again (an echo may be what confirms a send).
          this.deps.health.failed(error);
          const healthy = await this.deps.health.waitHealthy();
          // Not for people erased meanwhile: their rows are gone, and must stay gone.
          const kept = batch.filter((e) => (this.#erased.get(userKeyId(e.key)) ?? -1) <= erasuresAtTake);
          this.#statePending.unshift(...kept);
          if (healthy) continue;
          break; // stopping: they stay pending in the inbox for the next start
        }
        this.deps.log.error("could not apply echo/delivery/read events; they stay pending", { error });
        continue;
      }
      for (const c of confirmed) this.deps.replies.confirmed(c.key, c.outboxId);
      for (const e of batch) {
        if (!this.#humanEcho(e)) continue;
        const at = Number((e.item as Record<string, any>).timestamp ?? this.deps.clock.now());
        const appId = appIdOf((e.item as Record<string, any>).message?.app_id);
        await this.deps.threads?.humanReplied(e.key, at, appId, e.standby === true).catch((error) => this.deps.log.error("could not record a person's reply for the handover", { error }));
      }
    }
    this.#stateRunning = null;
  }

  /**
   * An echo of a message a person (or another app) sent, not one of ours: no stamp of ours or of
   * another install of ours (`me:`), and not from our app when `app_id` is set.
   */
  #humanEcho(e: StateEvent & { endpointId: string }): boolean {
    if (e.kind !== "echo") return false;
    const message = (e.item as Record<string, any>).message ?? {};
    if (typeof message.metadata === "string" && message.metadata.startsWith("me:")) return false;
    const ownApp = this.#endpoints.get(e.endpointId)?.app_id;
    const appId = appIdOf(message.app_id);
    return !(ownApp && appId !== null && appId === ownApp);
  }

  /**
   * The statements of one state event; one that cannot be applied (a shape no check foresaw) is
   * only marked done with its error, so that it does not hold back the others of its round.
   */
  #stateStatementsOrDone(e: StateEvent & { endpointId: string }, confirmed: { key: UserKey; outboxId: number }[]): InStatement[] {
    try {
      return this.#stateStatements(e, confirmed);
    } catch (error) {
      this.deps.log.error("an echo, delivery or read event could not be applied; it is set aside", { error, endpoint: e.endpointId });
      const now = this.deps.clock.now();
      const message = this.#storable(error instanceof Error ? error.message : String(error));
      return [
        e.inboxId !== undefined
          ? { sql: "UPDATE inbox SET status = 'failed', processed_at = ?, last_error = ? WHERE id = ?", args: [now, message, e.inboxId] }
          : { sql: "UPDATE inbox SET status = 'failed', processed_at = ?, last_error = ? WHERE endpoint_id = ? AND dedup_key = ?", args: [now, message, e.endpointId, e.dedupKey!] },
      ];
    }
  }

  /** Plain SQL: deliveries and reads come once per message sent, so this runs as often as sends. */
  #stateStatements(e: StateEvent & { endpointId: string }, confirmed: { key: UserKey; outboxId: number }[]): InStatement[] {
    const now = this.deps.clock.now();
    const item = e.item as Record<string, any>;
    const user = [e.endpointId, e.key.pageId, e.key.userId];
    const forUser = "endpoint_id = ? AND page_id = ? AND user_id = ? AND status = 'sent'";
    const out: InStatement[] = [];
    if (this.#humanEcho(e)) {
      // A person answered from another app (the Page Inbox): kept in the transcript (SPEC §3).
      const endpoint = this.#endpoints.get(e.endpointId);
      if (endpoint?.data_protection.collect_conversations) {
        out.push(transcriptInsert(e.key, null, null, [{ direction: "out", source: "human", text: messageText(item.message), data: item.message }], now));
      }
    } else if (e.kind === "echo") {
      const id = outboxIdFromStamp(this.deps.installId, item.message?.metadata);
      if (id !== null) {
        // Our own message came back: it is sent, whatever the lane believed (a timed-out send
        // that did arrive, one interrupted by a crash, one whose answer was unclear). Only the
        // row of this very user.
        out.push({
          sql: "UPDATE outbox SET status = 'sent', message_id = coalesce(message_id, ?), sent_at = coalesce(sent_at, ?) WHERE id = ? AND endpoint_id = ? AND page_id = ? AND user_id = ? AND status IN ('pending', 'sending', 'unconfirmed')",
          args: [String(item.message?.mid ?? ""), now, id, ...user],
        });
        confirmed.push({ key: e.key, outboxId: id });
        const remember = this.deps.replies.ownEcho(e.endpointId, e.key.pageId);
        if (remember) out.push(remember);
      }
    } else if (e.kind === "delivery") {
      const mids: string[] = Array.isArray(item.delivery?.mids) ? item.delivery.mids.map(String) : [];
      const watermark = Number(item.delivery?.watermark ?? 0);
      out.push(
        mids.length > 0
          ? {
              sql: `UPDATE outbox SET delivered_at = ? WHERE ${forUser} AND delivered_at IS NULL AND message_id IN (${mids.map(() => "?").join(", ")})`,
              args: [watermark || now, ...user, ...mids],
            }
          : { sql: `UPDATE outbox SET delivered_at = ? WHERE ${forUser} AND delivered_at IS NULL AND sent_at <= ?`, args: [watermark || now, ...user, watermark] },
      );
    } else if (e.kind === "read") {
      const watermark = Number(item.read?.watermark ?? 0);
      // Everything delivered before the watermark (both times are Meta's clock), or sent before it by ours.
      out.push({
        sql: `UPDATE outbox SET read_at = ? WHERE ${forUser} AND read_at IS NULL AND ((delivered_at IS NOT NULL AND delivered_at <= ?) OR sent_at <= ?)`,
        args: [watermark || now, ...user, watermark, watermark],
      });
    }
    out.push(
      e.inboxId !== undefined
        ? { sql: "UPDATE inbox SET status = 'done', processed_at = ? WHERE id = ?", args: [now, e.inboxId] }
        : { sql: "UPDATE inbox SET status = 'done', processed_at = ? WHERE endpoint_id = ? AND dedup_key = ?", args: [now, e.endpointId, e.dedupKey!] },
    );
    return out;
  }
}

/** An app id as Meta sends it (a number or a digit string); anything else is no app id. */
function appIdOf(value: unknown): string | null {
  return typeof value === "string" || typeof value === "number" ? String(value) : null;
}

interface StateEvent {
  key: UserKey;
  kind: EventKind;
  /** Came in standby[] (another app owns the thread). */
  standby?: boolean;
  item: unknown;
  inboxId?: number;
  dedupKey?: string;
}
