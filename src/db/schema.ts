/**
 * The database schema. Every piece of runtime state lives in one SQLite file; migrations are
 * generated from this file by drizzle-kit (`npm run db:generate`) into migrations/.
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * Webhook events, stored before Facebook gets its 200. One row per `messaging[]`/`standby[]`
 * item of a known Page. `dedup_key` makes a redelivered event a no-op: it is unique per endpoint and event time.
 * Rows are drained per (endpoint, page, user) in `timestamp` order, then `id` order.
 */
export const inbox = sqliteTable(
  "inbox",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    /** The PSID the event is about (the sender, or the recipient of an echo); '' for Page-level events. */
    userId: text("user_id").notNull(),
    /** message | postback | referral | echo | delivery | read | reaction | ... (see webhook/events.ts) */
    kind: text("kind").notNull(),
    /** 1 when the event came in `standby[]` (another app owns the thread). */
    standby: integer("standby", { mode: "boolean" }).notNull().default(false),
    dedupKey: text("dedup_key").notNull(),
    /** Facebook's event timestamp (ms since epoch). */
    timestamp: integer("timestamp").notNull(),
    /** When we stored it (ms since epoch). */
    receivedAt: integer("received_at").notNull(),
    /** The raw messaging item, as JSON. */
    event: text("event").notNull(),
    /** pending → done (or failed after retries). */
    status: text("status").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    processedAt: integer("processed_at"),
  },
  (t) => [
    // Led by the event's time, so that new events land on the last pages of the index instead of
    // a random page each (a message id is random): docs/benchmarks.md, "The dedup index in time
    // order". A redelivery carries the same event, time included.
    uniqueIndex("inbox_dedup_time").on(t.endpointId, t.timestamp, t.dedupKey),
    // Only pending rows: the per-user drain and the restart scan read it, and a row leaves it when
    // processed, so it stays small however long the inbox history is.
    index("inbox_pending_lane").on(t.endpointId, t.pageId, t.userId, t.timestamp, t.id).where(sql`status = 'pending'`),
  ],
);

/** Small key/value facts about this database (schema stamps, probes, instance info). */
export const meta = sqliteTable("meta", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
  updatedAt: integer("updated_at").notNull().default(sql`(unixepoch() * 1000)`),
});

/**
 * The reply lanes: everything that will be sent to a user, in order. One lane per (endpoint,
 * Page, user); items are sent in `id` order, one at a time, head-of-line on retries.
 * Rows are written in the same transaction that finishes the turn that produced them.
 */
export const outbox = sqliteTable(
  "outbox",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    userId: text("user_id").notNull(),
    /** flow | inject | notify | handover | seen */
    source: text("source").notNull(),
    /** The inbox event whose turn produced this item, if any. */
    inboxId: integer("inbox_id"),
    sessionId: text("session_id"),
    /** message (typing and delay apply) | action (a sender action such as mark_seen) */
    kind: text("kind").notNull(),
    /** The Send API body without `recipient`: `{ messaging_type, message }` or `{ sender_action }`. */
    body: text("body").notNull(),
    /** pending → sending → sent, or dropped / failed (given up, recorded in last_error). */
    status: text("status").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: integer("next_attempt_at"),
    firstAttemptAt: integer("first_attempt_at"),
    lastError: text("last_error"),
    messageId: text("message_id"),
    createdAt: integer("created_at").notNull(),
    sentAt: integer("sent_at"),
    deliveredAt: integer("delivered_at"),
    readAt: integer("read_at"),
  },
  (t) => [
    index("outbox_user").on(t.endpointId, t.pageId, t.userId, t.id),
    index("outbox_open").on(t.endpointId, t.pageId, t.userId, t.id).where(sql`status IN ('pending', 'sending')`),
  ],
);

/**
 * Conversations with the flow: one current session per (endpoint, Page, user). After
 * `expiration_minutes` of inactivity the next input ends it and starts a new one.
 */
export const sessions = sqliteTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    userId: text("user_id").notNull(),
    /** The flow's state, as the flow last returned it (JSON object). */
    context: text("context").notNull().default("{}"),
    createdAt: integer("created_at").notNull(),
    lastActiveAt: integer("last_active_at").notNull(),
    endedAt: integer("ended_at"),
  },
  (t) => [
    uniqueIndex("sessions_current").on(t.endpointId, t.pageId, t.userId).where(sql`ended_at IS NULL`),
    // For the sessions API (by PSID).
    index("sessions_user").on(t.userId, t.endpointId),
  ],
);

/** Per-Page state that must survive a restart: a Page paused because Meta rejected its token. */
export const pageState = sqliteTable(
  "page_state",
  {
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    pausedAt: integer("paused_at"),
    pausedReason: text("paused_reason"),
    /** sha256 prefix of the token that was rejected: a different token in the settings resumes the Page. */
    tokenFingerprint: text("token_fingerprint"),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.pageId] })],
);

/**
 * Contact profiles (src/people/): one per person and endpoint. A person has a different PSID on each
 * Page; with `merge_contact_profiles` the PSIDs Meta links (`ids_for_pages`) share one contact.
 * Nothing is written here when the endpoint's `data_protection.contact_profiles` is off.
 */
