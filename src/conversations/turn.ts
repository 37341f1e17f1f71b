/**
 * One flow turn: the input made from the event, the input transformer, the flow, the outputs
 * converted to Messenger's limits and through the output transformer, and the commit of what
 * came of it — the replies queued for the user's reply lane, the session, the person, the
 * transcript and the analytics, and the "done" mark of the event — in one transaction. A crash
 * before that commit runs the flow again after the restart; a crash after it never loses or
 * repeats the outputs.
 */
import type { InStatement, ResultSet } from "@libsql/client";
import type { EndpointSettings } from "../config/schema.ts";
import { sleep, type Clock, type Timers } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import { isStorageError, type StorageHealth } from "../db/health.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { FlowError, type Flow, type FlowContext } from "../flows/flow.ts";
import type { FlowRegistry } from "../flows/index.ts";
import { validateFlowResult, type FlowInput, type FlowResult } from "../flows/schema.ts";
import { targetAppId, type HandoverEvent, type HandoverOutcome, type Threads } from "../handover/threads.ts";
import type { Logger } from "../log/logger.ts";
import { maskMessage } from "../log/mask.ts";
import { convertOutput } from "../messenger/convert.ts";
import type { Registry } from "../metrics/registry.ts";
import type { TurnTimings } from "../metrics/turn-timings.ts";
import { countStatement, dayOf } from "../people/analytics.ts";
import type { Contacts } from "../people/contacts.ts";
import { messageText, transcriptInsert, type TranscriptLine } from "../people/transcripts.ts";
import type { ReplyLanes } from "../replies/lanes.ts";
import { enqueueReplies, type NewReply } from "../replies/outbox.ts";
import { isUserRef } from "../core/user-key.ts";
import { stripHtml } from "../core/html.ts";
import type { Transformers } from "../transformers/transformers.ts";
import type { RecentErasures } from "./erasures.ts";
import { handoverInput, inputFromEvent, injectedInput, type InjectedInput } from "./input.ts";
import type { PendingEvent } from "./pending.ts";
import type { SessionStore } from "./sessions.ts";
import type { ConversationStore } from "./store.ts";
import type { TurnContext, TurnTranslation, TurnUnderstanding } from "./language.ts";
import { laneTyping, TypingKeeper } from "./typing.ts";
import { TokenCounts } from "./usage.ts";

/** The server stops: the turn is abandoned, its event stays pending and runs again after the restart. */
export class ShutdownAbort extends Error {}

export interface TurnDeps {
  store: ConversationStore;
  writes: WriteQueue;
  flows: FlowRegistry;
  replies: ReplyLanes;
  sessions: SessionStore;
  contacts: Contacts;
  transformers?: Transformers;
  threads?: Threads;
  health?: StorageHealth;
  erasures: RecentErasures;
  clock: Clock;
  timers: Timers;
  metrics: Registry;
  /** Aborted when the engine stops: a commit that waits for the database gives up. */
  stopping: AbortSignal;
  /** Real-time translation, when an endpoint has it (src/translation/). */
  translation?: TurnTranslation;
  /** The NLU connector, when an endpoint has one (src/nlu/). */
  understanding?: TurnUnderstanding;
  /** Each step of a turn (metrics/turn-timings.ts). */
  timings?: TurnTimings;
}

/** The turns in progress (their flows' controllers: a stop past its grace abandons them), and what runs one. */
export class FlowTurns {
  readonly #controllers = new Set<AbortController>();
  readonly #turns;
  readonly #turnSeconds;
  readonly #inputs;
  readonly #outputs;
  readonly #sessionsStarted;
  readonly #typing: TypingKeeper;
  readonly #tokens: TokenCounts;

  constructor(private readonly deps: TurnDeps) {
    const { metrics } = deps;
    this.#turns = metrics.counter("messenger_turns_total", "Flow turns by endpoint and result (ok, flow_error, invalid_result, timeout).");
    this.#turnSeconds = metrics.histogram("messenger_turn_seconds", "Time a flow took to answer one input.");
    this.#inputs = metrics.counter("messenger_inputs_total", "Inputs given to the flow, by endpoint and source (user, inject).");
    this.#outputs = metrics.counter("messenger_outputs_total", "Messages the flow queued for users, by endpoint.");
    this.#sessionsStarted = metrics.counter("messenger_sessions_started_total", "Sessions started, by endpoint.");
    this.#typing = new TypingKeeper({ timers: deps.timers, lane: laneTyping(deps) });
    this.#tokens = new TokenCounts(metrics);
  }

