/** The llm flow's requests (src/flows/llm.ts, llm-call.ts): retries on 429/5xx, Azure OpenAI, fallback_text; against the fake model (src/simulator/fake-llm/). */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { FlowSettings } from "../../../src/config/schema.ts";
import type { FlowContext } from "../../../src/flows/flow.ts";
import { retryAfter } from "../../../src/flows/llm-call.ts";
import { llmFlow } from "../../../src/flows/llm.ts";
import type { FlowResult } from "../../../src/flows/schema.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { FakeLlm } from "../../../src/simulator/fake-llm/fake-llm.ts";
import { collectingLogger } from "../../helpers/index.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { sampleInput } from "./support.ts";

const KEY = "sk-model-key-123456";
let model: FakeLlm;
beforeAll(() => {
  model = FakeLlm.start({ token: KEY });
});
afterAll(() => model.stop());
afterEach(() => model.reset());

const SERVER_ERROR = '{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}';
const input = sampleInput({ text: "Hello" });
const setup = (extra: Partial<FlowSettings> = {}) => {
  const clock = new ManualClock();
  const metrics = new Registry();
  const logger = collectingLogger();
  const settings: FlowSettings = { kind: "llm", url: model.url, model: "gpt-test", api_key: KEY, ...extra };
  const flow = llmFlow("assistant", settings, { timers: clock, clock, metrics });
  const ctx: FlowContext = { signal: new AbortController().signal, log: logger.log };
  return { clock, metrics, logger, flow, run: () => flow.run(input, ctx) as Promise<FlowResult> };
};

/** Resolves once a timer is armed for `ms` from now (the flow waits before trying again); the request before it goes over loopback. */
async function waitArmed(clock: ManualClock, ms: number): Promise<void> {
  for (let i = 0; i < 500 && !clock.timers.includes(clock.now() + ms); i++) await new Promise((r) => setTimeout(r, 2));
  expect(clock.timers).toContain(clock.now() + ms);
}

describe("llm flow retries", () => {
  test("a 429 with Retry-After: the next try comes after exactly that wait, and its answer is sent", async () => {
    model.answer({ status: 429, retryAfter: 3 }, { content: "Hi there." });
    const { clock, run } = setup();
    const running = run();
    await waitArmed(clock, 3000);
    await clock.advance(2999);
    expect(model.requests).toHaveLength(1);
    const second = model.nextRequest();
    await clock.advance(1);
    await second;
    expect((await running).outputs).toEqual([{ text: "Hi there." }]);
    expect(model.requests).toHaveLength(2);
  });

  test("Retry-After as an HTTP date, or in seconds", () => {
    const now = Date.parse("2026-12-02T10:00:00Z");
    expect(retryAfter("Wed, 02 Dec 2026 10:00:07 GMT", now)).toBe(7000);
    expect(retryAfter("2", now)).toBe(2000);
    expect(retryAfter("soon", now)).toBeNull();
    expect(retryAfter(null, now)).toBeNull();
  });

  test("500 twice, then 200: waits of 500 ms and 1 s, then the answer", async () => {
    model.answer({ status: 500 }, { status: 502 }, { content: "Third time lucky." });
    const { clock, run } = setup();
    const running = run();
    await waitArmed(clock, 500);
    await clock.advance(500);
    await waitArmed(clock, 1000);
    await clock.advance(1000);
    expect((await running).outputs).toEqual([{ text: "Third time lucky." }]);
    expect(model.requests).toHaveLength(3);
  });

  test("a 400 is not tried again", async () => {
    model.answer({ status: 400 }, { content: "never asked" });
    const { clock, run } = setup();
    await expect(run()).rejects.toThrow(`the LLM at ${model.url}/chat/completions answered HTTP 400`);
    expect(model.requests).toHaveLength(1);
    expect(clock.timers).toEqual([]);
  });

  test("retries exhausted without fallback_text: the turn fails, saying how often it tried", async () => {
    model.answer({ status: 503 }, { status: 503 });
    const { clock, run } = setup({ retries: 1 });
    // Caught from the start: the rejection comes while the clock moves.
    const failed = run().then(
      () => null,
      (e: Error) => e,
    );
    await waitArmed(clock, 500);
    await clock.advance(500);
    const error = await failed;
    expect(error?.message).toBe(`the LLM at ${model.url}/chat/completions answered HTTP 503: ${SERVER_ERROR} (after 2 tries)`);
    expect(model.requests).toHaveLength(2);
  });

  test("a Retry-After longer than the time left is not waited for", async () => {
    model.answer({ status: 429, retryAfter: 5 }, { content: "too late" });
    const { clock, run } = setup({ timeout_ms: 4000 });
    await expect(run()).rejects.toThrow("not tried again: the wait of 5000 ms would pass the flow's timeout_ms of 4000 ms");
    expect(model.requests).toHaveLength(1);
    expect(clock.timers).toEqual([]);
  });
});

describe("llm flow fallback_text", () => {
  test("retries exhausted: the user gets fallback_text, the error is logged without the key and counted", async () => {
    model.answer({ status: 503 }, { status: 503 });
    const { clock, run, logger, metrics } = setup({ retries: 1, fallback_text: "Sorry, I cannot answer right now." });
    const running = run();
    await waitArmed(clock, 500);
    await clock.advance(500);
    const result = await running;
    expect(result.outputs).toEqual([{ text: "Sorry, I cannot answer right now." }]);
    expect(result.context).toEqual(input.context);
    const logged = JSON.stringify(logger.lines);
    expect(logged).toContain("llm flow answered with fallback_text");
    expect(logged).toContain("HTTP 503");
    expect(logged).not.toContain(KEY);
    expect(metrics.counter("messenger_llm_fallbacks_total", "").get({ endpoint: "support", flow: "assistant" })).toBe(1);
  });

  test("a model that does not answer within timeout_ms: fallback_text at the time limit; the engine waits a grace longer", async () => {
    model.answer({ hang: true });
    const { clock, run, flow } = setup({ timeout_ms: 2000, fallback_text: "One moment, please try again." });
    expect(flow.timeoutMs).toBe(3000);
    const asked = model.nextRequest();
    const running = run();
    await asked;
    await clock.advance(1999);
    await clock.advance(1);
    expect((await running).outputs).toEqual([{ text: "One moment, please try again." }]);
  });

  test("an unreadable answer: fallback_text", async () => {
    model.respond = () => ({ tool_calls: [] });
    const { run } = setup({ fallback_text: "Sorry." });
    expect((await run()).outputs).toEqual([{ text: "Sorry." }]);
  });
});

describe("llm flow with Azure OpenAI", () => {
  test("{url}/chat/completions?api-version=…, the key in api-key and no Authorization", async () => {
    const { run } = setup({ provider: "azure", api_version: "2024-10-21", url: `${model.url}/openai/deployments/gpt4o/` });
    expect((await run()).outputs).toEqual([{ text: "You said: Hello" }]);
    const [request] = model.requests;
    expect(request!.path).toBe("/v1/openai/deployments/gpt4o/chat/completions");
    expect(request!.query).toBe("?api-version=2024-10-21");
    expect(request!.headers["api-key"]).toBe(KEY);
    expect(request!.headers.authorization).toBeUndefined();
  });
});
