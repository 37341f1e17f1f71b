/** The examples in examples/ work as documented. */
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { scriptFlow } from "../../src/flows/script.ts";
import { httpFlow } from "../../src/flows/http.ts";
import { validateFlowResult, type FlowInput } from "../../src/flows/schema.ts";
import { collectingLogger } from "../helpers/log.ts";

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
