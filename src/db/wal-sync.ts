/**
 * Durable commits without stopping the event loop.
 *
 * With `synchronous = FULL`, SQLite fsyncs the WAL inside every COMMIT, and the local driver runs
 * COMMIT on the event loop: at a thousand webhooks a second, those fsyncs alone kept the loop
 * busy most of the time. Instead the connection runs with `synchronous = NORMAL` (a COMMIT writes
 * its WAL frames to the operating system and returns) and the write queue calls `sync()` before it
 * resolves anything: an `fdatasync` of the WAL on Bun's I/O thread pool. That is the same fsync
 * FULL would have done, only off the loop and shared by every commit made before it started.
 * Nothing is acknowledged (to Facebook, to an API caller, to a lane about to call the Send API)
 * before the sync that covers it has returned, so a power cut loses nothing acknowledged.
 *
 * What SQLite still syncs itself with NORMAL: the WAL before each checkpoint, the database file
 * after it, and the WAL header when the WAL is reused. The WAL file is found by path at each sync
 * and reopened if it was replaced (SQLite only deletes it when the last connection closes).
 */
import { statSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

export class WalSync {
  #handle: FileHandle | null = null;
  #inode = -1;
  #path = "";
  /** The sync now running, if any. */
  #running: Promise<void> | null = null;
  /** The sync that will start when the running one ends: every caller meanwhile shares it. */
  #next: Promise<void> | null = null;

  constructor(
    private readonly walFile: string,
    /** Synced instead when there is no WAL file (everything is in the database file). */
    private readonly databaseFile: string,
  ) {}

  /** Resolves once everything written before this call is on disk; rejects if the disk failed. */
  sync(): Promise<void> {
    // A sync already running may have started before the caller's writes: it does not count.
    if (this.#next) return this.#next;
    const before = this.#running ?? Promise.resolve();
    const next = before
      .catch(() => {})
      .then(() => {
        this.#next = null;
        const run = this.#syncNow();
        this.#running = run;
        void run
          .catch(() => {})
          .finally(() => {
            if (this.#running === run) this.#running = null;
          });
        return run;
      });
    this.#next = next;
    return next;
  }

  /** The file the last sync went to (for tests and diagnostics): its path and inode. */
  get lastSynced(): { path: string; inode: number } | null {
    return this.#handle ? { path: this.#path, inode: this.#inode } : null;
  }

  async close(): Promise<void> {
    await this.#running?.catch(() => {});
    await this.#handle?.close();
    this.#handle = null;
  }

  async #syncNow(): Promise<void> {
    const handle = await this.#file();
    await handle.datasync();
  }

  async #file(): Promise<FileHandle> {
    let path = this.walFile;
    let inode: number;
    try {
      inode = statSync(path).ino;
    } catch {
      path = this.databaseFile;
      inode = statSync(path).ino;
    }
    if (this.#handle && this.#inode === inode && this.#path === path) return this.#handle;
    await this.#handle?.close();
    this.#handle = await open(path, "r");
    this.#inode = inode;
    this.#path = path;
    return this.#handle;
  }
}