  /** Abandons the flows still running (their events stay pending, for the restart). */
  abandon(): void {
    for (const controller of this.#controllers) controller.abort(new ShutdownAbort("server stopping"));
  }

  /**
   * One flow turn. `handover`: the turn of a thread that came back (`source: "handover"`);
   * `returned`: a user's message that brought it back (`source: "user"` with `input.handover`).
   */
  async run(row: PendingEvent, key: UserKey, endpoint: EndpointSettings, log: Logger, handover?: HandoverOutcome, returned?: HandoverOutcome): Promise<void> {
    const { clock, store, writes, erasures, transformers, timings } = this.deps;
    timings?.mark(row.id, "turn_started");
    const erasuresAtStart = erasures.mark();
    const injected = row.kind === "inject" ? (row.item as InjectedInput) : null;
    // Not to a person known only by a user_ref: Messenger takes no sender action there (replies/recipient.ts).
    if (endpoint.messenger.mark_seen && !injected && !handover && !isUserRef(key.userId)) {
      const seen = enqueueReplies([{ ...key, source: "seen", senderAction: "mark_seen", inboxId: row.id }], clock.now())!;
      const [result] = await writes.run([seen.statement], { durable: false });
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
    const transformInput = !injected && !handover && transformers?.enabled(key.endpointId, "handleInput") === true;
    if (transformInput && !(await this.#transformInput(row, key, endpoint, input, turnLog))) return;
    // After the input transformer, before anything reads the text (docs/people.md, sanitize_input).
    if (endpoint.data_protection.sanitize_input) sanitizeInput(input);
    // Language: the user's text into the flow's language, then what it means (docs/translation.md, docs/nlu.md).
    const language: TurnContext = { log: turnLog, isPayload: typeof input.data.payload === "string", signal: this.deps.stopping };
    if (!handover) await this.deps.translation?.toFlow(endpoint, key, input, language);
    if (!handover && this.deps.understanding && !(await this.deps.understanding.understand(endpoint, key, input, language))) {
      await writes.run(store.finish(key, row.id, input.nlu_error ? `NLU failed (on_error = "skip_turn"): ${input.nlu_error}` : null), { durable: false });
      return;
    }

    // The typing indicator while the flow works (typing.ts), and the tokens it reports (usage.ts).
    const typing = this.#typing.keep(key, endpoint, row.id, turnLog);
    const usage = this.#tokens.turn(key.endpointId, flow.name, turnLog);
    const outcome = await this.#runFlow(flow, input, turnLog, endpoint.data_protection.mask_logging, usage.report).finally(() => typing.stop());
    timings?.mark(row.id, "flow_answered");
    const now = clock.now();
    const replies = outcome.ok ? await this.#replies(outcome.result, row, key, endpoint, flow, input, session.id, handover, language) : [];
    const context = (outcome.ok && outcome.result.context) || session.context;
    const error = outcome.ok ? null : outcome.error;
    if (erasures.since(key, erasuresAtStart)) {
      // The person was erased while the flow ran: nothing of this turn is kept or sent.
      await writes.run(store.finish(key, row.id, error), { durable: false });
      return;
    }
    const messageCount = replies.filter((r) => !r.passThread).length;
    const ended = outcome.ok && outcome.result.end_session === true;
    const saved = this.deps.sessions.save(key, session, context, now, { end: ended });
    const personSaved = person.save(outcome.ok ? outcome.result.contact : undefined, turnLog);
    const statements: InStatement[] = [...saved.statements, ...personSaved.statements];
    const protection = endpoint.data_protection;
    if (protection.collect_conversations)
      statements.push(transcriptOf(key, person.contactId, session.id, input, replies, now, protection.hide_external_references));
    if (protection.collect_analytics) {
      const newToday = session.lastActiveAt === null || dayOf(session.lastActiveAt) !== dayOf(now);
      statements.push(countStatement(key.endpointId, now, { inputs: 1, outputs: messageCount, sessions: session.isNew ? 1 : 0, users: newToday ? 1 : 0 }));
      const tokens = usage.statement(now);
      if (tokens) statements.push(tokens);
    }
    const enqueue = enqueueReplies(typing.closing(replies), now, { markFirst: this.deps.replies.sendsAtOnce(key, endpoint) });
    if (enqueue) statements.push(enqueue.statement);
    statements.push(store.done(row.id, error));
    const results = await this.#commit(statements, row, key, erasuresAtStart, turnLog);
    if (results === null) return; // erased while it waited for the database: nothing kept
    if (messageCount > 0) timings?.mark(row.id, "outputs_stored");
    else timings?.forget(row.id);
    saved.committed();
    personSaved.committed(results.slice(saved.statements.length, saved.statements.length + personSaved.statements.length));
    if (ended) turnLog.debug("the flow ended the session (end_session): the next input starts a new one");
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
   * The input transformer: changes the input in place, and says whether the flow runs. When it
   * does not (dropped by a falsy return, or stopped by abort_on_error), the event is done here.
   */
  async #transformInput(row: PendingEvent, key: UserKey, endpoint: EndpointSettings, input: FlowInput, log: Logger): Promise<boolean> {
    const request = { body: { object: "page", entry: [{ id: key.pageId, time: row.timestamp, messaging: [row.item] }] } };
    const verdict = await this.deps.transformers!.input(endpoint, { request, event: row.item }, log);
    if (verdict.action !== "continue") {
      log.debug(verdict.action === "drop" ? "input dropped by the input transformer" : "input stopped: the input transformer failed (abort_on_error)");
      await this.deps.writes.run(this.deps.store.finish(key, row.id, verdict.action === "abort" ? `input transformer failed: ${verdict.reason}` : null), {
        durable: false,
      });
      return false;
    }
    const changes = verdict.value;
    if (changes) {
      if (changes.user_id !== undefined) input.user_id = changes.user_id;
      if (changes.session_id !== undefined) input.session_id = changes.session_id;
      if (changes.text !== undefined) input.text = changes.text;
      // The raw event and the profile stay unless the transformer's data sets them.
      if (changes.data !== undefined)
        input.data = { request: input.data.request, ...(input.data.profile ? { profile: input.data.profile } : {}), ...changes.data };
    }
    return true;
  }

  /**
   * What the flow's answer queues in the user's reply lane: each output converted to Messenger's
   * limits (and through the output transformer), then the handover it asked for, if it may pass.
   */
  async #replies(
    result: FlowResult,
    row: PendingEvent,
    key: UserKey,
    endpoint: EndpointSettings,
    flow: Flow,
    input: FlowInput,
    sessionId: string,
    handover: HandoverOutcome | undefined,
    language: TurnContext,
  ): Promise<NewReply[]> {
    const { log } = language;
    const transformers = this.deps.transformers;
    const mask = endpoint.data_protection.mask_logging;
    const source = row.kind === "inject" ? "inject" : "flow";
    const replies: NewReply[] = [];
    const transformOutput = transformers?.enabled(key.endpointId, "handleOutput") === true;
    for (const output of result.outputs ?? []) {
      const converted = convertOutput(output, { preferParagraphs: flow.kind === "llm" });
      for (const warning of converted.warnings) log.warn(`output adjusted to Messenger's limits: ${maskMessage(warning, mask)}`);
      const messages: Record<string, unknown>[] = [];
      let stopped = false;
      for (const message of converted.messages) {
        let sent = message;
        if (transformOutput) {
          const verdict = await transformers!.output(endpoint, { output, processedOutput: message, userId: input.user_id, sessionId: input.session_id }, log);
          if (verdict.action === "drop") continue;
          if (verdict.action === "abort") {
            stopped = true; // abort_on_error stops the whole output, all the messages it became
            break;
          }
          if (verdict.value) sent = verdict.value;
        }
        messages.push(sent);
      }
      if (stopped) continue;
      // What the user will read, in their language (docs/translation.md).
      const toSend = this.deps.translation ? await this.deps.translation.toUser(endpoint, key, input, messages, language) : messages;
      for (const message of toSend) replies.push({ ...key, source, inboxId: row.id, sessionId, message });
    }
    const wanted = result.handover;
    if (wanted && handover?.status === "error") {
      // The pass just failed; passing again from the flow's answer to that could go round forever.
      log.warn("the flow asked for a handover in its answer to a failed handover; not passed again");
    } else if (wanted && (this.deps.threads?.floor(key) === "handover" || this.deps.replies.passWaiting(key))) {
      // An inject's turn while people have the thread, or while a handover waits to be made.
      log.warn("the flow asked for a handover while the thread is with people or on its way to them; not passed again");
    } else if (wanted) {
      // After the outputs, in the user's reply lane: the thread leaves once they are sent.
      const passThread = { targetAppId: targetAppId(wanted.target ?? endpoint.handover.target), metadata: wanted.metadata ?? null };
      replies.push({ ...key, source: "handover", inboxId: row.id, sessionId, passThread });
    }
    return replies;
  }

  async #runFlow(
    flow: Flow,
    input: Parameters<Flow["run"]>[0],
    log: Logger,
    mask: boolean,
    usage: FlowContext["usage"],
  ): Promise<{ ok: true; result: FlowResult } | { ok: false; error: string }> {
    const controller = new AbortController();
    this.#controllers.add(controller);
    const cancelTimeout = this.deps.timers.after(flow.timeoutMs, () =>
      controller.abort(new FlowError(`flow ${flow.name} did not answer within ${flow.timeoutMs} ms`)),
    );
    const aborted = new Promise<never>((_, reject) => controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true }));
    const started = performance.now();
    let result: "ok" | "flow_error" | "invalid_result" | "timeout" = "ok";
    try {
      const raw = await Promise.race([flow.run(input, { signal: controller.signal, log, usage }), aborted]);
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
      cancelTimeout();
      this.#controllers.delete(controller);
      this.#turns.inc({ endpoint: input.endpoint_id, result });
      this.#turnSeconds.observe({ endpoint: input.endpoint_id }, (performance.now() - started) / 1000);
    }
  }

