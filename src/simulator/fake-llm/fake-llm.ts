/**
 * A stand-in for an OpenAI-compatible chat completions API, on 127.0.0.1 like the fake NLU
 * (fake-nlu/fake-nlu.ts), for the `llm` flow's tests (src/flows/llm.ts, llm-tools.ts):
 * `POST /v1/chat/completions` (also `/chat/completions`, and Azure OpenAI's
 * `/openai/deployments/{name}/chat/completions?api-version=…`) takes `{ model, messages, tools? }` and
 * answers a `chat.completion`: `choices[0].message` with `content`, or with `tool_calls`
 * (`[{ id, type: "function", function: { name, arguments } }]`, `arguments` a JSON string, and
 * `finish_reason: "tool_calls"`), and `usage` (`prompt_tokens`, `completion_tokens`, `total_tokens`).
 *
 * What it answers is scripted per test: a queue of answers (`answer`), then a function of the
 * request (`respond`). It checks the conversation as OpenAI does (400 with OpenAI's error body):
 * every assistant message with `tool_calls` followed by one `role: "tool"` message per call id,
 * and no tool message without such a call. It can
 * answer an error status (429 with `Retry-After`, 5xx), hang until the client gives up, or hold an
 * answer until a promise of the test resolves (a slow model). Every request is recorded.
 */
import type { Server } from "bun";

export interface FakeLlmToolCall {
  name: string;
  /** An object (sent as its JSON), or a string sent as it is (to send arguments that are not JSON). */
  arguments: unknown;
  /** Default `call_<n>`. */
  id?: string;
}

export type FakeLlmAnswer =
  | { content: string; usage?: { prompt_tokens: number; completion_tokens: number } }
  | { tool_calls: FakeLlmToolCall[]; content?: string; usage?: { prompt_tokens: number; completion_tokens: number } }
  /** This status with OpenAI's error body; `retryAfter` as the `Retry-After` header (seconds, or a string such as an HTTP date). */
  | { status: number; retryAfter?: number | string }
  /** No answer until the client gives up or the fake stops. */
  | { hang: true }
  /** `answer`, once `after` has settled (a slow model: the test decides when it answers); nothing if the client gives up first. */
  | { after: Promise<unknown>; answer: FakeLlmAnswer };

export interface FakeLlmMessage {
  role: string;
  content?: unknown;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

export interface FakeLlmRequest {
  path: string;
  /** The query string, with its `?` (or ""). */
  query: string;
  headers: Record<string, string>;
  body: {
    model?: unknown;
    messages: FakeLlmMessage[];
    tools?: { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
    [key: string]: unknown;
  };
}

export class FakeLlm {
  readonly requests: FakeLlmRequest[] = [];
  /** How requests are answered once the queue (`answer`) is empty. */
  respond: (request: FakeLlmRequest) => FakeLlmAnswer = (r) => ({ content: `You said: ${lastUserText(r)}` });
  readonly #queue: FakeLlmAnswer[] = [];
  readonly #waiting: ((r: FakeLlmRequest) => void)[] = [];
  readonly #hung = new Set<() => void>();
  readonly #server: Server<undefined>;
  #ids = 0;

  private constructor(readonly token?: string) {
    this.#server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => this.#answer(request) });
  }

  /** With `token`, requests need `Authorization: Bearer <token>` or, as Azure OpenAI takes it, `api-key: <token>` (401 otherwise). */
  static start(options: { token?: string } = {}): FakeLlm {
    return new FakeLlm(options.token);
  }

  /** `http://127.0.0.1:PORT/v1`: the `llm` flow's `url`. */
  get url(): string {
    return `http://127.0.0.1:${this.#server.port}/v1`;
  }

  /** The next requests are answered these ways, in order. */
  answer(...answers: FakeLlmAnswer[]): void {
    this.#queue.push(...answers);
  }

  /** Resolves when the next request has arrived. */
  nextRequest(): Promise<FakeLlmRequest> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Queue and requests cleared, the default answer back. */
  reset(): void {
    this.#queue.splice(0);
    this.requests.splice(0);
    this.respond = (r) => ({ content: `You said: ${lastUserText(r)}` });
  }

