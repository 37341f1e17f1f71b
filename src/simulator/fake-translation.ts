/**
 * Stand-ins for the translation providers (src/translation/providers/), one `Bun.serve` on
 * 127.0.0.1 (or `handle()` in process), each provider under its own prefix with its own request
 * and answer shapes, so that the real provider code runs against it:
 *
 *   /deepl/v2/translate                        DeepL (`Authorization: DeepL-Auth-Key`, `{ text: [...], target_lang }`)
 *   /google/language/translate/v2[/detect]     Google Cloud Translation v2 (`?key=`, `{ q, target, source?, format }`)
 *   /microsoft/translate, /microsoft/detect    Microsoft Translator v3 (`?api-version=3.0&to=`, `Ocp-Apim-Subscription-Key`, `[{ Text }]`)
 *   /libretranslate/translate, /detect         LibreTranslate (`{ q, source, target, format, api_key? }`)
 *   /llm/chat/completions                      an OpenAI-compatible model given the translation's JSON request
 *
 * Settings point at it with `url = "<fake>/deepl"` and so on. The words are a small rule-based
 * dictionary (fake-translation-words.ts). Every request is recorded; failures are scripted in
 * each provider's error shape (429 with Retry-After, DeepL's 456, 5xx, a dropped connection), and
 * answers can be held until the test releases them (a slow provider, without real sleeps).
 */
import type { Server } from "bun";
import { detectLanguage, translateHtml, translateText } from "./fake-translation-words.ts";

export type FakeProvider = "deepl" | "google" | "microsoft" | "libretranslate" | "llm";

export interface RecordedTranslationCall {
  provider: FakeProvider;
  /** The path after the provider's prefix: `/v2/translate`, `/detect` … */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
}

export interface TranslationFailure {
  /** Only this provider's requests (default: any). */
  provider?: FakeProvider;
  /** The HTTP status, answered in the provider's error shape; or `network` for a dropped connection. */
  status: number | "network";
  /** How many requests fail (default 1). */
  times?: number;
  /** Seconds, for a 429. */
  retryAfter?: number;
}

/** A scripted network failure: the connection breaks instead of an answer. */
export const DROPPED = Symbol("dropped connection");

/** A response whose body fails at once: the client sees the connection break. */
function brokenResponse(): Response {
  return new Response(
    new ReadableStream({
      start(controller) {
        controller.error();
      },
    }),
  );
}

const DEEPL_TARGETS = new Set(["AR", "BG", "CS", "DA", "DE", "EL", "EN", "EN-GB", "EN-US", "ES", "ET", "FI", "FR", "HU", "ID", "IT", "JA", "KO"]);
for (const t of ["LT", "LV", "NB", "NL", "PL", "PT", "PT-BR", "PT-PT", "RO", "RU", "SK", "SL", "SV", "TR", "UK", "ZH", "ZH-HANS", "ZH-HANT"])
  DEEPL_TARGETS.add(t);

export class FakeTranslation {
  readonly calls: RecordedTranslationCall[] = [];
  /** DeepL glossaries the fake knows: id → its language pair (`EN>DE`). */
  readonly glossaries = new Map<string, string>();
  /** Every answer this much later, as a provider across the internet would be (the benchmark's). */
  latencyMs = 0;
  #failures: (TranslationFailure & { left: number })[] = [];
  #gate: Promise<void> | null = null;
  #held: (call: RecordedTranslationCall) => boolean = () => true;
  #open = () => {};
  #waiting = 0;
  #server: Server<undefined> | null = null;
  #url = "";
  /** Keep every request in `calls` (the demo's in-process stand-in keeps none). */
  readonly #record: boolean;

  constructor(options: { record?: boolean } = {}) {
    this.#record = options.record !== false;
  }

