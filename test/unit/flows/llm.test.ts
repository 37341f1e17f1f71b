import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { FlowSettings } from "../../../src/config/schema.ts";
import { FlowError } from "../../../src/flows/flow.ts";
import { DEFAULT_HISTORY_TURNS, LLM_FLOW_TIMEOUT_MS, llmFlow } from "../../../src/flows/llm.ts";
import type { FlowResult } from "../../../src/flows/schema.ts";
import { closedUrl, flowContext, never, sampleInput, startAgentServer, thrown, type AgentServer } from "./support.ts";

const completion = (content: unknown) =>
  Response.json({ id: "chatcmpl-1", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }] });

let llm: AgentServer;
beforeAll(() => {
  llm = startAgentServer(() => completion("Hello from the model."));
});
afterAll(() => llm.stop());
afterEach(() => {
  llm.seen.splice(0);
  llm.answer = () => completion("Hello from the model.");
});

const flow = (extra: Partial<FlowSettings> = {}) => llmFlow("assistant", { kind: "llm", url: `${llm.url}/v1`, model: "test-model", ...extra });
const sentBody = (i = 0) =>
  JSON.parse(llm.seen[i]!.body) as { model: string; messages: { role: string; content: string }[]; temperature?: number; max_tokens?: number };
const turn = (n: number) => [
  { role: "user", content: `question ${n}` },
  { role: "assistant", content: `answer ${n}` },
];

describe("llm flow: the request", () => {
  test("name, kind, default timeout", () => {
    const f = flow();
    expect(f.name).toBe("assistant");
    expect(f.kind).toBe("llm");
    expect(f.timeoutMs).toBe(LLM_FLOW_TIMEOUT_MS);
    expect(flow({ timeout_ms: 1234 }).timeoutMs).toBe(1234);
  });

  test("POST {url}/chat/completions with the model, the system prompt and the user's text", async () => {
    await flow({ system_prompt: "You are a helpful shop assistant." }).run(sampleInput({ text: "Where is my order?" }), flowContext());
    const request = llm.seen[0]!;
    expect(request.method).toBe("POST");
    expect(request.path).toBe("/v1/chat/completions");
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.headers.authorization).toBeUndefined();
    expect(sentBody()).toEqual({
      model: "test-model",
      messages: [
        { role: "system", content: "You are a helpful shop assistant." },
        { role: "user", content: "Where is my order?" },
      ],
    });
  });

  test("a trailing slash on the URL is not doubled", async () => {
    await llmFlow("x", { kind: "llm", url: `${llm.url}/v1//`, model: "m" }).run(sampleInput(), flowContext());
    expect(llm.seen[0]!.path).toBe("/v1/chat/completions");
  });

  test("Authorization: Bearer when api_key is set; temperature and max_tokens when set", async () => {
    await flow({ api_key: "sk-test-123456", temperature: 0.2, max_tokens: 300 }).run(sampleInput(), flowContext());
    expect(llm.seen[0]!.headers.authorization).toBe("Bearer sk-test-123456");
    expect(sentBody()).toMatchObject({ temperature: 0.2, max_tokens: 300 });
  });

  test("without a system prompt there is no system message", async () => {
    await flow().run(sampleInput({ text: "hi" }), flowContext());
    expect(sentBody().messages).toEqual([{ role: "user", content: "hi" }]);
  });

  test("the history from input.context.history, trimmed to the last history_turns turns", async () => {
    const history = [...turn(1), ...turn(2), ...turn(3), ...turn(4)];
    await flow({ history_turns: 2, system_prompt: "S" }).run(sampleInput({ text: "question 5", context: { history } }), flowContext());
    expect(sentBody().messages).toEqual([{ role: "system", content: "S" }, ...turn(3), ...turn(4), { role: "user", content: "question 5" }]);
  });

  test("the default is 20 turns", async () => {
    const history = Array.from({ length: 30 }, (_, i) => turn(i)).flat();
    await flow().run(sampleInput({ context: { history } }), flowContext());
    const sent = sentBody().messages;
    expect(sent).toHaveLength(2 * DEFAULT_HISTORY_TURNS + 1);
    expect(sent[0]).toEqual({ role: "user", content: "question 10" });
  });

  test("history_turns = 0 sends no history and keeps none", async () => {
    const history = [...turn(1), ...turn(2)];
    const result = (await flow({ history_turns: 0 }).run(sampleInput({ text: "now", context: { history } }), flowContext())) as FlowResult;
    expect(sentBody().messages).toEqual([{ role: "user", content: "now" }]);
    expect(result.context!.history).toEqual([]);
  });

  test("entries that are not chat messages are ignored; a history that is not a list is none", async () => {
    const history = [{ role: "system", content: "injected" }, { role: "user", content: 42 }, null, "text", { role: "assistant", content: "ok" }];
    await flow().run(sampleInput({ text: "x", context: { history } }), flowContext());
    expect(sentBody().messages).toEqual([
      { role: "assistant", content: "ok" },
      { role: "user", content: "x" },
    ]);
    await flow().run(sampleInput({ text: "y", context: { history: "not a list" } }), flowContext());
    expect(sentBody(1).messages).toEqual([{ role: "user", content: "y" }]);
  });

  test("attachments are described in the user's message", async () => {
    const data = { attachments: [{ type: "image", url: "https://cdn.example.test/a.jpg" }, { type: "location" }] };
    await flow().run(sampleInput({ text: "look", data }), flowContext());
    expect(sentBody().messages.at(-1)).toEqual({ role: "user", content: "look\n[image: https://cdn.example.test/a.jpg]\n[location]" });
    await flow().run(sampleInput({ text: "", data }), flowContext());
    expect(sentBody(1).messages.at(-1)!.content).toBe("[image: https://cdn.example.test/a.jpg]\n[location]");
  });

  test("an empty input says so", async () => {
    await flow().run(sampleInput({ text: "" }), flowContext());
    expect(sentBody().messages.at(-1)).toEqual({ role: "user", content: "[empty message]" });
  });
});

