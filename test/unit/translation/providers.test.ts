/**
 * Each provider (src/translation/providers/) against its documented request and answer shapes:
 * the URL, the headers, the body, and how the answer's fields map back; its errors, which are
 * tried again and which are not.
 */
import { describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { TranslationSettings } from "../../../src/config/schema.ts";
import { realTimers, type Timers } from "../../../src/core/clock.ts";
import { createProvider, type ProviderError, type TranslateRequest } from "../../../src/translation/providers/index.ts";
import { ManualClock } from "../../helpers/manual-clock.ts";

interface Seen {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: any;
}

/** A fetch that records each request and answers with `answer` (a Response, or a function of the request). */
function stub(answer: Response | ((seen: Seen, n: number) => Response | Promise<Response>)) {
  const seen: Seen[] = [];
  const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const request = new Request(String(input), init);
    const text = await request.text();
    const headers: Record<string, string> = {};
    request.headers.forEach((v, k) => {
      headers[k] = v;
    });
    const s = { url: new URL(request.url), method: request.method, headers, body: text ? JSON.parse(text) : null };
    seen.push(s);
    return typeof answer === "function" ? answer(s, seen.length) : answer.clone();
  }) as typeof globalThis.fetch;
  return { fetch, seen };
}

const settings = (values: Record<string, unknown>) => Value.Default(TranslationSettings, { ...values }) as TranslationSettings;
const warnings: string[] = [];
const provider = (values: Record<string, unknown>, fetch: typeof globalThis.fetch, timers: Timers = realTimers) =>
  createProvider(settings(values), { fetch, timers, warn: (m) => warnings.push(m) })!;
const request = (extra: Partial<TranslateRequest> = {}): TranslateRequest => ({ texts: ["Hallo Welt"], source: null, target: "en", markup: false, ...extra });
const failure = async (promise: Promise<unknown>) => {
  try {
    await promise;
  } catch (error) {
    return error as ProviderError;
  }
  throw new Error("expected a failure");
};

