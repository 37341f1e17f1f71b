/** The in-memory work list of the inbound lanes: order, duplicates, removal. */
import { describe, expect, test } from "bun:test";
import { PendingEvents, type PendingEvent } from "../../../src/conversations/pending.ts";

const A = { endpointId: "support", pageId: "104857600012345", userId: "6301234567890123" };
const B = { ...A, userId: "6301234567890456" };
const event = (id: number, timestamp: number): PendingEvent => ({ id, kind: "message", standby: false, timestamp, item: {}, attempts: 0 });

describe("PendingEvents", () => {
  test("a user's events come in Facebook's timestamp order, then arrival; users are separate", () => {
    const p = new PendingEvents();
    p.add(A, event(1, 100));
    p.add(A, event(2, 300));
    p.add(A, event(3, 200)); // redelivered late, older timestamp: goes before 2
    p.add(A, event(4, 200)); // same timestamp: after 3
    p.add(B, event(5, 50));
    const order: number[] = [];
    for (let next = p.next(A); next.event; next = p.next(A)) {
      order.push(next.event.id);
      expect(next.more).toBe(order.length < 4);
      p.remove(A, next.event.id);
    }
    expect(order).toEqual([1, 3, 4, 2]);
    expect(p.next(B)).toEqual({ event: event(5, 50), more: false });
    expect(p.size).toBe(1);
  });

  test("an event already in the list (seen at start and from the inbox) is kept once", () => {
    const p = new PendingEvents();
    p.add(A, event(7, 100));
    p.add(A, event(7, 100));
    expect(p.size).toBe(1);
    p.remove(A, 7);
    expect(p.next(A)).toEqual({ event: undefined, more: false });
    p.remove(A, 7); // removing twice is harmless
    expect(p.size).toBe(0);
  });
});
