/**
 * Group commit. Every write of the running server goes through here: callers hand in a group of
 * statements that must be atomic, and all groups queued while the previous commit ran share the
 * next transaction, so one fsync covers many webhooks, turns and sends. The local driver runs
 * synchronously, so while one commit writes, the next groups pile up on their own.
 *
 * If a shared commit fails, each of its groups is retried in a transaction of its own, so one
 * bad group fails alone.
 */
import type { Client, InStatement, ResultSet } from "@libsql/client";

interface Pending {
  statements: InStatement[];
  resolve(results: ResultSet[]): void;
  reject(error: unknown): void;
}

export class WriteQueue {
  #queue: Pending[] = [];
  #scheduled = false;
  #flushing: Promise<void> | null = null;

  constructor(private readonly client: Client) {}

  /** Commits the statements atomically; resolves with one result per statement. */
  run(statements: InStatement[]): Promise<ResultSet[]> {
    if (statements.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#queue.push({ statements, resolve, reject });
      this.#schedule();
    });
  }

  /** Resolves when everything queued so far is committed. */
  async drain(): Promise<void> {
    while (this.#flushing || this.#queue.length > 0) {
      if (this.#flushing) await this.#flushing;
      else await this.#flush();
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#flushing || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#flushing = this.#commit(batch).finally(() => {
      this.#flushing = null;
      if (this.#queue.length > 0) this.#schedule();
    });
    await this.#flushing;
  }

  async #commit(batch: Pending[]): Promise<void> {
    const statements = batch.flatMap((p) => p.statements);
    let results: ResultSet[];
    try {
      results = statements.length === 1 ? [await this.client.execute(statements[0]!)] : await this.client.batch(statements, "write");
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      // Find the culprit: every group on its own.
      for (const p of batch) {
        try {
          p.resolve(p.statements.length === 1 ? [await this.client.execute(p.statements[0]!)] : await this.client.batch(p.statements, "write"));
        } catch (own) {
          p.reject(own);
        }
      }
      return;
    }
    let offset = 0;
    for (const p of batch) {
      p.resolve(results.slice(offset, offset + p.statements.length));
      offset += p.statements.length;
    }
  }
}
