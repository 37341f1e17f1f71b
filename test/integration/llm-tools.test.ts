/**
 * The llm flow with a tool, end to end: a signed webhook → the flow asks the fake model
 * (src/simulator/fake-llm/), which calls the operator's tool → the tool's answer goes back to the
 * model → the model's text reaches the Send API of the fake Graph API.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { PAGE_ID, PSID } from "../helpers/config.ts";
import { messageTexts, startConversation, userText, type Conversation } from "../helpers/conversation.ts";
import { FakeLlm } from "../../src/simulator/fake-llm/fake-llm.ts";

const model = FakeLlm.start({ token: "sk-model-key-123456" });
const toolCalls: { path: string; authorization: string | null; body: { arguments: unknown; user: Record<string, unknown> } }[] = [];
const tools = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: async (request) => {
    const body = (await request.json()) as { arguments: { order_id: string }; user: Record<string, unknown> };
    toolCalls.push({ path: new URL(request.url).pathname, authorization: request.headers.get("authorization"), body });
    return Response.json({ order_id: body.arguments.order_id, status: "shipped", carrier: "DHL" });
  },
});
const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});
afterAll(() => {
  model.stop();
  tools.stop(true);
});

const FLOW = `kind = "llm"
url = "${model.url}"
model = "gpt-test"
api_key = "sk-model-key-123456"
system_prompt = "You are the assistant of Example Shop."

[[flows.agent.tools]]
name = "order_status"
description = "The status of an order, by its number"
parameters = { type = "object", properties = { order_id = { type = "string" } }, required = ["order_id"] }
url = "http://127.0.0.1:${tools.port}/order-status"
api_key = "shop-tool-key-abcdef"
`;

test("a tool round trip: the tool's answer reaches the model, the model's answer reaches the user", async () => {
  model.respond = (r) => {
    const result = r.body.messages.findLast((m) => m.role === "tool");
    if (!result) return { tool_calls: [{ name: "order_status", arguments: { order_id: "A-1001" } }] };
    const { status, carrier } = JSON.parse(String(result.content));
    return { content: `Your order A-1001 is ${status} with ${carrier}.` };
  };
  const c = await startConversation({ flow: FLOW });
  open.push(c);
  expect(await c.post([userText("Where is my order A-1001?")])).toBe(200);
  const sends = await c.graph.waitForSends(1, { recipientId: PSID });
  expect(messageTexts(sends)).toEqual(["Your order A-1001 is shipped with DHL."]);

  expect(toolCalls).toHaveLength(1);
  expect(toolCalls[0]!.path).toBe("/order-status");
  expect(toolCalls[0]!.authorization).toBe("Bearer shop-tool-key-abcdef");
  expect(toolCalls[0]!.body.arguments).toEqual({ order_id: "A-1001" });
  expect(toolCalls[0]!.body.user).toMatchObject({ id: PSID, page_id: PAGE_ID, endpoint_id: "support" });
  expect(typeof toolCalls[0]!.body.user.session_id).toBe("string");

  expect(model.requests).toHaveLength(2);
  expect(model.requests[0]!.body.tools?.[0]?.function.name).toBe("order_status");
  expect(model.requests[1]!.body.messages.at(-1)).toMatchObject({ role: "tool", content: '{"order_id":"A-1001","status":"shipped","carrier":"DHL"}' });

  const metrics = c.app.metrics.render();
  expect(metrics).toContain('messenger_llm_tool_calls_total{flow="agent",outcome="ok",tool="order_status"} 1');
  expect(metrics).toMatch(/messenger_llm_tokens_total\{endpoint="support",flow="agent",kind="prompt"\} [1-9]/);
  // The tool's key never reaches a log line.
  expect(c.logs.lines.join("\n")).not.toContain("shop-tool-key-abcdef");
});
