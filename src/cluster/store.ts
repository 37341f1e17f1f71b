/** The SQL of the leases and the instances (db/schema.ts: cluster_leases, cluster_members, cluster_fence). */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { column } from "../db/rows.ts";
import { FENCE_SQL } from "./ownership.ts";
import type { WriteQueue } from "../db/write-queue.ts";

const JOIN_SQL =
  "INSERT INTO cluster_members (instance_id, started_at, expires_at, about) VALUES (?, ?, ?, ?) " +
  "ON CONFLICT (instance_id) DO UPDATE SET started_at = excluded.started_at, expires_at = excluded.expires_at, about = excluded.about";
const SEEN_SQL = "UPDATE cluster_members SET expires_at = ? WHERE instance_id = ?";
const LEAVE_SQL = "DELETE FROM cluster_members WHERE instance_id = ?";
const PARTITION_SQL = "INSERT INTO cluster_leases (partition, owner, epoch, expires_at) VALUES (?, '', 0, 0) ON CONFLICT (partition) DO NOTHING";
/** Every lease this instance still holds, renewed (one lost to another instance no longer matches). */
const RENEW_SQL = "UPDATE cluster_leases SET expires_at = ? WHERE owner = ? AND expires_at > 0 RETURNING partition, epoch";
/** Taken only when free, expired or released; the epoch grows, so the old holder's writes are fenced. */
const TAKE_SQL = "UPDATE cluster_leases SET owner = ?, epoch = epoch + 1, expires_at = ? WHERE partition = ? AND expires_at <= ? RETURNING epoch";
const RELEASE_SQL = "UPDATE cluster_leases SET expires_at = 0 WHERE partition = ? AND owner = ?";
const MEMBERS_SQL = "SELECT instance_id, expires_at, about FROM cluster_members ORDER BY instance_id";
const LEASES_SQL = "SELECT partition, owner, epoch, expires_at FROM cluster_leases ORDER BY partition";

export interface LeaseRow {
  partition: number;
  owner: string;
  epoch: number;
  expiresAt: number;
}

export interface MemberRow {
  instanceId: string;
  expiresAt: number;
  about: string;
}

export class ClusterStore {
  constructor(
    private readonly database: Database,
    private readonly writes: WriteQueue,
  ) {}

  /** Joins (or rejoins) and makes sure every partition has its lease row. */
  async join(instanceId: string, now: number, expiresAt: number, about: string, partitions: number): Promise<void> {
    const rows: InStatement[] = [{ sql: JOIN_SQL, args: [instanceId, now, expiresAt, about] }];
    for (let p = 0; p < partitions; p++) rows.push({ sql: PARTITION_SQL, args: [p] });
    await this.writes.run(rows);
  }

  /** Says this instance is alive until `expiresAt` and renews its leases; returns those it still holds. */
  async renew(instanceId: string, expiresAt: number): Promise<Map<number, number>> {
    const [, renewed] = await this.writes.run(
      [
        { sql: SEEN_SQL, args: [expiresAt, instanceId] },
        { sql: RENEW_SQL, args: [expiresAt, instanceId] },
      ],
      { durable: false },
    );
    return new Map(renewed!.rows.map((r) => [Number(column(r, "partition")), Number(column(r, "epoch"))]));
  }

  /** Takes the partitions that are free or expired at `now`; returns the epochs of those taken. */
  async take(instanceId: string, partitions: readonly number[], now: number, expiresAt: number): Promise<Map<number, number>> {
    if (partitions.length === 0) return new Map();
    const results = await this.writes.run(partitions.map((p) => ({ sql: TAKE_SQL, args: [instanceId, expiresAt, p, now] })));
    const taken = new Map<number, number>();
    results.forEach((r, i) => {
      const row = r.rows[0];
      if (row) taken.set(partitions[i]!, Number(column(row, "epoch")));
    });
    return taken;
  }

  /** Gives the partitions up at once (the next instance need not wait for them to expire). */
  async release(instanceId: string, partitions: readonly number[]): Promise<void> {
    if (partitions.length === 0) return;
    await this.writes.run(partitions.map((p) => ({ sql: RELEASE_SQL, args: [p, instanceId] })));
  }

  /** Leaves: every lease released and the instance's row gone. */
  async leave(instanceId: string, partitions: readonly number[]): Promise<void> {
    await this.writes.run([...partitions.map((p) => ({ sql: RELEASE_SQL, args: [p, instanceId] })), { sql: LEAVE_SQL, args: [instanceId] }]);
  }

  async members(): Promise<MemberRow[]> {
    const result = await this.database.client.execute(MEMBERS_SQL);
    return result.rows.map((r) => ({
      instanceId: String(column(r, "instance_id")),
      expiresAt: Number(column(r, "expires_at")),
      about: String(column(r, "about")),
    }));
  }

  async leases(): Promise<LeaseRow[]> {
    const result = await this.database.client.execute(LEASES_SQL);
    return result.rows.map((r) => ({
      partition: Number(column(r, "partition")),
      owner: String(column(r, "owner")),
      epoch: Number(column(r, "epoch")),
      expiresAt: Number(column(r, "expires_at")),
    }));
  }

  fence(partition: number, instanceId: string, epoch: number, inboxId: number | null, outboxId: number | null): InStatement {
    return { sql: FENCE_SQL, args: [partition, instanceId, epoch, inboxId, outboxId] };
  }
}
