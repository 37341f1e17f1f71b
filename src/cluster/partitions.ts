/**
 * Which partition a user belongs to, and which instance a partition prefers (docs/scale-out.md).
 *
 * A user's partition is FNV-1a (32 bits) of their `UserKey` modulo the number of partitions: the
 * same on every instance and across restarts. A partition's preferred owner among the live
 * instances is chosen by rendezvous hashing (the highest hash of instance and partition wins), so
 * that when an instance joins or leaves only the partitions it gains or had move.
 */
import type { UserKey } from "../core/user-key.ts";

export function partitionOf(key: UserKey, partitions: number): number {
  return fnv1a(`${key.endpointId}\u0000${key.pageId}\u0000${key.userId}`) % partitions;
}

/** The live instance that should hold `partition` (undefined when none is alive). */
export function preferredOwner(partition: number, instances: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const instance of instances) {
    const score = fnv1a(`${instance}\u0000${partition}`);
    if (score > bestScore || (score === bestScore && best !== undefined && instance < best)) {
      best = instance;
      bestScore = score;
    }
  }
  return best;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // A final mix, so that keys differing only in their last characters spread over the partitions.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return hash >>> 0;
}
