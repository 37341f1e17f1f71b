/**
 * The simulator (docs/simulator.md): a Messenger stand-in for people trying the product without a
 * Facebook App. The chat page (page/, served by routes.ts) asks this module to act as a user; the
 * user's event goes, signed with the endpoint's app secret, to the real `/webhooks/{id}` over loopback —
 * the whole pipeline runs as for Facebook — and the Send API calls about simulated users reach the
 * built-in fake Graph API, which shows them on the page (server-sent events) and sends echoes,
 * deliveries and reads back to the webhook like Meta.
 *
 * Simulated users are PSIDs the simulator makes up, stored in `simulator_users` so that after a
 * restart their queued replies still go to the stand-in. Graph calls about anybody else go to
 * Facebook, except in the demo, where everything goes to the stand-in (there is no real Page).
 * The users are known even with the simulator switched off: then their calls are refused here,
 * with a permanent error — never sent to Facebook.
 */
import { randomInt } from "node:crypto";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import { userKeyId, type UserKey } from "../core/user-key.ts";
import { FakeGraph } from "./fake-graph/fake-graph.ts";
import type { FakePage, RecordedSend } from "./fake-graph/types.ts";
import { midSource, postback, textMessage } from "./webhook-driver.ts";
import { desiredProfile } from "../messenger/profile.ts";
import type { Floor } from "../handover/threads.ts";
import { AllowedHosts } from "./hosts.ts";
import { SimulatorStore, type SimulatedUser, type StoredHistory } from "./store.ts";
import { HISTORY_LINES, type HistoryEvent } from "./history.ts";

export type { SimulatedUser } from "./store.ts";

/** What the page is told as it happens. */
export type SimulatorEvent =
  | { type: "action"; action: string }
  | { type: "message"; message: Record<string, unknown>; message_id?: string }
  | { type: "thread"; state: Floor }
  | { type: "error"; message: string }
  | HistoryEvent;

/** Simulated users per endpoint at most (each is a stored row). */
export const MAX_USERS_PER_ENDPOINT = 1000;

/** What a simulated user does. */
export type UserAction = { text: string } | { quick_reply: { title: string; payload: string } } | { postback: { title: string; payload: string } };

export interface SimulatorDeps {
  /** `[simulator] enabled`: false keeps only the refusal of Graph calls about simulated users. */
  enabled: boolean;
  config: Config;
  database: Database;
  writes: WriteQueue;
  clock: Clock;
  log: Logger;
}

export class Simulator {
  readonly #endpoints: Map<string, EndpointSettings>;
  /** One Graph API stand-in per endpoint (in process; not listening on a port): a Page served by two endpoints stays two Pages. */
  readonly #fakes = new Map<string, FakeGraph>();
  readonly #users = new Map<string, SimulatedUser>();
  readonly #subscribers = new Map<string, Set<(event: SimulatorEvent) => void>>();
  /** Open event streams, closed at shutdown (a browser tab must not hold the server up). */
  readonly #streams = new Set<() => void>();
  /** The demo: every Graph call goes to the stand-in. */
  readonly #everything: boolean;
  /** The Host names the page and its API answer (hosts.ts). */
  readonly hosts: AllowedHosts;
  readonly #store: SimulatorStore;
  /** The users' message ids: this simulator's own, so a restart never repeats one (webhook-driver.ts). */
  readonly #mid = midSource();

