/**
 * The application, built from its dependencies (`{ config, db, graph, clock, timers }`) so that every
 * test can have its own database, fake Graph API, clock and log, and run in parallel.
 *
 *   webhook → inbox (durable) → conversation engine (flows) → reply lanes → Graph API
 */
import { Elysia, type AnyElysia } from "elysia";
import type { Config } from "./config/load.ts";
import { LiveSettings, type ReloadOutcome } from "./config/live.ts";
import { LiveMap } from "./core/live-map.ts";
import type { Database } from "./db/client.ts";
import { WriteQueue } from "./db/write-queue.ts";
import { StorageHealth } from "./db/health.ts";
import { realTimers, systemClock, type Clock, type Timers } from "./core/clock.ts";
import { createLogger, type Logger } from "./log/logger.ts";
import { scrub } from "./log/scrub.ts";
import { Registry } from "./metrics/registry.ts";
import { TurnTimings } from "./metrics/turn-timings.ts";
import { measureEventLoop } from "./metrics/event-loop.ts";
import { httpErrors } from "./http/error-plugin.ts";
import { GraphClient } from "./messenger/graph.ts";
import { loadFlows, type FlowRegistry } from "./flows/index.ts";
import { ConversationEngine } from "./conversations/engine.ts";
import { SessionStore } from "./conversations/sessions.ts";
import { Contacts } from "./people/contacts.ts";
import { ContactViews } from "./people/contact-views.ts";
import { SessionViews } from "./people/session-views.ts";
import { Transcripts } from "./people/transcripts.ts";
import { Retention } from "./people/retention.ts";
import { Analytics, countStatement } from "./people/analytics.ts";
import { UserData } from "./people/user-data.ts";
import { contactData, transcriptData } from "./people/people-data.ts";
import { sessionData } from "./conversations/user-data.ts";
import { inboxData } from "./inbox/user-data.ts";
import { outboxData } from "./replies/user-data.ts";
import { transformerData } from "./transformers/user-data.ts";
import { threadData } from "./handover/user-data.ts";
import { simulatorData } from "./simulator/user-data.ts";
import { Translation } from "./translation/translation.ts";
import { translationData } from "./translation/user-data.ts";
import { adminRoutes } from "./admin/routes.ts";
import { Transformers } from "./transformers/transformers.ts";
import { Understanding } from "./nlu/understanding.ts";
import { MessengerProfiles } from "./messenger/profile.ts";
import { PAGE_INBOX_APP_ID, Threads } from "./handover/threads.ts";
import { Simulator } from "./simulator/simulator.ts";
import { simulatorRoutes } from "./simulator/routes.ts";
import { standInFetch } from "./simulator/stand-ins.ts";
import { ReplyLanes } from "./replies/lanes.ts";
import { PageDirectory } from "./messenger/pages.ts";
import { installId } from "./replies/outbox.ts";
import { Readiness } from "./ops/readiness.ts";
import { opsRoutes } from "./ops/routes.ts";
import { Inbox } from "./inbox/inbox.ts";
import { webhookRoutes } from "./webhook/routes.ts";
import { Leases } from "./cluster/leases.ts";
import { soleOwner, soleRemoteOwner, type Ownership } from "./cluster/ownership.ts";
import type { Poller } from "./cluster/poller.ts";
import { runScaleOut } from "./conversations/scale-out.ts";
import { erasureNotices } from "./conversations/notices.ts";
import { VERSION } from "./version.ts";

export interface AppDeps {
  config: Config;
  db: Database;
  /** The Graph API client; by default one for `[graph]` of the settings. */
  graph?: GraphClient;
  clock?: Clock;
  /** The timers of every wait (retry pauses, probes, time limits, handover deadlines, reply lanes' delays and retries); tests pass a manual clock (test/helpers/manual-clock.ts). */
  timers?: Timers;
  log?: Logger;
  /** Flows by name; by default loaded from `[flows]` of the settings. */
  flows?: FlowRegistry;
  /** Tuning for tests: see ReplyLanes. */
  replyLanes?: { echoGraceMs?: number; minRetryDelayMs?: number };
  /** Tuning for tests: the transformer worker pool and time limit. */
  transformers?: { poolSize?: number; timeoutMs?: number };
  /** How long shutdown waits for turns in progress. */
  shutdownGraceMs?: number;
  /** The disk refused an fsync (serve stops the process: the page cache can no longer be trusted). */
  onDurabilityFailure?: (error: unknown) => void;
  /** Tuning for tests: the database probe's delays while writes fail (db/health.ts). */
  storageHealth?: { minDelayMs?: number; maxDelayMs?: number };
  /** With `[cluster] enabled`: what this instance says of itself in the instances table (serve passes its port). */
  instanceAbout?: string;
}

