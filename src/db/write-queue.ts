/**
 * Group commit. Every write of the running server goes through here: callers hand in a group of
 * statements that must be atomic, and all groups queued while the previous commit ran share the
 * next transaction. A group's promise resolves when its commit is durable: for a local database,
 * after the fsync of the WAL that covers it (db/wal-sync.ts), which runs off the event loop and
 * overlaps with the next commit, so one fsync covers many webhooks and sends. Groups that need
 * no fsync of their own (RunOptions) resolve at commit.
 *
 * Every commit gets a number; a sync started when commit N was the last covers commits up to N,
 * and a group waits for the first sync that covers its commit (one sync serves many). A group that
 * `lingers` (a webhook's events: inbox/inbox.ts) starts its sync only after the next commit (or
 * 2 ms), so that the turn those events start, when it is quick, commits first and the same fsync
 * covers the events, the turn and its reply's "sending" mark (replies/delivery.ts `synced`).
 *
 * If a shared commit fails, each of its groups is retried in a transaction of its own, so one
 * bad group fails alone.
 */
import type { Client, InStatement, ResultSet } from "@libsql/client";

interface Pending {
  statements: InStatement[];
  durable: boolean;
  onCommit?: (results: ResultSet[]) => void;
  linger?: boolean;
  resolve(results: ResultSet[]): void;
  reject(error: unknown): void;
}

export interface RunOptions {
  /**
   * Wait for the fsync that makes the commit durable (the default). Only writes after which the
   * world learns something need it: a 200 to Facebook, a 202 to an API caller, a Send API call.
   * Other writes (a turn's outcome, a message marked sent, a delivery applied) may resolve at
   * commit: the WAL is written in order, so the fsync before the next acknowledgement covers
   * them too, and a power cut before it only loses work that is done again from the inbox.
   */
  durable?: boolean;
  /** Start the fsync only after the next commit, or 2 ms (see above). */
  linger?: boolean;
  /**
   * Called with the group's results as soon as its commit returned, before the fsync that makes
   * it durable: for work that may start before the acknowledgement, as long as nothing it does is
   * seen outside before a durable write of its own (the inbox hands its events to the engine here:
   * inbox/inbox.ts). Must not throw.
   */
  onCommit?: (results: ResultSet[]) => void;
}

export interface WriteQueueOptions {
  /**
   * Makes what was committed so far durable (the WAL's fsync). Absent: commits are durable when
   * they return (a remote libSQL server, or `synchronous = FULL`).
   */
  durable?: () => Promise<void>;
  /**
   * Called when `durable` fails: the disk refused an fsync, and what the page cache holds can no
   * longer be trusted. The groups concerned are rejected; the server should stop (see serve.ts).
   */
  onDurabilityFailure?: (error: unknown) => void;
  /**
   * Called with the error of every group whose commit failed (db/health.ts tells a storage
   * failure, which pauses processing, from a bad statement).
   */
  onCommitFailure?: (error: unknown) => void;
}

/** How long a lingering group waits for the next commit before its fsync starts. */
const LINGER_MS = 2;

export class WriteQueue {
  #queue: Pending[] = [];
  #scheduled = false;
  #committing: Promise<void> | null = null;
  /** Commits that are done but not yet durable. */
  readonly #syncing = new Set<Promise<void>>();
  /** The number of the last commit. */
  #committed = 0;
  /** The latest sync asked for, and the last commit it covers. */
  #sync: { covers: number; done: Promise<void> } | null = null;
  /** Called after the next commit (lingering groups). */
  #afterCommit: (() => void)[] = [];

  constructor(
    private readonly client: Client,
    private readonly options: WriteQueueOptions = {},
  ) {}

