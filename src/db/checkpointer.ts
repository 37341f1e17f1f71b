/**
 * WAL checkpoints off the event loop.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past its limit, on the
 * connection that committed: here the one connection of the event loop. There it fsyncs the WAL,
 * copies the pages to the database file and fsyncs that: milliseconds during which no webhook is
 * read and no turn moves, several times a second under load (measured in docs/benchmarks.md).
 *
 * Instead a second connection to the same file runs `PRAGMA wal_checkpoint(PASSIVE)` through the
 * driver's asynchronous `exec`, which runs on the driver's own threads: the copying and both
 * fsyncs happen while the event loop goes on. A PASSIVE checkpoint takes no lock a writer needs
 * (SQLite's documentation of `sqlite3_wal_checkpoint_v2`: it never invokes the busy handler and
 * writers proceed), so the event loop's connection does not wait for it. It follows the writes: a
 * checkpoint starts `delayMs` after a write, one at a time.
 *
 * The WAL starts again from its beginning only at a write that finds every frame copied. Under
 * a steady stream of writes that moment may not come, so the event loop's connection keeps
 * SQLite's automatic checkpoint as a backstop at a higher mark (`BACKSTOP_FRAMES`): it then copies
 * only what this checkpointer had not yet copied, and the WAL restarts at the next write.
 *
 * Both connections are the same SQLite library in one process, which is what SQLite's locks
 * between connections of one process require (two libraries would release each other's locks).
 */
import Database from "libsql/promise";

/** The event loop's connection checkpoints by itself once the WAL holds this many frames (SQLite's default is 1000). */
export const BACKSTOP_FRAMES = 10_000;

/** How long after a write the checkpoint starts: the writes meanwhile share it. */
export const CHECKPOINT_DELAY_MS = 250;

export interface CheckpointerOptions {
  delayMs?: number;
  /**
   * A checkpoint failed (a full disk, say): called once, until one succeeds again. The next write
   * schedules another; meanwhile the WAL grows up to the backstop, where SQLite's own checkpoint
   * on the event loop's connection takes over.
   */
  onError?: (error: unknown) => void;
  /** Checked before each checkpoint: true leaves it out (Litestream, started after the server, checkpoints itself). */
  skip?: () => boolean;
}

export class Checkpointer {
  readonly #file: string;
  readonly #delayMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #skip: () => boolean;
  #failing = false;
  #connection: Database | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #running: Promise<void> | null = null;
  /** Written again while a checkpoint ran: another follows it. */
  #again = false;
  #closed = false;
  /** Checkpoints run so far (for tests and diagnostics). */
  runs = 0;

  constructor(file: string, options: CheckpointerOptions = {}) {
    this.#file = file;
    this.#delayMs = options.delayMs ?? CHECKPOINT_DELAY_MS;
    this.#onError = options.onError ?? (() => {});
    this.#skip = options.skip ?? (() => false);
  }

  /** Something was written (its commit follows at once): a checkpoint follows `delayMs` later. */
  written(): void {
    if (this.#closed || this.#timer) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#run();
    }, this.#delayMs);
    this.#timer.unref?.();
  }

  /** Resolves when no checkpoint is running or scheduled (tests). */
  async idle(): Promise<void> {
    while (this.#running || this.#timer) {
      if (this.#running) await this.#running;
      else await new Promise((resolve) => setTimeout(resolve, this.#delayMs));
    }
  }

  /** Stops scheduling, waits for a running checkpoint and closes the connection. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
    this.#connection?.close();
    this.#connection = null;
  }

  #run(): void {
    if (this.#closed || this.#skip()) return;
    const run = (async () => {
      try {
        this.#connection ??= new Database(this.#file, { timeout: 0 });
        await this.#connection.exec("PRAGMA wal_checkpoint(PASSIVE)");
        this.runs++;
        this.#failing = false;
      } catch (error) {
        if (!this.#failing) this.#onError(error);
        this.#failing = true;
      }
    })();
    this.#running = run;
    void run.finally(() => {
      this.#running = null;
      if (this.#again) {
        this.#again = false;
        this.written();
      }
    });
  }
}
