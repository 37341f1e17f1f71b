/**
 * Transformers' session storage: the objects `getSessionStorage(userId, sessionId)` gives a run
 * (transformers/worker.ts), kept per endpoint in `transformer_storage` under the JSON of the pair
 * (`["<userId>","<sessionId>"]`). A run reads an object when it first asks for it; what changed
 * is saved when the run ends (transformers/host.ts), before its worker takes the next run.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { rowReader } from "../db/rows.ts";
import { transformerStorage } from "../db/schema.ts";
import type { Clock } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";

const READ_SQL = "SELECT value FROM transformer_storage WHERE endpoint_id = ? AND storage_key = ?";
const readValue = rowReader(transformerStorage, ["value"]);

/** Writes a whole object (`excluded.value`), or changes some of its keys (the SQL of `save`). */
const upsertSql = (update: string) =>
  `INSERT INTO transformer_storage (endpoint_id, storage_key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (endpoint_id, storage_key) DO UPDATE SET value = ${update}, updated_at = excluded.updated_at`;

/** A key of a storage object that can stand in a JSON path as it is (`'$.<key>'`). */
const PLAIN_KEY = /^[A-Za-z0-9_$-]+$/;

export interface SessionStorageDeps {
  endpointId: string;
  database: Database;
  writes: WriteQueue;
  clock: Clock;
}

/** One endpoint's session storage. */
export class SessionStorage {
  constructor(private readonly deps: SessionStorageDeps) {}

  /** The object stored under the key; {} when there is none (or it is not an object). */
  async read(key: string): Promise<Record<string, unknown>> {
    const result = await this.deps.database.client.execute({ sql: READ_SQL, args: [this.deps.endpointId, key] });
    const row = result.rows[0];
    const text = row ? readValue(row).value : undefined;
    if (typeof text !== "string") return {};
    try {
      const value = JSON.parse(text);
      return typeof value === "object" && value !== null && !Array.isArray(value) ? value : {};
    } catch {
      return {};
    }
  }

  /**
   * Saves what changed in each storage object (`before`: the JSON the run was given, by key),
   * key by key (JSON functions of SQLite), so that two runs that change different keys of one
   * storage at the same time (say, two users updating a shared one) both keep their change.
   * `durable`: fsynced before this resolves.
   */
  async save(before: Map<string, string>, after: [string, Record<string, unknown>][] = [], durable = false): Promise<void> {
    const now = this.deps.clock.now();
    const statements: InStatement[] = [];
    for (const [key, value] of after) {
      const json = JSON.stringify(value ?? {});
      const old = before.get(key);
      if (old === json) continue;
      const previous = old === undefined ? {} : (JSON.parse(old) as Record<string, unknown>);
      const next = (value ?? {}) as Record<string, unknown>;
      const changed = Object.keys(next).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(previous[k]));
      const removed = Object.keys(previous).filter((k) => !(k in next));
      const plain = [...changed, ...removed].every((k) => PLAIN_KEY.test(k));
      let update = "excluded.value";
      const args: (string | number)[] = [this.deps.endpointId, key, json, now];
      if (plain) {
        update = "transformer_storage.value";
        if (removed.length > 0) update = `json_remove(${update}, ${removed.map((k) => `'$.${k}'`).join(", ")})`;
        if (changed.length > 0) {
          update = `json_set(${update}, ${changed.map((k) => `'$.${k}', json(?)`).join(", ")})`;
          args.push(...changed.map((k) => JSON.stringify(next[k] ?? null)));
        }
      }
      statements.push({ sql: upsertSql(update), args });
    }
    // In a turn no fsync of its own: the next acknowledged write covers it, and a crash re-runs the
    // turn. After an inject/notify or a finished turn the caller learns the outcome at once: fsync.
    if (statements.length > 0) await this.deps.writes.run(statements, { durable });
  }
}

/** How the storage keys of this user start: the JSON of [userId, …] up to the session id. */
export function storagePrefix(userId: string): string {
  return `${JSON.stringify([userId]).slice(0, -1)},`;
}

/** The SQL condition (with its two arguments) of the storage kept under a user's PSID. */
export const OF_USER = "substr(storage_key, 1, ?) = ?";

/** Deletes the session storage kept under this PSID on its endpoint (every session id). */
export function deleteStorageOf(key: UserKey): InStatement {
  const prefix = storagePrefix(key.userId);
  return { sql: `DELETE FROM transformer_storage WHERE endpoint_id = ? AND ${OF_USER}`, args: [key.endpointId, prefix.length, prefix] };
}
