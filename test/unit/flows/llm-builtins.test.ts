/** The llm flow's built-in tools (src/flows/llm-builtins.ts, llm.ts) against the fake model (src/simulator/fake-llm/). */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { LLM_BUILTIN_TOOLS } from "../../../src/config/llm-names.ts";
import type { FlowSettings } from "../../../src/config/schema.ts";
import { llmFlow } from "../../../src/flows/llm.ts";
import type { FlowInput, FlowResult } from "../../../src/flows/schema.ts";
import { Registry } from "../../../src/metrics/registry.ts";
import { FakeLlm } from "../../../src/simulator/fake-llm/fake-llm.ts";
import { flowContext, sampleInput, startAgentServer, type AgentServer } from "./support.ts";

let model: FakeLlm;
let toolServer: AgentServer;
beforeAll(() => {
  model = FakeLlm.start();
  toolServer = startAgentServer(() => Response.json({ status: "shipped" }));
});
afterAll(() => {
  model.stop();
  toolServer.stop();
});
afterEach(() => {
  model.reset();
  toolServer.seen.splice(0);
});

const ORDER_SCHEMA = { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] };
function setup(extra: Partial<FlowSettings> = {}) {
  const metrics = new Registry();
  const settings: FlowSettings = { kind: "llm", url: model.url, model: "gpt-test", builtin_tools: [...LLM_BUILTIN_TOOLS], ...extra };
  const flow = llmFlow("shop", settings, { metrics });
  return { run: (i: FlowInput = sampleInput()) => flow.run(i, flowContext()) as Promise<FlowResult>, metrics };
}
const history = (r: FlowResult) => r.context!.history as { role: string; content: string }[];

