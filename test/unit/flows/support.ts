/** A tiny local HTTP server standing in for an agent or an LLM API, and a sample flow input. */
import type { Server } from "bun";
import type { FlowContext } from "../../../src/flows/flow.ts";
import type { FlowInput } from "../../../src/flows/schema.ts";
import { collectingLogger } from "../../helpers/index.ts";

export interface SeenRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface AgentServer {
  readonly url: string;
  /** Requests received, in order (read inside the handler: a Request is unusable afterwards). */
  readonly seen: SeenRequest[];
  /** How the next requests are answered. */
  answer: (request: Request) => Response | Promise<Response>;
  /** Resolves when the next request has arrived. */
  nextRequest(): Promise<SeenRequest>;
  stop(): void;
}

export function startAgentServer(answer: AgentServer["answer"] = () => Response.json({})): AgentServer {
  const waiting: ((r: SeenRequest) => void)[] = [];
  const state: { seen: SeenRequest[]; answer: AgentServer["answer"] } = { seen: [], answer };
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      const seen: SeenRequest = {
        method: request.method,
        path: new URL(request.url).pathname,
        headers: Object.fromEntries(request.headers),
        body: await request.text(),
      };
      state.seen.push(seen);
      for (const resolve of waiting.splice(0)) resolve(seen);
      return state.answer(request);
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    get seen() {
      return state.seen;
    },
    get answer() {
      return state.answer;
    },
    set answer(a) {
      state.answer = a;
    },
    nextRequest: () => new Promise((resolve) => waiting.push(resolve)),
    stop: () => void server.stop(true),
  };
}

/** An answer that never comes: held until the client gives up. */
export const never = (request: Request): Promise<Response> =>
  new Promise((resolve) => request.signal.addEventListener("abort", () => resolve(new Response("too late"))));

/** A URL on which nothing listens. */
export function closedUrl(): string {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const url = `http://127.0.0.1:${server.port}`;
  server.stop(true);
  return url;
}

export function flowContext(signal: AbortSignal = new AbortController().signal): FlowContext {
  return { signal, log: collectingLogger().log };
}

export function sampleInput(overrides: Partial<FlowInput> = {}): FlowInput {
  return {
    endpoint_id: "support",
    page_id: "104857600012345",
    user_id: "6301234567890123",
    contact_id: "c_1",
    session_id: "s_1",
    source: "user",
    text: "hello",
    data: { request: { message: { mid: "m_1", text: "hello" } } },
    context: {},
    contact: {},
    locale: "en",
    language: "en",
    nlu: null,
    handover: null,
    ...overrides,
  };
}

/** Runs `fn` and returns what it threw; fails the test when it did not throw. */
export async function thrown(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}
