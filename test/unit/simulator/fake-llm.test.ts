/** The fake chat completions API (src/simulator/fake-llm/fake-llm.ts): the shapes it answers and the failures it can script. */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { FakeLlm } from "../../../src/simulator/fake-llm/fake-llm.ts";

const fake = FakeLlm.start({ token: "sk-fake-123456" });
afterAll(() => fake.stop());
afterEach(() => fake.reset());

const TOOLS = [{ type: "function", function: { name: "order_status", description: "d", parameters: { type: "object" } } }];
const post = (body: unknown, options: { path?: string; token?: string; signal?: AbortSignal } = {}) =>
  fetch(`${fake.url.replace(/\/v1$/, "")}${options.path ?? "/v1/chat/completions"}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${options.token ?? "sk-fake-123456"}` },
    body: JSON.stringify(body),
    signal: options.signal,
  });
const user = (content: string) => ({ model: "m", messages: [{ role: "user", content }], tools: TOOLS });

describe("fake llm", () => {
  test("a text answer by default, at /v1/chat/completions and /chat/completions, with usage; requests recorded", async () => {
    for (const path of ["/v1/chat/completions", "/chat/completions"]) {
      const answer = (await (await post(user("hi there"), { path })).json()) as any;
      expect(answer.object).toBe("chat.completion");
      expect(answer.choices[0]).toMatchObject({ message: { role: "assistant", content: "You said: hi there" }, finish_reason: "stop" });
      expect(answer.usage.prompt_tokens).toBeGreaterThan(0);
      expect(answer.usage.total_tokens).toBe(answer.usage.prompt_tokens + answer.usage.completion_tokens);
    }
    expect(fake.requests.map((r) => r.path)).toEqual(["/v1/chat/completions", "/chat/completions"]);
    expect(fake.requests[0]!.body.tools).toEqual(TOOLS);
  });

  test("scripted tool calls: arguments as a JSON string, finish_reason tool_calls; then the queue, then respond", async () => {
    fake.answer({ tool_calls: [{ id: "call_1", name: "order_status", arguments: { order_id: "7" } }], usage: { prompt_tokens: 11, completion_tokens: 3 } });
    fake.respond = () => ({ content: "from respond" });
    const first = (await (await post(user("where?"))).json()) as any;
    expect(first.choices[0].finish_reason).toBe("tool_calls");
    expect(first.choices[0].message.tool_calls).toEqual([
      { id: "call_1", type: "function", function: { name: "order_status", arguments: '{"order_id":"7"}' } },
    ]);
    expect(first.usage).toEqual({ prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 });
    const second = (await (await post(user("again"))).json()) as any;
    expect(second.choices[0].message.content).toBe("from respond");
  });

  test("OpenAI's 400 for tool calls without their results, and for a tool result without a call", async () => {
    const call = { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "order_status", arguments: "{}" } }] };
    const missing = await post({ model: "m", messages: [{ role: "user", content: "x" }, call, { role: "user", content: "y" }] });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as any).error.message).toContain("did not have response messages: c1");
    const stray = await post({
      model: "m",
      messages: [
        { role: "user", content: "x" },
        { role: "tool", tool_call_id: "c9", content: "{}" },
      ],
    });
    expect(stray.status).toBe(400);
    const fine = await post({ model: "m", messages: [{ role: "user", content: "x" }, call, { role: "tool", tool_call_id: "c1", content: "{}" }] });
    expect(fine.status).toBe(200);
  });

  test("429 with Retry-After, 5xx with OpenAI's error bodies; 401 without the key; 404 elsewhere", async () => {
    fake.answer({ status: 429, retryAfter: 7 }, { status: 503 });
    const limited = await post(user("a"));
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("7");
    expect(((await limited.json()) as any).error.code).toBe("rate_limit_exceeded");
    const down = await post(user("b"));
    expect(down.status).toBe(503);
    expect(((await down.json()) as any).error.type).toBe("server_error");
    expect((await post(user("c"), { token: "wrong" })).status).toBe(401);
    expect((await post(user("d"), { path: "/v1/completions" })).status).toBe(404);
  });

  test("a hung answer holds until the client gives up", async () => {
    fake.answer({ hang: true });
    const client = new AbortController();
    const arrived = fake.nextRequest();
    const pending = post(user("wait"), { signal: client.signal }).catch((error) => error as Error);
    await arrived;
    client.abort();
    expect(((await pending) as Error).name).toBe("AbortError");
    // The next request is answered normally.
    expect((await post(user("next"))).status).toBe(200);
  });

  test("a held answer comes once its promise resolves (a slow model); a client that gives up first gets nothing", async () => {
    let answerNow = () => {};
    const after = new Promise<void>((resolve) => (answerNow = resolve));
    fake.answer({ after, answer: { content: "at last", usage: { prompt_tokens: 5, completion_tokens: 2 } } });
    let answered = false;
    const arrived = fake.nextRequest();
    const pending = post(user("slow")).then(async (r) => {
      answered = true;
      return (await r.json()) as any;
    });
    await arrived;
    await Bun.sleep(50);
    expect(answered).toBe(false);
    answerNow();
    const body = await pending;
    expect(body.choices[0].message.content).toBe("at last");
    expect(body.usage).toEqual({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });

    fake.answer({ after: new Promise(() => {}), answer: { content: "never" } });
    const client = new AbortController();
    const arrivedAgain = fake.nextRequest();
    const given = post(user("wait"), { signal: client.signal }).catch((error) => error as Error);
    await arrivedAgain;
    client.abort();
    expect(((await given) as Error).name).toBe("AbortError");
    expect((await post(user("next"))).status).toBe(200);
  });
});
