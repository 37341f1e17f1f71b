/**
 * A stand-in for NLU services (docs/nlu.md), on 127.0.0.1 like the fake Graph API, for the tests,
 * the benchmark and the demo. It understands by rules (rules.ts) and speaks three shapes:
 *
 * - `POST /parse`: the `http` connector's service: `{ text, language, … }` → `{ intent, score,
 *   entities: [{ type, value, start, end }], ranking: [{ intent, score }] }`;
 * - `POST /model/parse`: a Rasa server's: `{ text, message_id }` → `{ text, intent: { name,
 *   confidence }, entities: [{ entity, value, start, end, extractor }], intent_ranking }`, with
 *   `nlu_fallback` (confidence 0.3) when no rule matches, as Rasa's FallbackClassifier answers, and
 *   Rasa's error bodies (`{ status: "failure", reason, message, code }`);
 * - `POST /v1/chat/completions`: an OpenAI-compatible chat completions API for the `llm`
 *   connector: the rules applied to the last user message, answered as the JSON object the
 *   connector asks for (limited to the intents of the `response_format` schema when it sends one),
 *   with OpenAI's error bodies; it can refuse `response_format` like a server that does not
 *   support it (`refuse`).
 *
 * With `token` set, `/parse` and chat completions want `Authorization: Bearer <token>` and
 * `/model/parse` wants `?token=<token>` (401 otherwise). Every request is recorded; failures can be
 * scripted (`failNext`): an HTTP status, a slow answer, a body that is not JSON, another answer.
 */
import type { Server } from "bun";
import { DEMO_ENTITIES, DEMO_INTENTS, understand, type EntityRule, type IntentRule } from "./rules.ts";

export interface FakeNluOptions {
  intents?: IntentRule[];
  entities?: EntityRule[];
  /** The key each shape wants (see above); none: no check. */
  token?: string;
  /** response_format types the chat completions refuse with a 400, as servers without them do. */
  refuse?: ("json_schema" | "json_object")[];
  /** Keep every request in `requests` (default true; the demo's in-process stand-in keeps none). */
  record?: boolean;
}

export type FakeNluFailure =
  /** This status, with this body (default: the shape's error body). */
  | { status: number; body?: unknown }
  /** The normal answer, after this long (Infinity: until `releaseHeld()`, or the client gives up). */
  | { delayMs: number }
  /** 200 with a body that is not JSON. */
  | { malformed: true }
  /** 200 with this JSON body instead. */
  | { answer: unknown }
  /** Chat completions: a completion whose message content is this text. */
  | { content: string };

export interface FakeNluRequest {
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
}

type Shape = "http" | "rasa" | "chat";

export class FakeNlu {
  readonly requests: FakeNluRequest[] = [];
  /** Every answer this much later, as a service across the internet would be (the benchmark's). */
  latencyMs = 0;
  readonly #options: FakeNluOptions;
  #failures: { failure: FakeNluFailure; shape?: Shape; remaining: number }[] = [];
  readonly #waiting: ((r: FakeNluRequest) => void)[] = [];
  readonly #holds = new Set<(elapsed: boolean) => void>();
  #server: Server<undefined> | null = null;
  #completions = 0;

  private constructor(options: FakeNluOptions) {
    this.#options = options;
  }

  /** The same answers in process, without a socket (the demo's stand-in: simulator/stand-ins.ts). */
  static inProcess(options: FakeNluOptions = {}): FakeNlu {
    return new FakeNlu(options);
  }

  /** Answers one request in process. */
  handle(request: Request): Promise<Response> {
    return this.#answer(request);
  }

  static start(options: FakeNluOptions = {}): FakeNlu {
    const fake = new FakeNlu(options);
    fake.#server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => fake.#answer(request) });
    return fake;
  }

  /** `http://127.0.0.1:PORT`: the `http` connector's url is `${url}/parse`, Rasa's is the url itself, the LLM's `${url}/v1`. */
  get url(): string {
    return `http://127.0.0.1:${this.#server!.port}`;
  }

  /** The next request(s) of this shape (any when not given) fail this way; first in, first out. */
  failNext(failure: FakeNluFailure, options: { shape?: Shape; times?: number } = {}): void {
    this.#failures.push({ failure, shape: options.shape, remaining: options.times ?? 1 });
  }

  /** Resolves when the next request has arrived. */
  nextRequest(): Promise<FakeNluRequest> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Scripted failures forgotten, requests cleared. */
  reset(): void {
    this.#failures = [];
    this.requests.splice(0);
  }

