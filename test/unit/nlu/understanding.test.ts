/**
 * What understand() does around a connector (src/nlu/understanding.ts, call.ts): which inputs skip
 * NLU, min_score and the ranking, the time limit and the retries on a manual clock (no real
 * sleeps), on_error continue vs skip_turn, the metrics, secrets kept out of nlu_error and the
 * log, and one user's slow NLU beside another's quick one. The connector is the real Rasa one,
 * against the fake NLU (src/simulator/fake-nlu/).
 */
import { describe, expect, test } from "bun:test";
import type { NluResult } from "../../../src/nlu/result.ts";
import { RETRY_PAUSE_MS } from "../../../src/nlu/call.ts";
import { until } from "../../helpers/conversation.ts";
import { closedUrl } from "../flows/support.ts";
import { KEY, nluSetup, payloadInput, textInput, useFakeNlu } from "./support.ts";

const TOKEN = "nlu-secret-key-0123456789";
const nlu = useFakeNlu(TOKEN);

/** A Rasa connector to the fake; `timeout_ms` 500 unless `lines` set it. */
async function rasa(lines = "", more = "") {
  const timeout = lines.includes("timeout_ms") ? "" : "timeout_ms = 500";
  const s = await nluSetup(`kind = "rasa"\nurl = "${nlu.fake.url}"\napi_key = "${TOKEN}"\n${timeout}\n${lines}`, { more });
  nlu.track(s);
  return s;
}

const nluOf = (input: { nlu: unknown }) => input.nlu as NluResult;

describe("which inputs go to the NLU", () => {
  test("typed text: input.nlu has the intent, the score, the entities and the ranking", async () => {
    const s = await rasa();
    const input = textInput("where is my order 123456");
    expect(await s.run(input)).toBe(true);
    expect(nluOf(input)).toMatchObject({
      intent: "order_status",
      score: 0.86,
      entities: [{ type: "order_id", value: "123456", start: 18, end: 24, extractor: "RegexEntityExtractor" }],
      ranking: [{ intent: "order_status", score: 0.86 }],
    });
    expect(input.nlu_error).toBeUndefined();
    expect(nlu.fake.requests[0]!.body).toEqual({ text: "where is my order 123456", message_id: "m_abc" });
    expect(s.requests("ok")).toBe(1);
  });

  test("a payload (button, quick reply) skips NLU; nlu_payloads = true sends it", async () => {
    const off = await rasa();
    const input = payloadInput("CANCEL");
    expect(await off.run(input, { payload: true })).toBe(true);
    expect(input.nlu).toBeNull();
    expect(nlu.fake.requests).toHaveLength(0);

    const on = await rasa("nlu_payloads = true");
    const sent = payloadInput("cancel");
    expect(await on.run(sent, { payload: true })).toBe(true);
    expect(nluOf(sent).intent).toBe("cancel_order");
    expect(nlu.fake.requests).toHaveLength(1);
  });

  test("an input without text (a sticker, a location) skips NLU", async () => {
    const s = await rasa();
    const input = textInput("   ", { data: { attachments: [{ type: "image", url: "https://example.com/x.png" }] } });
    expect(await s.run(input)).toBe(true);
    expect(input.nlu).toBeNull();
    expect(nlu.fake.requests).toHaveLength(0);
  });

  test("an endpoint without a connector is left alone", async () => {
    const s = await nluSetup('kind = "none"');
    nlu.track(s);
    const input = textInput("hello");
    expect(await s.run(input)).toBe(true);
    expect(input.nlu).toBeNull();
    expect(s.understanding.has("support")).toBe(false);
  });

  test("after real-time translation the connector reads the flow's language", async () => {
    const s = await nluSetup(`kind = "http"\nurl = "${nlu.fake.url}/parse"\napi_key = "${TOKEN}"`);
    nlu.track(s);
    const input = textInput("where is my order", {
      language: "de",
      data: { translation: { user_language: "de", flow_language: "en", original_text: "wo ist meine Bestellung" } },
    });
    await s.run(input);
    expect((nlu.fake.requests[0]!.body as { language: string }).language).toBe("en");
  });
});

describe("min_score and the ranking", () => {
  test("an intent scored below min_score becomes null; the score and the ranking keep it", async () => {
    const s = await rasa("min_score = 0.9");
    const input = textInput("hi can you tell me about my order");
    await s.run(input);
    const nlu = nluOf(input);
    expect(nlu.intent).toBeNull();
    expect(nlu.score).toBeLessThan(0.9);
    expect(nlu.ranking?.[0]?.intent).toBe("order_status");
    expect(nlu.ranking?.map((r) => r.intent)).toContain("greet");
  });

  test("at or above min_score it stays", async () => {
    const s = await rasa("min_score = 0.9");
    const input = textInput("Hello!");
    await s.run(input);
    expect(nluOf(input)).toMatchObject({ intent: "greet", score: 0.98 });
  });

  test("without a ranking from the connector, the intent that min_score removed is the ranking", async () => {
    const s = await rasa("min_score = 0.5");
    nlu.fake.failNext({ answer: { text: "x", intent: { name: "greet", confidence: 0.4 }, entities: [] } });
    const input = textInput("x");
    await s.run(input);
    expect(nluOf(input)).toMatchObject({ intent: null, score: 0.4, ranking: [{ intent: "greet", score: 0.4 }] });
  });
});