export interface App {
  readonly http: { handle(request: Request): Promise<Response> };
  readonly server: AnyElysia;
  readonly inbox: Inbox;
  readonly engine: ConversationEngine;
  readonly sessions: SessionStore;
  readonly contacts: Contacts;
  /** What each feature stores about a person: the GDPR export and erasure. */
  readonly userData: UserData;
  readonly retention: Retention;
  readonly transformers: Transformers;
  /** The endpoints' NLU connectors (docs/nlu.md). */
  readonly understanding: Understanding;
  readonly profiles: MessengerProfiles;
  readonly threads: Threads;
  /** The simulator (docs/simulator.md): its page and stand-in when `[simulator] enabled`; always the refusal of Graph calls about its users. */
  readonly simulator: Simulator;
  readonly replies: ReplyLanes;
  readonly pages: PageDirectory;
  readonly writes: WriteQueue;
  readonly metrics: Registry;
  readonly readiness: Readiness;
  /** Whether the database takes writes; processing pauses while it does not. */
  readonly health: StorageHealth;
  /** The partitions' leases, with `[cluster] enabled` (docs/scale-out.md); null for one instance. */
  readonly leases: Leases | null;
  readonly log: Logger;
  readonly live: LiveSettings; // the settings now (config/live.ts)
  /** Reads the settings file again and applies what can change live (SIGHUP, POST /api/reload); logged. */
  reload(): Promise<ReloadOutcome>;
  /** Starts processing: resumes what was stored and not finished, then takes new work. */
  start(): Promise<void>;
  /** Stops taking work, lets what is in flight finish, commits. Does not close the database. */
  shutdown(): Promise<void>;
}