  constructor(private readonly deps: SimulatorDeps) {
    this.#store = new SimulatorStore(deps.database, deps.writes);
    this.#endpoints = new Map(deps.config.endpoints.map((e) => [e.id, e]));
    this.hosts = new AllowedHosts(deps.config);
    this.#everything = deps.config.demo && deps.enabled;
    if (!deps.enabled) return;
    for (const endpoint of deps.config.endpoints) {
      const pages: FakePage[] = endpoint.pages.map((page) => ({
        id: page.id,
        token: page.access_token,
        appSecret: endpoint.app_secret,
        appId: endpoint.app_id,
        name: page.name ?? `Page ${page.id}`,
      }));
      const fake = new FakeGraph({
        pages,
        clock: deps.clock,
        // Set when the server listens (listening()).
        webhook: { url: "http://127.0.0.1:0/", retries: 3, onGiveUp: (delivery) => this.#undelivered(endpoint.id, delivery) },
        echoes: true,
        deliveries: true,
        reads: true,
      });
      fake.onSend((send) => this.#sent(send));
      this.#fakes.set(endpoint.id, fake);
    }
  }

  get enabled(): boolean {
    return this.deps.enabled;
  }

  /** The stand-in of an endpoint. */
  graphFor(endpointId: string): FakeGraph {
    const fake = this.#fakes.get(endpointId);
    if (!fake) throw new Error(`no simulator stand-in for endpoint ${endpointId}`);
    return fake;
  }

  /**
   * Reads the stored simulated users: their Graph calls must keep going to the stand-in, or be
   * refused with the simulator off. Before the Graph client is built (see `routesGraphCalls`).
   */
  async load(): Promise<void> {
    for (const user of await this.#store.users()) this.#remember(user);
  }

  /**
   * Whether the Graph client's calls must pass through `fetchFor`: with the simulator on, or with
   * simulated users stored (to refuse their calls). Otherwise the client gets the plain `fetch`.
   */
  get routesGraphCalls(): boolean {
    return this.deps.enabled || this.#users.size > 0;
  }

  /**
   * The server listens at `base`: each stand-in's webhook events go to its endpoint's
   * `/webhooks/{id}`. The page is answered for the host of `base` and for `listenHost` (the
   * address given to listen, which `base` replaces by loopback for 0.0.0.0 and ::).
   */
  listening(base: string, listenHost?: string): void {
    this.hosts.add(new URL(base).host);
    if (listenHost !== undefined) this.hosts.add(listenHost);
    for (const [endpointId, fake] of this.#fakes)
      fake.configureWebhook({ url: `${base}/webhooks/${endpointId}`, retries: 3, onGiveUp: (delivery) => this.#undelivered(endpointId, delivery) });
  }

  /** The stand-ins' thread owners follow the stored thread states (after a restart). */
  syncOwners(ownerOf: (user: SimulatedUser) => string | null | undefined): void {
    for (const user of this.#users.values()) {
      const fake = this.#fakes.get(user.endpoint_id);
      const owner = ownerOf(user);
      if (fake && owner !== undefined) fake.setThreadOwner(user.page_id, user.user_id, owner);
    }
  }

  /** Ends every open event stream (shutdown). */
  closeStreams(): void {
    for (const stop of [...this.#streams]) stop();
  }

  /** Registers an open stream's stop; returns the unregister. */
  trackStream(stop: () => void): () => void {
    this.#streams.add(stop);
    return () => this.#streams.delete(stop);
  }

  async stop(): Promise<void> {
    this.closeStreams();
    for (const fake of this.#fakes.values()) await fake.stop();
  }

  /**
   * The Graph client's `fetch`: calls about simulated users (and in the demo, all calls) are
   * answered by the stand-in; the rest go to `real`.
   */
  fetchFor(real: typeof fetch): typeof fetch {
    return (async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const user = this.#simulatedUserOf(url, init);
      if (user && !this.deps.enabled) {
        // Switched off since: never to Facebook. A permanent error, so the item is dropped and recorded.
        const message = `(#100) user ${user.user_id} is a simulated user and the simulator is off: nothing is sent to Facebook for it`;
        return new Response(JSON.stringify({ error: { message, type: "OAuthException", code: 100 } }), {
          status: 400,
          headers: { "content-type": "application/json" },
        });
      }
      if (user) return this.graphFor(user.endpoint_id).handle(new Request(url.href, init));
      if (this.#everything) return this.#fakeByToken(url).handle(new Request(url.href, init));
      return real(input, init);
    }) as typeof fetch;
  }

  /** The users the page can chat as (those of endpoints still in the settings). */
  users(): SimulatedUser[] {
    return [...this.#users.values()].filter((u) => this.#fakes.has(u.endpoint_id));
  }

  user(endpointId: string, pageId: string, userId: string): SimulatedUser | undefined {
    const user = this.#users.get(userId);
    return user && user.endpoint_id === endpointId && user.page_id === pageId && this.#fakes.has(endpointId) ? user : undefined;
  }

  /** How many simulated users an endpoint has. */
  count(endpointId: string): number {
    let n = 0;
    for (const user of this.#users.values()) if (user.endpoint_id === endpointId) n++;
    return n;
  }

  /** Makes up a user (a PSID no real person has on this Page) and stores it. */
  async addUser(endpointId: string, pageId: string, name: string): Promise<SimulatedUser> {
    let userId: string;
    do userId = `9${String(randomInt(10 ** 14)).padStart(14, "0")}${randomInt(10)}`;
    while (this.#users.has(userId));
    const user = { endpoint_id: endpointId, page_id: pageId, user_id: userId, name };
    await this.#store.add(user, this.deps.clock.now());
    this.#remember(user);
    return user;
  }

  /** The user acts: the event goes through the stand-in to the real webhook, signed. */
  act(user: SimulatedUser, action: UserAction): void {
    const { page_id: page, user_id: psid } = user;
    const timestamp = this.deps.clock.now();
    const mid = this.#mid();
    const event =
      "text" in action
        ? textMessage(page, psid, action.text, { timestamp, mid })
        : "quick_reply" in action
          ? textMessage(page, psid, action.quick_reply.title, { timestamp, mid, quickReplyPayload: action.quick_reply.payload })
          : postback(page, psid, action.postback.payload, { timestamp, mid, title: action.postback.title });
    this.graphFor(user.endpoint_id).userEvent(page, psid, event);
  }

  /** The user's conversation so far (history.ts), or null when the endpoint keeps no transcripts (`collect_conversations`). */
  async history(user: SimulatedUser): Promise<StoredHistory | null> {
    if (!this.#endpoints.get(user.endpoint_id)?.data_protection.collect_conversations) return null;
    return this.#store.history(user, HISTORY_LINES);
  }

  /** A person marks the conversation Done in the (simulated) Page Inbox: the thread comes back. */
  inboxDone(user: SimulatedUser): void {
    this.graphFor(user.endpoint_id).inboxDone(user.page_id, user.user_id);
  }

  /** Follows what a simulated user's Messenger would show; returns the unsubscribe. */
  subscribe(user: SimulatedUser, push: (event: SimulatorEvent) => void): () => void {
    const id = this.#key(user.page_id, user.user_id);
    let set = this.#subscribers.get(id);
    if (!set) this.#subscribers.set(id, (set = new Set()));
    set.add(push);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      set!.delete(push);
      if (set!.size === 0 && this.#subscribers.get(id) === set) this.#subscribers.delete(id);
    };
  }

  /** The thread state of a user changed (handover): shown on the page. */
  threadChanged(key: UserKey, state: Floor): void {
    this.#push(key.pageId, key.userId, { type: "thread", state });
  }

  /** What the page needs to draw an endpoint: its Pages, persistent menu, Get Started, pacing. */
  setup(): Record<string, unknown>[] {
    // A disabled endpoint ignores its webhook: nothing to chat with.
    return this.deps.config.endpoints
      .filter((e) => e.enabled)
      .map((e) => {
        const profile = e.messenger_profile ? desiredProfile(e.messenger_profile) : {};
        const menus = (profile.persistent_menu as { locale: string; call_to_actions?: unknown[] }[] | undefined) ?? [];
        return {
          id: e.id,
          pages: e.pages.map((p) => ({ id: p.id, name: p.name ?? `Page ${p.id}` })),
          get_started: profile.get_started ?? null,
          greeting: (profile.greeting as { locale: string; text: string }[] | undefined)?.find((g) => g.locale === "default")?.text ?? null,
          menu: menus.find((m) => m.locale === "default")?.call_to_actions ?? [],
          ice_breakers: profile.ice_breakers ?? [],
        };
      });
  }

  // --- internals ------------------------------------------------------------------------

  #remember(user: SimulatedUser): void {
    this.#users.set(user.user_id, user);
    const fake = this.#fakes.get(user.endpoint_id);
    if (!fake) return; // switched off, or the endpoint is gone: only remembered, for the refusal
    const [first, ...rest] = user.name.split(" ");
    fake.setUser(user.page_id, user.user_id, {
      profile: { first_name: first ?? user.name, last_name: rest.join(" "), locale: "en_US", timezone: 0 },
      permissions: ["pages_user_locale", "pages_user_timezone", "pages_user_gender"],
    });
  }

  #key(pageId: string, userId: string): string {
    return userKeyId({ endpointId: "", pageId, userId });
  }

  #push(pageId: string, userId: string, event: SimulatorEvent): void {
    for (const push of this.#subscribers.get(this.#key(pageId, userId)) ?? []) push(event);
  }

  #sent(send: RecordedSend): void {
    if (send.type === "action") this.#push(send.pageId, send.recipientId, { type: "action", action: send.senderAction ?? "" });
    else this.#push(send.pageId, send.recipientId, { type: "message", message: send.message ?? {}, ...(send.messageId ? { message_id: send.messageId } : {}) });
  }

  /** The simulated user a Graph call is about: the recipient of a POST, a profile, a thread owner query. */
  #simulatedUserOf(url: URL, init?: RequestInit): SimulatedUser | undefined {
    if (this.#users.size === 0) return undefined;
    const recipient = url.searchParams.get("recipient");
    if (recipient && this.#users.has(recipient)) return this.#users.get(recipient);
    const segments = url.pathname.split("/").filter(Boolean); // [version, node, edge?]
    if (segments[1] && this.#users.has(segments[1])) return this.#users.get(segments[1]);
    if (typeof init?.body === "string") {
      try {
        const id = (JSON.parse(init.body) as { recipient?: { id?: unknown } }).recipient?.id;
        if (id !== undefined) return this.#users.get(String(id));
      } catch {
        // not JSON: not about a user
      }
    }
    return undefined;
  }

  /** The demo's Page-level calls: the stand-in of the endpoint whose Page token it is. */
  #fakeByToken(url: URL): FakeGraph {
    const token = url.searchParams.get("access_token");
    const endpoint = this.deps.config.endpoints.find((e) => e.pages.some((p) => p.access_token === token)) ?? this.deps.config.endpoints[0]!;
    return this.graphFor(endpoint.id);
  }

  /** The stand-in gave up posting an event to the webhook: logged, and shown on the user's page. */
  #undelivered(endpointId: string, delivery: { pageId: string; body: string; status: number | null; error?: string }): void {
    const why = delivery.error ?? `HTTP ${delivery.status}`;
    this.deps.log.error(`the simulator could not deliver an event to /webhooks/${endpointId} (${why}): check that the endpoint is enabled and its app_secret`, {
      endpoint: endpointId,
      page: delivery.pageId,
    });
    try {
      const item = (JSON.parse(delivery.body) as { entry?: { messaging?: Record<string, any>[]; standby?: Record<string, any>[] }[] }).entry?.[0];
      const event = item?.messaging?.[0] ?? item?.standby?.[0];
      const userId = event?.message?.is_echo ? event?.recipient?.id : event?.sender?.id;
      if (userId)
        this.#push(delivery.pageId, String(userId), { type: "error", message: `the webhook /webhooks/${endpointId} did not take the event (${why})` });
    } catch {
      // not ours to read: logged above
    }
  }
}
