/** The examples in examples/ work as documented. */
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { scriptFlow } from "../../src/flows/script.ts";
import { httpFlow } from "../../src/flows/http.ts";
import { validateFlowResult, type FlowInput } from "../../src/flows/schema.ts";
import { collectingLogger } from "../helpers/log.ts";
import { loadSettingsFile } from "../../src/config/load.ts";
import { loadFlows } from "../../src/flows/index.ts";
import { FakeLlm } from "../../src/simulator/fake-llm/fake-llm.ts";
import { startOrderTools } from "../../examples/shop-assistant/order-tools.ts";

const EXAMPLES = join(import.meta.dir, "..", "..", "examples");

function input(text: string, extra: Partial<FlowInput> = {}): FlowInput {
  return {
    endpoint_id: "support",
    page_id: "104857600012345",
    user_id: "6301234567890123",
    contact_id: null,
    session_id: "s_example",
    source: "user",
    text,
    data: {},
    context: {},
    contact: {},
    locale: "en",
    language: "en",
    nlu: null,
    handover: null,
    ...extra,
  };
}

const ctx = () => ({ signal: new AbortController().signal, log: collectingLogger().log });

describe("examples/flows/order-bot.ts", () => {
  test("walks through an order with valid results", async () => {
    const flow = await scriptFlow("orders", { kind: "script", module: join(EXAMPLES, "flows", "order-bot.ts") });
    const first = validateFlowResult(await flow.run(input("hello"), ctx()));
    expect(first.ok && first.result.outputs?.[0]?.buttons?.[0]).toMatchObject({ payload: "ORDER" });
    const second = validateFlowResult(await flow.run(input("ORDER", { data: { payload: "ORDER" } }), ctx()));
    expect(second.ok && second.result.context).toEqual({ step: "size" });
    const third = validateFlowResult(await flow.run(input("SIZE_L", { data: { payload: "SIZE_L" }, context: { step: "size" } }), ctx()));
    expect(third.ok && third.result.outputs?.[0]?.text).toBe("One large coffee, coming up.");
  });
});

describe("examples/http-agent.ts", () => {
  const proc = Bun.spawn([process.execPath, join(EXAMPLES, "http-agent.ts")], { env: { ...process.env, PORT: "0" }, stdout: "pipe" });
  afterAll(() => proc.kill());

  test("answers the flow protocol", async () => {
    const reader = proc.stdout.getReader();
    const { value } = await reader.read();
    const url = /listening on (\S+)/.exec(new TextDecoder().decode(value))![1]!;
    const flow = httpFlow("support", { kind: "http", url });
    const result = validateFlowResult(await flow.run(input("hi", { context: { turns: 2 } }), ctx()));
    expect(result).toEqual({
      ok: true,
      result: { outputs: [{ text: 'Turn 3: you wrote "hi".', quick_replies: [{ title: "Again", payload: "AGAIN" }] }], context: { turns: 3 } },
    });
    const bye = validateFlowResult(await flow.run(input("Bye now", { context: { turns: 3 } }), ctx()));
    expect(bye).toEqual({ ok: true, result: { outputs: [{ text: "Bye! Write again any time." }], end_session: true } });
  });
});

describe("examples/shop-assistant", () => {
  const tools = startOrderTools({ port: 0, key: "example-tool-key-123" });
  const model = FakeLlm.start({ token: "sk-example-model-key" });
  afterAll(() => {
    tools.stop(true);
    model.stop();
  });
  const env = {
    LLM_URL: model.url,
    LLM_MODEL: "gpt-test",
    LLM_API_KEY: "sk-example-model-key",
    SHOP_TOOLS_URL: `http://127.0.0.1:${tools.port}`,
    SHOP_TOOL_KEY: "example-tool-key-123",
  };

  test("its settings load; the model looks an order up with the shop's tool, then hands over when asked", async () => {
    const config = loadSettingsFile(join(EXAMPLES, "shop-assistant", "settings.toml"), env);
    const flow = (await loadFlows(config)).get("shop")!;
    model.answer({ tool_calls: [{ name: "order_status", arguments: { order_id: "a-1001" } }] });
    model.respond = (r) => {
      const result = JSON.parse(String(r.body.messages.at(-1)!.content));
      return { content: result.found ? `Order ${result.order_id} is ${result.status} with ${result.carrier}.` : result.message };
    };
    const contact = { first_name: "Amelie", email: "amelie@example.com" };
    const looked = validateFlowResult(await flow.run(input("Where is my order a-1001?", { contact }), ctx()));
    expect(looked.ok && looked.result.outputs).toEqual([{ text: "Order A-1001 is shipped with DHL." }]);
    expect(String(model.requests[0]!.body.messages[0]!.content)).toStartWith(
      "You are Robin, the assistant of Example Shop (outdoor clothing). You are talking with Amelie.",
    );
    expect(model.requests[0]!.body.tools!.map((t) => t.function.name)).toContain("handover");

    // Someone else's order is not shown.
    model.answer({ tool_calls: [{ name: "order_status", arguments: { order_id: "A-1003" } }] });
    const other = validateFlowResult(await flow.run(input("And A-1003?", { contact }), ctx()));
    expect(other.ok && other.result.outputs).toEqual([{ text: "Order A-1003 is not one of this customer's orders." }]);

    model.answer({ tool_calls: [{ name: "handover", arguments: { reason: "wants a refund", message: "I am passing you to the team." } }] });
    const handed = validateFlowResult(await flow.run(input("I want a refund", { contact }), ctx()));
    expect(handed.ok && handed.result).toMatchObject({ outputs: [{ text: "I am passing you to the team." }], handover: { metadata: "wants a refund" } });
  });
});
