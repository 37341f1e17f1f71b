/**
 * A faithful stand-in for `graph.facebook.com`, used by the tests, the benchmarks and the
 * simulator: the Send API with Graph's validation, auth and error envelopes, the messaging window,
 * User Profile, ID matching, handover and Messenger Profile. Every request is recorded; failures
 * can be scripted per call; successful sends can emit signed echo / delivery / read webhooks back
 * to our server. Served with `Bun.serve` on 127.0.0.1 only, or called in process through `handle()`.
 *
 * This class is the fake's face; its parts, one job each, are in this folder:
 *
 *   router.ts             a request: recorded, authenticated, routed to its edge
 *   send-api.ts           /me/messages and /me/message_attachments
 *   handover.ts           thread control edges and thread owners
 *   user-profiles.ts      user profiles and ids_for_pages
 *   messenger-profile.ts  /me/messenger_profile
 *   webhooks.ts           the webhook POSTs to our server (echoes, deliveries, reads, handover)
 *   actors.ts             the user and the Page Inbox acting
 *   directory.ts          the Pages, their users, thread owners
 *   recorder.ts           calls and sends, and the waits for them
 *   failures.ts           scripted failures and held answers
 *   answers.ts, graph-errors.ts, params.ts, types.ts   Graph's wire format and the fake's shapes
 */
import type { Server } from "bun";
import { systemClock } from "../../core/clock.ts";
import type { MessagingEvent } from "../webhook-driver.ts";
import { Actors } from "./actors.ts";
import { Answers, NETWORK_ERROR, brokenResponse } from "./answers.ts";
import { FakeDirectory } from "./directory.ts";
import { ScriptedFailures } from "./failures.ts";
import { HandoverEdges } from "./handover.ts";
import { MessengerProfileEdge } from "./messenger-profile.ts";
import { Recorder } from "./recorder.ts";
import { GraphRouter } from "./router.ts";
import { SendApi } from "./send-api.ts";
import type { FailureOptions, FakeGraphOptions, FakeUser, RecordedCall, RecordedSend, ScriptedFailure, SendFilter, WebhookDelivery } from "./types.ts";
import { UserProfiles } from "./user-profiles.ts";
import { WebhookEmitter } from "./webhooks.ts";

export class FakeGraph {
  readonly calls: RecordedCall[];
  /** Every webhook POST the fake made (echoes, deliveries, reads, handover events), in order. */
  readonly webhookDeliveries: WebhookDelivery[];
  readonly #options: FakeGraphOptions;
  readonly #directory: FakeDirectory;
  readonly #recorder = new Recorder();
  readonly #failures = new ScriptedFailures();
  readonly #webhooks: WebhookEmitter;
  readonly #messengerProfile: MessengerProfileEdge;
  readonly #sendApi: SendApi;
  readonly #actors: Actors;
  readonly #router: GraphRouter;
  #server: Server<undefined> | null = null;
  #url = "";

  constructor(options: FakeGraphOptions) {
    this.#options = options;
    const clock = options.clock ?? systemClock;
    const answers = new Answers();
    const directory = (this.#directory = new FakeDirectory(options.pages, clock));
    const recorder = this.#recorder;
    const failures = this.#failures;
    const webhooks = (this.#webhooks = new WebhookEmitter(options, clock));
    const handover = new HandoverEdges(options, directory, failures, answers);
    this.#messengerProfile = new MessengerProfileEdge(answers, clock);
    this.#sendApi = new SendApi({ options, directory, recorder, failures, webhooks, handover, answers, clock });
    this.#actors = new Actors(directory, webhooks, clock);
    this.#router = new GraphRouter({
      directory,
      recorder,
      answers,
      clock,
      sendApi: this.#sendApi,
      handover,
      users: new UserProfiles(options, directory, answers, clock),
      messengerProfile: this.#messengerProfile,
    });
    this.calls = recorder.calls;
    this.webhookDeliveries = webhooks.deliveries;
  }