  /**
   * Commits a turn: its outputs, the session and the event's "done" mark, in one transaction. When
   * the storage fails (a full disk), the same statements are committed once writes work again —
   * the flow is not asked again for an input it has answered. Only a stop meanwhile loses them
   * (the event is still pending, and the flow runs again after the restart). Resolves null when the
   * person was erased while the turn waited: then only the "done" mark is stored.
   */
  async #commit(statements: InStatement[], row: PendingEvent, key: UserKey, erasuresAtStart: number, log: Logger): Promise<ResultSet[] | null> {
    const { writes, health, stopping } = this.deps;
    let waited = false;
    for (;;) {
      if (waited && this.deps.erasures.since(key, erasuresAtStart)) {
        await writes.run(this.deps.store.finish(key, row.id, null), { durable: false });
        return null;
      }
      try {
        // Nothing leaves the process before the lane's fsynced "sending" mark, which covers this too.
        // With several instances, the fence first: nothing commits once the partition moved on.
        const fence = this.deps.store.fence(key, row.id);
        if (!fence) return await writes.run(statements, { durable: false });
        return (await writes.run([fence, ...statements], { durable: false })).slice(1);
      } catch (error) {
        if (!isStorageError(error)) throw error;
        health?.failed(error);
        if (!waited)
          log.warn("the outcome of a turn could not be stored; it is kept and stored once the database takes writes again (the flow is not asked again)", {
            inbox_id: row.id,
          });
        waited = true;
        const resumed = health ? await health.waitHealthy() : await sleep(this.deps.timers, 1_000, stopping).then(() => !stopping.aborted);
        if (!resumed) throw new ShutdownAbort("server stopping while a turn's outcome waited for the database");
      }
    }
  }
}

