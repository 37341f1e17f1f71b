/**
 * Handover events applied to the thread state (src/conversations/control.ts), against a thread
 * store that records what it is told: which event moves the thread where, and that an event
 * applied on arrival is not applied again in the user's lane.
 */
import { describe, expect, test } from "bun:test";
import type { EndpointSettings } from "../../../src/config/schema.ts";
import { AppliedControlEvents, applyControl, type ControlEvent } from "../../../src/conversations/control.ts";
import type { Floor, HandoverOutcome, ThreadState, Threads } from "../../../src/handover/threads.ts";
import { PAGE_ID, PSID, configFromToml, settingsToml } from "../../helpers/config.ts";
import { collectingLogger } from "../../helpers/log.ts";

const OURS = "111111111111111";
const OTHER = "222222222222222";
const AT = 1_767_225_600_000;
const SINCE = AT - 60_000;
const key = { endpointId: "support", pageId: PAGE_ID, userId: PSID };
/** The thread as another app has it: what a return to us leaves by default. */
const handedOver: ThreadState = {
  state: "handover",
  ownerAppId: OTHER,
  metadata: "sent along",
  since: SINCE,
  lastHumanAt: null,
  pausedUntil: null,
  lastError: null,
  retryAt: null,
};

function endpoint(options: { appId?: string; honourRequests?: boolean } = {}): EndpointSettings {
  const settings = configFromToml(settingsToml(), { dir: "/tmp" }).endpoints[0]!;
  return {
    ...settings,
    ...(options.appId === undefined ? {} : { app_id: options.appId }),
    handover: { ...settings.handover, honour_requests: options.honourRequests ?? true },
  };
}

/** What the thread store was told, in order; `previous` is the state a return leaves. */
function recordingThreads(options: { floor?: Floor; previous?: ThreadState | null; fail?: number } = {}) {
  const calls: unknown[][] = [];
  let failures = options.fail ?? 0;
  const previous = options.previous === undefined ? handedOver : options.previous;
  const threads = {
    floor: () => options.floor ?? "bot",
    async returned(_key: unknown, event: string, at: number, before?: (previous: ThreadState) => Promise<void>) {
      if (failures-- > 0) throw new Error("the database is gone");
      calls.push(["returned", event, at]);
      if (previous) await before?.(previous);
      return previous;
    },
    async storeOutcome(_key: unknown, outcome: HandoverOutcome, unique: string, at: number) {
      calls.push(["storeOutcome", outcome, unique, at]);
    },
    async handedOver(_key: unknown, owner: string | null, metadata: string | null, event: string, options: { at?: number }) {
      calls.push(["handedOver", owner, metadata, event, options.at]);
      return true;
    },
    async pass(_key: unknown, app: string, metadata: string | null) {
      calls.push(["pass", app, metadata]);
      return null;
    },
  };
  return { threads: threads as unknown as Threads, calls };
}

const event = (kind: ControlEvent["kind"], body: Record<string, unknown>, standby = false): ControlEvent => ({
  id: 1,
  kind,
  standby,
  timestamp: AT,
  item: { sender: { id: PSID }, recipient: { id: PAGE_ID }, timestamp: AT, [kind]: body },
});

async function apply(e: ControlEvent, settings: EndpointSettings, threadOptions: Parameters<typeof recordingThreads>[0] = {}) {
  const { threads, calls } = recordingThreads(threadOptions);
  const logs = collectingLogger();
  await applyControl(threads, settings, key, e, logs.log);
  return { calls, logs: logs.records().map((r) => r.msg) };
}

describe("pass_thread_control", () => {
  test("to our app: the thread comes back, and the flow's 'completed' turn is stored first", async () => {
    const { calls } = await apply(event("pass_thread_control", { new_owner_app_id: OURS, metadata: "resolved" }), endpoint({ appId: OURS }));
    const outcome: HandoverOutcome = { status: "completed", metadata: "resolved", owner_app_id: OTHER, since: new Date(SINCE).toISOString() };
    expect(calls).toEqual([
      ["returned", "returned", AT],
      ["storeOutcome", outcome, `pass:${AT}`, AT],
    ]);
  });

  test("to us without metadata: the flow hears the metadata we sent along", async () => {
    const { calls } = await apply(event("pass_thread_control", { new_owner_app_id: OURS }), endpoint({ appId: OURS }));
    expect((calls[1]![1] as HandoverOutcome).metadata).toBe("sent along");
  });

  test("to us while the bot was only paused: the thread is ours again, the flow hears nothing", async () => {
    const paused: ThreadState = { ...handedOver, state: "paused", ownerAppId: null, metadata: null, lastHumanAt: SINCE, pausedUntil: AT + 1 };
    const { calls } = await apply(event("pass_thread_control", { new_owner_app_id: OURS }), endpoint({ appId: OURS }), { previous: paused });
    expect(calls).toEqual([["returned", "returned", AT]]);
  });

  test("to another app: handed over to it", async () => {
    const { calls } = await apply(event("pass_thread_control", { new_owner_app_id: OTHER, metadata: "m" }), endpoint({ appId: OURS }));
    expect(calls).toEqual([["handedOver", OTHER, "m", "taken_by_other", AT]]);
  });

  test("without app_id in the settings: in messaging[] it is to us, in standby[] to the app it names", async () => {
    const toUs = await apply(event("pass_thread_control", { new_owner_app_id: OTHER }), endpoint());
    expect(toUs.calls[0]).toEqual(["returned", "returned", AT]);
    const onwards = await apply(event("pass_thread_control", { new_owner_app_id: OTHER }, true), endpoint());
    expect(onwards.calls).toEqual([["handedOver", OTHER, null, "taken_by_other", AT]]);
  });
});

