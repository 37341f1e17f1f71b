/**
 * Who runs a user's turns and reply lane. With one instance (the default) this instance owns every
 * user and nothing is fenced. With `[cluster] enabled` (leases.ts) it owns the users of the
 * partitions it holds a lease on, and every write that commits a turn or marks a send carries the
 * fence: it commits only while the lease is still this instance's, at the epoch it took it.
 */
import type { InStatement } from "@libsql/client";
import type { UserKey } from "../core/user-key.ts";

/** Which inbox or outbox row the fenced write finishes: it must still be open. */
export interface FencedRow {
  inboxId?: number;
  outboxId?: number;
}

export interface Ownership {
  /** Whether several instances may share the database (`[cluster] enabled`). */
  readonly clustered: boolean;
  /** Whether this instance runs this user's turns and reply lane now. */
  owns(key: UserKey): boolean;
  /** Owns the user, and its lease cannot have expired in the other instances' eyes: a send may start. */
  ownsNow(key: UserKey): boolean;
  /** The statement to commit with a turn or a "sending" mark (null: nothing to fence). */
  fence(key: UserKey, row?: FencedRow): InStatement | null;
  /** Called with a test for the users whose partitions this instance has just taken. */
  onGained(listener: (gained: (key: UserKey) => boolean) => void): void;
  /** Called with a test for the users whose partitions this instance no longer runs. */
  onLost(listener: (lost: (key: UserKey) => boolean) => void): void;
}

/** One instance: it owns everyone, fences nothing, and nothing moves. */
export const soleOwner: Ownership = {
  clustered: false,
  owns: () => true,
  ownsNow: () => true,
  fence: () => null,
  onGained: () => {},
  onLost: () => {},
};

/**
 * One instance on a libSQL server: no lease, but a turn's commit or a send's mark still checks
 * that its row is open. A commit whose answer was lost (a timeout, a dropped connection) may have
 * been committed, and is tried again: the guard makes the second try fail instead of queueing the
 * turn's replies twice (the engine then reads the user's replies from the database).
 */
export const soleRemoteOwner: Ownership = {
  ...soleOwner,
  fence: (_key, row = {}) =>
    row.inboxId === undefined && row.outboxId === undefined ? null : { sql: FENCE_SQL, args: [-1, "", 0, row.inboxId ?? null, row.outboxId ?? null] },
};

/** The fence's insert (migration 0007's trigger decides): partition, owner, epoch, inbox id, outbox id. */
export const FENCE_SQL = "INSERT INTO cluster_fence (partition, owner, epoch, inbox_id, outbox_id) VALUES (?, ?, ?, ?, ?)";

/** The message of the fence's refusal (migration 0007's trigger). */
export const FENCED = "fenced:";

/** Whether a commit was refused by the fence: the partition moved on, or the row was finished elsewhere. */
export function isFenced(error: unknown): boolean {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === "string" && message.includes(FENCED);
}