describe("time limit and retries (manual clock)", () => {
  test("a try that takes longer than timeout_ms is abandoned and tried again after a pause", async () => {
    const s = await rasa("retries = 1");
    nlu.fake.failNext({ delayMs: Number.POSITIVE_INFINITY });
    const input = textInput("hello");
    const first = nlu.fake.nextRequest();
    const done = s.run(input);
    await first;
    const second = nlu.fake.nextRequest();
    await s.clock.advance(500); // the time limit: the try is abandoned, the pause before the next armed
    expect(nlu.fake.requests).toHaveLength(1);
    await s.clock.advance(100); // the pause
    await second;
    expect(await done).toBe(true);
    expect(nluOf(input).intent).toBe("greet");
    expect(s.requests("ok")).toBe(1);
    expect(s.metrics.counter("messenger_nlu_retries_total", "").get({ endpoint: "support" })).toBe(1);
    expect(s.clock.timers).toEqual([]); // no time limit left armed
  });

  test("every try too slow: nlu null, nlu_error says so, counted as a timeout; the flow runs", async () => {
    const s = await rasa("retries = 1");
    nlu.fake.failNext({ delayMs: Number.POSITIVE_INFINITY }, { times: 2 });
    const input = textInput("hello");
    const first = nlu.fake.nextRequest();
    const done = s.run(input);
    await first;
    const second = nlu.fake.nextRequest();
    await s.clock.advance(600);
    await second;
    await s.clock.advance(500);
    expect(await done).toBe(true);
    expect(input.nlu).toBeNull();
    expect(input.nlu_error).toBe(`the Rasa server at ${nlu.fake.url}/model/parse did not answer within 500 ms (2 tries)`);
    expect(s.requests("timeout")).toBe(1);
    const warning = s.logs.records().find((r) => r.level === "warn")!;
    expect(warning.msg).toBe(`NLU failed; the flow runs with input.nlu = null: ${input.nlu_error}`);
  });

  test("a 5xx is tried again; a 4xx is not", async () => {
    const s = await rasa("retries = 2");
    nlu.fake.failNext({ status: 500 });
    const input = textInput("thanks");
    const done = s.run(input);
    // The 500 comes over a real socket: the pause before the next try is armed once it is read.
    await until(() => s.clock.timers.includes(s.clock.now() + RETRY_PAUSE_MS));
    await s.clock.advance(RETRY_PAUSE_MS);
    expect(await done).toBe(true);
    expect(nluOf(input).intent).toBe("thanks");
    expect(nlu.fake.requests).toHaveLength(2);

    nlu.fake.reset();
    nlu.fake.failNext({ status: 409 });
    const refused = textInput("thanks");
    expect(await s.run(refused)).toBe(true);
    expect(nlu.fake.requests).toHaveLength(1);
    expect(refused.nlu_error).toBe(
      `the Rasa server at ${nlu.fake.url}/model/parse answered HTTP 409 Conflict: No agent loaded. To continue processing, a model of a trained agent needs to be loaded.`,
    );
    expect(s.requests("http_error")).toBe(1);
  });

  test("retries = 0: one try", async () => {
    const s = await rasa("retries = 0");
    nlu.fake.failNext({ status: 503 });
    const input = textInput("hello");
    expect(await s.run(input)).toBe(true);
    expect(nlu.fake.requests).toHaveLength(1);
    expect(input.nlu_error).toStartWith(`the Rasa server at ${nlu.fake.url}/model/parse answered HTTP 503 ParsingError:`);
  });

  test("a body that is not JSON, or not a parse result, fails at once", async () => {
    const s = await rasa("retries = 3");
    nlu.fake.failNext({ malformed: true });
    const broken = textInput("hello");
    await s.run(broken);
    expect(broken.nlu_error).toBe(`the Rasa server at ${nlu.fake.url}/model/parse answered with a body that is not JSON: {"intent": "gre`);
    nlu.fake.failNext({ answer: { intent: { name: "greet", confidence: "high" } } });
    const wrong = textInput("hello");
    await s.run(wrong);
    expect(wrong.nlu_error).toStartWith(`the Rasa server at ${nlu.fake.url}/model/parse answered with an invalid parse result: /intent`);
    expect(nlu.fake.requests).toHaveLength(2);
    expect(s.requests("invalid_answer")).toBe(2);
  });
});

