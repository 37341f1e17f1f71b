/** Each step of a turn (src/metrics/turn-timings.ts) and the event loop's delay (src/metrics/event-loop.ts). */
import { expect, test } from "bun:test";
import { measureEventLoop } from "../../../src/metrics/event-loop.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { TurnTimings } from "../../../src/metrics/turn-timings.ts";

function setup() {
  let now = 1000;
  const metrics = new Registry();
  const timings = new TurnTimings(metrics, () => now);
  const stage = (name: string) => metrics.histogram("messenger_turn_stage_seconds", "").count({ stage: name });
  const sum = (name: string) => Number(new RegExp(`messenger_turn_stage_seconds_sum\\{stage="${name}"\\} (\\S+)`).exec(metrics.render())?.[1]);
  return { timings, metrics, stage, sum, at: (ms: number) => void (now = ms) };
}

test("a POST's steps, then each event's steps in order, and the whole turn from the request's start", () => {
  const { timings, metrics, stage, sum, at } = setup();
  const request = timings.request(1000);
  at(1001);
  request.verified();
  at(1003);
  request.stored([7, 8]);
  at(1010);
  request.fsynced();
  at(1004);
  timings.mark(7, "turn_started");
  at(1006);
  timings.mark(7, "flow_answered");
  timings.mark(7, "turn_started"); // an earlier step again counts nothing
  at(1007);
  timings.mark(7, "outputs_stored");
  at(1012);
  timings.mark(7, "send_started");
  at(1015);
  timings.mark(7, "graph_answered");
  timings.mark(7, "graph_answered"); // the second message of the turn: not followed any more
  expect(["verified", "stored", "fsynced", "turn_started", "flow_answered", "outputs_stored", "send_started", "graph_answered"].map(stage)).toEqual([
    1, 1, 1, 1, 1, 1, 1, 1,
  ]);
  expect([sum("verified"), sum("stored"), sum("fsynced"), sum("turn_started"), sum("flow_answered"), sum("send_started")]).toEqual([
    0.001, 0.002, 0.007, 0.001, 0.002, 0.005,
  ]);
  expect(metrics.render()).toContain("messenger_turn_end_to_end_seconds_sum 0.015");
  // Event 8 had no message: forgotten, it counts nothing more.
  timings.forget(8);
  timings.mark(8, "turn_started");
  expect(stage("turn_started")).toBe(1);
});

test("the events followed are bounded: the oldest fall out", () => {
  const { timings, stage } = setup();
  timings.request(0).stored(Array.from({ length: 5000 }, (_, i) => i));
  timings.mark(0, "turn_started");
  timings.mark(4999, "turn_started");
  expect(stage("turn_started")).toBe(1);
});

test("the event loop's delay is in /metrics with its quantiles after some time", async () => {
  const metrics = new Registry();
  const stop = measureEventLoop(metrics);
  try {
    await new Promise((resolve) => setTimeout(resolve, 60));
    const text = metrics.render();
    for (const q of ["0.5", "0.9", "0.99", "1"])
      expect(text).toMatch(new RegExp(`messenger_event_loop_delay_seconds\\{quantile="${q.replace(".", "\\.")}"\\} [0-9.e-]+`));
  } finally {
    stop();
  }
});