describe("llm flow: built-in tools", () => {
  test("the built-in tools are offered as functions with a JSON Schema of their arguments; none without builtin_tools", async () => {
    await setup({ builtin_tools: ["offer_quick_replies", "handover"] }).run();
    const offered = model.requests[0]!.body.tools!;
    expect(offered.map((t) => t.function.name)).toEqual(["offer_quick_replies", "handover"]);
    expect(offered[0]!.function.parameters).toMatchObject({
      type: "object",
      properties: { text: { type: "string" }, options: { type: "array", items: { type: "string" } } },
      required: ["text", "options"],
    });
    expect(offered[0]!.function.description).toContain("quick reply");
    model.reset();
    await setup({ builtin_tools: undefined }).run();
    expect(model.requests[0]!.body.tools).toBeUndefined();
  });

  test("quick replies from the model: one request, the choices' titles as payloads, the history tells what was offered", async () => {
    model.answer({ tool_calls: [{ name: "offer_quick_replies", arguments: { text: "Which size?", options: ["Small", "Large"] } }] });
    const { run, metrics } = setup();
    const result = await run(sampleInput({ text: "I want a coffee" }));
    expect(model.requests).toHaveLength(1);
    expect(result.outputs).toEqual([
      {
        text: "Which size?",
        quick_replies: [
          { title: "Small", payload: "Small" },
          { title: "Large", payload: "Large" },
        ],
      },
    ]);
    expect(history(result)).toEqual([
      { role: "user", content: "I want a coffee" },
      { role: "assistant", content: "Which size?\n[quick replies: Small | Large]" },
    ]);
    expect(metrics.counter("messenger_llm_tool_calls_total", "").get({ flow: "shop", tool: "offer_quick_replies", outcome: "ok" })).toBe(1);
  });

  test("buttons: with a url a web_url button, without a postback whose payload is the title", async () => {
    model.answer({
      tool_calls: [
        {
          name: "offer_buttons",
          arguments: { text: "How can I help?", buttons: [{ title: "Track order" }, { title: "Our shop", url: "https://shop.example.test" }] },
        },
      ],
    });
    const result = await setup().run();
    expect(result.outputs).toEqual([
      {
        text: "How can I help?",
        buttons: [
          { type: "postback", title: "Track order", payload: "Track order" },
          { type: "web_url", title: "Our shop", url: "https://shop.example.test" },
        ],
      },
    ]);
  });

  test("the model's text first, then cards and an image in the order called; quick replies move to the last message", async () => {
    model.answer({
      content: "Here are two jackets.\n\nBoth are in stock.",
      tool_calls: [
        { name: "offer_quick_replies", arguments: { text: "Like one?", options: ["Yes", "No"] } },
        {
          name: "send_cards",
          arguments: {
            cards: [
              { title: "Red jacket", subtitle: "€89", image_url: "https://cdn.example.test/red.jpg", buttons: [{ title: "Buy red" }] },
              { title: "Blue jacket", url: "https://shop.example.test/blue" },
            ],
          },
        },
        { name: "send_image", arguments: { url: "https://cdn.example.test/size-chart.png", text: "The sizes:" } },
      ],
    });
    const result = await setup({ message_max_chars: 100 }).run();
    expect(model.requests).toHaveLength(1);
    expect(result.outputs).toEqual([
      { text: "Here are two jackets.\n\nBoth are in stock." },
      { text: "Like one?" },
      {
        cards: [
          {
            title: "Red jacket",
            subtitle: "€89",
            image_url: "https://cdn.example.test/red.jpg",
            buttons: [{ type: "postback", title: "Buy red", payload: "Buy red" }],
          },
          { title: "Blue jacket", url: "https://shop.example.test/blue" },
        ],
      },
      { text: "The sizes:" },
      {
        image: "https://cdn.example.test/size-chart.png",
        quick_replies: [
          { title: "Yes", payload: "Yes" },
          { title: "No", payload: "No" },
        ],
      },
    ]);
  });

  test("a built-in call beside a tool of the operator: the tool's result goes back, the model answers once more, its text comes first", async () => {
    model.answer(
      {
        tool_calls: [
          { id: "c1", name: "order_status", arguments: { order_id: "A-1" } },
          { id: "c2", name: "offer_quick_replies", arguments: { text: "Anything else?", options: ["Yes", "No"] } },
        ],
      },
      { content: "Your order A-1 was shipped." },
    );
    const result = await setup({
      tools: [{ name: "order_status", description: "Order status", parameters: ORDER_SCHEMA, url: `${toolServer.url}/order` }],
    }).run();
    expect(model.requests).toHaveLength(2);
    expect(model.requests[1]!.body.messages.filter((m) => m.role === "tool")).toEqual([
      { role: "tool", tool_call_id: "c1", content: '{"status":"shipped"}' },
      { role: "tool", tool_call_id: "c2", content: '{"ok":true,"note":"shown to the user after your answer"}' },
    ]);
    expect(result.outputs!.map((o) => o.text)).toEqual(["Your order A-1 was shipped.", "Anything else?"]);
    expect(result.outputs![1]!.quick_replies).toHaveLength(2);
  });

  test("handover: the reason as metadata, the message before it, the model not asked again", async () => {
    model.answer({ tool_calls: [{ name: "handover", arguments: { reason: "wants a refund over 500 EUR", message: "A colleague takes over." } }] });
    const result = await setup().run(sampleInput({ text: "refund please" }));
    expect(model.requests).toHaveLength(1);
    expect(result.outputs).toEqual([{ text: "A colleague takes over." }]);
    expect(result.handover).toEqual({ metadata: "wants a refund over 500 EUR" });
    expect(result.end_session).toBeUndefined();
  });

  test("end_session: the result ends the session after the goodbye", async () => {
    model.answer({ content: "Glad I could help. Bye!", tool_calls: [{ name: "end_session", arguments: {} }] });
    const result = await setup().run();
    expect(result.outputs).toEqual([{ text: "Glad I could help. Bye!" }]);
    expect(result.end_session).toBe(true);
    expect(result.handover).toBeUndefined();
  });

  test("remember: facts about the person go to the contact, about the conversation to the context; the model is asked again and reads them next time", async () => {
    model.answer(
      {
        tool_calls: [
          { name: "remember", arguments: { fact: "Prefers oat milk" } },
          { name: "remember", arguments: { fact: "Ordering for the office", about: "conversation" } },
        ],
      },
      { content: "Noted!" },
    );
    const { run } = setup({ system_prompt: "You are a barista." });
    const first = await run(sampleInput({ contact: { first_name: "Ada", memories: ["Lives in Lyon"] } }));
    expect(model.requests).toHaveLength(2);
    expect(first.outputs).toEqual([{ text: "Noted!" }]);
    expect(first.contact).toEqual({ memories: ["Lives in Lyon", "Prefers oat milk"] });
    expect(first.context!.memory).toEqual(["Ordering for the office"]);

    model.reset();
    const second = await run(sampleInput({ contact: { memories: first.contact!.memories }, context: first.context! }));
    expect(model.requests[0]!.body.messages[0]).toEqual({
      role: "system",
      content:
        "You are a barista.\n\nWhat you remembered about this person earlier:\n- Lives in Lyon\n- Prefers oat milk\n\n" +
        "What you remembered in this conversation:\n- Ordering for the office",
    });
    // Nothing new remembered: the contact is not written, the memory stays in the context.
    expect(second.contact).toBeUndefined();
    expect(second.context!.memory).toEqual(["Ordering for the office"]);
  });

  test("remember without a contact profile keeps the fact for the conversation; a fact said twice is kept once; at most 20, the oldest go", async () => {
    const calls = Array.from({ length: 22 }, (_, i) => ({ name: "remember", arguments: { fact: `fact ${i}` } }));
    model.answer({ tool_calls: [...calls, { name: "remember", arguments: { fact: "fact 21" } }] }, { content: "ok" });
    const result = await setup().run(sampleInput({ contact_id: null }));
    expect(result.contact).toBeUndefined();
    expect(result.context!.memory).toEqual(Array.from({ length: 20 }, (_, i) => `fact ${i + 2}`));
    const results = model.requests[1]!.body.messages.filter((m) => m.role === "tool");
    expect(results[0]!.content).toBe('{"ok":true,"note":"remembered for this conversation only (no contact profile)"}');
  });

  test("arguments that do not fit the tool's schema are an error result; the model tries again", async () => {
    model.answer(
      { tool_calls: [{ name: "offer_quick_replies", arguments: { text: "Which size?" } }] },
      { tool_calls: [{ name: "send_image", arguments: "{not json" }] },
      { content: "Which size would you like: small or large?" },
    );
    const { run, metrics } = setup();
    const result = await run();
    expect(model.requests).toHaveLength(3);
    const firstResult = model.requests[1]!.body.messages.at(-1)!;
    expect(firstResult.role).toBe("tool");
    expect(String(firstResult.content)).toMatch(/^\{"error":"invalid arguments.*options/);
    expect(String(model.requests[2]!.body.messages.at(-1)!.content)).toContain("not JSON");
    expect(result.outputs).toEqual([{ text: "Which size would you like: small or large?" }]);
    expect(metrics.counter("messenger_llm_tool_calls_total", "").get({ flow: "shop", tool: "offer_quick_replies", outcome: "invalid_arguments" })).toBe(1);
  });

  test("a built-in tool that is not switched on is an unknown tool to the flow", async () => {
    model.answer({ tool_calls: [{ name: "handover", arguments: { reason: "x" } }] }, { content: "I cannot hand over." });
    const result = await setup({ builtin_tools: ["offer_quick_replies"] }).run();
    expect(result.handover).toBeUndefined();
    expect(String(model.requests[1]!.body.messages.at(-1)!.content)).toContain('there is no tool named \\"handover\\"');
  });

  test("a model without tool support: plain text works as before", async () => {
    model.answer({ content: "Just text." });
    const result = await setup({ builtin_tools: [] }).run();
    expect(model.requests[0]!.body.tools).toBeUndefined();
    expect(result.outputs).toEqual([{ text: "Just text." }]);
  });
});
