/**
 * The durable inbox. `store()` resolves only after the events are committed to disk; the webhook
 * answers 200 after that. Writes from requests that arrive together share one transaction (group
 * commit): the driver runs synchronously, so while one commit is fsyncing, the next requests queue
 * up and are written by the next commit. All events of one POST always land in the same commit.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import type { Clock } from "../clock.ts";
import type { InboxEvent } from "./events.ts";

export interface StoreResult {
  /** Events written now. */
  stored: InboxEvent[];
  /** Events already in the inbox from an earlier delivery. */
  duplicates: number;
}

interface Waiter {
  endpointId: string;
  events: InboxEvent[];
  resolve(result: StoreResult): void;
  reject(error: unknown): void;
}

export type StoredListener = (endpointId: string, events: InboxEvent[]) => void;

// SQLite allows 32766 bound parameters per statement; a row has 9.
const ROWS_PER_STATEMENT = 2000;
const COLUMNS = "endpoint_id, page_id, user_id, kind, standby, dedup_key, timestamp, received_at, event";
type InboxRow = [string, string, string, string, number, string, number, number, string];

export class Inbox {
  #queue: Waiter[] = [];
  #scheduled = false;
  #flushing: Promise<void> | null = null;
  readonly #listeners: StoredListener[] = [];

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    /** A listener's failure must not fail the webhook: the events are stored and will be drained. */
    private readonly onListenerError: (error: unknown) => void = () => {},
  ) {}

  /** Stores events durably; duplicates of stored events are counted, not written again. */
  store(endpointId: string, events: InboxEvent[]): Promise<StoreResult> {
    if (events.length === 0) return Promise.resolve({ stored: [], duplicates: 0 });
    return new Promise((resolve, reject) => {
      this.#queue.push({ endpointId, events, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  /** Called after each commit with the events it wrote; the conversation engine listens here. */
  onStored(listener: StoredListener): void {
    this.#listeners.push(listener);
  }

  /** Waits until everything queued so far is committed (used at shutdown). */
  async drain(): Promise<void> {
    while (this.#flushing || this.#queue.length > 0) {
      if (this.#flushing) await this.#flushing;
      else await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    if (this.#flushing) {
      await this.#flushing;
      return;
    }
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    this.#flushing = this.#write(batch).finally(() => {
      this.#flushing = null;
      if (this.#queue.length > 0 && !this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => void this.#flush());
      }
    });
    await this.#flushing;
  }

  async #write(batch: Waiter[]): Promise<void> {
    const receivedAt = this.clock.now();
    const rows: InboxRow[] = [];
    for (const w of batch) {
      for (const e of w.events) {
        rows.push([w.endpointId, e.pageId, e.userId, e.kind, e.standby ? 1 : 0, e.dedupKey, e.timestamp, receivedAt, JSON.stringify(e.item)]);
      }
    }
    let inserted: { endpointId: string; dedupKey: string }[];
    try {
      inserted = await this.#insert(rows);
    } catch (error) {
      for (const waiter of batch) waiter.reject(error);
      return;
    }
    const fresh = new Set(inserted.map((r) => `${r.endpointId}\u0000${r.dedupKey}`));
    const written: [string, InboxEvent[]][] = [];
    for (const waiter of batch) {
      const stored: InboxEvent[] = [];
      let duplicates = 0;
      for (const event of waiter.events) {
        const key = `${waiter.endpointId}\u0000${event.dedupKey}`;
        // The first claimant in this commit gets the row; a second copy in the same commit is a duplicate.
        if (fresh.delete(key)) stored.push(event);
        else duplicates++;
      }
      waiter.resolve({ stored, duplicates });
      if (stored.length > 0) written.push([waiter.endpointId, stored]);
    }
    for (const [endpointId, events] of written) {
      for (const listener of this.#listeners) {
        try {
          listener(endpointId, events);
        } catch (error) {
          this.onListenerError(error);
        }
      }
    }
  }

  /**
   * The hot path of every webhook, so plain SQL rather than the query builder: one multi-row
   * INSERT per commit, which returns the rows it actually wrote (duplicates are skipped by the
   * unique dedup index).
   */
  async #insert(rows: InboxRow[]): Promise<{ endpointId: string; dedupKey: string }[]> {
    const statements: InStatement[] = [];
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
      statements.push({
        sql:
          `INSERT INTO inbox (${COLUMNS}) VALUES ${chunk.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ")} ` +
          "ON CONFLICT DO NOTHING RETURNING endpoint_id, dedup_key",
        args: chunk.flat(),
      });
    }
    const client = this.database.client;
    // One statement is atomic on its own; several share a transaction.
    const results = statements.length === 1 ? [await client.execute(statements[0]!)] : await client.batch(statements, "write");
    return results.flatMap((r) => r.rows.map((row) => ({ endpointId: String(row[0]), dedupKey: String(row[1]) })));
  }
}
