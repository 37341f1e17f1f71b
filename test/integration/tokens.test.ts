/**
 * Tokens per endpoint and flow, counted by the engine (FlowContext `usage`, src/conversations/usage.ts)
 * end to end: a flow reports usage twice in a turn; the sum is committed with the turn (a failed
 * turn's too), shown by `GET /api/analytics` and counted in `/metrics`; nothing is written with
 * `collect_analytics = false`.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Flow } from "../../src/flows/flow.ts";
import { KEY as ADMIN_KEY, WITH_KEYS, api } from "../helpers/admin.ts";
import { PSID } from "../helpers/config.ts";
import { messageTexts, rows, startConversation, userText, type Conversation } from "../helpers/conversation.ts";

const open: Conversation[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});
async function conversation(options: Parameters<typeof startConversation>[0]): Promise<Conversation> {
  const c = await startConversation({ ...WITH_KEYS, ...options });
  open.push(c);
  return c;
}
const today = () => new Date().toISOString().slice(0, 10);

/** An in-test flow that reports two model answers' tokens, then answers. */
const reportingFlow: Flow = {
  name: "agent",
  kind: "script",
  timeoutMs: 10_000,
  async run(input, ctx) {
    ctx.usage?.({ prompt: 100, completion: 20 });
    ctx.usage?.({ prompt: 150, completion: 35 });
    return { outputs: [{ text: `re: ${input.text}` }] };
  },
};

describe("tokens the flows report", () => {
  test("reported twice in a turn: summed, committed with the turn, in /api/analytics and /metrics", async () => {
    const c = await conversation({ flows: new Map([["agent", reportingFlow]]) });
    expect(await c.post([userText("one")])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID });
    const stored = await rows(c, "SELECT endpoint_id, flow, day, prompt_tokens, completion_tokens FROM analytics_tokens_daily");
    expect(stored.map((r) => Array.from(r as ArrayLike<unknown>))).toEqual([["support", "agent", today(), 250, 55]]);

    expect(await c.post([userText("two")])).toBe(200);
    expect(messageTexts(await c.graph.waitForSends(2, { recipientId: PSID }))).toEqual(["re: one", "re: two"]);
    await c.app.writes.drain();
    const analytics = await api(c, "GET", "/api/analytics?endpoint_id=support");
    expect(analytics.status).toBe(200);
    const day = analytics.body.days.find((d: { day: string }) => d.day === today());
    expect(day).toMatchObject({ endpoint_id: "support", inputs: 2, outputs: 2, tokens: { agent: { prompt_tokens: 500, completion_tokens: 110 } } });

    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metrics).toContain('messenger_llm_tokens_total{endpoint="support",flow="agent",kind="prompt"} 500');
    expect(metrics).toContain('messenger_llm_tokens_total{endpoint="support",flow="agent",kind="completion"} 110');
    // What still reads the analytics at each scrape.
    expect(metrics).toContain('messenger_analytics_today{endpoint="support",measure="inputs"} 2');

    // The OpenAPI document describes the tokens of a day.
    const doc = await api(c, "GET", "/api/openapi.json", { key: ADMIN_KEY });
    const answer = doc.body.paths["/api/analytics"].get.responses["200"].content["application/json"].schema;
    expect(answer.properties.days.items.required).toContain("tokens");
    expect(answer.properties.days.items.properties.tokens.additionalProperties.required).toEqual(["prompt_tokens", "completion_tokens"]);
  });

  test("a script flow module that reports usage and then fails: the failed turn's tokens are kept", async () => {
    const c = await conversation({
      files: {
        "flows/failing.ts":
          'export default async (input, ctx) => { ctx.usage({ prompt: 40, completion: 0 }); ctx.usage({ prompt: 2, completion: 9 }); throw new Error("the model\'s answer made no sense"); };',
      },
      flow: 'kind = "script"\nmodule = "flows/failing.ts"',
    });
    expect(await c.post([userText("hi")])).toBe(200);
    const deadline = Date.now() + 10_000;
    while ((await rows(c, "SELECT 1 FROM inbox WHERE status = 'done'")).length === 0 && Date.now() < deadline) await Bun.sleep(10);
    expect((await rows(c, "SELECT last_error FROM inbox"))[0]![0]).toContain("the model's answer made no sense");
    expect(
      (await rows(c, "SELECT prompt_tokens, completion_tokens FROM analytics_tokens_daily WHERE flow = 'agent'")).map((r) =>
        Array.from(r as ArrayLike<unknown>),
      ),
    ).toEqual([[42, 9]]);
    expect(c.app.metrics.render()).toContain('messenger_llm_tokens_total{endpoint="support",flow="agent",kind="completion"} 9');
    expect(c.sends(PSID)).toEqual([]);
  });

  test("collect_analytics = false: counted in /metrics, nothing written", async () => {
    const c = await conversation({
      flows: new Map([["agent", reportingFlow]]),
      endpointToml: "[endpoints.data_protection]\ncollect_analytics = false",
    });
    expect(await c.post([userText("one")])).toBe(200);
    await c.graph.waitForSends(1, { recipientId: PSID });
    expect(await rows(c, "SELECT * FROM analytics_tokens_daily")).toHaveLength(0);
    expect(await rows(c, "SELECT * FROM analytics_daily")).toHaveLength(0);
    expect((await api(c, "GET", "/api/analytics")).body.days).toEqual([]);
    expect(c.app.metrics.render()).toContain('messenger_llm_tokens_total{endpoint="support",flow="agent",kind="prompt"} 250');
  });
});
