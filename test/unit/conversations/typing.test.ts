/**
 * The typing indicator kept on while a flow works (src/conversations/typing.ts), on a clock moved
 * by hand: the first `typing_on` after 1 s, renewals every 15 s, nothing once stopped, nothing for
 * a fast flow, the endpoint's switch and user_ref people, and the `typing_off` of a turn that
 * ends without a message.
 */
import { describe, expect, test } from "bun:test";
import type { EndpointSettings } from "../../../src/config/schema.ts";
import { TYPING_AFTER_MS, TYPING_RENEW_MS, TypingKeeper, type TypingLane } from "../../../src/conversations/typing.ts";
import type { UserKey } from "../../../src/core/user-key.ts";
import type { NewReply } from "../../../src/replies/outbox.ts";
import { PAGE_ID, PSID } from "../../helpers/config.ts";
import { collectingLogger } from "../../helpers/log.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";

const KEY: UserKey = { endpointId: "support", pageId: PAGE_ID, userId: PSID };
const endpoint = (typing: boolean) => ({ messenger: { typing_indicators: typing } }) as EndpointSettings;

/** A lane that records when each typing_on was queued; `sent` empties it as the real lane would. */
function recordingLane(clock: ManualClock, options: { fail?: boolean; holds?: boolean } = {}) {
  const queued: number[] = [];
  const open = new Set<number>();
  let ids = 0;
  let gate: Promise<void> | null = null;
  let openGate = () => {};
  const lane: TypingLane = {
    async queue() {
      if (gate) await gate;
      if (options.fail) throw new Error("disk full");
      queued.push(clock.now() - start);
      open.add(++ids);
      return ids;
    },
    isOpen: (_key, id) => open.has(id),
    holds: () => options.holds ?? false,
  };
  const start = clock.now();
  return {
    lane,
    queued,
    sent: () => open.clear(),
    hold: () => (gate = new Promise((resolve) => (openGate = resolve))),
    release: () => {
      gate = null;
      openGate();
    },
  };
}

const message: NewReply = { ...KEY, source: "flow", message: { text: "hi" } };

describe("typing keeper", () => {
  test("typing_on at 1 s, renewed at 16 s and 31 s while the flow works; nothing after stop", async () => {
    const clock = new ManualClock();
    const recorded = recordingLane(clock);
    const keeper = new TypingKeeper({ timers: clock, lane: recorded.lane });
    const typing = keeper.keep(KEY, endpoint(true), 7, collectingLogger().log);
    await clock.advance(TYPING_AFTER_MS - 1);
    expect(recorded.queued).toEqual([]);
    await clock.advance(1);
    expect(recorded.queued).toEqual([1_000]);
    recorded.sent();
    await clock.advance(TYPING_RENEW_MS);
    recorded.sent();
    await clock.advance(TYPING_RENEW_MS);
    expect(recorded.queued).toEqual([1_000, 16_000, 31_000]);
    await typing.stop();
    expect(clock.timers).toEqual([]); // the renewal is cancelled
    await clock.advance(60_000);
    expect(recorded.queued).toEqual([1_000, 16_000, 31_000]);
    // A message follows: it clears the indicator, no typing_off.
    expect(typing.closing([message])).toEqual([message]);
  });

  test("a flow that answers within 1 s: no typing_on, no timer left", async () => {
    const clock = new ManualClock();
    const recorded = recordingLane(clock);
    const typing = new TypingKeeper({ timers: clock, lane: recorded.lane }).keep(KEY, endpoint(true), 7, collectingLogger().log);
    await clock.advance(999);
    await typing.stop();
    expect(clock.timers).toEqual([]);
    await clock.advance(30_000);
    expect(recorded.queued).toEqual([]);
    expect(typing.closing([])).toEqual([]); // nothing shown, nothing to take back
  });

  test("typing_indicators = false, and a user_ref person: nothing at all", async () => {
    const clock = new ManualClock();
    const recorded = recordingLane(clock);
    const keeper = new TypingKeeper({ timers: clock, lane: recorded.lane });
    const off = keeper.keep(KEY, endpoint(false), 7, collectingLogger().log);
    const userRef = keeper.keep({ ...KEY, userId: "user_ref:abc" }, endpoint(true), 8, collectingLogger().log);
    expect(clock.timers).toEqual([]);
    await clock.advance(40_000);
    await off.stop();
    await userRef.stop();
    expect(recorded.queued).toEqual([]);
  });

  test("stop waits for a typing_on being queued (the turn's replies come after it); then typing_off when no message follows", async () => {
    const clock = new ManualClock();
    const recorded = recordingLane(clock);
    const typing = new TypingKeeper({ timers: clock, lane: recorded.lane }).keep(KEY, endpoint(true), 7, collectingLogger().log);
    recorded.hold();
    await clock.advance(TYPING_AFTER_MS);
    let stopped = false;
    const stopping = typing.stop().then(() => (stopped = true));
    await clock.settle();
    expect(stopped).toBe(false);
    recorded.release();
    await stopping;
    expect(recorded.queued).toEqual([1_000]);
    const handover: NewReply = { ...KEY, source: "handover", passThread: { targetAppId: "263902037430900", metadata: null } };
    expect(typing.closing([handover])).toEqual([{ ...KEY, source: "typing", senderAction: "typing_off", inboxId: 7 }, handover]);
  });

  test("no renewal while the last typing_on still waits in the lane, or while the lane is held", async () => {
    const clock = new ManualClock();
    const recorded = recordingLane(clock);
    const typing = new TypingKeeper({ timers: clock, lane: recorded.lane }).keep(KEY, endpoint(true), 7, collectingLogger().log);
    await clock.advance(TYPING_AFTER_MS + TYPING_RENEW_MS * 2); // never sent: one is enough
    expect(recorded.queued).toEqual([1_000]);
    recorded.sent();
    await clock.advance(TYPING_RENEW_MS);
    expect(recorded.queued).toEqual([1_000, 46_000]);
    await typing.stop();

    const held = recordingLane(clock, { holds: true });
    const whileHeld = new TypingKeeper({ timers: clock, lane: held.lane }).keep(KEY, endpoint(true), 8, collectingLogger().log);
    await clock.advance(TYPING_AFTER_MS + TYPING_RENEW_MS);
    await whileHeld.stop();
    expect(held.queued).toEqual([]);
  });

  test("a typing_on that cannot be queued is logged at debug; the keeper goes on, stop resolves", async () => {
    const clock = new ManualClock();
    const recorded = recordingLane(clock, { fail: true });
    const logs = collectingLogger();
    const typing = new TypingKeeper({ timers: clock, lane: recorded.lane }).keep(KEY, endpoint(true), 7, logs.log);
    await clock.advance(TYPING_AFTER_MS + TYPING_RENEW_MS);
    await typing.stop();
    const failures = logs.records().filter((r) => r.msg.startsWith("a typing indicator could not be queued"));
    expect(failures.map((r) => r.level)).toEqual(["debug", "debug"]);
    expect(typing.closing([])).toEqual([]); // none was queued
  });
});
