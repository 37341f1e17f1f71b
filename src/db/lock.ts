/**
 * One server per database file. The server holds an exclusive SQLite lock on `<db>.lock` for its
 * whole life; the operating system drops it when the process ends, however it ends, so there is
 * no stale lock to clean up after a crash. `restore` takes the same lock to prove the server is
 * stopped. (For a remote libSQL server, see docs/operations.md: lanes need one owner per user.)
 */
import { createClient, type Client } from "@libsql/client";
import { createPrivate } from "./private-file.ts";

export interface InstanceLock {
  release(): void;
}

export class LockedError extends Error {
  constructor(readonly file: string) {
    super(`the database ${file} is in use by another messenger-endpoint process (it holds ${file}.lock); stop that process first`);
    this.name = "LockedError";
  }
}

export async function acquireInstanceLock(databaseFile: string, description: string): Promise<InstanceLock> {
  const lockFile = `${databaseFile}.lock`;
  createPrivate(lockFile); // 0600 like the database beside it; SQLite would create it 0644
  const client: Client = createClient({ url: `file:${lockFile}`, concurrency: 1, ...({ timeout: 0 } as object) });
  try {
    await client.execute("PRAGMA locking_mode = EXCLUSIVE");
    await client.execute("PRAGMA journal_mode = MEMORY"); // no journal file beside the lock
    await client.execute("CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, description TEXT NOT NULL, since INTEGER NOT NULL)");
    // The first write takes the exclusive lock; in EXCLUSIVE locking mode it is kept until close.
    await client.batch(
      ["DELETE FROM holder", { sql: "INSERT INTO holder (pid, description, since) VALUES (?, ?, ?)", args: [process.pid, description, Date.now()] }],
      "write",
    );
  } catch (error) {
    client.close();
    if ((error as { code?: string }).code === "SQLITE_BUSY") throw new LockedError(databaseFile);
    throw error;
  }
  return { release: () => client.close() };
}