describe("take_thread_control", () => {
  test("by another app: handed over to it; by our own app: nothing changes", async () => {
    const taken = await apply(event("take_thread_control", { new_owner_app_id: OTHER, metadata: "mine now" }), endpoint({ appId: OURS }));
    expect(taken.calls).toEqual([["handedOver", OTHER, "mine now", "taken_by_other", AT]]);
    const ownTake = await apply(event("take_thread_control", { new_owner_app_id: OURS }), endpoint({ appId: OURS }));
    expect(ownTake.calls).toEqual([]);
  });

  test("a numeric app id is read as the same app", async () => {
    const ownTake = await apply(event("take_thread_control", { new_owner_app_id: Number(OURS) }), endpoint({ appId: OURS }));
    expect(ownTake.calls).toEqual([]);
  });
});

describe("request_thread_control", () => {
  test("honoured: the thread is passed to the app that asked, with its metadata", async () => {
    const { calls } = await apply(event("request_thread_control", { requested_owner_app_id: OTHER, metadata: "please" }), endpoint({ appId: OURS }));
    expect(calls).toEqual([["pass", OTHER, "please"]]);
  });

  test("not passed: when honour_requests is off, when another app has the thread, when we asked ourselves", async () => {
    const off = await apply(event("request_thread_control", { requested_owner_app_id: OTHER }), endpoint({ appId: OURS, honourRequests: false }));
    expect(off.calls).toEqual([]);
    expect(off.logs).toEqual([`app ${OTHER} asked for the thread; not passed (handover.honour_requests is off)`]);
    const elsewhere = await apply(event("request_thread_control", { requested_owner_app_id: OTHER }), endpoint({ appId: OURS }), { floor: "handover" });
    expect(elsewhere.calls).toEqual([]);
    expect(elsewhere.logs).toEqual([`app ${OTHER} asked for the thread, which another app owns already`]);
    const ours = await apply(event("request_thread_control", { requested_owner_app_id: OURS }), endpoint({ appId: OURS }));
    expect(ours.calls).toEqual([]);
  });
});

test("without a thread store (no handover), nothing is applied", async () => {
  const logs = collectingLogger();
  await applyControl(undefined, endpoint(), key, event("take_thread_control", { new_owner_app_id: OTHER }), logs.log);
  expect(logs.records()).toEqual([]);
});

describe("AppliedControlEvents", () => {
  const take = event("take_thread_control", { new_owner_app_id: OTHER });

  test("applied on arrival, it is not applied again in the user's lane", async () => {
    const { threads, calls } = recordingThreads();
    const controls = new AppliedControlEvents(threads);
    const { log } = collectingLogger();
    controls.onArrival(endpoint({ appId: OURS }), key, take, log);
    await controls.inLane(endpoint({ appId: OURS }), key, take, log);
    expect(calls).toHaveLength(1);
  });

  test("failed on arrival, it is applied again in the lane (and the failure is logged)", async () => {
    const { threads, calls } = recordingThreads({ fail: 1 });
    const controls = new AppliedControlEvents(threads);
    const logs = collectingLogger();
    const pass = event("pass_thread_control", { new_owner_app_id: OURS });
    controls.onArrival(endpoint({ appId: OURS }), key, pass, logs.log);
    await controls.inLane(endpoint({ appId: OURS }), key, pass, logs.log);
    expect(calls.map((c) => c[0])).toEqual(["returned", "storeOutcome"]);
    expect(logs.records().map((r) => r.msg)).toEqual(["could not apply a handover event; it is applied again in the user's lane"]);
  });

  test("stored before this start (never seen on arrival): applied in the lane", async () => {
    const { threads, calls } = recordingThreads();
    await new AppliedControlEvents(threads).inLane(endpoint({ appId: OURS }), key, take, collectingLogger().log);
    expect(calls).toHaveLength(1);
  });

  test("an erased person's events applied on arrival are forgotten", async () => {
    const { threads, calls } = recordingThreads();
    const controls = new AppliedControlEvents(threads);
    const { log } = collectingLogger();
    controls.onArrival(endpoint({ appId: OURS }), key, take, log);
    controls.forgetUser(key);
    // Were its lane step ever to come, it would no longer know of the arrival: applied again.
    await controls.inLane(endpoint({ appId: OURS }), key, take, log);
    expect(calls).toHaveLength(2);
  });
});
