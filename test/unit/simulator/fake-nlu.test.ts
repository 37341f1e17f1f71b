/**
 * The fake NLU (src/simulator/fake-nlu/): its rules, its three shapes with their keys and error
 * bodies, and its scripted failures.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FakeNlu } from "../../../src/simulator/fake-nlu/fake-nlu.ts";
import { DEMO_ENTITIES, DEMO_INTENTS, understand } from "../../../src/simulator/fake-nlu/rules.ts";

let fake: FakeNlu;
beforeAll(() => {
  fake = FakeNlu.start({ token: "fake-token-0123456789" });
});
afterAll(() => fake.stop());

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${fake.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
const bearer = { authorization: "Bearer fake-token-0123456789" };

describe("the rules", () => {
  test("a whole-text match scores 0.98; a phrase in a longer text less, the more text around it", () => {
    expect(understand("Hello!", DEMO_INTENTS, []).score).toBe(0.98);
    expect(understand("hello there", DEMO_INTENTS, []).score).toBe(0.725);
    expect(understand("hello there my friend how are you", DEMO_INTENTS, []).score).toBeLessThan(0.6);
  });

  test("whole words only, any case, in several languages; the ranking lists every match", () => {
    expect(understand("this is high quality", DEMO_INTENTS, []).intent).toBeNull(); // "hi" inside "high" is not "hi"
    expect(understand("Wo ist meine Bestellung?", DEMO_INTENTS, []).intent).toBe("order_status");
    expect(understand("hi, cancel my order", DEMO_INTENTS, []).ranking.map((r) => r.intent)).toEqual(["cancel_order", "order_status", "greet"]);
  });

  test("entities by regular expression, with their offsets", () => {
    expect(understand("order 12345 for ada@example.com", [], DEMO_ENTITIES).entities).toEqual([
      { type: "order_id", value: "12345", start: 6, end: 11 },
      { type: "email", value: "ada@example.com", start: 16, end: 31 },
    ]);
  });
});

describe("the shapes", () => {
  test("/parse wants the Bearer token", async () => {
    expect((await post("/parse", { text: "hi" })).status).toBe(401);
    expect(await (await post("/parse", { text: "hi" }, bearer)).json()).toEqual({
      intent: "greet",
      score: 0.98,
      ranking: [{ intent: "greet", score: 0.98 }],
      entities: [],
    });
  });

  test("/model/parse wants ?token= and answers like Rasa, its errors too", async () => {
    const refused = await post("/model/parse", { text: "hi" }, bearer);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ status: "failure", reason: "NotAuthenticated", code: 401 });
    const ok = await post("/model/parse?token=fake-token-0123456789", { text: "thanks", message_id: "m1" });
    expect(await ok.json()).toEqual({
      text: "thanks",
      intent: { name: "thanks", confidence: 0.98 },
      entities: [],
      intent_ranking: [{ name: "thanks", confidence: 0.98 }],
    });
    const noText = await post("/model/parse?token=fake-token-0123456789", { message_id: "m1" });
    expect(noText.status).toBe(400);
    expect(await noText.json()).toMatchObject({ reason: "BadRequest" });
  });

  test("chat completions answer a completion whose content is the JSON asked for", async () => {
    const response = await post("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: "refund pls" }] }, bearer);
    const completion = (await response.json()) as { object: string; choices: { message: { content: string } }[] };
    expect(completion.object).toBe("chat.completion");
    expect(JSON.parse(completion.choices[0]!.message.content)).toEqual({ intent: "refund", score: 0.725, entities: [] });
  });

  test("an unknown route is a 404", async () => {
    expect((await post("/nothing", {})).status).toBe(404);
  });
});

describe("scripted failures", () => {
  test("a held answer is given by releaseHeld(); failures are taken in order, per shape", async () => {
    fake.failNext({ delayMs: Number.POSITIVE_INFINITY }, { shape: "http" });
    fake.failNext({ status: 502 });
    const rasa = await post("/model/parse?token=fake-token-0123456789", { text: "hi" });
    expect(rasa.status).toBe(502);
    const held = post("/parse", { text: "bye" }, bearer);
    await fake.nextRequest();
    fake.releaseHeld();
    expect(((await (await held).json()) as { intent: string }).intent).toBe("goodbye");
  });
});