  static async start(): Promise<FakeTranslation> {
    const fake = new FakeTranslation();
    fake.#server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (request) => {
        const answer = await fake.handle(request);
        return answer === DROPPED ? brokenResponse() : answer;
      },
    });
    fake.#url = `http://127.0.0.1:${fake.#server.port}`;
    return fake;
  }

  /** The server's base URL; a provider's `url` is `${url}/<provider>`. */
  get url(): string {
    return this.#url;
  }

  urlFor(provider: FakeProvider): string {
    return `${this.#url}/${provider}`;
  }

  /** A fetch that answers in process (no socket): for unit tests of the providers. */
  readonly fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const answer = await this.handle(input instanceof Request ? new Request(input, init) : new Request(String(input), init));
    if (answer === DROPPED) throw new TypeError("fetch failed: the fake dropped the connection");
    return answer;
  }) as typeof fetch;

  /** The next requests fail (see TranslationFailure). */
  fail(failure: TranslationFailure): void {
    this.#failures.push({ ...failure, left: failure.times ?? 1 });
  }

  /** Holds the answers (to the requests `which` picks, by default all) until `release()`; `waiting` tells how many are held. */
  hold(which: (call: RecordedTranslationCall) => boolean = () => true): void {
    this.#held = which;
    this.#gate ??= new Promise((resolve) => (this.#open = resolve));
  }

  release(): void {
    this.#gate = null;
    this.#open();
  }

  get waiting(): number {
    return this.#waiting;
  }

  /** Requests made to a provider (its translate calls unless `path` says otherwise). */
  callsOf(provider: FakeProvider): RecordedTranslationCall[] {
    return this.calls.filter((c) => c.provider === provider);
  }

  async stop(): Promise<void> {
    this.release();
    await this.#server?.stop(true);
  }

  /** One request; DROPPED for a scripted network failure. */
  async handle(request: Request): Promise<Response | typeof DROPPED> {
    const url = new URL(request.url);
    const [, prefix, ...rest] = url.pathname.split("/");
    const provider = prefix as FakeProvider;
    if (!["deepl", "google", "microsoft", "libretranslate", "llm"].includes(provider)) return new Response("not found", { status: 404 });
    const path = `/${rest.join("/")}`;
    const text = await request.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => {
      headers[name] = value;
    });
    const call = { provider, path, query: Object.fromEntries(url.searchParams), headers, body };
    if (this.#record) this.calls.push(call);
    if (this.latencyMs > 0) await Bun.sleep(this.latencyMs);
    if (this.#gate && this.#held(call)) {
      this.#waiting++;
      await this.#gate;
      this.#waiting--;
    }
    const failure = this.#failures.find((f) => f.left > 0 && (f.provider === undefined || f.provider === provider));
    if (failure) {
      failure.left--;
      if (failure.status === "network") return DROPPED;
      return errorAnswer(provider, failure.status, failure.retryAfter);
    }
    switch (provider) {
      case "deepl":
        return this.#deepl(path, headers, body);
      case "google":
        return google(path, url.searchParams, body);
      case "microsoft":
        return microsoft(path, url.searchParams, headers, body);
      case "libretranslate":
        return libre(path, body);
      case "llm":
        return llm(path, body);
    }
  }

  #deepl(path: string, headers: Record<string, string>, body: unknown): Response {
    if (path !== "/v2/translate") return Response.json({ message: "Not found" }, { status: 404 });
    if (!headers.authorization?.startsWith("DeepL-Auth-Key ")) return Response.json({ message: "Forbidden" }, { status: 403 });
    const b = body as { text?: unknown; target_lang?: unknown; source_lang?: unknown; tag_handling?: unknown; glossary_id?: unknown };
    if (!Array.isArray(b?.text) || b.text.some((t) => typeof t !== "string"))
      return Response.json({ message: "Parameter 'text' not specified." }, { status: 400 });
    const target = String(b.target_lang ?? "").toUpperCase();
    if (!DEEPL_TARGETS.has(target)) return Response.json({ message: "Value for 'target_lang' not supported." }, { status: 400 });
    const source = typeof b.source_lang === "string" ? b.source_lang.toUpperCase() : null;
    if (typeof b.glossary_id === "string") {
      if (!source) return Response.json({ message: "Use of a glossary requires the source_lang parameter to be set." }, { status: 400 });
      const pair = this.glossaries.get(b.glossary_id);
      if (pair !== `${source}>${target.split("-")[0]}`) return Response.json({ message: "Invalid glossary for this language pair." }, { status: 400 });
    }
    const html = b.tag_handling === "html" || b.tag_handling === "xml";
    const translations = (b.text as string[]).map((t) => {
      const done = html ? translateHtml(t, source, target) : translateText(t, source, target);
      return { detected_source_language: done.detected.toUpperCase(), text: done.text };
    });
    return Response.json({ translations });
  }
}

