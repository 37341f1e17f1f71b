/** The conversation so far, then live, each message once (src/simulator/history.ts). */
import { expect, test } from "bun:test";
import { followWithHistory, type HistoryEvent } from "../../../src/simulator/history.ts";
import type { SimulatorEvent } from "../../../src/simulator/simulator.ts";
import type { StoredHistory } from "../../../src/simulator/store.ts";

/** The pushed events, and a promise of the history's arrival. */
function recorder() {
  const pushed: (SimulatorEvent | HistoryEvent)[] = [];
  let arrived = () => {};
  const history = new Promise<void>((r) => (arrived = r));
  return {
    pushed,
    history,
    push(event: SimulatorEvent | HistoryEvent) {
      pushed.push(event);
      if (event.type === "history") queueMicrotask(arrived); // after the events that waited for it
    },
  };
}

const reply = (id: number, text: string): SimulatorEvent => ({ type: "message", message: { text, metadata: `me:install:${id}` } });

test("what comes while the history is read waits for it; a reply the history holds is not shown twice", async () => {
  let live = (_event: SimulatorEvent) => {};
  let unsubscribed = false;
  let resolve = (_history: StoredHistory) => {};
  const { pushed, history, push: record } = recorder();
  const stop = followWithHistory(
    (push) => {
      live = push;
      return () => {
        unsubscribed = true;
      };
    },
    () => new Promise((r) => (resolve = r)),
    record,
  );
  // Sent while the history was being read: 7 was sent before the read (the history has it), 8 was still open.
  live(reply(7, "seven"));
  live({ type: "action", action: "typing_on" });
  live(reply(8, "eight"));
  expect(pushed).toEqual([]);
  resolve({
    lines: [
      { direction: "in", source: "user", text: "hi", data: {} },
      { direction: "out", source: "flow", text: "seven", data: { text: "seven" } },
      { direction: "out", source: "flow", text: "eight", data: { text: "eight" } },
    ],
    open: [8],
    last: 8,
  });
  await history;
  expect(
    pushed.map((e) => (e.type === "history" ? `history:${e.lines.map((l) => l.text).join(",")}` : e.type === "message" ? e.message.text : e.type)),
  ).toEqual(["history:hi,seven", "action", "eight"]);
  live(reply(9, "nine"));
  live(reply(7, "seven again"));
  expect(pushed.at(-1)).toEqual(reply(9, "nine"));
  expect(pushed).toHaveLength(4);
  stop();
  expect(unsubscribed).toBe(true);
});

test("a history that cannot be read says so, and the stream goes on", async () => {
  const { pushed, history, push } = recorder();
  followWithHistory(
    () => () => {},
    () => Promise.reject(new Error("disk I/O error")),
    push,
  );
  await history;
  expect(pushed).toEqual([{ type: "history", kept: true, lines: [], error: "the conversation so far could not be read: Error: disk I/O error" }]);
});