  /** Starts the fake on 127.0.0.1 with a free port. */
  static async start(options: FakeGraphOptions): Promise<FakeGraph> {
    const graph = new FakeGraph(options);
    graph.#server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (request) => {
        const outcome = await graph.#router.dispatch(request);
        return outcome === NETWORK_ERROR ? brokenResponse() : outcome;
      },
    });
    graph.#url = `http://127.0.0.1:${graph.#server.port}`;
    return graph;
  }

  /** `http://127.0.0.1:PORT` (empty for a fake that was constructed, not started). */
  get url(): string {
    return this.#url;
  }

  /**
   * The same handler, in process. A scripted network error rejects like `fetch` does (a
   * TypeError, or the request signal's reason when the caller gave up).
   */
  async handle(request: Request): Promise<Response> {
    const outcome = await this.#router.dispatch(request);
    if (outcome !== NETWORK_ERROR) return outcome;
    if (request.signal.aborted) throw request.signal.reason;
    throw new TypeError("fetch failed: the connection was closed without an answer (fake Graph API network error)");
  }

  /** Successful `POST …/messages`, in arrival order. */
  sends(filter: SendFilter = {}): RecordedSend[] {
    return this.#recorder.sends(filter);
  }

  /** Queues a scripted failure for the next matching `/messages` call(s); queued failures are used first-in, first-out. */
  failNext(failure: ScriptedFailure, options: FailureOptions = {}): void {
    this.#failures.add(failure, options);
  }

  /** Adds or updates a user of a Page (merged with what was set before). */
  setUser(pageId: string, psid: string, user: FakeUser): void {
    this.#directory.setUser(pageId, psid, user);
  }

  /** Which Pages belong to which business (for `ids_for_pages`), replacing what was set before. */
  setBusiness(business: Record<string, string>): void {
    this.#options.business = { ...business };
  }

  user(pageId: string, psid: string): FakeUser | undefined {
    return this.#directory.user(pageId, psid);
  }

  /** The user wrote to the Page at `at` (default: now): opens the 24-hour window. */
  userMessaged(pageId: string, psid: string, at?: number): void {
    this.#directory.userMessaged(pageId, psid, at);
  }

  /** The app owning the thread; `null` when idle. Default: the Page's app. */
  threadOwner(pageId: string, psid: string): string | null {
    return this.#directory.threadOwner(pageId, psid);
  }

  setThreadOwner(pageId: string, psid: string, appId: string | null): void {
    this.#directory.setThreadOwner(pageId, psid, appId);
  }

  /**
   * The user writes to the Page: a text message to our webhook, in `messaging[]` while our app owns
   * the thread and in `standby[]` while another app (the Page Inbox) does. Opens the 24-hour window.
   */
  userMessage(pageId: string, psid: string, text: string): MessagingEvent {
    return this.#actors.userMessage(pageId, psid, text);
  }

  /** Any event from the user (a message, a quick reply, a postback), routed like `userMessage`. */
  userEvent(pageId: string, psid: string, event: MessagingEvent): MessagingEvent {
    return this.#actors.userEvent(pageId, psid, event);
  }

  /** A person answers in the Page Inbox: the echo (app 263902037430900), in standby[] unless our app owns the thread. */
  inboxReply(pageId: string, psid: string, text: string): MessagingEvent {
    return this.#actors.inboxReply(pageId, psid, text);
  }

  /** A person takes the conversation in the Page Inbox: the Inbox owns the thread, our app (the previous owner) gets `take_thread_control`. */
  inboxTake(pageId: string, psid: string, metadata?: string): void {
    this.#actors.inboxTake(pageId, psid, metadata);
  }

  /** The Page Inbox asks our app (the owner) for the thread: `request_thread_control`; nothing changes until we pass. */
  inboxRequest(pageId: string, psid: string, metadata?: string): void {
    this.#actors.inboxRequest(pageId, psid, metadata);
  }

  /** A human marks the conversation "Done" in the Page Inbox: control returns to the Page's app, which gets `pass_thread_control`. */
  inboxDone(pageId: string, psid: string, metadata?: string): void {
    this.#actors.inboxDone(pageId, psid, metadata);
  }

  /** Called with every successful Send API call (the simulator shows them as they come). */
  onSend(listener: (send: RecordedSend) => void): void {
    this.#recorder.onSend(listener);
  }

  /** The stored Messenger Profile of a Page. */
  messengerProfile(pageId: string): Record<string, unknown> {
    return this.#messengerProfile.of(pageId);
  }

  /** Resolves once at least `count` matching sends exist. */
  waitForSends(count: number, filter: SendFilter = {}, timeoutMs = 5000): Promise<RecordedSend[]> {
    return this.#recorder.waitForSends(count, filter, timeoutMs);
  }

  /**
   * Resolves once at least `count` answered calls match; with `inFlight`, calls that arrived and
   * are not answered yet (a held answer, say) count too.
   */
  waitForCalls(predicate: (c: RecordedCall) => boolean, count = 1, timeoutMs = 5000, options: { inFlight?: boolean } = {}): Promise<RecordedCall[]> {
    return this.#recorder.waitForCalls(predicate, count, timeoutMs, options);
  }

  /** Points the fake's webhook POSTs (echoes, deliveries, reads, handover events) at a server. */
  configureWebhook(webhook: FakeGraphOptions["webhook"], emit: { echoes?: boolean; deliveries?: boolean; reads?: boolean } = {}): void {
    this.#webhooks.configure(webhook, emit);
  }

  /** Emits arbitrary events to the configured webhook, signed like the fake's own (for scenario tests). */
  emitWebhook(pageId: string, items: MessagingEvent[], options: { standby?: boolean } = {}): void {
    this.#webhooks.emit(this.#directory.page(pageId), items, options);
  }

  /** Resolves when every webhook POST made so far has been answered (or failed). */
  flushWebhooks(): Promise<void> {
    return this.#webhooks.flush();
  }

  /** Back to the just-started state: recorded traffic, scripted failures, users, thread owners and profiles are forgotten. */
  reset(): void {
    this.#webhooks.reset();
    this.#recorder.reset();
    this.#failures.reset();
    this.#directory.reset();
    this.#messengerProfile.reset();
    this.#sendApi.reset();
  }

  /** Releases held answers, closes the server and waits for webhook POSTs in progress. */
  async stop(): Promise<void> {
    const webhooksDone = this.#webhooks.stop(); // no more POSTs or retries from now on
    this.#failures.releaseAll();
    this.#server?.stop(true);
    this.#server = null;
    await webhooksDone;
  }
}