/** The turn's lines of the transcript, in one multi-row INSERT: the input, then each message it queued. */
function transcriptOf(
  key: UserKey,
  contactId: string | null,
  sessionId: string,
  input: FlowInput,
  replies: NewReply[],
  now: number,
  hideExternalReferences: boolean,
): InStatement {
  const { request: _raw, ...data } = input.data;
  const lines: TranscriptLine[] = [{ direction: "in", source: input.source, text: input.text, data }];
  for (const reply of replies) {
    if (reply.passThread)
      lines.push({
        direction: "out",
        source: "handover",
        text: null,
        data: { handover: { target_app_id: reply.passThread.targetAppId, metadata: reply.passThread.metadata } },
      });
    else lines.push({ direction: "out", source: reply.source, text: messageText(reply.message), data: reply.message });
  }
  return transcriptInsert(key, contactId, sessionId, lines, now, { hideExternalReferences });
}

/**
 * `sanitize_input`: HTML removed from the user's text and from the strings of the input's data,
 * but for `data.request`, the event as Facebook sent it (core/html.ts).
 */
function sanitizeInput(input: FlowInput): void {
  input.text = stripHtml(input.text);
  const clean = (value: unknown): unknown => {
    if (typeof value === "string") return stripHtml(value);
    if (Array.isArray(value)) return value.map(clean);
    if (typeof value === "object" && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, clean(v)]));
    return value;
  };
  for (const [name, value] of Object.entries(input.data)) if (name !== "request") input.data[name] = clean(value);
}
