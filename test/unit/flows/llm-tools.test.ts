/** The llm flow's tools (src/flows/llm-tools.ts, llm.ts) against the fake model (src/simulator/fake-llm/). */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { FlowSettings, LlmToolSettings } from "../../../src/config/schema.ts";
import type { Timers } from "../../../src/core/clock.ts";
import type { FlowContext } from "../../../src/flows/flow.ts";
import type { FlowInput, FlowResult } from "../../../src/flows/schema.ts";
import { llmFlow } from "../../../src/flows/llm.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { FakeLlm, type FakeLlmRequest } from "../../../src/simulator/fake-llm/fake-llm.ts";
import { collectingLogger } from "../../helpers/index.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";
import { closedUrl, flowContext, sampleInput, startAgentServer, type AgentServer } from "./support.ts";

let model: FakeLlm;
let toolServer: AgentServer;
beforeAll(() => {
  model = FakeLlm.start({ token: "sk-model-key-123456" });
  toolServer = startAgentServer(() => Response.json({ status: "shipped", eta: "2026-12-04" }));
});
afterAll(() => {
  model.stop();
  toolServer.stop();
});
afterEach(() => {
  model.reset();
  toolServer.seen.splice(0);
  toolServer.answer = () => Response.json({ status: "shipped", eta: "2026-12-04" });
});

const ORDER_SCHEMA = { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] };
const tool = (name: string, extra: Partial<LlmToolSettings> = {}): LlmToolSettings => ({
  name,
  description: `The ${name} tool`,
  parameters: ORDER_SCHEMA,
  url: `${toolServer.url}/${name}`,
  ...extra,
});
const setup = (extra: Partial<FlowSettings> = {}, deps: { timers?: Timers } = {}) => {
  const metrics = new Registry();
  const settings: FlowSettings = { kind: "llm", url: model.url, model: "gpt-test", api_key: "sk-model-key-123456", tools: [tool("order_status")], ...extra };
  const flow = llmFlow("shop", settings, { ...deps, metrics });
  return { flow: { run: (i: FlowInput, ctx: FlowContext) => flow.run(i, ctx) as Promise<FlowResult> }, metrics };
};
const input = sampleInput({ text: "Where is order 42?", contact: { name: "Ada" } });
const toolMessages = (r: FakeLlmRequest) => r.body.messages.filter((m) => m.role === "tool");

