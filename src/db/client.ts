/**
 * Opening the database. One connection: the local driver runs every statement synchronously on
 * the event loop, so more connections would not add parallelism, only the chance of two of our
 * own transactions waiting on each other.
 *
 * Durability: WAL, and nothing is acknowledged to Facebook, an API caller or the Send API
 * before the fsync of the WAL that covers it (`synchronous = NORMAL` plus our own fsync off the
 * event loop, see wal-sync.ts and write-queue.ts), so neither a process crash nor a power cut
 * loses an acknowledged row. Writers batch so that one fsync covers many requests.
 */
import { existsSync, mkdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Client } from "@libsql/client";
import { drizzle, type LibSQLDatabase } from "drizzle-orm/libsql";
import * as schema from "./schema.ts";
import { LocalClient } from "./local-client.ts";
import { WalSync } from "./wal-sync.ts";
import { BACKSTOP_FRAMES, Checkpointer } from "./checkpointer.ts";
import { column } from "./rows.ts";
import { displayUrl, scrub, urlSecrets } from "../log/scrub.ts";
import { createPrivate } from "./private-file.ts";
import { APPLICATION_ID, foreignMessage, identify, inspectDatabase, schemaProblem } from "./identity.ts";
import { remoteAdvice, remoteClient } from "./remote.ts";

export type Db = LibSQLDatabase<typeof schema>;

export interface Database {
  readonly db: Db;
  readonly client: Client;
  readonly url: string;
  /** Absolute path of the SQLite file, or null for a remote libSQL server / in-memory database. */
  readonly file: string | null;
  /**
   * For a local file: makes every commit so far durable (an fsync of the WAL off the event loop;
   * commits themselves do not fsync). The write queue calls it before acknowledging anything.
   * Absent for a remote libSQL server, whose commits are durable when they return.
   */
  readonly durable: (() => Promise<void>) | undefined;
  /**
   * Litestream's folder for this file (`litestreamFolder`) when Litestream replicates it, else
   * null. Checkpoints are then Litestream's: no autocheckpoint here, no TRUNCATE at shutdown.
   */
  readonly litestream: string | null;
  /** For a local file not replicated by Litestream: the checkpoints off the event loop (checkpointer.ts); else null. */
  readonly checkpointer: Checkpointer | null;
  /** Folds the WAL back into the database file (at shutdown, so the file stands alone); not while Litestream replicates it. */
  checkpoint(): Promise<void>;
  close(): void;
}

export interface OpenOptions {
  authToken?: string;
  /** Milliseconds a statement waits for a lock held by another process (a backup, say). */
  busyTimeoutMs?: number;
  /** A libSQL server: milliseconds a request may take before it counts as failed (remote.ts). */
  requestTimeoutMs?: number;
  /** Use a database another program made (`--adopt`): our tables are added beside its own. */
  adopt?: boolean;
  /** SQLite's page cache of a local database, MiB (`storage.cache_mib`); 16 when absent. */
  cacheMib?: number;
  /** A checkpoint off the event loop failed (checkpointer.ts): called once until one succeeds again. */
  onCheckpointError?: (error: unknown) => void;
}

export class DatabaseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DatabaseError";
  }
}

/** The file behind a `file:` URL, or null. */
export function databaseFile(url: string): string | null {
  if (!url.startsWith("file:")) return null;
  const path = url
    .slice("file:".length)
    .replace(/^\/\/[^/]*/, "")
    .replace(/\?.*$/, "");
  return path === ":memory:" || path === "" ? null : path;
}

/**
 * The folder `litestream replicate` keeps beside a database it replicates: `.<name>-litestream`
 * (Litestream 0.3 and 0.5 alike). Measured with Litestream 0.3.13 running
 * (test/integration/litestream.test.ts): our `wal_checkpoint(TRUNCATE)` at shutdown waited out the
 * whole busy timeout (5 s) for Litestream's read transaction, and Litestream asks applications to
 * leave checkpoints to it (it disables autocheckpoint on its own connection and checkpoints after
 * it has copied the frames).
 */
export function litestreamFolder(file: string): string {
  return join(dirname(file), `.${basename(file)}-litestream`);
}