describe("on_error", () => {
  test('"continue" (the default): the flow runs with nlu null and nlu_error', async () => {
    const s = await nluSetup(`kind = "rasa"\nurl = "${closedUrl()}"\nretries = 0`);
    nlu.track(s);
    const input = textInput("hello");
    expect(await s.run(input)).toBe(true);
    expect(input.nlu).toBeNull();
    expect(input.nlu_error).toStartWith("cannot reach the Rasa server at http://127.0.0.1:");
    expect(s.requests("network_error")).toBe(1);
  });

  test('"skip_turn": understand resolves false, and says why', async () => {
    const s = await rasa('on_error = "skip_turn"\nretries = 0');
    nlu.fake.failNext({ status: 500 });
    const input = textInput("hello");
    expect(await s.run(input)).toBe(false);
    expect(input.nlu_error).toStartWith(`the Rasa server at ${nlu.fake.url}/model/parse answered HTTP 500 ParsingError`);
    expect(s.logs.records().some((r) => r.msg.startsWith('NLU failed; the flow does not run for this input (on_error = "skip_turn")'))).toBe(true);
  });
});

describe("secrets", () => {
  const KEY_VALUE = TOKEN;

  test("the api_key is never in nlu_error or the log, even when the service quotes it", async () => {
    const s = await nluSetup(`kind = "http"\nurl = "${nlu.fake.url}/parse"\napi_key = "${KEY_VALUE}"\nretries = 0`);
    nlu.track(s);
    nlu.fake.failNext({ status: 403, body: { error: `key ${KEY_VALUE} is not allowed` } });
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu_error).toBe(`the NLU service at ${nlu.fake.url}/parse answered HTTP 403: {"error":"key [redacted] is not allowed"}`);
    expect(s.logs.lines.join("\n")).not.toContain(KEY_VALUE);
  });

  test("Rasa's token rides in the URL's query: not in nlu_error or the log when the server cannot be reached", async () => {
    const url = closedUrl();
    const s = await nluSetup(`kind = "rasa"\nurl = "${url}"\napi_key = "${KEY_VALUE}"\nretries = 0`);
    nlu.track(s);
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu_error).toStartWith(`cannot reach the Rasa server at ${url}/model/parse`);
    expect(input.nlu_error).not.toContain(KEY_VALUE);
    expect(s.logs.lines.join("\n")).not.toContain(KEY_VALUE);
  });

  test("a wrong token: Rasa's 401, with a hint", async () => {
    const s = await nluSetup(`kind = "rasa"\nurl = "${nlu.fake.url}"\napi_key = "wrong-token-0123456789"`);
    nlu.track(s);
    const input = textInput("hello");
    await s.run(input);
    expect(input.nlu_error).toBe(
      `the Rasa server at ${nlu.fake.url}/model/parse answered HTTP 401 NotAuthenticated: User is not authenticated. (check api_key: the server's --auth-token)`,
    );
    expect(nlu.fake.requests[0]!.query).toEqual({ token: "wrong-token-0123456789" });
    expect(nlu.fake.requests).toHaveLength(1);
  });
});

test("one user's slow NLU does not hold up another user's", async () => {
  const s = await rasa("timeout_ms = 3000");
  nlu.fake.failNext({ delayMs: Number.POSITIVE_INFINITY });
  const slow = textInput("hello");
  const arrived = nlu.fake.nextRequest();
  const slowDone = s.run(slow, { key: { ...KEY, userId: "slow-user" } });
  await arrived;
  const quick = textInput("thanks");
  expect(await s.run(quick)).toBe(true);
  expect(nluOf(quick).intent).toBe("thanks");
  expect(slow.nlu).toBeNull(); // still waiting
  await s.clock.advance(3000 + 100);
  expect(await slowDone).toBe(true);
  expect(nluOf(slow).intent).toBe("greet");
});

test("the latency histogram counts each call, its tries included", async () => {
  const s = await rasa();
  await s.run(textInput("hello"));
  await s.run(textInput("bye"));
  expect(s.metrics.histogram("messenger_nlu_request_seconds", "").count({ endpoint: "support" })).toBe(2);
  expect(s.metrics.render()).toContain('messenger_nlu_requests_total{endpoint="support",result="ok"} 2');
});

describe("the language the connector is told", () => {
  test("the flow's after a translation, the user's when translation failed or is off", async () => {
    const { nluLanguage } = await import("../../../src/nlu/understanding.ts");
    const input = textInput("hallo");
    input.language = "de";
    expect(nluLanguage(input)).toBe("de");
    input.data.translation = { user_language: "de", flow_language: "en", original_text: "hallo" };
    expect(nluLanguage(input)).toBe("en");
    input.data.translation = { user_language: "de", flow_language: "en", original_text: "hallo", error: "the provider is down" };
    expect(nluLanguage(input)).toBe("de");
  });
});