describe("llm flow with tools", () => {
  test("a round trip: the tool gets the arguments and the user, its answer reaches the model, the model's text is the output", async () => {
    model.answer({ tool_calls: [{ id: "call_a", name: "order_status", arguments: { order_id: "42" } }] }, { content: "Order 42 was shipped." });
    const { flow, metrics } = setup({ tools: [tool("order_status", { api_key: "tool-key-abcdef", headers: { "X-Shop": "main" } })] });
    const used: { prompt: number; completion: number }[] = [];
    const result = await flow.run(input, { ...flowContext(), usage: (t) => used.push(t) });

    expect(result.outputs).toEqual([{ text: "Order 42 was shipped." }]);
    expect(model.requests).toHaveLength(2);
    expect(model.requests[0]!.body.tools).toEqual([
      { type: "function", function: { name: "order_status", description: "The order_status tool", parameters: ORDER_SCHEMA } },
    ]);
    const call = toolServer.seen[0]!;
    expect(call.method).toBe("POST");
    expect(call.path).toBe("/order_status");
    expect(call.headers.authorization).toBe("Bearer tool-key-abcdef");
    expect(call.headers["x-shop"]).toBe("main");
    expect(JSON.parse(call.body)).toEqual({
      arguments: { order_id: "42" },
      user: { id: input.user_id, page_id: input.page_id, endpoint_id: input.endpoint_id, session_id: input.session_id, contact: { name: "Ada" } },
    });
    const second = model.requests[1]!.body.messages;
    expect(second.at(-2)).toMatchObject({ role: "assistant", tool_calls: [{ id: "call_a", type: "function", function: { name: "order_status" } }] });
    expect(second.at(-1)).toEqual({ role: "tool", tool_call_id: "call_a", content: '{"status":"shipped","eta":"2026-12-04"}' });
    // Only the user's text and the final answer are kept in the history.
    expect(result.context!.history).toEqual([
      { role: "user", content: "Where is order 42?" },
      { role: "assistant", content: "Order 42 was shipped." },
    ]);
    expect(metrics.counter("messenger_llm_tool_calls_total", "").get({ flow: "shop", tool: "order_status", outcome: "ok" })).toBe(1);
    // Each answer's tokens are reported to the engine (which counts them: src/conversations/).
    expect(used).toHaveLength(2);
    for (const t of used) expect(t.prompt > 0 && t.completion > 0).toBe(true);
  });

  test("a text answer is the tool's answer as it is", async () => {
    toolServer.answer = () => new Response("Order 42: shipped");
    model.answer({ tool_calls: [{ name: "order_status", arguments: { order_id: "42" } }] }, { content: "Shipped." });
    await setup().flow.run(input, flowContext());
    expect(toolMessages(model.requests[1]!)[0]!.content).toBe("Order 42: shipped");
  });

  test("two tools in one answer are called together, their results given back in the order of the calls", async () => {
    // /slow answers only once /fast has been called: called one after the other, /slow would time out.
    let fastCalled!: () => void;
    const fast = new Promise<void>((resolve) => (fastCalled = resolve));
    toolServer.answer = async (request) => {
      if (new URL(request.url).pathname === "/fast") {
        fastCalled();
        return Response.json({ from: "fast" });
      }
      await fast;
      return Response.json({ from: "slow" });
    };
    model.answer(
      {
        tool_calls: [
          { id: "c1", name: "slow", arguments: {} },
          { id: "c2", name: "fast", arguments: {} },
        ],
      },
      { content: "Both done." },
    );
    const { flow } = setup({ tools: [tool("slow"), tool("fast")], tool_timeout_ms: 3000 });
    expect((await flow.run(input, flowContext())).outputs).toEqual([{ text: "Both done." }]);
    expect(toolMessages(model.requests[1]!)).toEqual([
      { role: "tool", tool_call_id: "c1", content: '{"from":"slow"}' },
      { role: "tool", tool_call_id: "c2", content: '{"from":"fast"}' },
    ]);
  });

  test("a tool's 5xx is an error result for the model, and the turn goes on; the log keeps no secret", async () => {
    toolServer.answer = () => new Response("internal error, key tool-key-abcdef", { status: 503 });
    model.answer({ tool_calls: [{ id: "c1", name: "order_status", arguments: { order_id: "42" } }] }, { content: "Sorry, I cannot look that up now." });
    const { flow, metrics } = setup({ tools: [tool("order_status", { api_key: "tool-key-abcdef" })] });
    const logger = collectingLogger();
    const result = await flow.run(input, { signal: new AbortController().signal, log: logger.log });
    expect(result.outputs).toEqual([{ text: "Sorry, I cannot look that up now." }]);
    expect(toolMessages(model.requests[1]!)[0]!.content).toBe('{"error":"the tool failed (HTTP 503)"}');
    expect(metrics.counter("messenger_llm_tool_calls_total", "").get({ flow: "shop", tool: "order_status", outcome: "error" })).toBe(1);
    const logged = JSON.stringify(logger.lines);
    expect(logged).toContain("llm tool call failed");
    expect(logged).toContain("HTTP 503");
    expect(logged).not.toContain("tool-key-abcdef");
  });

  test("an unreachable tool is an error result", async () => {
    model.answer({ tool_calls: [{ id: "c1", name: "order_status", arguments: {} }] }, { content: "Down." });
    await setup({ tools: [tool("order_status", { url: `${closedUrl()}/x` })] }).flow.run(input, flowContext());
    expect(toolMessages(model.requests[1]!)[0]!.content).toBe('{"error":"the tool could not be reached"}');
  });

  test("a tool that does not answer within tool_timeout_ms (manual clock) is a timeout result", async () => {
    const clock = new ManualClock();
    toolServer.answer = (request) => new Promise((resolve) => request.signal.addEventListener("abort", () => resolve(new Response("late"))));
    model.answer({ tool_calls: [{ id: "c1", name: "order_status", arguments: { order_id: "42" } }] }, { content: "It takes too long." });
    const { flow, metrics } = setup({ tool_timeout_ms: 5000 }, { timers: clock });
    const called = toolServer.nextRequest();
    const running = flow.run(input, flowContext());
    await called;
    await clock.advance(4999);
    expect(model.requests).toHaveLength(1);
    await clock.advance(1);
    expect((await running).outputs).toEqual([{ text: "It takes too long." }]);
    expect(toolMessages(model.requests[1]!)[0]!.content).toBe('{"error":"the tool did not answer within 5000 ms"}');
    expect(metrics.counter("messenger_llm_tool_calls_total", "").get({ flow: "shop", tool: "order_status", outcome: "timeout" })).toBe(1);
  });

  test("an unknown tool name and arguments that are not JSON are error results; the tools are not called", async () => {
    model.answer(
      {
        tool_calls: [
          { id: "c1", name: "cancel_order", arguments: {} },
          { id: "c2", name: "order_status", arguments: "{order_id: 42" },
        ],
      },
      { content: "I cannot do that." },
    );
    const { flow, metrics } = setup();
    expect((await flow.run(input, flowContext())).outputs).toEqual([{ text: "I cannot do that." }]);
    expect(toolServer.seen).toHaveLength(0);
    expect(toolMessages(model.requests[1]!)).toEqual([
      { role: "tool", tool_call_id: "c1", content: '{"error":"there is no tool named \\"cancel_order\\"; the tools are: order_status"}' },
      { role: "tool", tool_call_id: "c2", content: '{"error":"the arguments are not JSON: call the tool again with a JSON object"}' },
    ]);
    const calls = metrics.counter("messenger_llm_tool_calls_total", "");
    expect(calls.get({ flow: "shop", tool: "unknown", outcome: "unknown_tool" })).toBe(1);
    expect(calls.get({ flow: "shop", tool: "order_status", outcome: "invalid_arguments" })).toBe(1);
  });

  test("after max_tool_rounds the model is asked without tools for its answer", async () => {
    model.respond = (r) => (r.body.tools ? { tool_calls: [{ name: "order_status", arguments: { order_id: "42" } }] } : { content: "Final answer." });
    const { flow } = setup({ max_tool_rounds: 2 });
    expect((await flow.run(input, flowContext())).outputs).toEqual([{ text: "Final answer." }]);
    expect(model.requests.map((r) => r.body.tools !== undefined)).toEqual([true, true, false]);
    expect(toolServer.seen).toHaveLength(2);
    expect(toolMessages(model.requests[2]!)).toHaveLength(2);
  });

  test("the default is 4 rounds", async () => {
    model.respond = (r) => (r.body.tools ? { tool_calls: [{ name: "order_status", arguments: {} }] } : { content: "Done." });
    await setup().flow.run(input, flowContext());
    expect(model.requests.map((r) => r.body.tools !== undefined)).toEqual([true, true, true, true, false]);
  });

  test("without tools the request has no tools and a tool call in the answer is not followed", async () => {
    model.answer({ tool_calls: [{ name: "order_status", arguments: {} }], content: "Plain text." });
    const { flow } = setup({ tools: undefined });
    expect((await flow.run(input, flowContext())).outputs).toEqual([{ text: "Plain text." }]);
    expect(model.requests[0]!.body.tools).toBeUndefined();
    expect(toolServer.seen).toHaveLength(0);
  });
});
