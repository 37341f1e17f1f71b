/** cluster/partitions.ts: a user's partition, and which instance prefers a partition. */
import { describe, expect, test } from "bun:test";
import { partitionOf, preferredOwner } from "../../../src/cluster/partitions.ts";

const key = (userId: string) => ({ endpointId: "support", pageId: "1001", userId });

describe("partitionOf", () => {
  test("the same user always gets the same partition, whatever the instance", () => {
    expect(partitionOf(key("7001"), 16)).toBe(partitionOf(key("7001"), 16));
    // A value fixed here: a change of the hash would move every user of a running cluster.
    expect([partitionOf(key("7001"), 16), partitionOf(key("7002"), 16), partitionOf({ endpointId: "sales", pageId: "1001", userId: "7001" }, 16)]).toEqual(
      FIXED,
    );
  });

  test("users spread over the partitions: 16,000 consecutive PSIDs, each partition within 15 % of its share", () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[partitionOf(key(String(25_000_000_000_000 + i)), 16)]++;
    for (const n of counts) expect(Math.abs(n - 1000)).toBeLessThan(150);
  });
});

describe("preferredOwner (rendezvous)", () => {
  const owners = (instances: string[]) => Array.from({ length: 64 }, (_, p) => preferredOwner(p, instances));

  test("no instance: none; one: it takes everything", () => {
    expect(preferredOwner(3, [])).toBeUndefined();
    expect(new Set(owners(["a"]))).toEqual(new Set(["a"]));
  });

  test("three instances share 64 partitions roughly evenly", () => {
    const counts = new Map<string, number>();
    for (const o of owners(["a:1", "b:2", "c:3"])) counts.set(o!, (counts.get(o!) ?? 0) + 1);
    expect(counts.size).toBe(3);
    for (const n of counts.values()) expect(n).toBeGreaterThan(10);
  });

  test("an instance joining takes partitions only for itself; one leaving gives only its own away", () => {
    const two = owners(["a:1", "b:2"]);
    const three = owners(["a:1", "b:2", "c:3"]);
    two.forEach((owner, p) => {
      if (three[p] !== owner) expect(three[p]).toBe("c:3");
    });
    const without = owners(["a:1", "c:3"]);
    three.forEach((owner, p) => {
      if (owner !== "b:2") expect(without[p]).toBe(owner!);
    });
  });

  test("the order of the list does not matter", () => {
    expect(owners(["x", "y", "z"])).toEqual(owners(["z", "x", "y"]));
  });
});

const FIXED = [10, 7, 15];