export async function openDatabase(url: string, options: OpenOptions = {}): Promise<Database> {
  const file = databaseFile(url);
  if (file) prepareFile(file);
  let client: Client | undefined;
  let checkpointer: Checkpointer | null = null;
  try {
    // A local file: our own client with cached prepared statements (local-client.ts). Anything
    // else (libsql://, http:// for sqld or Turso): @libsql/client's, with a time limit (remote.ts).
    client = file
      ? new LocalClient(file, { timeoutMs: options.busyTimeoutMs ?? 5000 })
      : remoteClient(url, { authToken: options.authToken, timeoutMs: options.requestTimeoutMs ?? 15_000 });
    // Whose file is it, and can this binary use it? Read before anything below writes to it
    // (the switch to WAL already does). See identity.ts.
    const subject = `the database ${file ?? displayUrl(url)}`;
    const inspection = await inspectDatabase(client, { applicationId: file !== null });
    const identity = identify(inspection);
    if (identity === "foreign" && !(options.adopt && !inspection.applicationId)) {
      throw new DatabaseError(foreignMessage(subject, inspection, { adoptable: !inspection.applicationId }));
    }
    const problem = schemaProblem(subject, inspection);
    if (problem) throw new DatabaseError(problem);
    if (file) {
      const mode = await client.execute("PRAGMA journal_mode = WAL");
      const journal = String(column(mode.rows[0], "journal_mode"));
      if (journal.toLowerCase() !== "wal") {
        throw new DatabaseError(`cannot switch ${file} to WAL mode (got ${journal})`);
      }
      // Durability comes from WalSync: the write queue fsyncs the WAL (off the event loop)
      // before it acknowledges any commit. See db/wal-sync.ts.
      await client.execute("PRAGMA synchronous = NORMAL");
      // 16 MiB of page cache instead of SQLite's 2 MiB by default (`storage.cache_mib`): with many
      // contacts the indexes a turn touches no longer fit in 2 MiB, and each commit then reads
      // pages back from the OS (measured with a million contacts: 937 µs → 362 µs to store a new
      // user's rows with 64 MiB). The cache only grows as it is used; docs/benchmarks.md weighs
      // its size against the process's memory.
      await client.execute(`PRAGMA cache_size = -${Math.trunc(options.cacheMib ?? 16) * 1024}`);
      await client.execute("PRAGMA foreign_keys = ON");
      // Checkpoints: Litestream's when it replicates the file, else a second connection's, off
      // the event loop, with SQLite's own as a backstop (checkpointer.ts).
      const replicated = () => existsSync(litestreamFolder(file));
      if (replicated()) {
        await client.execute("PRAGMA wal_autocheckpoint = 0");
      } else if (client instanceof LocalClient) {
        await client.execute(`PRAGMA wal_autocheckpoint = ${BACKSTOP_FRAMES}`);
        checkpointer = new Checkpointer(file, { onError: options.onCheckpointError, skip: replicated });
        client.onWrite = () => checkpointer?.written();
      }
      if (inspection.applicationId !== APPLICATION_ID) await client.execute(`PRAGMA application_id = ${APPLICATION_ID}`);
    }
  } catch (error) {
    void checkpointer?.close();
    client?.close();
    if (error instanceof DatabaseError) throw error;
    // The first read (the inspection) is where SQLite finds the file is not a database.
    if (file && (error as { code?: string }).code === "SQLITE_NOTADB") throw notSqlite(file);
    // A remote URL may carry a password or `?authToken=`, and the driver's text may quote either.
    const reason = scrub(String((error as Error)?.message), [options.authToken, ...urlSecrets(url)]);
    const advice = file ? null : remoteAdvice(error);
    throw new DatabaseError(`cannot open the database ${file ?? displayUrl(url)}: ${advice ? `${advice} (${reason})` : reason}`, { cause: error });
  }
  const db = drizzle(client, { schema });
  const wal = file ? new WalSync(`${file}-wal`, file) : null;
  return {
    db,
    client,
    url,
    file,
    durable: wal ? () => wal.sync() : undefined,
    litestream: file && existsSync(litestreamFolder(file)) ? litestreamFolder(file) : null,
    checkpointer,
    async checkpoint() {
      await checkpointer?.close(); // a checkpoint of its own running would make TRUNCATE wait
      // Looked at again: Litestream may have been started after the server.
      if (file && !existsSync(litestreamFolder(file))) await client.execute("PRAGMA wal_checkpoint(TRUNCATE)");
    },
    close() {
      void checkpointer?.close();
      void wal?.close();
      client.close();
    },
  };
}

/**
 * Before SQLite opens the file: its folder (0700 when we create it) and, for a new database, the
 * file itself, created 0600 because it will hold transcripts and raw events. SQLite gives the
 * `-wal` and `-shm` files the main file's permissions. An existing file keeps its mode: that is
 * the operator's choice.
 */
function prepareFile(file: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new DatabaseError(`cannot create the folder for the database ${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    createPrivate(file);
  } catch (error) {
    throw new DatabaseError(`cannot create the database ${file}: ${(error as Error).message}`, { cause: error });
  }
}

function notSqlite(file: string): DatabaseError {
  return new DatabaseError(
    `${file} is not a SQLite database (or it is encrypted or damaged): point storage.url at a messenger-endpoint database or at a new file`,
  );
}
