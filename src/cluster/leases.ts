/**
 * The leases of the partitions (docs/scale-out.md): each instance joins the `cluster_members`
 * table, renews its row and its leases every third of `lease_seconds`, and takes the partitions
 * that rendezvous hashing (partitions.ts) gives it among the live instances once they are free:
 * released by their holder, or expired because it died. A partition it holds but should not (an
 * instance joined) is given up in two steps: at one renewal its users stop getting new work here
 * (`onLost`), at the next its lease is released, so that the turns and sends already under way
 * commit under the old lease first.
 *
 * Every write that commits a turn or marks a send carries `fence()`: the database refuses it when
 * the lease has moved to another instance (epoch) — a paused or cut-off instance cannot commit
 * what the new holder also commits. `ownsNow()` adds this instance's own view of time: a send does
 * not start once the lease may have expired in the eyes of the others.
 */
import { hostname } from "node:os";
import type { InStatement } from "@libsql/client";
import type { ClusterSettings } from "../config/schema.ts";
import type { Clock, Timers } from "../core/clock.ts";
import type { UserKey } from "../core/user-key.ts";
import type { Database } from "../db/client.ts";
import type { WriteQueue } from "../db/write-queue.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import type { FencedRow, Ownership } from "./ownership.ts";
import { partitionOf, preferredOwner } from "./partitions.ts";
import { ClusterStore } from "./store.ts";
import { repeat, type Repeating } from "./repeat.ts";

export interface LeasesDeps {
  settings: ClusterSettings;
  /** What this instance says of itself in `cluster_members` (version, pid, port). */
  about: string;
  database: Database;
  writes: WriteQueue;
  clock: Clock;
  timers: Timers;
  log: Logger;
  metrics: Registry;
}

export class ClusterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClusterError";
  }
}

/** The default instance id: the host name and the process id. */
export function defaultInstanceId(): string {
  return `${hostname().replace(/[^A-Za-z0-9._:-]/g, "-") || "host"}:${process.pid}`;
}

export class Leases implements Ownership {
  readonly clustered = true;
  readonly instanceId: string;
  readonly #store: ClusterStore;
  readonly #partitions: number;
  readonly #leaseMs: number;
  /** The partitions held, with the epoch each was taken at. */
  readonly #held = new Map<number, number>();
  /** Held, but being given up: no new work here; released at the next renewal. */
  readonly #releasing = new Set<number>();
  /** Until when (this instance's clock) the others cannot have taken what it holds. */
  #validUntil = 0;
  readonly #gainedListeners: ((gained: (key: UserKey) => boolean) => void)[] = [];
  readonly #lostListeners: ((lost: (key: UserKey) => boolean) => void)[] = [];
  #renewals: Repeating | null = null;
  #cancelLapse: (() => void) | null = null;
  #stopped = false;
  readonly #heldGauge;
  readonly #moves;

  constructor(private readonly deps: LeasesDeps) {
    this.instanceId = deps.settings.instance_id ?? defaultInstanceId();
    this.#store = new ClusterStore(deps.database, deps.writes);
    this.#partitions = deps.settings.partitions;
    this.#leaseMs = deps.settings.lease_seconds * 1000;
    this.#heldGauge = deps.metrics.gauge("messenger_cluster_partitions_held", "Partitions of the users whose turns and replies this instance runs.");
    this.#moves = deps.metrics.counter("messenger_cluster_partition_moves_total", "Partitions this instance took (gained) or gave up (lost, released).");
  }

