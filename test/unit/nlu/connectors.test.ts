/**
 * The `http` and `rasa` connectors against their request and answer shapes (src/nlu/http.ts,
 * rasa.ts): what is sent, how the answer maps into `input.nlu`, what is refused as invalid.
 */
import { describe, expect, test } from "bun:test";
import type { NluResult } from "../../../src/nlu/result.ts";
import { rasaParseUrl } from "../../../src/nlu/rasa.ts";
import { PSID } from "../../helpers/config.ts";
import { nluSetup, textInput, type NluSetup, useFakeNlu } from "./support.ts";

const TOKEN = "connector-key-0123456789";
const nlu = useFakeNlu(TOKEN);

async function setup(lines: string) {
  const s = await nluSetup(lines);
  nlu.track(s);
  return s;
}

/** understand() on a text; the input afterwards. */
async function understood(s: NluSetup, text: string, overrides = {}) {
  const input = textInput(text, overrides);
  await s.run(input);
  return input;
}

describe('kind = "http"', () => {
  const http = (more = "") => setup(`kind = "http"\nurl = "${nlu.fake.url}/parse"\napi_key = "${TOKEN}"\n${more}`);

  test("POSTs { text, language, user_id, endpoint_id, session_id, data } with the Bearer key and the extra headers", async () => {
    const s = await http('headers = { "X-Tenant" = "shop-7" }');
    await understood(s, "where is my order", {
      data: { request: { message: { mid: "m_1", text: "where is my order" } }, profile: { first_name: "Ada" }, channel_hint: "ads", payload: undefined },
    });
    const request = nlu.fake.requests[0]!;
    expect(request.path).toBe("/parse");
    expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(request.headers["x-tenant"]).toBe("shop-7");
    expect(request.headers["content-type"]).toBe("application/json");
    // Neither the raw Messenger event nor the person's profile goes to the service.
    expect(request.body).toEqual({
      text: "where is my order",
      language: "en",
      user_id: PSID,
      endpoint_id: "support",
      session_id: "s_1",
      data: { channel_hint: "ads" },
    });
  });

  test("api_key wins over an Authorization header of `headers`", async () => {
    const s = await http('headers = { "Authorization" = "Bearer other-value" }');
    await understood(s, "hello");
    expect(nlu.fake.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  test("the answer is the result; raw is the whole answer", async () => {
    const s = await http();
    const answer = {
      intent: "order_status",
      score: 0.91,
      entities: [{ type: "order_id", value: "12345", start: 5, end: 10, score: 0.7 }],
      ranking: [
        { intent: "order_status", score: 0.91 },
        { intent: "refund", score: 0.05 },
      ],
      model: "shop-v3",
    };
    nlu.fake.failNext({ answer });
    const input = await understood(s, "order 12345?");
    // Properties of its own (the service's model name) are in raw only.
    const { model: _model, ...result } = answer;
    expect(input.nlu).toEqual({ ...result, raw: answer } satisfies NluResult);
  });

  test("only the intent is required: the score is 1 with an intent, 0 without; no ranking unless given", async () => {
    const s = await http();
    nlu.fake.failNext({ answer: { intent: "greet" } });
    expect((await understood(s, "hi")).nlu).toEqual({ intent: "greet", score: 1, entities: [], raw: { intent: "greet" } });
    nlu.fake.failNext({ answer: { intent: null } });
    expect((await understood(s, "hm")).nlu).toEqual({ intent: null, score: 0, entities: [], raw: { intent: null } });
  });

  test("an answer outside the shape is a failed call, naming the first problem", async () => {
    const s = await http();
    for (const [answer, problem] of [
      [{ score: 0.5 }, "/intent: Expected required property"],
      [{ intent: "x", score: 1.5 }, "/score: Expected number to be less or equal to 1"],
      [{ intent: "x", entities: [{ type: "t" }] }, "/entities/0/value: Expected required property"],
      [[1, 2], "/: Expected object"],
    ] as const) {
      nlu.fake.failNext({ answer });
      const input = await understood(s, "x");
      expect(input.nlu).toBeNull();
      expect(input.nlu_error).toBe(`the NLU service at ${nlu.fake.url}/parse answered with an invalid result: ${problem}`);
    }
  });

  test("the fake's own rules answer in this shape", async () => {
    const s = await http();
    const input = await understood(s, "Where is my order? It is 4455667, mail me at ada@example.com");
    expect(input.nlu).toMatchObject({
      intent: "order_status",
      entities: [
        { type: "order_id", value: "4455667", start: 25, end: 32 },
        { type: "email", value: "ada@example.com", start: 45, end: 60 },
      ],
    });
  });
});

describe('kind = "rasa"', () => {
  const rasa = (more = "") => setup(`kind = "rasa"\nurl = "${nlu.fake.url}"\napi_key = "${TOKEN}"\n${more}`);

  test("POST {url}/model/parse?token= with { text, message_id }", async () => {
    const s = await rasa();
    await understood(s, "hello");
    expect(nlu.fake.requests[0]).toMatchObject({ path: "/model/parse", query: { token: TOKEN }, body: { text: "hello", message_id: "m_abc" } });
    expect(nlu.fake.requests[0]!.headers.authorization).toBeUndefined();
  });

  test("the URL: a path prefix and other query parameters stay; no token without api_key", () => {
    expect(rasaParseUrl("https://nlu.example.com/rasa/", "t0k en")).toBe("https://nlu.example.com/rasa/model/parse?token=t0k+en");
    expect(rasaParseUrl("http://rasa:5005?emulation_mode=", undefined)).toBe("http://rasa:5005/model/parse?emulation_mode=");
    expect(rasaParseUrl("http://rasa:5005", undefined)).toBe("http://rasa:5005/model/parse");
  });

  test("no message id (an injected input): only the text", async () => {
    const s = await rasa();
    await understood(s, "hello", { data: {} });
    expect(nlu.fake.requests[0]!.body).toEqual({ text: "hello" });
  });

  test("Rasa's answer maps: intent.name/confidence, entities (entity, value, start, end, confidence_entity, extractor), intent_ranking", async () => {
    const s = await rasa();
    const answer = {
      text: "book a table for 4 tomorrow in Berlin",
      intent: { name: "book_table", confidence: 0.9345 },
      entities: [
        { entity: "count", start: 17, end: 18, confidence_entity: 0.99, value: "4", extractor: "DIETClassifier", processors: ["EntitySynonymMapper"] },
        { entity: "time", start: 19, end: 27, value: { from: "2026-01-02T00:00:00.000Z" }, extractor: "DucklingEntityExtractor", confidence: 1.0 },
        { entity: "city", start: 31, end: 37, value: "Berlin", extractor: "RegexEntityExtractor", role: "destination" },
      ],
      intent_ranking: [
        { name: "book_table", confidence: 0.9345 },
        { name: "greet", confidence: 0.0412 },
      ],
      response_selector: { all_retrieval_intents: [] },
    };
    nlu.fake.failNext({ answer });
    const input = await understood(s, answer.text);
    expect(input.nlu).toEqual({
      intent: "book_table",
      score: 0.9345,
      entities: [
        { type: "count", value: "4", start: 17, end: 18, score: 0.99, extractor: "DIETClassifier" },
        { type: "time", value: { from: "2026-01-02T00:00:00.000Z" }, start: 19, end: 27, score: 1, extractor: "DucklingEntityExtractor" },
        { type: "city", value: "Berlin", start: 31, end: 37, extractor: "RegexEntityExtractor" },
      ],
      ranking: [
        { intent: "book_table", score: 0.9345 },
        { intent: "greet", score: 0.0412 },
      ],
      raw: answer,
    });
  });

  test("no intent (name null, or no intent at all): intent null, score 0", async () => {
    const s = await rasa();
    nlu.fake.failNext({ answer: { text: "", intent: { name: null, confidence: 0.0 }, entities: [] } });
    expect((await understood(s, "…")).nlu).toMatchObject({ intent: null, score: 0, entities: [] });
    nlu.fake.failNext({ answer: { text: "x" } });
    expect((await understood(s, "x")).nlu).toMatchObject({ intent: null, score: 0, entities: [] });
  });

  test("the fake's fallback: nlu_fallback at 0.3, as Rasa's FallbackClassifier answers", async () => {
    const s = await rasa();
    expect((await understood(s, "the weather on mars")).nlu).toMatchObject({ intent: "nlu_fallback", score: 0.3, ranking: [] });
  });
});