  /** Commits the statements atomically; resolves with one result per statement once durable (see RunOptions). */
  run(statements: InStatement[], options: RunOptions = {}): Promise<ResultSet[]> {
    if (statements.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#queue.push({ statements, durable: options.durable ?? true, onCommit: options.onCommit, linger: options.linger, resolve, reject });
      this.#schedule();
    });
  }

  /** Resolves when everything committed so far is durable (at once without a durability step). */
  synced(): Promise<void> {
    return this.options.durable ? this.#covering(this.#committed) : Promise.resolve();
  }

  /** A sync that covers commit `n`: the latest one asked for if it does, else a new one. */
  #covering(n: number): Promise<void> {
    if (this.#sync && this.#sync.covers >= n) return this.#sync.done;
    // db/wal-sync.ts: what was written before this call is on disk when it resolves.
    const sync = { covers: this.#committed, done: this.options.durable!() };
    this.#sync = sync;
    void sync.done.then(
      () => this.#sync === sync && (this.#sync = null),
      () => this.#sync === sync && (this.#sync = null),
    );
    return sync.done;
  }

  /** Resolves after the next commit, or after `ms` when none comes. */
  #nextCommit(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#afterCommit.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Resolves when everything queued so far is committed and durable. */
  async drain(): Promise<void> {
    while (this.#committing || this.#queue.length > 0 || this.#syncing.size > 0) {
      if (this.#committing) await this.#committing;
      else if (this.#queue.length > 0) await this.#flush();
      else await Promise.allSettled([...this.#syncing]);
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#committing) return;
    this.#scheduled = true;
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#committing || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    let outcomes: Outcome[] = [];
    this.#committing = this.#commit(batch).then((o) => void (outcomes = o));
    try {
      await this.#committing;
    } finally {
      this.#committing = null;
      if (this.#queue.length > 0) this.#schedule(); // the next commit overlaps with this one's fsync
    }
    if (this.options.onCommitFailure) for (const o of outcomes) if (!o.ok) this.options.onCommitFailure(o.error);
    const commit = ++this.#committed;
    const durable = this.options.durable;
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (!o.ok || !p.onCommit) return;
      try {
        p.onCommit(o.results);
      } catch {
        // The caller's own failure, not the commit's: the group still resolves as committed.
      }
    });
    const waiting = new Set(durable ? batch.filter((p, i) => p.durable && outcomes[i]!.ok) : []);
    settle(batch, outcomes, (p) => !waiting.has(p));
    // The groups that lingered for a commit: this one (settled above) was it.
    for (const wake of this.#afterCommit.splice(0)) wake();
    if (waiting.size === 0) return;
    const lingers = [...waiting].every((p) => p.linger);
    const syncing = (lingers ? this.#nextCommit(LINGER_MS).then(() => this.#covering(commit)) : this.#covering(commit)).then(
      () => settle(batch, outcomes, (p) => waiting.has(p)),
      (error) => {
        this.options.onDurabilityFailure?.(error);
        for (const p of waiting) p.reject(error);
      },
    );
    this.#syncing.add(syncing);
    void syncing.finally(() => this.#syncing.delete(syncing));
  }

  async #commit(batch: Pending[]): Promise<Outcome[]> {
    const statements = batch.flatMap((p) => p.statements);
    let results: ResultSet[];
    try {
      results = statements.length === 1 ? [await this.client.execute(statements[0]!)] : await this.client.batch(statements, "write");
    } catch (error) {
      if (batch.length === 1) return [{ ok: false, error }];
      // Find the culprit: every group on its own.
      const outcomes: Outcome[] = [];
      for (const p of batch) {
        try {
          outcomes.push({
            ok: true,
            results: p.statements.length === 1 ? [await this.client.execute(p.statements[0]!)] : await this.client.batch(p.statements, "write"),
          });
        } catch (own) {
          outcomes.push({ ok: false, error: own });
        }
      }
      return outcomes;
    }
    let offset = 0;
    return batch.map((p) => {
      const own = results.slice(offset, offset + p.statements.length);
      offset += p.statements.length;
      return { ok: true, results: own };
    });
  }
}

type Outcome = { ok: true; results: ResultSet[] } | { ok: false; error: unknown };

/** Resolves or rejects the groups that `which` picks. */
function settle(batch: Pending[], outcomes: Outcome[], which: (p: Pending, i: number) => boolean): void {
  batch.forEach((p, i) => {
    if (!which(p, i)) return;
    const o = outcomes[i]!;
    if (o.ok) p.resolve(o.results);
    else p.reject(o.error);
  });
}