  /** How often the leases are renewed: a third of their length. */
  get renewEveryMs(): number {
    return Math.floor(this.#leaseMs / 3);
  }

  /** Joins the cluster and takes the partitions that are free for it now. */
  async start(): Promise<void> {
    const now = this.deps.clock.now();
    await this.#checkPartitionCount(now);
    await this.#store.join(this.instanceId, now, now + this.#leaseMs, this.deps.about, this.#partitions);
    await this.tick();
  }

  /** Renews on a timer from now on. */
  run(): void {
    if (this.#stopped || this.#renewals) return;
    this.#renewals = repeat(this.deps.timers, this.renewEveryMs, () =>
      this.tick().catch((error) => this.deps.log.warn("could not renew the cluster leases; retrying", { error, instance: this.instanceId })),
    );
  }

  /** Leaves: every lease released at once, so that the others take the users over at their next renewal. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelLapse?.();
    await this.#renewals?.stop();
    const held = [...this.#held.keys()];
    this.#lose(held, "released");
    await this.#store
      .leave(this.instanceId, held)
      .catch((error) => this.deps.log.warn("could not release the cluster leases at the stop; the others take them over when they expire", { error }));
  }

  owns(key: UserKey): boolean {
    const p = partitionOf(key, this.#partitions);
    return this.#held.has(p) && !this.#releasing.has(p);
  }

  /** Owns the user, and the lease cannot have expired yet in the others' eyes: a send may start. */
  ownsNow(key: UserKey): boolean {
    return this.owns(key) && this.deps.clock.now() < this.#validUntil;
  }

  fence(key: UserKey, row: FencedRow = {}): InStatement {
    const p = partitionOf(key, this.#partitions);
    // Not held: an epoch no lease has, so the commit is refused.
    return this.#store.fence(p, this.instanceId, this.#held.get(p) ?? -1, row.inboxId ?? null, row.outboxId ?? null);
  }

  onGained(listener: (gained: (key: UserKey) => boolean) => void): void {
    this.#gainedListeners.push(listener);
  }

  onLost(listener: (lost: (key: UserKey) => boolean) => void): void {
    this.#lostListeners.push(listener);
  }

  /** Whether this instance holds the partition now (not being given up). */
  holds(partition: number): boolean {
    return this.#held.has(partition) && !this.#releasing.has(partition);
  }

  /** The partitions held now (for /api/cluster and the tests). */
  held(): number[] {
    return [...this.#held.keys()].filter((p) => !this.#releasing.has(p)).sort((a, b) => a - b);
  }

  /** The live instances and the leases, as the database has them. */
  async view(): Promise<{
    instance: string;
    members: { instance_id: string; about: string; alive: boolean }[];
    leases: { partition: number; owner: string; epoch: number; expires_at: number }[];
  }> {
    const now = this.deps.clock.now();
    const [members, leases] = await Promise.all([this.#store.members(), this.#store.leases()]);
    return {
      instance: this.instanceId,
      members: members.map((m) => ({ instance_id: m.instanceId, about: m.about, alive: m.expiresAt > now })),
      leases: leases
        .filter((l) => l.partition < this.#partitions)
        .map((l) => ({ partition: l.partition, owner: l.owner, epoch: l.epoch, expires_at: l.expiresAt })),
    };
  }

  /** One renewal: release what was being given up, renew the rest, take what is free for this instance. */
  async tick(): Promise<void> {
    const started = this.deps.clock.now();
    const until = started + this.#leaseMs;
    if (this.#releasing.size > 0) {
      const giving = [...this.#releasing];
      await this.#store.release(this.instanceId, giving);
      for (const p of giving) {
        this.#held.delete(p);
        this.#releasing.delete(p);
      }
    }
    const still = await this.#store.renew(this.instanceId, until);
    // Safe for the lease's length minus a margin for the clocks of the machines.
    this.#validUntil = started + this.#leaseMs - Math.min(2_000, this.#leaseMs / 5);
    this.#armLapse();
    const lost = [...this.#held.keys()].filter((p) => !still.has(p));
    this.#lose(lost, "lost");
    // Held in the database but not here (a lapse made this instance let them go): they are its again.
    const back = [...still].filter(([p]) => !this.#held.has(p) && p < this.#partitions);
    for (const [p, epoch] of back) this.#held.set(p, epoch);

    const [members, leases] = await Promise.all([this.#store.members(), this.#store.leases()]);
    const alive = members.filter((m) => m.expiresAt > started).map((m) => m.instanceId);
    const wanted: number[] = [];
    const giveUp: number[] = [];
    for (const lease of leases) {
      const p = lease.partition;
      if (p >= this.#partitions) continue;
      const preferred = preferredOwner(p, alive);
      if (this.#held.has(p)) {
        if (preferred !== undefined && preferred !== this.instanceId && !this.#releasing.has(p)) giveUp.push(p);
        continue;
      }
      const free = lease.expiresAt <= started;
      // Its preferred instance takes it; one that expired a whole lease ago (not released: 0) anyone takes.
      if (free && (preferred === this.instanceId || (lease.expiresAt > 0 && lease.expiresAt + this.#leaseMs <= started))) wanted.push(p);
    }
    const taken = await this.#store.take(this.instanceId, wanted, started, until);
    for (const [p, epoch] of taken) this.#held.set(p, epoch);
    for (const p of giveUp) this.#releasing.add(p);
    if (giveUp.length > 0) this.#notify(this.#lostListeners, giveUp, "released");
    const gained = [...back.map(([p]) => p), ...taken.keys()];
    if (gained.length > 0) {
      this.#moves.inc({ move: "gained" }, gained.length);
      this.deps.log.info(`this instance took partitions ${gained.join(", ")}`, { instance: this.instanceId });
      this.#notify(this.#gainedListeners, gained, "gained");
    }
    this.#heldGauge.set({}, this.held().length);
  }

  /** When the renewals stop working (the database unreachable), the leases lapse here too: let go. */
  #armLapse(): void {
    this.#cancelLapse?.();
    const at = this.#validUntil;
    this.#cancelLapse = this.deps.timers.after(Math.max(0, at - this.deps.clock.now()), () => {
      if (this.#stopped || this.#validUntil !== at || this.#held.size === 0) return;
      this.deps.log.warn("the cluster leases could not be renewed in time; this instance stops running its users until it renews them", {
        instance: this.instanceId,
      });
      this.#lose([...this.#held.keys()], "lost");
    });
  }

  #lose(partitions: number[], why: "lost" | "released"): void {
    if (partitions.length === 0) return;
    for (const p of partitions) {
      this.#held.delete(p);
      this.#releasing.delete(p);
    }
    if (why === "lost") this.deps.log.warn(`this instance lost partitions ${partitions.join(", ")} to another instance`, { instance: this.instanceId });
    this.#notify(this.#lostListeners, partitions, why);
    this.#heldGauge.set({}, this.held().length);
  }

  #notify(listeners: ((test: (key: UserKey) => boolean) => void)[], partitions: number[], move: string): void {
    if (move !== "gained") this.#moves.inc({ move }, partitions.length);
    const set = new Set(partitions);
    const test = (key: UserKey) => set.has(partitionOf(key, this.#partitions));
    for (const listener of listeners) {
      try {
        listener(test);
      } catch (error) {
        this.deps.log.error("a cluster listener failed", { error });
      }
    }
  }

  /** Every instance must split the users the same way: a different `partitions` is refused while others run. */
  async #checkPartitionCount(now: number): Promise<void> {
    const [members, leases] = await Promise.all([this.#store.members(), this.#store.leases()]);
    const others = members.filter((m) => m.expiresAt > now && m.instanceId !== this.instanceId);
    const count = leases.length;
    if (count !== 0 && count !== this.#partitions && others.length > 0) {
      throw new ClusterError(
        `[cluster] partitions = ${this.#partitions}, but the instances running on this database (${others.map((m) => m.instanceId).join(", ")}) use ${count}: every instance must run with the same settings (stop them all to change it)`,
      );
    }
    if (count > this.#partitions) {
      await this.deps.writes.run([{ sql: "DELETE FROM cluster_leases WHERE partition >= ?", args: [this.#partitions] }]);
    }
  }
}