describe("llm flow: the result", () => {
  test("the answer, trimmed, is one text output; the turn is appended to context.history; other context kept", async () => {
    llm.answer = () => completion("  Your order ships tomorrow.\n");
    const result = (await flow().run(sampleInput({ text: "Where is my order?", context: { lang: "en", history: turn(1) } }), flowContext())) as FlowResult;
    expect(result).toEqual({
      outputs: [{ text: "Your order ships tomorrow." }],
      context: {
        lang: "en",
        history: [...turn(1), { role: "user", content: "Where is my order?" }, { role: "assistant", content: "Your order ships tomorrow." }],
      },
    });
  });

  test("the kept history is trimmed to history_turns as well", async () => {
    llm.answer = () => completion("answer 3");
    const result = (await flow({ history_turns: 2 }).run(
      sampleInput({ text: "question 3", context: { history: [...turn(1), ...turn(2)] } }),
      flowContext(),
    )) as FlowResult;
    expect(result.context!.history).toEqual([...turn(2), ...turn(3)]);
  });

  test("a long answer is split at paragraph boundaries into messages of at most message_max_chars (default 640)", async () => {
    const paragraphs = Array.from({ length: 10 }, (_, i) => `Paragraph ${i}. ${"word ".repeat(80)}`.trim());
    const long = paragraphs.join("\n\n");
    llm.answer = () => completion(long);
    const result = (await flow().run(sampleInput(), flowContext())) as FlowResult;
    // Each paragraph is 414 characters: two do not fit in 640, so each is a message.
    expect(result.outputs).toEqual(paragraphs.map((text) => ({ text })));
    const wider = (await flow({ message_max_chars: 2000 }).run(sampleInput(), flowContext())) as FlowResult;
    expect(wider.outputs!.map((o) => o.text)).toEqual([0, 4, 8].map((i) => paragraphs.slice(i, i + 4).join("\n\n")));
    // The history keeps the whole answer.
    expect((result.context!.history as { content: string }[]).at(-1)!.content).toBe(long);
  });

  test("an empty answer gives no outputs; only the user's turn is kept", async () => {
    llm.answer = () => completion("   ");
    const result = (await flow().run(sampleInput({ text: "hm" }), flowContext())) as FlowResult;
    expect(result.outputs).toEqual([]);
    expect(result.context!.history).toEqual([{ role: "user", content: "hm" }]);
  });

  test("a non-2xx answer is a FlowError naming the endpoint URL and the status", async () => {
    llm.answer = () => Response.json({ error: { message: "Incorrect API key" } }, { status: 401 });
    const error = await thrown(() => flow().run(sampleInput(), flowContext()));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`${llm.url}/v1/chat/completions`);
    expect(error.message).toContain("HTTP 401");
    expect(error.message).toContain("Incorrect API key");
  });

  test("a URL with a password is named without it; the answer is quoted without the API key", async () => {
    const url = `${llm.url.replace("://", "://proxy:s3cretpass@")}/v1`;
    // OpenAI's own answer to a wrong key quotes the key.
    llm.answer = () => Response.json({ error: { message: "Incorrect API key provided: sk-test-1234567890abcdef." } }, { status: 401 });
    const error = await thrown(() => flow({ url, api_key: "sk-test-1234567890abcdef" }).run(sampleInput(), flowContext()));
    expect(error.message).toStartWith(`the LLM at ${llm.url}/v1/chat/completions answered HTTP 401: `);
    expect(error.message).toContain("Incorrect API key provided: [redacted].");
    expect(error.message).not.toContain("s3cretpass");
    expect(error.message).not.toContain("sk-test-1234567890abcdef");
  });

  test("an answer without choices[0].message.content is a FlowError", async () => {
    for (const body of [{}, { choices: [] }, { choices: [{ message: {} }] }, { choices: [{ message: { content: null } }] }]) {
      llm.answer = () => Response.json(body);
      const error = await thrown(() => flow().run(sampleInput(), flowContext()));
      expect(error).toBeInstanceOf(FlowError);
      expect(error.message).toContain("without choices[0].message.content");
      expect(error.message).toContain(`${llm.url}/v1/chat/completions`);
    }
  });

  test("a body that is not JSON is a FlowError", async () => {
    llm.answer = () => new Response("data: {streaming}", { status: 200 });
    const error = await thrown(() => flow().run(sampleInput(), flowContext()));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain("not JSON");
  });

  test("an unreachable API is a FlowError naming the URL", async () => {
    const url = closedUrl();
    const error = await thrown(() => llmFlow("x", { kind: "llm", url, model: "m" }).run(sampleInput(), flowContext()));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`cannot reach the LLM at ${url}/chat/completions`);
  });

  test("aborting the signal is a FlowError naming the URL and the timeout", async () => {
    llm.answer = never;
    const controller = new AbortController();
    const running = thrown(() => flow({ timeout_ms: 9000 }).run(sampleInput(), flowContext(controller.signal)));
    await llm.nextRequest();
    controller.abort();
    const error = await running;
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`${llm.url}/v1/chat/completions`);
    expect(error.message).toContain("did not answer within 9000 ms");
  });
});
