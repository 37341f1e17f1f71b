/**
 * The `llm` connector (src/nlu/llm.ts) against an OpenAI-compatible chat completions stand-in
 * (src/simulator/fake-nlu/): the request (the declared intents and entities, response_format with
 * a strict JSON schema), the answer checked and mapped, and the step down to json_object and to
 * the instructions alone when a server refuses response_format.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { answerSchema, instructions } from "../../../src/nlu/llm.ts";
import type { NluResult } from "../../../src/nlu/result.ts";
import { FakeNlu, type FakeNluOptions } from "../../../src/simulator/fake-nlu/fake-nlu.ts";
import { nluSetup, textInput, type NluSetup } from "./support.ts";

const KEY = "sk-test-nlu-0123456789";
const open: { fake: FakeNlu; s: NluSetup }[] = [];
afterEach(async () => {
  for (const { fake, s } of open.splice(0)) {
    await s.stop();
    fake.stop();
  }
});

const INTENTS = `intents = ["greet", { name = "order_status", description = "asks where an order is" }, "refund"]`;

async function llm(options: FakeNluOptions = {}, more = `${INTENTS}\nentities = ["order_id", { name = "email", description = "an e-mail address" }]`) {
  const fake = FakeNlu.start({ token: KEY, ...options });
  const s = await nluSetup(`kind = "llm"\nurl = "${fake.url}/v1/"\napi_key = "${KEY}"\nmodel = "small-model"\nretries = 0\n${more}`);
  open.push({ fake, s });
  return { fake, s };
}

async function understood(s: NluSetup, text: string) {
  const input = textInput(text);
  await s.run(input);
  return input;
}

interface SentBody {
  model: string;
  temperature: number;
  messages: { role: string; content: string }[];
  response_format?: { type: string; json_schema?: { name: string; strict: boolean; schema: Record<string, any> } };
}
const sent = (fake: FakeNlu, i = 0) => fake.requests[i]!.body as SentBody;

describe("the request", () => {
  test("POST {url}/chat/completions: the model, temperature 0, the instructions, the text, a strict JSON schema", async () => {
    const { fake, s } = await llm();
    await understood(s, "where is my order 1234567?");
    const request = fake.requests[0]!;
    expect(request.path).toBe("/v1/chat/completions");
    expect(request.headers.authorization).toBe(`Bearer ${KEY}`);
    const body = sent(fake);
    expect(body.model).toBe("small-model");
    expect(body.temperature).toBe(0);
    expect(body.messages).toEqual([
      { role: "system", content: expect.any(String) },
      { role: "user", content: "where is my order 1234567?" },
    ]);
    const system = body.messages[0]!.content;
    expect(system).toContain("(language: en)");
    expect(system).toContain("Intents:\n- greet\n- order_status: asks where an order is\n- refund");
    expect(system).toContain("Entity types:\n- order_id\n- email: an e-mail address");
    expect(body.response_format).toEqual({
      type: "json_schema",
      json_schema: {
        name: "nlu_result",
        strict: true,
        schema: answerSchema([{ name: "greet" }, { name: "order_status" }, { name: "refund" }], [{ name: "order_id" }, { name: "email" }]),
      },
    });
    const schema = body.response_format!.json_schema!.schema;
    expect(schema.properties.intent).toEqual({ anyOf: [{ type: "string", enum: ["greet", "order_status", "refund"] }, { type: "null" }] });
    expect(schema.properties.entities.items.properties.type).toEqual({ type: "string", enum: ["order_id", "email"] });
    expect(schema.required).toEqual(["intent", "score", "entities"]);
    expect(schema.additionalProperties).toBe(false);
  });

  test("without declared entities the model is told to answer none", () => {
    expect(instructions([{ name: "greet" }], [], "de")).toEndWith('There are no entity types: answer "entities": [].');
    expect(answerSchema([{ name: "greet" }], []).properties).toMatchObject({ entities: { items: { properties: { type: { type: "string" } } } } });
  });
});

describe("the answer", () => {
  test("mapped into the result; entities found in the text get start and end; raw is the model's JSON", async () => {
    const { s } = await llm();
    const input = await understood(s, "Where is my order 1234567?");
    expect(input.nlu).toEqual({
      intent: "order_status",
      score: 0.86,
      entities: [{ type: "order_id", value: "1234567", start: 18, end: 25 }],
      raw: { intent: "order_status", score: 0.86, entities: [{ type: "order_id", value: "1234567" }] },
    } satisfies NluResult);
  });

  test("null: none of the intents fits", async () => {
    const { s } = await llm();
    expect((await understood(s, "bye")).nlu).toMatchObject({ intent: null, score: 0, entities: [] });
  });

  test("an intent that is not declared is a failed call", async () => {
    const { fake, s } = await llm();
    fake.failNext({ content: JSON.stringify({ intent: "cancel_order", score: 0.9, entities: [] }) });
    const input = await understood(s, "cancel it");
    expect(input.nlu).toBeNull();
    expect(input.nlu_error).toBe('the model answered an intent that is not declared: "cancel_order"');
    expect(s.requests("invalid_answer")).toBe(1);
  });

  test("not JSON, or not the shape, is a failed call", async () => {
    const { fake, s } = await llm();
    fake.failNext({ content: "I think the user wants a refund." });
    expect((await understood(s, "money back")).nlu_error).toBe(`the model's answer is not JSON: "I think the user wants a refund."`);
    fake.failNext({ content: JSON.stringify({ intent: "refund", score: "very" }) });
    expect((await understood(s, "money back")).nlu_error).toBe("the model's answer is not a result: /score: Expected number");
    fake.failNext({ answer: { id: "x", choices: [] } });
    expect((await understood(s, "money back")).nlu_error).toStartWith(
      `the LLM at ${fake.url}/v1/chat/completions answered without choices[0].message: /choices`,
    );
  });

  test("JSON in a code fence or after a sentence is read", async () => {
    const { fake, s } = await llm();
    fake.failNext({ content: '```json\n{"intent": "refund", "score": 0.7, "entities": []}\n```' });
    expect((await understood(s, "money back")).nlu).toMatchObject({ intent: "refund", score: 0.7 });
    fake.failNext({ content: 'Sure! {"intent": "greet", "entities": []}' });
    expect((await understood(s, "hey")).nlu).toMatchObject({ intent: "greet", score: 1 });
  });

  test("a refusal is a failed call, quoting it", async () => {
    const { fake, s } = await llm();
    fake.failNext({ answer: { choices: [{ index: 0, message: { role: "assistant", content: null, refusal: "I can't help with that." } }] } });
    expect((await understood(s, "hey")).nlu_error).toBe(`the LLM at ${fake.url}/v1/chat/completions answered without content: I can't help with that.`);
  });

  test("entities of types not declared are dropped; a value not in the text has no offsets", async () => {
    const { fake, s } = await llm();
    fake.failNext({
      content: JSON.stringify({
        intent: "refund",
        score: 0.8,
        entities: [
          { type: "email", value: "ADA@example.com" },
          { type: "product", value: "shoes" },
          { type: "order_id", value: 42 },
        ],
      }),
    });
    const input = await understood(s, "refund to ada@example.com please");
    expect((input.nlu as NluResult).entities).toEqual([
      { type: "email", value: "ADA@example.com", start: 10, end: 25 },
      { type: "order_id", value: 42 },
    ]);
  });

  test("a wrong key: the API's 401 is quoted, the key is not", async () => {
    const fake = FakeNlu.start({ token: "another-key-0123456789" });
    const s = await nluSetup(`kind = "llm"\nurl = "${fake.url}/v1"\napi_key = "${KEY}"\nmodel = "m"\n${INTENTS}`);
    open.push({ fake, s });
    const input = await understood(s, "hello");
    expect(input.nlu_error).toStartWith(`the LLM at ${fake.url}/v1/chat/completions answered HTTP 401: {"error":{"message":"Incorrect API key provided."`);
    expect(fake.requests).toHaveLength(1); // a 4xx is not tried again
    expect(s.logs.lines.join("\n")).not.toContain(KEY);
  });
});

describe("servers without response_format", () => {
  test("json_schema refused: asked again at once with json_object, and from then on", async () => {
    const { fake, s } = await llm({ refuse: ["json_schema"] });
    expect((await understood(s, "hello")).nlu).toMatchObject({ intent: "greet" });
    expect(fake.requests.map((r) => (r.body as SentBody).response_format?.type)).toEqual(["json_schema", "json_object"]);
    expect(s.logs.records().some((r) => r.msg.endsWith("refused response_format json_schema; asking with json_object from now on"))).toBe(true);
    await understood(s, "thanks");
    expect(fake.requests.map((r) => (r.body as SentBody).response_format?.type)).toEqual(["json_schema", "json_object", "json_object"]);
    expect(s.metrics.counter("messenger_nlu_retries_total", "").get({ endpoint: "support" })).toBe(0); // not a retry
  });

  test("both refused: the instructions alone", async () => {
    const { fake, s } = await llm({ refuse: ["json_schema", "json_object"] });
    expect((await understood(s, "refund")).nlu).toMatchObject({ intent: "refund" });
    expect(fake.requests.map((r) => (r.body as SentBody).response_format?.type ?? "none")).toEqual(["json_schema", "json_object", "none"]);
  });

  test("a 400 about something else is a failed call, not a step down", async () => {
    const { fake, s } = await llm();
    fake.failNext({
      status: 400,
      body: { error: { message: "The model `small-model` does not exist", type: "invalid_request_error", param: "model", code: "model_not_found" } },
    });
    const input = await understood(s, "hello");
    expect(input.nlu_error).toContain("answered HTTP 400");
    expect(fake.requests).toHaveLength(1);
    await understood(s, "hello");
    expect(sent(fake, 1).response_format?.type).toBe("json_schema");
  });
});