  stop(): void {
    for (const release of [...this.#hung]) release();
    this.#server.stop(true);
  }

  async #answer(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.method !== "POST" || !/^(\/v1)?(\/openai\/deployments\/[^/]+)?\/chat\/completions$/.test(url.pathname)) {
      return Response.json(
        { error: { message: `Unknown request URL: ${request.method} ${url.pathname}`, type: "invalid_request_error", code: "unknown_url" } },
        { status: 404 },
      );
    }
    let body: FakeLlmRequest["body"];
    try {
      body = JSON.parse(await request.text());
    } catch {
      return failure(400, "We could not parse the JSON body of your request.");
    }
    const seen: FakeLlmRequest = { path: url.pathname, query: url.search, headers: Object.fromEntries(request.headers), body };
    this.requests.push(seen);
    for (const resolve of this.#waiting.splice(0)) resolve(seen);
    if (this.token && request.headers.get("authorization") !== `Bearer ${this.token}` && request.headers.get("api-key") !== this.token) {
      return failure(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
    }
    if (typeof body?.model !== "string" || !Array.isArray(body.messages)) return failure(400, "you must provide a model parameter and messages");
    const wrong = conversationProblem(body.messages);
    if (wrong) return failure(400, wrong);

    let answer = this.#queue.shift() ?? this.respond(seen);
    while ("after" in answer) {
      const held = answer;
      // Released by the promise, or given up by the client (or the fake's stop) first.
      const gaveUp = await new Promise<boolean>((resolve) => {
        const end = (gave: boolean) => () => {
          this.#hung.delete(giveUp);
          request.signal.removeEventListener("abort", giveUp);
          resolve(gave);
        };
        const giveUp = end(true);
        this.#hung.add(giveUp);
        request.signal.addEventListener("abort", giveUp, { once: true });
        held.after.then(end(false), end(false));
      });
      if (gaveUp) return new Response("gave up", { status: 499 });
      answer = held.answer;
    }
    if ("hang" in answer) {
      await new Promise<void>((resolve) => {
        const release = () => {
          this.#hung.delete(release);
          resolve();
        };
        this.#hung.add(release);
        request.signal.addEventListener("abort", release, { once: true });
      });
      return new Response("gave up", { status: 499 });
    }
    if ("status" in answer) {
      const [type, code, message] =
        answer.status === 429
          ? ["requests", "rate_limit_exceeded", "Rate limit reached for requests."]
          : answer.status >= 500
            ? ["server_error", null, "The server had an error while processing your request."]
            : ["invalid_request_error", null, "Invalid request."];
      const headers = answer.retryAfter === undefined ? undefined : { "retry-after": String(answer.retryAfter) };
      return failure(answer.status, message, type, code, headers);
    }
    // Whatever names the script gives: a real model may call a tool the request does not offer.
    const calls = "tool_calls" in answer ? answer.tool_calls : [];
    const message: Record<string, unknown> = { role: "assistant", content: answer.content ?? null, refusal: null };
    if (calls.length > 0) {
      message.tool_calls = calls.map((c) => ({
        id: c.id ?? `call_${++this.#ids}`,
        type: "function",
        function: { name: c.name, arguments: typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments ?? {}) },
      }));
    }
    const usage = answer.usage ?? {
      prompt_tokens: Math.ceil(JSON.stringify(body.messages).length / 4),
      completion_tokens: Math.ceil(JSON.stringify(message).length / 4),
    };
    return Response.json({
      id: `chatcmpl-fake-${++this.#ids}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [{ index: 0, message, finish_reason: calls.length > 0 ? "tool_calls" : "stop" }],
      usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
    });
  }
}

/** The text of the request's last user message. */
export function lastUserText(request: FakeLlmRequest): string {
  const said = request.body.messages.findLast((m) => m.role === "user")?.content;
  return typeof said === "string" ? said : "";
}

/** What OpenAI refuses about the order of tool calls and their results, or null. */
function conversationProblem(messages: FakeLlmMessage[]): string | null {
  let open = new Set<string>();
  for (const [i, m] of messages.entries()) {
    if (m.role === "tool") {
      if (!m.tool_call_id || !open.delete(m.tool_call_id)) {
        return `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls' (messages[${i}])`;
      }
      continue;
    }
    if (open.size > 0) {
      return `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...open].join(", ")}`;
    }
    open = new Set((m.role === "assistant" ? (m.tool_calls ?? []) : []).map((c) => c.id));
  }
  return open.size > 0 ? `tool_call_ids without response messages: ${[...open].join(", ")}` : null;
}

function failure(status: number, message: string, type = "invalid_request_error", code: string | null = null, headers?: Record<string, string>): Response {
  return Response.json({ error: { message, type, param: null, code } }, { status, headers });
}
