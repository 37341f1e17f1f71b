/**
 * `retention_days`: once at start and then every hour, each endpoint's transcripts older than its
 * retention, contacts idle for longer (with their PSID links), sessions ended or idle for longer,
 * idle transformer storage and finished inbox/outbox rows are deleted. 0 keeps everything.
 *
 * The local driver runs statements on the event loop, so the work is cut into batches of
 * `PURGE_BATCH` rows with a yield between them: webhooks are answered while a large backlog is
 * purged. Tables whose ids grow with time (inbox, outbox, transcripts) are walked in id ranges
 * from the oldest row and the walk stops at the first young range, so an hourly run over a big
 * table that has nothing to purge costs one indexed lookup, not a scan.
 *
 * A feature with rows of its own to purge (translation/: its expired cache) registers a purge
 * with `addPurge`, wired in app.ts; it runs for every endpoint at each run, also with
 * `retention_days = 0` (the feature decides what is old), so this file need not know its tables.
 */
import type { Row } from "@libsql/client";
import type { Config } from "../config/load.ts";
import type { EndpointSettings } from "../config/schema.ts";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { rowReader } from "../db/rows.ts";
import { contacts } from "../db/schema.ts";
import type { Clock } from "../core/clock.ts";
import { yieldToIo } from "../core/yield.ts";
import type { Logger } from "../log/logger.ts";

export const PURGE_INTERVAL_MS = 60 * 60_000;

/** Rows deleted per statement by the retention purge. */
export const PURGE_BATCH = 1000;

/**
 * The tables walked in id ranges: their age column, and which of their rows are finished (work
 * still pending is never purged). A range is `SELECT id, <age> AS age ... WHERE id > ?`, then the
 * old finished rows of the endpoint in it are deleted.
 */
const BY_ID_RANGE = {
  transcripts: { age: "created_at", finished: "1" },
  inbox: { age: "received_at", finished: "status <> 'pending'" },
  outbox: { age: "created_at", finished: "status NOT IN ('pending', 'sending')" },
} as const;

const rangeSql = (table: keyof typeof BY_ID_RANGE) => `SELECT id, ${BY_ID_RANGE[table].age} AS age FROM ${table} WHERE id > ? ORDER BY id LIMIT ?`;
const deleteRangeSql = (table: keyof typeof BY_ID_RANGE) =>
  `DELETE FROM ${table} WHERE id > ? AND id <= ? AND endpoint_id = ? AND ${BY_ID_RANGE[table].age} < ? AND ${BY_ID_RANGE[table].finished}`;
/** A row of a range: its id and age (named in the SQL above). */
const readRange = (row: Row) => {
  const { id, age } = row as unknown as { id: number; age: number };
  return { id: Number(id), age: Number(age) };
};

const PURGE_STORAGE_SQL =
  "DELETE FROM transformer_storage WHERE rowid IN (SELECT rowid FROM transformer_storage WHERE endpoint_id = ? AND updated_at < ? LIMIT ?)";
const IDLE_CONTACTS_SQL = "SELECT id FROM contacts WHERE endpoint_id = ? AND last_active_at < ? LIMIT ?";
const readContactId = rowReader(contacts, ["id"]);
/** Sessions are walked in rowid ranges (the rowid named, so that it is read by name). */
const SESSION_RANGE_SQL = "SELECT rowid AS session_rowid FROM sessions WHERE rowid > ? ORDER BY rowid LIMIT ?";
const PURGE_SESSIONS_SQL = "DELETE FROM sessions WHERE rowid > ? AND rowid <= ? AND endpoint_id = ? AND coalesce(ended_at, last_active_at) < ?";

export interface RetentionDeps {
  config: Config;
  /** The endpoints now, and those a reload removed (config/live.ts `known`); by default those of `config`. */
  endpoints?: ReadonlyMap<string, EndpointSettings>;
  database: Database;
  writes: WriteQueue;
  clock: Clock;
  log: Logger;
  /** Clears the caches of what the purge may have deleted. */
  forgetAll(): void;
  /** Whether this instance runs the purge now (with several instances, one of them does: app.ts). */
  runsHere?: () => boolean;
}

/** A feature's purge for one endpoint at `now`: resolves with the rows deleted per table. */
export type FeaturePurge = (endpoint: EndpointSettings, now: number) => Promise<Record<string, number>>;

export class Retention {
  #timer: Timer | null = null;
  #running: Promise<void> | null = null;
  readonly #purges: { name: string; purge: FeaturePurge }[] = [];

  constructor(private readonly deps: RetentionDeps) {}

  /** Runs `purge` for each endpoint at every run, after the tables of this file. */
  addPurge(name: string, purge: FeaturePurge): this {
    this.#purges.push({ name, purge });
    return this;
  }