export const contacts = sqliteTable(
  "contacts",
  {
    id: text("id").primaryKey(),
    endpointId: text("endpoint_id").notNull(),
    /** The Facebook fields copied in by `update_contact_profiles` (JSON object). */
    profile: text("profile").notNull().default("{}"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    /** The last input of any of its PSIDs: `retention_days` purges contacts idle for longer. */
    lastActiveAt: integer("last_active_at").notNull(),
  },
  (t) => [index("contacts_idle").on(t.endpointId, t.lastActiveAt)],
);

/**
 * The PSIDs of a contact, one row per (endpoint, Page, PSID), with the Facebook profile cached
 * for that PSID (positive and negative answers, until `profile_expires_at`).
 */
export const contactUsers = sqliteTable(
  "contact_users",
  {
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    userId: text("user_id").notNull(),
    contactId: text("contact_id").notNull(),
    /** The last profile Facebook gave for this PSID (JSON object), or null. */
    profile: text("profile"),
    /** ok | unavailable (no profile: 2018218) | denied (no permission) | error (try again soon) | null (never asked) */
    profileStatus: text("profile_status"),
    /** When to ask Facebook again (the `ext=` expiry of `profile_pic`, or a fixed time). */
    profileExpiresAt: integer("profile_expires_at"),
    /** When `ids_for_pages` was last asked for this PSID (merge_contact_profiles). */
    linkedAt: integer("linked_at"),
    firstSeenAt: integer("first_seen_at").notNull(),
    lastSeenAt: integer("last_seen_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.endpointId, t.pageId, t.userId] }),
    index("contact_users_contact").on(t.contactId),
    // GET /api/contacts?user_id= (a PSID without its Page)
    index("contact_users_user").on(t.userId),
  ],
);

/**
 * Transcripts (`collect_conversations`, src/people/transcripts): each turn's input and the messages it queued,
 * readable per contact, per session and per user. One index, by PSID: every turn writes two rows, and each
 * index more is one more page each commit writes; a session or a contact names its PSIDs, and retention walks
 * id ranges (docs/benchmarks.md, "One index for the transcripts").
 */
export const transcripts = sqliteTable(
  "transcripts",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    userId: text("user_id").notNull(),
    contactId: text("contact_id"),
    sessionId: text("session_id"),
    /** in (from the user) | out (to the user) */
    direction: text("direction").notNull(),
    /** in: user | inject | standby | echo (a person in the Page Inbox) ...; out: flow | inject | notify */
    source: text("source").notNull(),
    text: text("text"),
    /** in: the input's data; out: the Messenger message (JSON). */
    data: text("data"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    // By PSID, newest first: the conversations API (also by session or contact, through their PSIDs),
    // export, erasure, a merge's new contact id.
    index("transcripts_user").on(t.userId, t.id),
  ],
);

/** Analytics (`collect_analytics`): counts per endpoint and UTC day. No user text, data or ids. */
export const analyticsDaily = sqliteTable(
  "analytics_daily",
  {
    endpointId: text("endpoint_id").notNull(),
    /** YYYY-MM-DD, UTC */
    day: text("day").notNull(),
    inputs: integer("inputs").notNull().default(0),
    outputs: integer("outputs").notNull().default(0),
    sessions: integer("sessions").notNull().default(0),
    users: integer("users").notNull().default(0),
    failedSends: integer("failed_sends").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.day] })],
);

/**
 * Analytics (`collect_analytics`): the tokens flows reported (FlowContext `usage`, src/flows/flow.ts)
 * per endpoint, flow and UTC day, summed in each turn's commit. No user text, data or ids.
 */
export const analyticsTokensDaily = sqliteTable(
  "analytics_tokens_daily",
  {
    endpointId: text("endpoint_id").notNull(),
    flow: text("flow").notNull(),
    /** YYYY-MM-DD, UTC */
    day: text("day").notNull(),
    promptTokens: integer("prompt_tokens").notNull().default(0),
    completionTokens: integer("completion_tokens").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.flow, t.day] })],
);

/**
 * Transformers' `getSessionStorage(userId, sessionId)` objects (src/transformers/), per endpoint; the key
 * is the JSON of the pair. Kept until the retention purge finds them idle.
 */
export const transformerStorage = sqliteTable(
  "transformer_storage",
  {
    endpointId: text("endpoint_id").notNull(),
    storageKey: text("storage_key").notNull(),
    /** JSON object */
    value: text("value").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.storageKey] }), index("transformer_storage_age").on(t.endpointId, t.updatedAt)],
);

/**
 * Who has the floor in a user's thread (src/handover/). No row: the bot (our app owns
 * the thread). A row is written when that changes: `handover` while another app (the Page Inbox)
 * owns the thread, `paused` while a person answered from another app and the quiet time runs,
 * back to `bot` afterwards (the row then keeps the last error and times for the admin API).
 * Rows not in state `bot` are loaded at start; the reply lane holds the user's messages meanwhile.
 */
