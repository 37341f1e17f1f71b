/**
 * The typing indicator kept on while a flow works (src/conversations/typing.ts), end to end: a
 * signed webhook, a flow that takes its time, the fake Graph API seeing `typing_on` at 1 s, 16 s
 * and 31 s on a clock moved by hand, then the answer; nothing extra for a fast flow or with
 * `typing_indicators = false`; a `typing_off` when the flow fails; and an `llm` flow whose model
 * (the stand-in, src/simulator/fake-llm/fake-llm.ts) answers late.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { Flow } from "../../src/flows/flow.ts";
import { FakeLlm } from "../../src/simulator/fake-llm/fake-llm.ts";
import { PAGE_ID, PSID } from "../helpers/config.ts";
import { rows, startConversation, until, userText, type Conversation } from "../helpers/conversation.ts";
import { ManualClock } from "../helpers/manual-clock.ts";

const KEY = { endpointId: "support", pageId: PAGE_ID, userId: PSID };
const model = FakeLlm.start();
const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  model.reset();
});
afterAll(() => model.stop());

/** A flow that answers (or fails) only when the test says so; its time limit is longer than the test's clock moves. */
function slowFlow() {
  let started = () => {};
  const running = new Promise<void>((resolve) => (started = resolve));
  let finish: (how: "answer" | "fail") => void = () => {};
  const done = new Promise<"answer" | "fail">((resolve) => (finish = resolve));
  const flow: Flow = {
    name: "agent",
    kind: "script",
    timeoutMs: 300_000,
    async run(input) {
      started();
      if ((await done) === "fail") throw new Error("the agent's backend is down");
      return { outputs: [{ text: `re: ${input.text}` }] };
    },
  };
  return { flows: new Map([["agent", flow]]), running, answer: () => finish("answer"), fail: () => finish("fail") };
}

/** A conversation on a manual clock, with each Send API call to the user recorded as [action or "message", ms since `mark()`]. */
async function onManualClock(options: Parameters<typeof startConversation>[0]) {
  const clock = new ManualClock();
  const c = await startConversation({ ...options, timers: clock });
  open.push(c);
  let start = clock.now();
  const seen: [string, number][] = [];
  c.graph.onSend((s) => {
    if (s.recipientId === PSID) seen.push([s.senderAction ?? `message: ${s.message?.text}`, clock.now() - start]);
  });
  /** Moves the clock, then waits until the lane has nothing left (what the move queued is sent and recorded). */
  const advance = async (ms: number) => {
    await clock.advance(ms);
    await until(() => c.app.replies.waiting(KEY) === 0);
  };
  return { c, clock, seen, advance, mark: () => (start = clock.now()) };
}

describe("typing indicator while the flow works", () => {
  test("a slow flow: typing_on at 1 s, renewed at 16 s and 31 s; none after the answer, which is delivered", async () => {
    const agent = slowFlow();
    const { c, seen, advance, mark } = await onManualClock({ flows: agent.flows, messenger: { typing: true } });
    expect(await c.post([userText("where is my order?")])).toBe(200);
    await agent.running;
    mark();
    await advance(999);
    expect(seen).toEqual([]);
    await advance(1);
    expect(seen).toEqual([["typing_on", 1_000]]);
    await advance(15_000);
    await advance(15_000);
    expect(seen).toEqual([
      ["typing_on", 1_000],
      ["typing_on", 16_000],
      ["typing_on", 31_000],
    ]);
    await advance(5_000);
    agent.answer();
    await c.graph.waitForSends(5, { recipientId: PSID });
    // The lane's own typing_on before the message, then the message (which clears the indicator).
    expect(seen.slice(3)).toEqual([
      ["typing_on", 36_000],
      ["message: re: where is my order?", 36_000],
    ]);
    await advance(60_000);
    await Bun.sleep(100);
    expect(seen).toHaveLength(5);
    const outbox = await rows(c, "SELECT source, kind, status FROM outbox ORDER BY id");
    expect(outbox.map((r) => `${r[0]} ${r[1]} ${r[2]}`)).toEqual(["typing action sent", "typing action sent", "typing action sent", "flow message sent"]);
  });

  test("a flow that answers within 1 s sends no extra typing_on", async () => {
    const { c, seen, advance } = await onManualClock({ messenger: { typing: true } }); // builtin:echo
    expect(await c.post([userText("hi")])).toBe(200);
    await c.graph.waitForSends(2, { recipientId: PSID });
    await advance(60_000);
    await Bun.sleep(100);
    expect(seen.map(([what]) => what)).toEqual(["typing_on", "message: You said: hi"]);
  });

  test("typing_indicators = false: no typing_on while the flow works, nor before the answer", async () => {
    const agent = slowFlow();
    const { c, seen, advance } = await onManualClock({ flows: agent.flows, messenger: { typing: false } });
    expect(await c.post([userText("slow")])).toBe(200);
    await agent.running;
    await advance(31_000);
    await Bun.sleep(100);
    expect(seen).toEqual([]);
    agent.answer();
    await c.graph.waitForSends(1, { recipientId: PSID });
    expect(seen.map(([what]) => what)).toEqual(["message: re: slow"]);
  });

  test("a flow that fails after the indicator showed: typing_off, so it does not stay up for nothing", async () => {
    const agent = slowFlow();
    const { c, seen, advance, mark } = await onManualClock({ flows: agent.flows, messenger: { typing: true } });
    expect(await c.post([userText("break")])).toBe(200);
    await agent.running;
    mark();
    await advance(1_000);
    agent.fail();
    await c.graph.waitForSends(2, { recipientId: PSID });
    await advance(60_000);
    await Bun.sleep(100);
    expect(seen).toEqual([
      ["typing_on", 1_000],
      ["typing_off", 1_000],
    ]);
    const [event] = await rows(c, "SELECT status, last_error FROM inbox");
    expect([event!.status, event!.last_error]).toEqual(["done", expect.stringContaining("the agent's backend is down")]);
  });

  test("an llm flow whose model answers late: the user sees the indicator until the answer", async () => {
    let answerNow = () => {};
    model.answer({ after: new Promise<void>((resolve) => (answerNow = resolve)), answer: { content: "Your order ships today." } });
    const flow = `kind = "llm"\nurl = "${model.url}"\nmodel = "gpt-test"\ntimeout_ms = 120000\nsystem_prompt = "You are the assistant of Example Shop."`;
    const { c, seen, advance, mark } = await onManualClock({ flow, messenger: { typing: true } });
    const asked = model.nextRequest();
    expect(await c.post([userText("when does it ship?")])).toBe(200);
    await asked;
    mark();
    await advance(1_000);
    await advance(15_000);
    expect(seen).toEqual([
      ["typing_on", 1_000],
      ["typing_on", 16_000],
    ]);
    answerNow();
    await c.graph.waitForSends(4, { recipientId: PSID });
    expect(seen.slice(2).map(([what]) => what)).toEqual(["typing_on", "message: Your order ships today."]);
    await advance(60_000);
    await Bun.sleep(100);
    expect(seen).toHaveLength(4);
  });
});