function google(path: string, query: URLSearchParams, body: unknown): Response {
  const key = query.get("key");
  if (!key) return googleError(403, "The request is missing a valid API key.", "forbidden", "PERMISSION_DENIED");
  if (key === "invalid") return googleError(400, "API key not valid. Please pass a valid API key.", "badRequest", "INVALID_ARGUMENT");
  const b = body as { q?: unknown; target?: unknown; source?: unknown; format?: unknown };
  const q = typeof b?.q === "string" ? [b.q] : Array.isArray(b?.q) ? (b.q as unknown[]).map(String) : null;
  if (!q) return googleError(400, "Required Text", "required", "INVALID_ARGUMENT");
  if (path === "/language/translate/v2/detect") {
    return Response.json({ data: { detections: q.map((t) => [{ language: detectLanguage(t).language, confidence: 0.9, isReliable: false }]) } });
  }
  if (path !== "/language/translate/v2") return googleError(404, "Not Found", "notFound", "NOT_FOUND");
  if (typeof b.target !== "string") return googleError(400, "Invalid Value", "invalid", "INVALID_ARGUMENT");
  const source = typeof b.source === "string" ? b.source : null;
  const html = b.format !== "text"; // Google's default format is html
  const translations = q.map((t) => {
    const done = html ? translateHtml(t, source, b.target as string) : translateText(t, source, b.target as string);
    // Google's HTML answers carry entities (an apostrophe as &#39;).
    const translatedText = html ? done.text.replace(/'/g, "&#39;") : done.text;
    return source ? { translatedText } : { translatedText, detectedSourceLanguage: done.detected };
  });
  return Response.json({ data: { translations } });
}

function googleError(code: number, message: string, reason: string, status: string): Response {
  return Response.json({ error: { code, message, errors: [{ message, domain: "global", reason }], status } }, { status: code });
}

function microsoft(path: string, query: URLSearchParams, headers: Record<string, string>, body: unknown): Response {
  const error = (status: number, code: number, message: string) => Response.json({ error: { code, message } }, { status });
  if (query.get("api-version") !== "3.0") return error(400, 400021, "The API version parameter is missing or invalid.");
  if (!headers["ocp-apim-subscription-key"]) return error(401, 401000, "The request is not authorized because credentials are missing or invalid.");
  if (!Array.isArray(body)) return error(400, 400074, "The body of the request is not valid JSON.");
  const texts = (body as { Text?: unknown; text?: unknown }[]).map((item) => String(item?.Text ?? item?.text ?? ""));
  if (path === "/detect") {
    return Response.json(
      texts.map((t) => ({ language: detectLanguage(t).language, score: 0.9, isTranslationSupported: true, isTransliterationSupported: false })),
    );
  }
  if (path !== "/translate") return error(404, 404001, "The requested resource was not found.");
  const to = query.get("to");
  if (!to) return error(400, 400036, "The target language is not valid.");
  const from = query.get("from");
  const html = query.get("textType") === "html";
  return Response.json(
    texts.map((t) => {
      const done = html ? translateHtml(t, from, to) : translateText(t, from, to);
      const translations = [{ text: done.text, to }];
      return from ? { translations } : { detectedLanguage: { language: done.detected, score: 0.9 }, translations };
    }),
  );
}

function libre(path: string, body: unknown): Response {
  const b = body as { q?: unknown; source?: unknown; target?: unknown; format?: unknown; api_key?: unknown };
  if (b?.api_key === "bad") return Response.json({ error: "Invalid API key" }, { status: 403 });
  if (b?.q === undefined) return Response.json({ error: "Invalid request: missing q parameter" }, { status: 400 });
  const batch = Array.isArray(b.q);
  const q = (batch ? (b.q as unknown[]) : [b.q]).map(String);
  if (path === "/detect") return Response.json(q.map((t) => ({ confidence: detectLanguage(t).confidence, language: detectLanguage(t).language })));
  if (path !== "/translate") return Response.json({ error: "Not Found" }, { status: 404 });
  if (typeof b.source !== "string") return Response.json({ error: "Invalid request: missing source parameter" }, { status: 400 });
  if (typeof b.target !== "string") return Response.json({ error: "Invalid request: missing target parameter" }, { status: 400 });
  const source = b.source === "auto" ? null : b.source;
  const done = q.map((t) => (b.format === "html" ? translateHtml(t, source, b.target as string) : translateText(t, source, b.target as string)));
  const detected = done.map((d) => ({ confidence: 90.0, language: d.detected }));
  const answer: Record<string, unknown> = { translatedText: batch ? done.map((d) => d.text) : done[0]!.text };
  if (source === null) answer.detectedLanguage = batch ? detected : detected[0];
  return Response.json(answer);
}

function llm(path: string, body: unknown): Response {
  if (path !== "/chat/completions") return Response.json({ error: { message: "Not found", type: "invalid_request_error", code: null } }, { status: 404 });
  const messages = (body as { messages?: { role?: string; content?: unknown }[] })?.messages ?? [];
  const last = messages.filter((m) => m.role === "user").at(-1);
  let request: { source?: string | null; target?: string; format?: string; texts?: string[] } | null = null;
  try {
    request = JSON.parse(String(last?.content));
  } catch {
    request = null;
  }
  const answer = (content: string) =>
    Response.json({ id: "chatcmpl-fake", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }] });
  if (!request || !Array.isArray(request.texts) || typeof request.target !== "string") return answer("Sorry, I can only translate.");
  const done = request.texts.map((t) =>
    request.format === "html" ? translateHtml(t, request.source ?? null, request.target!) : translateText(t, request.source ?? null, request.target!),
  );
  return answer(JSON.stringify({ translations: done.map((d) => d.text), languages: done.map((d) => d.detected) }));
}

/** A scripted failure in the provider's own error shape. */
function errorAnswer(provider: FakeProvider, status: number, retryAfter?: number): Response {
  const headers = retryAfter !== undefined ? { "retry-after": String(retryAfter) } : undefined;
  const message =
    status === 456 ? "Quota exceeded" : status === 429 ? "Too many requests" : status >= 500 ? "Internal error" : status === 403 ? "Forbidden" : "Bad request";
  const body =
    provider === "deepl"
      ? { message }
      : provider === "google"
        ? {
            error: {
              code: status,
              message,
              errors: [{ message, domain: "global", reason: status === 429 ? "rateLimitExceeded" : "backendError" }],
              status: "UNAVAILABLE",
            },
          }
        : provider === "microsoft"
          ? { error: { code: status * 1000, message } }
          : provider === "libretranslate"
            ? { error: status === 429 ? `Slowdown: ${message}` : message }
            : { error: { message, type: "server_error", code: null } };
  return Response.json(body, { status, headers });
}