  start(intervalMs = PURGE_INTERVAL_MS): void {
    const tick = () => {
      if (this.deps.runsHere && !this.deps.runsHere()) return;
      this.#running ??= this.runOnce()
        .then(() => undefined)
        .catch((error) => this.deps.log.error("retention purge failed; tried again at the next run", { error }))
        .finally(() => (this.#running = null));
    };
    tick();
    this.#timer = setInterval(tick, intervalMs);
    this.#timer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** One purge over all endpoints; returns the rows deleted per endpoint and table. */
  async runOnce(): Promise<Record<string, Record<string, number>>> {
    const out: Record<string, Record<string, number>> = {};
    let any = false;
    for (const endpoint of this.deps.endpoints?.values() ?? this.deps.config.endpoints) {
      const days = endpoint.data_protection.retention_days;
      if (days > 0) {
        const counts = await purge(this.deps.database, this.deps.writes, endpoint.id, this.deps.clock.now() - days * 86_400_000);
        out[endpoint.id] = counts;
        if (Object.values(counts).some((n) => n > 0)) {
          any = true;
          this.deps.log.info(`retention: deleted what is older than ${days} days`, { endpoint: endpoint.id, ...counts });
        }
      }
      for (const { name, purge: featurePurge } of this.#purges) {
        const counts = await featurePurge(endpoint, this.deps.clock.now());
        out[endpoint.id] = { ...out[endpoint.id], ...counts };
        if (Object.values(counts).some((n) => n > 0)) this.deps.log.info(`retention: ${name} purged`, { endpoint: endpoint.id, ...counts });
      }
    }
    if (any) this.deps.forgetAll();
    return out;
  }
}

/** Deletes what of the endpoint is older than `cutoff` (ms); returns the rows deleted per table. */
export async function purge(database: Database, writes: WriteQueue, endpointId: string, cutoff: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = { transcripts: 0, contacts: 0, contact_users: 0, sessions: 0, inbox: 0, outbox: 0, transformer_storage: 0 };
  counts.transcripts = await purgeByIdRange(database, writes, "transcripts", endpointId, cutoff);
  counts.inbox = await purgeByIdRange(database, writes, "inbox", endpointId, cutoff);
  counts.outbox = await purgeByIdRange(database, writes, "outbox", endpointId, cutoff);
  const { client } = database;
  for (;;) {
    const [idle] = await writes.run([{ sql: PURGE_STORAGE_SQL, args: [endpointId, cutoff, PURGE_BATCH] }], { durable: false });
    counts.transformer_storage! += idle!.rowsAffected;
    if (idle!.rowsAffected < PURGE_BATCH) break;
    await yieldToIo();
  }
  for (;;) {
    const idle = (await client.execute({ sql: IDLE_CONTACTS_SQL, args: [endpointId, cutoff, PURGE_BATCH] })).rows;
    if (idle.length === 0) break;
    const ids = idle.map((r) => readContactId(r).id);
    const marks = ids.map(() => "?").join(", ");
    const [users, gone] = await writes.run(
      [
        { sql: `DELETE FROM contact_users WHERE contact_id IN (${marks})`, args: ids },
        { sql: `DELETE FROM contacts WHERE id IN (${marks})`, args: ids },
      ],
      { durable: false },
    );
    counts.contact_users! += users!.rowsAffected;
    counts.contacts! += gone!.rowsAffected;
    await yieldToIo();
  }
  // Sessions ended, or idle (a user silent for longer than the retention, also with
  // expiration_minutes = 0), before the cut-off: walked in rowid ranges, since their age is
  // not in rowid order.
  for (let after = 0; ; ) {
    const range = (await client.execute({ sql: SESSION_RANGE_SQL, args: [after, PURGE_BATCH] })).rows;
    if (range.length === 0) break;
    const last = Number((range[range.length - 1] as unknown as { session_rowid: number }).session_rowid);
    const [result] = await writes.run([{ sql: PURGE_SESSIONS_SQL, args: [after, last, endpointId, cutoff] }], { durable: false });
    counts.sessions! += result!.rowsAffected;
    after = last;
    await yieldToIo();
  }
  return counts;
}

async function purgeByIdRange(database: Database, writes: WriteQueue, table: keyof typeof BY_ID_RANGE, endpointId: string, cutoff: number): Promise<number> {
  const select = rangeSql(table);
  const remove = deleteRangeSql(table);
  let deleted = 0;
  let after = 0;
  for (;;) {
    const range = (await database.client.execute({ sql: select, args: [after, PURGE_BATCH] })).rows.map(readRange);
    if (range.length === 0 || range[0]!.age >= cutoff) break;
    const last = range[range.length - 1]!.id;
    const [result] = await writes.run([{ sql: remove, args: [after, last, endpointId, cutoff] }], { durable: false });
    deleted += result!.rowsAffected;
    after = last;
    await yieldToIo();
  }
  return deleted;
}