  /** Answers held by a `delayMs` failure are given now, as if their time had come. */
  releaseHeld(): void {
    for (const release of [...this.#holds]) release(true);
  }

  stop(): void {
    for (const release of [...this.#holds]) release(false);
    this.#server?.stop(true);
  }

  async #answer(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const text = await request.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // recorded as the text it was
    }
    const seen = { path: url.pathname, query: Object.fromEntries(url.searchParams), headers: Object.fromEntries(request.headers), body };
    if (this.#options.record !== false) this.requests.push(seen);
    for (const resolve of this.#waiting.splice(0)) resolve(seen);
    if (this.latencyMs > 0) await Bun.sleep(this.latencyMs);
    const shape: Shape | null =
      request.method !== "POST"
        ? null
        : url.pathname === "/parse"
          ? "http"
          : url.pathname.endsWith("/model/parse")
            ? "rasa"
            : url.pathname.endsWith("/chat/completions")
              ? "chat"
              : null;
    if (!shape) return Response.json({ error: `no route ${request.method} ${url.pathname}` }, { status: 404 });
    const token = this.#options.token;
    if (token) {
      const given = shape === "rasa" ? url.searchParams.get("token") : request.headers.get("authorization")?.replace(/^Bearer /, "");
      if (given !== token) return errorBody(shape, 401);
    }
    const index = this.#failures.findIndex((f) => f.shape === undefined || f.shape === shape);
    const scripted = index >= 0 ? this.#failures[index]! : null;
    if (scripted && --scripted.remaining <= 0) this.#failures.splice(index, 1);
    const failure = scripted?.failure;
    if (failure && "status" in failure)
      return failure.body === undefined ? errorBody(shape, failure.status) : Response.json(failure.body, { status: failure.status });
    if (failure && "malformed" in failure) return new Response('{"intent": "gre', { headers: { "content-type": "application/json" } });
    if (failure && "answer" in failure) return Response.json(failure.answer);
    if (failure && "delayMs" in failure && !(await this.#hold(failure.delayMs, request.signal))) return new Response("too late", { status: 499 });
    const fields = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
    if (shape === "chat") return this.#completion(fields, failure && "content" in failure ? failure.content : undefined);
    if (typeof fields.text !== "string") return errorBody(shape, 400);
    const found = understand(fields.text, this.#options.intents ?? DEMO_INTENTS, this.#options.entities ?? DEMO_ENTITIES);
    if (shape === "http") return Response.json(found);
    return Response.json({
      text: fields.text,
      intent: found.intent ? { name: found.intent, confidence: found.score } : { name: "nlu_fallback", confidence: 0.3 },
      entities: found.entities.map((e) => ({ entity: e.type, start: e.start, end: e.end, value: e.value, extractor: "RegexEntityExtractor" })),
      intent_ranking: found.ranking.slice(0, 10).map((r) => ({ name: r.intent, confidence: r.score })),
    });
  }

  #completion(body: Record<string, unknown>, content: string | undefined): Response {
    const format = (body.response_format as { type?: unknown; json_schema?: { schema?: any } } | undefined) ?? {};
    if (typeof format.type === "string" && (this.#options.refuse as string[] | undefined)?.includes(format.type)) {
      const message = `Invalid parameter: 'response_format' of type '${format.type}' is not supported with this model.`;
      return Response.json({ error: { message, type: "invalid_request_error", param: "response_format", code: null } }, { status: 400 });
    }
    if (content === undefined) {
      const messages = Array.isArray(body.messages) ? (body.messages as { role?: unknown; content?: unknown }[]) : [];
      const said = messages.findLast((m) => m.role === "user")?.content;
      const found = understand(typeof said === "string" ? said : "", this.#options.intents ?? DEMO_INTENTS, this.#options.entities ?? DEMO_ENTITIES);
      // Only what the schema allows, when there is one: a model held to an enum cannot leave it.
      const allowed: unknown = format.json_schema?.schema?.properties?.intent?.anyOf?.[0]?.enum;
      const ranked = Array.isArray(allowed) ? found.ranking.filter((r) => allowed.includes(r.intent)) : found.ranking;
      const types: unknown = format.json_schema?.schema?.properties?.entities?.items?.properties?.type?.enum;
      const entities = Array.isArray(types) ? found.entities.filter((e) => types.includes(e.type)) : found.entities;
      content = JSON.stringify({
        intent: ranked[0]?.intent ?? null,
        score: ranked[0]?.score ?? 0,
        entities: entities.map((e) => ({ type: e.type, value: e.value })),
      });
    }
    return Response.json({
      id: `chatcmpl-fake-${++this.#completions}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: typeof body.model === "string" ? body.model : "fake-model",
      choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, finish_reason: "stop" }],
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    });
  }

  /** Waits `ms` (true), or until the client gives up or the fake stops (false). */
  #hold(ms: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const finish = (elapsed: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.#holds.delete(release);
        resolve(elapsed);
      };
      const release = (elapsed: boolean) => finish(elapsed);
      const onAbort = () => finish(false);
      const timer = Number.isFinite(ms) ? setTimeout(() => finish(true), ms) : undefined;
      this.#holds.add(release);
      if (signal.aborted) finish(false);
      else signal.addEventListener("abort", onAbort);
    });
  }
}

/** Each shape's error body for a status. */
function errorBody(shape: Shape, status: number): Response {
  if (shape === "rasa") {
    const [reason, message] =
      status === 401
        ? ["NotAuthenticated", "User is not authenticated."]
        : status === 400
          ? ["BadRequest", "No text message defined in request_body. Add text to request body in order to obtain the intent and extracted entities."]
          : status === 409
            ? ["Conflict", "No agent loaded. To continue processing, a model of a trained agent needs to be loaded."]
            : ["ParsingError", "An unexpected error occurred. Error: the fake NLU was told to fail"];
    return Response.json({ version: "3.6.20", status: "failure", message, reason, details: {}, help: null, code: status }, { status });
  }
  if (shape === "chat") {
    const [type, code, message] =
      status === 401
        ? ["invalid_request_error", "invalid_api_key", "Incorrect API key provided."]
        : status === 429
          ? ["requests", "rate_limit_exceeded", "Rate limit reached for requests."]
          : status >= 500
            ? ["server_error", null, "The server had an error while processing your request."]
            : ["invalid_request_error", null, "Invalid request."];
    return Response.json({ error: { message, type, param: null, code } }, { status });
  }
  const error = status === 401 ? "unauthorized" : status === 400 ? "text is required" : "the fake NLU was told to fail";
  return Response.json({ error }, { status });
}