export async function createApp(deps: AppDeps): Promise<App> {
  const { db } = deps;
  const live = new LiveSettings(deps.config);
  const config = live.current;
  const clock = deps.clock ?? systemClock;
  const timers = deps.timers ?? realTimers;
  const log = deps.log ?? createLogger({ level: config.log.level, format: config.log.format, secrets: config.secrets });
  const metrics = new Registry();
  const timings = new TurnTimings(metrics); // each step of a turn, and the event loop's delay
  const stopMeasuringLoop = measureEventLoop(metrics);
  const flowsOf = (settings: typeof config) => loadFlows(settings, fetch, { timers, clock, metrics }); // llm flows' time limits and retries, metrics
  const flows = new LiveMap(deps.flows ?? (await flowsOf(config)));
  const graphCalls = metrics.counter(
    "messenger_graph_requests_total",
    "Graph API calls by operation (send, profile, ids_for_pages) and result (ok, graph_error, network_error, unreadable_answer).",
  );
  const graphSeconds = metrics.histogram("messenger_graph_request_seconds", "Graph API call latency by operation.");
  const readiness = new Readiness((text) => scrub(text, config.secrets));
  let health: StorageHealth | undefined;
  const writes = new WriteQueue(db.client, {
    durable: db.durable,
    onDurabilityFailure: (error) => {
      log.error("the disk failed to make a commit durable (fsync failed); nothing more is acknowledged: check the disk", { error });
      deps.onDurabilityFailure?.(error);
    },
    onCommitFailure: (error) => health?.failed(error),
  });
  // A small durable write: the probe that tells when a failing database takes writes again (and /readyz's).
  const probeWrite = () =>
    writes.run([
      {
        sql: "INSERT INTO meta (key, value, updated_at) VALUES ('readyz_probe', ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        args: [String(clock.now()), clock.now()],
      },
    ]);
  health = new StorageHealth({
    clock,
    timers,
    log,
    probe: probeWrite,
    advice: db.file
      ? `free space on the disk holding ${db.file}, and check that the file and its folder are writable`
      : "check that the libSQL server is reachable and accepts writes",
    ...deps.storageHealth,
  });
  // Simulated users' Graph calls (all of them in the demo) go to the simulator's stand-in, or are refused when it is off:
  // never to Facebook. Its stored users are read first; with the simulator off and none stored, the Graph client gets the plain fetch.
  const simulator = new Simulator({ enabled: config.simulator.enabled, config, database: db, writes, clock, log });
  await simulator.load();
  const graphFetch = simulator.routesGraphCalls ? simulator.fetchFor(fetch) : fetch;
  const graph = deps.graph ?? new GraphClient({ url: config.graph.url, version: config.graph.version, timeoutMs: config.graph.timeout_ms, fetch: graphFetch });
  graph.onCall((call) => {
    graphCalls.inc({ operation: call.operation, result: call.result });
    graphSeconds.observe({ operation: call.operation }, call.seconds);
  });
  // Several instances on one database (docs/scale-out.md): each runs the users of the partitions it leases.
  const leases = config.cluster.enabled
    ? new Leases({
        settings: config.cluster,
        about: deps.instanceAbout ?? JSON.stringify({ version: VERSION, pid: process.pid }),
        database: db,
        writes,
        clock,
        timers,
        log,
        metrics,
      })
    : null;
  const ownership: Ownership = leases ?? (db.file ? soleOwner : soleRemoteOwner);
  const inbox = new Inbox(writes, clock, (error) => log.error("inbox listener failed", { error }));
  const pages = new PageDirectory(config, db, writes, clock, log);
  const install = await installId(writes, db.client);
  const sessions = new SessionStore(db);
  const threads = new Threads({ config, endpoints: live.known, database: db, writes, graph, pages, inbox, clock, timers, log, metrics });
  threads.onChange((key, floor) => simulator.threadChanged(key, floor));
  const replies = new ReplyLanes({
    threads,
    config,
    endpoints: live.known,
    database: db,
    writes,
    graph,
    pages,
    clock,
    timers,
    log,
    metrics,
    minRetryDelayMs: config.graph.min_retry_delay_ms,
    echoGraceMs: config.graph.resend_after_ms,
    installId: install,
    health,
    failedSendCount: (endpointId, at) => countStatement(endpointId, at, { failedSends: 1 }),
    ownership,
    timings,
    ...deps.replyLanes,
  });
  const contacts = new Contacts({ database: db, graph, credentials: (e, p) => pages.activeCredentials(e, p), clock, log });
  const transformers = await Transformers.start({ config, endpoints: live.known, database: db, writes, clock, log, ...deps.transformers });
  // While the simulator is on, its stand-ins for a translation provider and an NLU service answer at
  // http://stand-in.simulator, in process (the demo uses them: config/demo.ts).
  const serviceFetch = config.simulator.enabled ? standInFetch(fetch) : fetch;
  const translation = new Translation({ config, database: db, writes, clock, timers, log, metrics, fetch: serviceFetch });
  // An NLU script that does not load stops the start, as a transformer module does.
  const understanding = await Understanding.start({
    config,
    database: db,
    writes,
    clock,
    timers,
    log,
    metrics,
    transformers,
    poolSize: deps.transformers?.poolSize,
    fetch: serviceFetch,
  }).catch(async (error) => {
    await transformers.stop();
    throw error;
  });
  const engine = new ConversationEngine({
    config,
    endpoints: live.known,
    database: db,
    writes,
    flows,
    replies,
    clock,
    timers,
    log,
    metrics,
    installId: install,
    sessions,
    contacts,
    transformers,
    threads,
    health,
    ...(translation.active ? { translation } : {}),
    understanding,
    ownership,
    timings,
  });
  inbox.onStored((endpointId, events) => engine.accept(endpointId, events));
  const contactViews = new ContactViews(db);
  const sessionPart = sessionData(db);
  const contactPart = contactData(db);
  const inboxPart = inboxData(db);
  // What each feature stores about a person, in the order the export shows it; and the parts
  // that tell which Page a PSID talks to, most telling first: its latest session, else its
  // contact link, else the latest event it sent.
  const userData = new UserData({ contacts: contactViews, writes })
    .register(
      contactPart,
      sessionPart,
      transcriptData(db),
      inboxPart,
      outboxData(db),
      // Its second delete keeps no process alive: real timers unless a test passes its own.
      transformerData({ database: db, writes, ...(deps.timers ? { timers: deps.timers } : {}) }),
      threadData(db),
      simulatorData(db),
      translationData(translation),
    )
    .locateWith(sessionPart, contactPart, inboxPart);
  // With several instances, the erasure's commit also tells the instance that runs the person.
  if (leases) userData.register(erasureNotices(clock));
  const analytics = new Analytics(db);
  const profiles = new MessengerProfiles({ database: db, writes, graph, credentials: (e, p) => pages.activeCredentials(e, p), clock, log });
  analytics.gaugeToday(metrics, clock);
  const retention = new Retention({
    config,
    endpoints: live.known,
    database: db,
    writes,
    clock,
    log,
    forgetAll: () => {
      sessions.forgetAll();
      contacts.forgetAll();
    },
    // With several instances, the holder of partition 0 purges for all.
    runsHere: () => leases?.holds(0) ?? true,
  }).addPurge("translation", (endpoint, now) => translation.purge(endpoint, now));

  let nextFlows: FlowRegistry | null = null;
  live // a reload: new secrets redacted first; the flows loaded before anything changes
    .onReload({ prepare: async (next) => log.reconfigure({ secrets: next.secrets }), apply: (next) => log.reconfigure({ level: next.log.level }) })
    .onReload({
      prepare: async (next, changed) => void (nextFlows = deps.flows || !changed.some((p) => p.startsWith("flows")) ? null : await flowsOf(next)),
      apply: () => void (nextFlows && flows.swap(new Map([...flows, ...nextFlows]))), // a removed flow stays for a removed endpoint's work
    })
    .onReload({ apply: (next) => pages.update(next) });
  readiness.add("settings", () => (live.endpoints.size > 0 ? null : "no endpoints are configured: add an [[endpoints]] table"));
  readiness.add("database", async () => {
    // While writes fail, the health check's own probes decide when processing resumes.
    const problem = health.problem();
    if (problem) return problem;
    try {
      await probeWrite();
      return null;
    } catch (error) {
      return health.problem() ?? `the database is not writable: ${(error as Error).message}`;
    }
  });
  readiness.add("pages", () => {
    const paused = pages.paused();
    if (paused.length === 0) return null;
    return paused.map((p) => `Page ${p.pageId} of endpoint ${p.endpointId} is paused (${p.reason}): replace its access token, reload settings`).join("; ");
  });

  // normalize: false — a body with a property its schema does not know is refused (400), not trimmed.
  const server = new Elysia({ normalize: false })
    .use(httpErrors(log))
    .use(opsRoutes({ readiness, metrics, metricsEnabled: config.metrics.enabled }))
    .use(webhookRoutes({ config, endpoints: live.endpoints, inbox, log, metrics, clock, timings }))
    .use(
      adminRoutes({
        config,
        live,
        reload: (l) => live.reload(l),
        inbox,
        engine,
        replies,
        sessions,
        contacts,
        userData,
        contactViews,
        sessionViews: new SessionViews(db, writes),
        transcripts: new Transcripts(db),
        analytics,
        pages,
        writes,
        clock,
        log,
        transformers,
        profiles,
        threads,
        ownership,
        leases,
      }),
    );
  if (simulator.enabled) server.use(simulatorRoutes({ simulator, threads, log, maxBodyBytes: config.server.max_body_bytes }));

  let poller: Poller | null = null;
  return {
    http: { handle: (request) => server.handle(request) },
    server,
    inbox,
    engine,
    sessions,
    contacts,
    userData,
    retention,
    transformers,
    understanding,
    profiles,
    threads,
    simulator,
    replies,
    pages,
    writes,
    metrics,
    readiness,
    health,
    log,
    leases,
    live,
    reload: () => live.reload(log),
    async start() {
      await leases?.start(); // the partitions this instance runs, before anything is read for them
      await pages.load(); // paused Pages first: a take that is due at once must know
      await threads.load((key) => ownership.owns(key)); // before the lanes: what they hold depends on it
      simulator.syncOwners((u) => {
        const open = threads.current({ endpointId: u.endpoint_id, pageId: u.page_id, userId: u.user_id });
        return open?.state === "handover" ? (open.ownerAppId ?? PAGE_INBOX_APP_ID) : undefined;
      });
      // A database that refuses writes now (a full disk at start) must not let the lanes run an
      // agent whose answer could not be stored: they wait until a probe write succeeds.
      await health.check();
      await replies.start();
      await engine.start();
      if (leases) {
        poller = runScaleOut({ leases, engine, replies, threads, sessions, contacts, translation, timers, pollMs: config.cluster.poll_ms, log });
      }
      retention.start();
      // In the background: the bot works while Meta is asked, and a failure is only reported.
      void profiles.applyAll(config.endpoints).catch((error) => log.error("applying the Messenger profiles failed", { error }));
    },
    async shutdown() {
      readiness.markStopping();
      await poller?.stop();
      health.stop(); // lanes waiting for the database end; what they hold stays pending
      await retention.stop();
      threads.stop();
      await engine.stop(deps.shutdownGraceMs);
      await replies.stop();
      await leases?.stop(); // after the lanes: what they had under way commits under the lease
      await transformers.stop();
      await understanding.stop();
      await simulator.stop();
      await writes.drain();
      stopMeasuringLoop();
    },
  };
}
