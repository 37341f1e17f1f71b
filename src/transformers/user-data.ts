/**
 * What the transformers store about a person — the session storage their code keeps under the
 * person's PSID (`getSessionStorage(userId, sessionId)`) — for the GDPR export and erasure: a part
 * of the user-data registry (people/user-data.ts), registered by app.ts.
 */
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import { rowReader } from "../db/rows.ts";
import { transformerStorage } from "../db/schema.ts";
import { isoTime, storedJson } from "../db/values.ts";
import type { UserKey } from "../core/user-key.ts";
import type { Timers } from "../core/clock.ts";
import type { Logger } from "../log/logger.ts";
import { TRANSFORMER_TIMEOUT_MS } from "./host.ts";
import { OF_USER, deleteStorageOf, storagePrefix } from "./storage.ts";

const EXPORT_SQL = `SELECT storage_key, value, updated_at FROM transformer_storage WHERE endpoint_id = ? AND ${OF_USER}`;
const readExported = rowReader(transformerStorage, ["storageKey", "value", "updatedAt"]);

/** The second delete's wait keeps no process alive (a stop does not wait for it). */
const unrefTimers: Timers = {
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    timer.unref?.();
    return () => clearTimeout(timer);
  },
};

export function transformerData(deps: { database: Database; writes: WriteQueue; timers?: Timers }) {
  const timers = deps.timers ?? unrefTimers;
  return {
    name: "transformer_storage",
    /** Per PSID: the storage of a PSID on two Pages of one endpoint is shown under each. */
    async export(subject: { keys: readonly UserKey[] }) {
      const out = [];
      for (const k of subject.keys) {
        const prefix = storagePrefix(k.userId);
        const result = await deps.database.client.execute({ sql: EXPORT_SQL, args: [k.endpointId, prefix.length, prefix] });
        for (const r of result.rows.map(readExported))
          out.push({ endpoint_id: k.endpointId, key: storedJson(r.storageKey), value: storedJson(r.value), updated_at: isoTime(r.updatedAt) });
      }
      return out;
    },
    erase(subject: { keys: readonly UserKey[] }) {
      return subject.keys.map(deleteStorageOf);
    },
    /**
     * A transformer run in flight may still save this user's session storage: once every run
     * that started before the erasure is over (the time limit), it is deleted again.
     */
    erased(subject: { keys: readonly UserKey[] }, log: Logger) {
      const statements = subject.keys.map(deleteStorageOf);
      if (statements.length === 0) return;
      timers.after(
        TRANSFORMER_TIMEOUT_MS + 1_000,
        () => void deps.writes.run(statements).catch((error) => log.error("could not erase transformer storage", { error })),
      );
    },
  };
}