describe("deepl: POST /v2/translate", () => {
  const ok = Response.json({ translations: [{ detected_source_language: "DE", text: "Hello world" }] });

  test("a :fx key goes to DeepL Free, another to DeepL Pro, `url` anywhere; DeepL-Auth-Key; the texts and target_lang", async () => {
    const free = stub(ok);
    const answer = await provider({ provider: "deepl", api_key: "k-123:fx" }, free.fetch).translate(request());
    expect(free.seen[0]!.url.href).toBe("https://api-free.deepl.com/v2/translate");
    expect(free.seen[0]!.method).toBe("POST");
    expect(free.seen[0]!.headers.authorization).toBe("DeepL-Auth-Key k-123:fx");
    expect(free.seen[0]!.headers["content-type"]).toBe("application/json");
    expect(free.seen[0]!.body).toEqual({ text: ["Hallo Welt"], target_lang: "EN-US" });
    expect(answer).toEqual({ texts: ["Hello world"], detected: ["de"] });
    const pro = stub(ok);
    await provider({ provider: "deepl", api_key: "k-123" }, pro.fetch).translate(request());
    expect(pro.seen[0]!.url.href).toBe("https://api.deepl.com/v2/translate");
    const own = stub(ok);
    await provider({ provider: "deepl", api_key: "k-123:fx", url: "http://127.0.0.1:9/deepl/" }, own.fetch).translate(request());
    expect(own.seen[0]!.url.href).toBe("http://127.0.0.1:9/deepl/v2/translate");
  });

  test("source_lang, glossary_id (only with a source), formality (prefer_* always; more/less only where DeepL has it), tag_handling for markup", async () => {
    const s = stub(() => Response.json({ translations: [{ detected_source_language: "EN", text: "x" }] }));
    const p = provider({ provider: "deepl", api_key: "k" }, s.fetch);
    await p.translate(request({ source: "en-US", target: "pt", glossary: "g-1", formality: "more", markup: true }));
    expect(s.seen[0]!.body).toEqual({
      text: ["Hallo Welt"],
      target_lang: "PT-BR",
      source_lang: "EN",
      glossary_id: "g-1",
      formality: "more",
      tag_handling: "html",
    });
    await p.translate(request({ source: null, target: "de", glossary: "g-1", formality: "prefer_less" }));
    expect(s.seen[1]!.body).toEqual({ text: ["Hallo Welt"], target_lang: "DE", formality: "prefer_less" });
    await p.translate(request({ source: "de", target: "sv", formality: "less" }));
    expect(s.seen[2]!.body).toEqual({ text: ["Hallo Welt"], target_lang: "SV", source_lang: "DE" });
  });

  test("456: the quota is used up — not tried again, said with what to do", async () => {
    const s = stub(Response.json({ message: "Quota Exceeded" }, { status: 456 }));
    const error = await failure(provider({ provider: "deepl", api_key: "k", retries: 3 }, s.fetch).translate(request()));
    expect(error.result).toBe("quota_exceeded");
    expect(error.message).toContain("deepl answered HTTP 456: Quota Exceeded");
    expect(error.message).toContain("raise the plan's limit");
    expect(s.seen).toHaveLength(1);
  });

  test("403: the key refused, not tried again; the key is not in the message", async () => {
    const s = stub(Response.json({ message: "Forbidden for key-secret-123456:fx" }, { status: 403 }));
    const error = await failure(provider({ provider: "deepl", api_key: "key-secret-123456:fx", retries: 3 }, s.fetch).translate(request()));
    expect(error.result).toBe("refused");
    expect(error.message).not.toContain("key-secret-123456");
    expect(error.message).toContain("api-free.deepl.com");
    expect(s.seen).toHaveLength(1);
  });

  test("a glossary DeepL refuses for a language pair: that pair is translated without it, said once", async () => {
    warnings.splice(0);
    const s = stub((seen) =>
      seen.body.glossary_id
        ? Response.json({ message: "Invalid glossary for this language pair." }, { status: 400 })
        : Response.json({ translations: [{ detected_source_language: "EN", text: "Bonjour" }] }),
    );
    const p = provider({ provider: "deepl", api_key: "k" }, s.fetch);
    expect((await p.translate(request({ source: "en", target: "fr", glossary: "g-en-de" }))).texts).toEqual(["Bonjour"]);
    await p.translate(request({ source: "en", target: "fr", glossary: "g-en-de" }));
    expect(s.seen.map((x) => x.body.glossary_id ?? null)).toEqual(["g-en-de", null, null]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("glossary g-en-de for EN → FR");
  });

  test("an answer without one translation per text is unreadable", async () => {
    const s = stub(Response.json({ translations: [] }));
    expect((await failure(provider({ provider: "deepl", api_key: "k" }, s.fetch).translate(request()))).result).toBe("unreadable_answer");
  });
});

describe("google: POST /language/translate/v2?key=", () => {
  test("the key in the query; { q, target, source?, format }; translatedText and detectedSourceLanguage", async () => {
    const s = stub((seen) =>
      Response.json({
        data: {
          translations: [
            { translatedText: "Hello", detectedSourceLanguage: "de" },
            { translatedText: "Tea", detectedSourceLanguage: "de" },
          ].slice(0, seen.body.q.length),
        },
      }),
    );
    const answer = await provider({ provider: "google", api_key: "AIza-key" }, s.fetch).translate(request({ texts: ["Hallo", "Tee"], target: "zh-TW" }));
    expect(s.seen[0]!.url.origin + s.seen[0]!.url.pathname).toBe("https://translation.googleapis.com/language/translate/v2");
    expect(s.seen[0]!.url.searchParams.get("key")).toBe("AIza-key");
    expect(s.seen[0]!.body).toEqual({ q: ["Hallo", "Tee"], target: "zh-TW", format: "text" });
    expect(answer).toEqual({ texts: ["Hello", "Tea"], detected: ["de", "de"] });
    await provider({ provider: "google", api_key: "k" }, s.fetch).translate(request({ source: "en", target: "de", markup: true }));
    expect(s.seen[1]!.body).toEqual({ q: ["Hallo Welt"], target: "de", format: "html", source: "en" });
  });

  test("errors: { error: { message } }; a bad key and a used-up quota say what to do", async () => {
    const bad = stub(
      Response.json({ error: { code: 400, message: "API key not valid. Please pass a valid API key.", status: "INVALID_ARGUMENT" } }, { status: 400 }),
    );
    const e1 = await failure(provider({ provider: "google", api_key: "k" }, bad.fetch).translate(request()));
    expect(e1.result).toBe("refused");
    expect(e1.message).toContain("API key not valid");
    expect(e1.message).toContain("Cloud Translation API");
    const quota = stub(Response.json({ error: { code: 403, message: "Daily Limit Exceeded", errors: [{ reason: "dailyLimitExceeded" }] } }, { status: 403 }));
    expect((await failure(provider({ provider: "google", api_key: "k" }, quota.fetch).translate(request()))).result).toBe("quota_exceeded");
    // Google's 403 for too many requests per user and minute passes: tried again.
    const rate = stub(() =>
      Response.json({ error: { code: 403, message: "User Rate Limit Exceeded", errors: [{ reason: "userRateLimitExceeded" }] } }, { status: 403 }),
    );
    const clock = new ManualClock();
    const outcome = failure(provider({ provider: "google", api_key: "k", retries: 1 }, rate.fetch, clock).translate(request()));
    await clock.advance(250);
    expect((await outcome).result).toBe("rate_limited");
    expect(rate.seen).toHaveLength(2);
  });
});

describe("microsoft: POST /translate?api-version=3.0&to=", () => {
  test("the query (to, from, textType), the key and region headers, [{ Text }]; translations[0].text and detectedLanguage", async () => {
    const s = stub(Response.json([{ detectedLanguage: { language: "de", score: 1 }, translations: [{ text: "Hello world", to: "en" }] }]));
    const answer = await provider({ provider: "microsoft", api_key: "ms-key", region: "westeurope" }, s.fetch).translate(request());
    const seen = s.seen[0]!;
    expect(seen.url.origin + seen.url.pathname).toBe("https://api.cognitive.microsofttranslator.com/translate");
    expect(Object.fromEntries(seen.url.searchParams)).toEqual({ "api-version": "3.0", to: "en" });
    expect(seen.headers["ocp-apim-subscription-key"]).toBe("ms-key");
    expect(seen.headers["ocp-apim-subscription-region"]).toBe("westeurope");
    expect(seen.body).toEqual([{ Text: "Hallo Welt" }]);
    expect(answer).toEqual({ texts: ["Hello world"], detected: ["de"] });
    const t = stub(Response.json([{ translations: [{ text: "x", to: "zh-Hant" }] }]));
    await provider({ provider: "microsoft", api_key: "k" }, t.fetch).translate(request({ source: "en", target: "zh-TW", markup: true }));
    expect(Object.fromEntries(t.seen[0]!.url.searchParams)).toEqual({ "api-version": "3.0", to: "zh-Hant", from: "en", textType: "html" });
    expect(t.seen[0]!.headers["ocp-apim-subscription-region"]).toBeUndefined();
  });

  test("401000 a refused key (key and region), 403001 a used-up quota", async () => {
    const s = stub(
      Response.json({ error: { code: 401000, message: "The request is not authorized because credentials are missing or invalid." } }, { status: 401 }),
    );
    const e = await failure(provider({ provider: "microsoft", api_key: "k" }, s.fetch).translate(request()));
    expect(e.result).toBe("refused");
    expect(e.message).toContain("region");
    const q = stub(
      Response.json(
        { error: { code: 403001, message: "The operation is not allowed because the subscription has exceeded its free quota." } },
        { status: 403 },
      ),
    );
    expect((await failure(provider({ provider: "microsoft", api_key: "k" }, q.fetch).translate(request()))).result).toBe("quota_exceeded");
  });
});

describe("libretranslate: POST /translate", () => {
  test("{ q: [...], source: auto, target, format, api_key }; translatedText[] and detectedLanguage[]", async () => {
    const s = stub(Response.json({ translatedText: ["Hello world"], detectedLanguage: [{ confidence: 90, language: "de" }] }));
    const answer = await provider({ provider: "libretranslate", url: "http://lt.internal:5000", api_key: "lt-key" }, s.fetch).translate(request());
    expect(s.seen[0]!.url.href).toBe("http://lt.internal:5000/translate");
    expect(s.seen[0]!.body).toEqual({ q: ["Hallo Welt"], source: "auto", target: "en", format: "text", api_key: "lt-key" });
    expect(answer).toEqual({ texts: ["Hello world"], detected: ["de"] });
    const none = stub(Response.json({ translatedText: ["x"] }));
    await provider({ provider: "libretranslate" }, none.fetch).translate(request({ source: "zh-Hant", target: "de", markup: true }));
    expect(none.seen[0]!.url.href).toBe("https://libretranslate.com/translate");
    expect(none.seen[0]!.body).toEqual({ q: ["Hallo Welt"], source: "zt", target: "de", format: "html" });
  });

  test("{ error } answers", async () => {
    const s = stub(Response.json({ error: "Invalid API key" }, { status: 403 }));
    const e = await failure(provider({ provider: "libretranslate", api_key: "bad" }, s.fetch).translate(request()));
    expect(e.message).toContain("libretranslate answered HTTP 403: Invalid API key");
  });
});

describe("llm: an OpenAI-compatible chat completions API asked for JSON", () => {
  const completion = (content: string) => Response.json({ choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }] });

  test("the request: model, temperature 0, a JSON object wanted, the texts as JSON; Bearer key", async () => {
    const s = stub(completion('{"translations":["Hello world"],"languages":["de"]}'));
    const answer = await provider({ provider: "llm", url: "http://llm.internal/v1", model: "small", api_key: "sk-123456" }, s.fetch).translate(request());
    expect(s.seen[0]!.url.href).toBe("http://llm.internal/v1/chat/completions");
    expect(s.seen[0]!.headers.authorization).toBe("Bearer sk-123456");
    const body = s.seen[0]!.body;
    expect(body.model).toBe("small");
    expect(body.temperature).toBe(0);
    expect(body.response_format).toEqual({ type: "json_object" });
    expect(body.messages[0].role).toBe("system");
    expect(JSON.parse(body.messages[1].content)).toEqual({ source: null, target: "en", format: "text", texts: ["Hallo Welt"] });
    expect(answer).toEqual({ texts: ["Hello world"], detected: ["de"] });
  });

  test("a JSON answer in a fence is read; a wrong answer is a failed call, not tried again", async () => {
    const fenced = stub(completion('```json\n{"translations":["Hi"]}\n```'));
    expect((await provider({ provider: "llm", url: "http://x", model: "m" }, fenced.fetch).translate(request())).texts).toEqual(["Hi"]);
    const wrong = stub(completion('{"translations":["a","b"]}'));
    const e = await failure(provider({ provider: "llm", url: "http://x", model: "m", retries: 3 }, wrong.fetch).translate(request()));
    expect(e.result).toBe("unreadable_answer");
    expect(wrong.seen).toHaveLength(1);
  });
});

