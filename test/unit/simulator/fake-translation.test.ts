/**
 * The fake translation providers (src/simulator/fake-translation.ts): each provider's paths,
 * answer and error shapes, scripted failures and held answers, and the little dictionary behind.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { detectLanguage, translateHtml, translateText } from "../../../src/simulator/fake-translation-words.ts";
import { FakeTranslation } from "../../../src/simulator/fake-translation.ts";

let fake: FakeTranslation;
beforeAll(async () => {
  fake = await FakeTranslation.start();
});
afterAll(() => fake.stop());

const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
  const response = await fetch(`${fake.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
};

describe("the words", () => {
  test("detection by common words; English when nothing tells", () => {
    expect(detectLanguage("Hallo, ich brauche Hilfe").language).toBe("de");
    expect(detectLanguage("Bonjour, je suis là").language).toBe("fr");
    expect(detectLanguage("Hola, necesito ayuda").language).toBe("es");
    expect(detectLanguage("12345").language).toBe("en");
  });

  test("word by word in the word's case, through English between two others; unknown words stay", () => {
    expect(translateText("Hallo, ich brauche Hilfe", null, "en")).toEqual({ text: "Hello, i need Help", detected: "de" });
    expect(translateText("Hello friend", "en", "es-ES").text).toBe("Hola amigo");
    expect(translateText("Danke Zorglub", "de", "fr").text).toBe("Merci Zorglub");
  });

  test("HTML: no-translate spans, tags and entities untouched", () => {
    expect(translateHtml('Hello <span translate="no" class="notranslate">friend</span> &amp; coffee<br>', "en", "de").text).toBe(
      'Hallo <span translate="no" class="notranslate">friend</span> &amp; kaffee<br>',
    );
  });
});

describe("each provider's shapes", () => {
  test("deepl: translations[] with detected_source_language; 403 without the key header; 400 for an unknown target", async () => {
    const ok = await post("/deepl/v2/translate", { text: ["Danke"], target_lang: "EN-US" }, { authorization: "DeepL-Auth-Key k:fx" });
    expect(ok.body).toEqual({ translations: [{ detected_source_language: "DE", text: "Thanks" }] });
    expect((await post("/deepl/v2/translate", { text: ["x"], target_lang: "DE" })).status).toBe(403);
    expect(await post("/deepl/v2/translate", { text: ["x"], target_lang: "XX" }, { authorization: "DeepL-Auth-Key k" })).toMatchObject({
      status: 400,
      body: { message: "Value for 'target_lang' not supported." },
    });
  });

  test("google: data.translations[] (detectedSourceLanguage without a source), entities in html; /detect; key errors", async () => {
    const ok = await post("/google/language/translate/v2?key=k", { q: ["Danke"], target: "en", format: "text" });
    expect(ok.body).toEqual({ data: { translations: [{ translatedText: "Thanks", detectedSourceLanguage: "de" }] } });
    const html = await post("/google/language/translate/v2?key=k", { q: "It's coffee", target: "de", source: "en", format: "html" });
    expect(html.body.data.translations[0].translatedText).toBe("It&#39;s kaffee");
    const detect = await post("/google/language/translate/v2/detect?key=k", { q: ["Bonjour"] });
    expect(detect.body.data.detections[0][0].language).toBe("fr");
    const missing = await post("/google/language/translate/v2", { q: ["x"], target: "de" });
    expect(missing.status).toBe(403);
    expect(missing.body.error).toMatchObject({ code: 403, status: "PERMISSION_DENIED" });
  });

  test("microsoft: [{ detectedLanguage, translations }] by query; /detect; 401000 without the key; 400021 without api-version", async () => {
    const key = { "ocp-apim-subscription-key": "k" };
    const ok = await post("/microsoft/translate?api-version=3.0&to=en", [{ Text: "Danke" }], key);
    expect(ok.body).toEqual([{ detectedLanguage: { language: "de", score: 0.9 }, translations: [{ text: "Thanks", to: "en" }] }]);
    expect((await post("/microsoft/detect?api-version=3.0", [{ Text: "Hola amigo" }], key)).body[0].language).toBe("es");
    expect((await post("/microsoft/translate?api-version=3.0&to=en", [{ Text: "x" }])).body).toEqual({
      error: { code: 401000, message: "The request is not authorized because credentials are missing or invalid." },
    });
    expect((await post("/microsoft/translate?to=en", [{ Text: "x" }], key)).body.error.code).toBe(400021);
  });

  test("libretranslate: a string or a list q; detectedLanguage with auto; /detect; 403 for a refused key", async () => {
    expect((await post("/libretranslate/translate", { q: "Danke", source: "auto", target: "en" })).body).toEqual({
      translatedText: "Thanks",
      detectedLanguage: { confidence: 90, language: "de" },
    });
    expect((await post("/libretranslate/translate", { q: ["Danke", "Hallo"], source: "de", target: "en" })).body).toEqual({
      translatedText: ["Thanks", "Hello"],
    });
    expect((await post("/libretranslate/detect", { q: "Hola amigo" })).body[0].language).toBe("es");
    expect(await post("/libretranslate/translate", { q: "x", source: "en", target: "de", api_key: "bad" })).toMatchObject({
      status: 403,
      body: { error: "Invalid API key" },
    });
  });

  test("llm: a chat completion holding the translation's JSON; prose for anything else", async () => {
    const request = { source: null, target: "en", format: "text", texts: ["Danke"] };
    const ok = await post("/llm/chat/completions", { model: "m", messages: [{ role: "user", content: JSON.stringify(request) }] });
    expect(JSON.parse(ok.body.choices[0].message.content)).toEqual({ translations: ["Thanks"], languages: ["de"] });
    const prose = await post("/llm/chat/completions", { model: "m", messages: [{ role: "user", content: "hi" }] });
    expect(prose.body.choices[0].message.content).toBe("Sorry, I can only translate.");
  });
});

describe("scripted failures and held answers", () => {
  test("in each provider's error shape: DeepL's 456, a 429 with Retry-After, a 5xx; only the provider named; then answered again", async () => {
    fake.fail({ provider: "deepl", status: 456 });
    fake.fail({ provider: "libretranslate", status: 429, retryAfter: 3 });
    fake.fail({ provider: "microsoft", status: 503 });
    const deepl = await post("/deepl/v2/translate", { text: ["x"], target_lang: "DE" }, { authorization: "DeepL-Auth-Key k" });
    expect(deepl).toMatchObject({ status: 456, body: { message: "Quota exceeded" } });
    const libre = await post("/libretranslate/translate", { q: "x", source: "en", target: "de" });
    expect(libre.status).toBe(429);
    expect(libre.headers.get("retry-after")).toBe("3");
    expect(libre.body).toEqual({ error: "Slowdown: Too many requests" });
    const ms = await post("/microsoft/translate?api-version=3.0&to=de", [{ Text: "x" }], { "ocp-apim-subscription-key": "k" });
    expect(ms).toMatchObject({ status: 503, body: { error: { code: 503000 } } });
    expect((await post("/deepl/v2/translate", { text: ["x"], target_lang: "DE" }, { authorization: "DeepL-Auth-Key k" })).status).toBe(200);
  });

  test("a dropped connection: the client's fetch fails (over HTTP and in process)", async () => {
    fake.fail({ status: "network", times: 2 });
    const overHttp = await fetch(`${fake.url}/libretranslate/translate`, { method: "POST", body: "{}" })
      .then((r) => r.text())
      .then(
        () => "answered",
        () => "failed",
      );
    expect(overHttp).toBe("failed");
    expect(
      await fake.fetch(`${fake.url}/libretranslate/translate`, { method: "POST", body: "{}" }).then(
        () => "answered",
        () => "failed",
      ),
    ).toBe("failed");
  });

  test("held answers wait for release; the others are answered", async () => {
    fake.hold((call) => JSON.stringify(call.body).includes("slow"));
    const slow = post("/libretranslate/translate", { q: "slow", source: "en", target: "de" });
    while (fake.waiting === 0) await Bun.sleep(1);
    expect((await post("/libretranslate/translate", { q: "fast", source: "en", target: "de" })).status).toBe(200);
    fake.release();
    expect((await slow).status).toBe(200);
    expect(fake.waiting).toBe(0);
  });
});