export const threads = sqliteTable(
  "threads",
  {
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    userId: text("user_id").notNull(),
    /** bot | handover | paused */
    state: text("state").notNull(),
    /** The app owning the thread while `handover` (263902037430900 = the Page Inbox); null when unknown. */
    ownerAppId: text("owner_app_id"),
    /** The metadata of the last handover (ours, or the other app's). */
    metadata: text("metadata"),
    /** When the current state began (ms). */
    since: integer("since").notNull(),
    /** The last message a person sent from another app (an echo not ours), ms. */
    lastHumanAt: integer("last_human_at"),
    /** `paused`: when the quiet time ends (ms). */
    pausedUntil: integer("paused_until"),
    /** The last handover call that failed, with Graph's message; cleared by the next success. */
    lastError: text("last_error"),
    /** A take that failed for a passing reason (network, rate limit, paused Page) is tried again then (ms). */
    retryAt: integer("retry_at"),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.pageId, t.userId] }), index("threads_open").on(t.state).where(sql`state <> 'bot'`)],
);

/**
 * The simulator's users (src/simulator/): PSIDs made up by the simulator. Graph API calls
 * about them go to the built-in stand-in, never to Facebook — also after a restart, which is why
 * they are stored.
 */
export const simulatorUsers = sqliteTable(
  "simulator_users",
  {
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    userId: text("user_id").notNull(),
    name: text("name").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.pageId, t.userId] }), index("simulator_users_user").on(t.userId)],
);

/**
 * Real-time translation (src/translation/): each user's language with `user_language = "auto"`,
 * detected from their first inputs and locked after `lock_after` of them. Purged by retention
 * with the idle users; erased with the person.
 */
export const translationUsers = sqliteTable(
  "translation_users",
  {
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    userId: text("user_id").notNull(),
    /** The language detected most often so far (a BCP 47 tag such as `de` or `pt-BR`). */
    language: text("language").notNull(),
    /** JSON: how often each language was detected, `{ "de": 2, "en": 1 }`. */
    votes: text("votes").notNull(),
    /** The inputs detected so far; at `lock_after` the language is locked. */
    inputs: integer("inputs").notNull(),
    /** When the language was locked (ms); null while it is still being detected. */
    lockedAt: integer("locked_at"),
    /** The last input counted (its message id): a turn run again after a crash is not counted twice. */
    lastMid: text("last_mid"),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.endpointId, t.pageId, t.userId] }), index("translation_users_age").on(t.endpointId, t.updatedAt)],
);

/**
 * Translations already paid for (`cache_hours`). `key` is a hash of the provider's settings, the
 * languages and the text — and, for a user's own text, of that user: their text is used for them
 * only. The user columns name the person whose turn stored the row (erased with them); the
 * flow's texts (`kind = "bot"`) are found by anyone's turn.
 */
export const translationCache = sqliteTable(
  "translation_cache",
  {
    key: text("key").primaryKey(),
    endpointId: text("endpoint_id").notNull(),
    pageId: text("page_id").notNull(),
    userId: text("user_id").notNull(),
    /** user (the person's own text) | bot (a text of the flow) */
    kind: text("kind").notNull(),
    translation: text("translation").notNull(),
    /** The language the provider detected, when it was asked to (the user's text with `auto`). */
    detected: text("detected"),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("translation_cache_expiry").on(t.endpointId, t.expiresAt), index("translation_cache_user").on(t.userId, t.endpointId)],
);

/**
 * Scale-out (`[cluster] enabled`, docs/scale-out.md): the partitions of the users, each leased by
 * one instance at a time. `epoch` grows by one whenever another instance takes the lease: a write
 * that carries an older epoch is refused (see `clusterFence`).
 */
export const clusterLeases = sqliteTable("cluster_leases", {
  partition: integer("partition").primaryKey(),
  /** The instance holding it ('' when nobody has yet). */
  owner: text("owner").notNull(),
  epoch: integer("epoch").notNull(),
  /** Until when (ms since epoch, the owner's clock); renewed by the owner, 0 when released. */
  expiresAt: integer("expires_at").notNull(),
});

/** The instances alive (each renews its row with its leases): the partitions are spread among them. */
export const clusterMembers = sqliteTable("cluster_members", {
  instanceId: text("instance_id").primaryKey(),
  startedAt: integer("started_at").notNull(),
  expiresAt: integer("expires_at").notNull(),
  /** What the instance says of itself (version, pid, port) for the admin API and the logs. */
  about: text("about").notNull(),
});

/**
 * The fence: never holds a row. Inserting into it is how a turn's commit or a send's mark says
 * "only if this instance still holds the partition at this epoch (and the row is still open)";
 * a trigger (migration 0007) ignores the insert when that holds and aborts the transaction
 * with "fenced: …" when it does not.
 */
export const clusterFence = sqliteTable("cluster_fence", {
  partition: integer("partition").notNull(),
  owner: text("owner").notNull(),
  epoch: integer("epoch").notNull(),
  inboxId: integer("inbox_id"),
  outboxId: integer("outbox_id"),
});
