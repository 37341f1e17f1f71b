/**
 * A scripted Graph API for unit tests: a real GraphClient (src/messenger/graph.ts) whose `fetch`
 * is answered in process. Every call is recorded; the next answer per edge can be scripted (an
 * error envelope, a network failure, an unreadable 200) or held until the test releases it.
 * Unscripted calls succeed.
 */
import { GraphClient } from "../../src/messenger/graph.ts";

export interface StubCall {
  method: string;
  /** The last segment of the path: messages, pass_thread_control, take_thread_control, thread_owner. */
  edge: string;
  query: Record<string, string>;
  body: any;
}

export type StubAnswer =
  /** HTTP status and JSON body (default 200 with what Graph answers). */
  | { status?: number; body?: unknown }
  /** Graph's error envelope with this code (HTTP 400 unless given). */
  | { code: number; subcode?: number; message?: string; status?: number }
  /** No answer: the request certainly never left ("refused"), or its fate is unknown ("lost", "timeout"). */
  | { network: "refused" | "lost" | "timeout" }
  /** A 200 whose body is not JSON. */
  | { garbled: true };

export class StubGraph {
  readonly calls: StubCall[] = [];
  readonly client: GraphClient;
  /** The app owning each user's thread, for `thread_owner` (default: none). */
  readonly owners = new Map<string, string>();
  readonly #scripted = new Map<string, (StubAnswer | Promise<StubAnswer>)[]>();
  readonly #listeners = new Set<() => void>();
  #mids = 0;

  constructor() {
    this.client = new GraphClient({
      url: "https://graph.invalid",
      version: "v23.0",
      timeoutMs: 10_000,
      fetch: ((url: string, init: RequestInit) => this.#answer(url, init)) as typeof fetch,
    });
  }

  /** The next call to `edge` gets this answer (answers queue up per edge). */
  answer(edge: string, answer: StubAnswer): void {
    this.#queue(edge).push(answer);
  }

  /** The next call to `edge` is answered only when `release` is called (with a success unless told). */
  hold(edge: string): { release(answer?: StubAnswer): void } {
    let release!: (answer: StubAnswer) => void;
    this.#queue(edge).push(new Promise<StubAnswer>((resolve) => (release = resolve)));
    return { release: (answer = {}) => release(answer) };
  }

  /** The calls made to `edge` (messages: the messages only, not sender actions, unless `actions`). */
  to(edge: string, options: { actions?: boolean } = {}): StubCall[] {
    return this.calls.filter((c) => c.edge === edge && (edge !== "messages" || options.actions === true || c.body?.sender_action === undefined));
  }

  /** The texts of the messages sent, in order. */
  texts(): string[] {
    return this.to("messages").map((c) => c.body?.message?.text);
  }

  /** Resolves once `count` calls match (already made, or made later). */
  waitFor(match: (call: StubCall) => boolean, count = 1): Promise<StubCall[]> {
    return new Promise((resolve) => {
      const check = () => {
        const found = this.calls.filter(match);
        if (found.length < count) return false;
        this.#listeners.delete(listener);
        resolve(found);
        return true;
      };
      const listener = () => void check();
      if (!check()) this.#listeners.add(listener);
    });
  }

  /** Resolves once `count` messages (not sender actions) were sent. */
  messages(count: number): Promise<StubCall[]> {
    return this.waitFor((c) => c.edge === "messages" && c.body?.sender_action === undefined, count);
  }

  #queue(edge: string): (StubAnswer | Promise<StubAnswer>)[] {
    let queue = this.#scripted.get(edge);
    if (!queue) this.#scripted.set(edge, (queue = []));
    return queue;
  }

  async #answer(url: string, init: RequestInit): Promise<Response> {
    const parsed = new URL(url);
    const edge = parsed.pathname.split("/").at(-1)!;
    const query = Object.fromEntries(parsed.searchParams);
    const call: StubCall = { method: init.method ?? "GET", edge, query, body: typeof init.body === "string" ? JSON.parse(init.body) : undefined };
    this.calls.push(call);
    for (const listener of [...this.#listeners]) listener();
    const scripted = this.#scripted.get(edge)?.shift();
    const answer = scripted === undefined ? {} : await scripted;
    if ("network" in answer) {
      if (answer.network === "timeout") throw Object.assign(new Error("The operation timed out."), { name: "TimeoutError" });
      throw Object.assign(new Error(answer.network === "refused" ? "connect ECONNREFUSED" : "socket connection was closed unexpectedly"), {
        code: answer.network === "refused" ? "ECONNREFUSED" : "ECONNRESET",
      });
    }
    if ("garbled" in answer) return new Response("<html>", { status: 200 });
    if ("code" in answer) {
      const error = {
        message: answer.message ?? `error ${answer.code}`,
        type: "OAuthException",
        code: answer.code,
        error_subcode: answer.subcode,
        fbtrace_id: "Atrace",
      };
      return Response.json({ error }, { status: answer.status ?? 400 });
    }
    return Response.json(answer.body ?? this.#success(call), { status: answer.status ?? 200 });
  }

  #success(call: StubCall): unknown {
    if (call.edge === "messages") return { recipient_id: call.body?.recipient?.id, ...(call.body?.sender_action ? {} : { message_id: `m_${++this.#mids}` }) };
    if (call.edge === "thread_owner") {
      const owner = this.owners.get(call.query.recipient ?? "");
      return { data: owner ? [{ thread_owner: { app_id: owner } }] : [] };
    }
    return { success: true };
  }
}