describe("time limits and retries (a manual clock: nothing waits for real)", () => {
  test("5xx and 429 are tried again, after Retry-After (at most the time limit); then given up", async () => {
    const clock = new ManualClock();
    const s = stub((_, n) =>
      n === 1
        ? Response.json({ message: "slow down" }, { status: 429, headers: { "retry-after": "2" } })
        : Response.json({ message: "Internal" }, { status: 503 }),
    );
    const call = provider({ provider: "deepl", api_key: "k", retries: 2, timeout_ms: 5000 }, s.fetch, clock).translate(request());
    const outcome = failure(call);
    await clock.advance(1_999);
    expect(s.seen).toHaveLength(1); // Retry-After: 2 s
    await clock.advance(1);
    expect(s.seen).toHaveLength(2);
    await clock.advance(500); // the backoff after the second try
    const error = await outcome;
    expect(s.seen).toHaveLength(3);
    expect(error.result).toBe("server_error");
  });

  test("a provider that does not answer: each try ends at timeout_ms, the last is the failure", async () => {
    const clock = new ManualClock();
    const s = stub(() => new Promise<Response>(() => {}));
    const outcome = failure(provider({ provider: "google", api_key: "k", retries: 1, timeout_ms: 3000 }, s.fetch, clock).translate(request()));
    await clock.advance(3_000);
    expect(s.seen).toHaveLength(1);
    await clock.advance(250);
    expect(s.seen).toHaveLength(2);
    await clock.advance(3_000);
    const error = await outcome;
    expect(error.result).toBe("timeout");
    expect(error.message).toBe("google did not answer within 3000 ms");
  });

  test("a network error is tried again; no more tries once the server stops", async () => {
    const clock = new ManualClock();
    const s = stub(() => {
      throw new TypeError("connect ECONNREFUSED");
    });
    const stopping = new AbortController();
    const outcome = failure(provider({ provider: "libretranslate", retries: 5 }, s.fetch, clock).translate(request(), stopping.signal));
    await clock.settle();
    expect(s.seen).toHaveLength(1);
    await clock.advance(250);
    expect(s.seen).toHaveLength(2);
    stopping.abort();
    const error = await outcome;
    expect(s.seen).toHaveLength(2);
    expect(error.result).toBe("timeout");
  });
});
