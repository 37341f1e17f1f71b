import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import {
  GraphApiError,
  GraphClient,
  GraphNetworkError,
  GraphUnreadableAnswer,
  appSecretProof,
  isGraphError,
  type PageCredentials,
} from "../../../src/messenger/graph.ts";
import { FakeGraph } from "../../../src/simulator/fake-graph.ts";

const PAGE = "104857600012345";
const PAGE_PROOF = "104857600067890";
const TOKEN = "EAAtestPageToken123";
const TOKEN_PROOF = "EAAproofPageToken456";
const SECRET = "test_app_secret_0123";
const PSID = "6301234567890123";
const VECTOR = "f05e1b92713dcd54355c00f9ad26ef9b180c43d47b28ed44174ea72852ee9ee6";

const page: PageCredentials = { pageId: PAGE, accessToken: TOKEN };
const pageWithSecret: PageCredentials = { pageId: PAGE, accessToken: TOKEN, appSecret: SECRET };
const textBody = (text = "hello") => ({ recipient: { id: PSID }, messaging_type: "RESPONSE", message: { text } });

/** Runs `fn` and returns what it threw; fails the test when it did not throw. */
async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

let graph: FakeGraph;
beforeAll(async () => {
  graph = await FakeGraph.start({
    pages: [
      { id: PAGE, token: TOKEN, appSecret: SECRET },
      { id: PAGE_PROOF, token: TOKEN_PROOF, appSecret: SECRET, requireProof: true },
    ],
  });
});
afterAll(() => graph.stop());
afterEach(() => graph.reset());

const client = (options: { version?: string; timeoutMs?: number; url?: string } = {}) =>
  new GraphClient({ url: options.url ?? graph.url, version: options.version ?? "v26.0", timeoutMs: options.timeoutMs ?? 5000 });

describe("appsecret_proof", () => {
  test("matches a known test vector of appsecret_proof", () => {
    expect(appSecretProof("test_app_secret_0123", "EAAtestPageToken123")).toBe(VECTOR);
  });
});

describe("GraphClient against the fake Graph API", () => {
  test("send: POST /{version}/{pageId}/messages with the token; the answer is returned", async () => {
    const result = await client().send(page, textBody());
    expect(result.recipient_id).toBe(PSID);
    expect(result.message_id).toMatch(/^m_/);
    const [call] = graph.calls;
    expect(call).toMatchObject({ method: "POST", path: `/v26.0/${PAGE}/messages`, pageId: PAGE, status: 200 });
    expect(call!.query.access_token).toBe(TOKEN);
    expect(call!.query.appsecret_proof).toBeUndefined();
    expect(call!.body).toEqual(textBody());
    expect(graph.sends()).toHaveLength(1);
    expect(graph.sends()[0]).toMatchObject({ pageId: PAGE, recipientId: PSID, message: { text: "hello" }, messagingType: "RESPONSE" });
  });

  test("the version and a trailing slash of the base URL are handled", async () => {
    await client({ url: `${graph.url}//`, version: "v25.0" }).send(page, textBody());
    expect(graph.calls[0]!.path).toBe(`/v25.0/${PAGE}/messages`);
  });

  test("with the app secret known: a correct appsecret_proof is sent", async () => {
    await client().send(pageWithSecret, textBody());
    expect(graph.calls[0]!.query.appsecret_proof).toBe(VECTOR);
    expect(graph.sends()).toHaveLength(1);
  });

  test("a Page that requires the proof accepts the client's proof, and rejects calls without it", async () => {
    await client().send({ pageId: PAGE_PROOF, accessToken: TOKEN_PROOF, appSecret: SECRET }, textBody());
    expect(graph.sends({ pageId: PAGE_PROOF })).toHaveLength(1);
    const error = await thrown(() => client().send({ pageId: PAGE_PROOF, accessToken: TOKEN_PROOF }, textBody()));
    expect(error).toBeInstanceOf(GraphApiError);
    expect(error).toMatchObject({ status: 400, code: 100, type: "GraphMethodException" });
  });

  test("a wrong app secret gives a wrong proof: code 100", async () => {
    const error = await thrown(() => client().send({ ...page, appSecret: "not-the-secret" }, textBody()));
    expect(error).toMatchObject({ code: 100, message: "Invalid appsecret_proof provided in the API argument" });
  });

  test("a Graph error envelope becomes a GraphApiError with all its fields", async () => {
    graph.failNext({ code: 551, subcode: 1545041 });
    const error = (await thrown(() => client().send(page, textBody()))) as GraphApiError;
    expect(error).toBeInstanceOf(GraphApiError);
    expect(isGraphError(error)).toBe(true);
    expect(error.name).toBe("GraphApiError");
    expect(error.status).toBe(400);
    expect(error.code).toBe(551);
    expect(error.subcode).toBe(1545041);
    expect(error.type).toBe("OAuthException");
    expect(error.fbtraceId).toMatch(/^A[\w-]+$/);
    expect(error.message).toBe("(#551) This person isn't available right now.");
    expect(error.isTransient).toBe(false);
    const response = graph.calls[0]!.response as { error: { fbtrace_id: string } };
    expect(error.fbtraceId).toBe(response.error.fbtrace_id);
  });

  test("is_transient is read from the envelope", async () => {
    graph.failNext({ code: 4, status: 400 });
    const error = (await thrown(() => client().send(page, textBody()))) as GraphApiError;
    expect(error).toMatchObject({ code: 4, isTransient: true });
    graph.failNext({ code: 613, isTransient: false });
    expect(await thrown(() => client().send(page, textBody()))).toMatchObject({ code: 613, isTransient: false });
  });

  test("the status of a 5xx envelope is kept", async () => {
    graph.failNext({ code: 2, status: 503 });
    expect(await thrown(() => client().send(page, textBody()))).toMatchObject({ status: 503, code: 2, subcode: undefined });
  });

  test("an invalid token: 190", async () => {
    const error = await thrown(() => client().send({ pageId: PAGE, accessToken: "EAAwrong" }, textBody()));
    expect(error).toMatchObject({ code: 190 });
  });

  test("a body Graph rejects comes back as code 100 with Graph's message", async () => {
    const error = await thrown(() => client().send(page, { recipient: { id: PSID }, messaging_type: "RESPONSE", message: { text: "x".repeat(2001) } }));
    expect(error).toMatchObject({ code: 100 });
    expect((error as Error).message).toContain("message[text]");
  });

  test("a scripted network error is a GraphNetworkError, not timed out", async () => {
    graph.failNext({ networkError: true });
    const error = await thrown(() => client().send(page, textBody()));
    expect(error).toBeInstanceOf(GraphNetworkError);
    expect((error as GraphNetworkError).timedOut).toBe(false);
  });

  test("an answer slower than timeoutMs is a GraphNetworkError, timed out", async () => {
    graph.failNext({ timeoutMs: 30_000 });
    const started = performance.now();
    const error = await thrown(() => client({ timeoutMs: 150 }).send(page, textBody()));
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(GraphNetworkError);
    expect((error as GraphNetworkError).timedOut).toBe(true);
    expect((error as Error).message).toContain("150 ms");
    expect(elapsed).toBeLessThan(10_000); // it gave up long before the fake's 30 s
    await graph.waitForCalls((c) => c.status === 0);
    expect(graph.sends()).toHaveLength(0);
  });

  test("profile: GET /{psid}?fields=… with the token", async () => {
    graph.setUser(PAGE, PSID, { profile: { first_name: "Ann", last_name: "Lee" } });
    const profile = await client().profile(page, PSID, ["first_name", "last_name"]);
    expect(profile).toMatchObject({ first_name: "Ann", last_name: "Lee", id: PSID });
    expect(graph.calls[0]).toMatchObject({ method: "GET", path: `/v26.0/${PSID}` });
    expect(graph.calls[0]!.query.fields).toBe("first_name,last_name");
  });
});

describe("GraphClient against odd answers", () => {
  let server: Server<undefined>;
  let answer: (request: Request) => Response | Promise<Response>;
  /** What the server saw (a Request is not usable after its handler returned). */
  let seen: { method: string; url: string; contentType: string | null; body: string }[] = [];
  beforeAll(() => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (request) => {
        seen.push({ method: request.method, url: request.url, contentType: request.headers.get("content-type"), body: await request.text() });
        return answer(request);
      },
    });
  });
  afterAll(() => server.stop(true));
  afterEach(() => {
    seen = [];
  });
  const odd = (timeoutMs = 5000) => client({ url: `http://127.0.0.1:${server.port}`, timeoutMs });

  test("the request: JSON body, content type, token and proof in the query", async () => {
    answer = () => Response.json({ recipient_id: PSID, message_id: "m_1" });
    await odd().send(pageWithSecret, textBody("hi"));
    const request = seen[0]!;
    const url = new URL(request.url);
    expect(request.method).toBe("POST");
    expect(url.pathname).toBe(`/v26.0/${PAGE}/messages`);
    expect(url.searchParams.get("access_token")).toBe(TOKEN);
    expect(url.searchParams.get("appsecret_proof")).toBe(VECTOR);
    expect(request.contentType).toBe("application/json");
    expect(JSON.parse(request.body)).toEqual(textBody("hi"));
  });

  test("an HTML 502 from a proxy is a GraphApiError with code 2 (transient)", async () => {
    answer = () => new Response("<html><body><h1>502 Bad Gateway</h1></body></html>", { status: 502, headers: { "content-type": "text/html" } });
    const error = await thrown(() => odd().send(page, textBody()));
    expect(error).toBeInstanceOf(GraphApiError);
    expect(error).toMatchObject({ status: 502, code: 2, subcode: undefined, type: undefined, fbtraceId: undefined, fromGraph: false });
    expect((error as Error).message).toContain("HTTP 502");
  });

  test("a 4xx without a Graph body is a GraphApiError with code 1", async () => {
    answer = () => new Response("Forbidden", { status: 403 });
    expect(await thrown(() => odd().send(page, textBody()))).toMatchObject({ status: 403, code: 1 });
    answer = () => Response.json({ detail: "nope" }, { status: 404 });
    expect(await thrown(() => odd().send(page, textBody()))).toMatchObject({ status: 404, code: 1 });
  });

  test("an empty 503 is a GraphApiError with code 2", async () => {
    answer = () => new Response(null, { status: 503 });
    expect(await thrown(() => odd().send(page, textBody()))).toMatchObject({ status: 503, code: 2 });
  });

  test("an error envelope on HTTP 200 is still an error", async () => {
    answer = () => Response.json({ error: { message: "(#100) bad", type: "OAuthException", code: 100, error_subcode: 2018001, fbtrace_id: "Xyz" } });
    expect(await thrown(() => odd().send(page, textBody()))).toMatchObject({ status: 200, code: 100, subcode: 2018001, fbtraceId: "Xyz" });
  });

  test("invalid JSON on 200 is a GraphUnreadableAnswer: Graph took the call, its answer is unknown", async () => {
    answer = () => new Response("{not json", { status: 200 });
    const error = await thrown(() => odd().send(page, textBody()));
    expect(error).toBeInstanceOf(GraphUnreadableAnswer);
    expect(error).toMatchObject({ status: 200, name: "GraphUnreadableAnswer" });
    expect((error as Error).message).toContain("most likely succeeded");
    expect((error as GraphUnreadableAnswer).toJSON()).toMatchObject({ kind: "unreadable_answer", status: 200 });
  });

  test("a JSON null or number on 200 is unreadable too, not a crash", async () => {
    answer = () => new Response("null", { status: 200, headers: { "content-type": "application/json" } });
    const error = await thrown(() => odd().send(page, textBody()));
    expect(isGraphError(error)).toBe(true);
    expect(error).toBeInstanceOf(GraphUnreadableAnswer);
    answer = () => new Response("42", { status: 200 });
    expect(await thrown(() => odd().send(page, textBody()))).toBeInstanceOf(GraphUnreadableAnswer);
  });

  test("a 200 whose body is cut off by a closed connection is unreadable, not a network error", async () => {
    answer = () =>
      new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('{"recipient_id":"'));
            setTimeout(() => controller.error(), 5);
          },
        }),
        { status: 200 },
      );
    const error = await thrown(() => odd().send(page, textBody()));
    expect(error).toBeInstanceOf(GraphUnreadableAnswer);
    expect((error as Error).message).toContain("cut off");
  });

  test("a connection closed before any answer may have reached Graph: not notSent", async () => {
    answer = () => new Response(new ReadableStream({ start: (controller) => controller.error() }));
    const error = await thrown(() => odd().send(page, textBody()));
    expect(error).toBeInstanceOf(GraphNetworkError);
    expect(error).toMatchObject({ timedOut: false, notSent: false });
  });

  test("an empty 200 is an empty result", async () => {
    answer = () => new Response("", { status: 200 });
    expect(await odd().send(page, textBody())).toEqual({});
  });

  test("an answer slower than timeoutMs: GraphNetworkError, timed out", async () => {
    // The server holds the answer until the client gives up.
    answer = (request) => new Promise((resolve) => request.signal.addEventListener("abort", () => resolve(new Response("late"))));
    const error = await thrown(() => odd(120).send(page, textBody()));
    expect(error).toBeInstanceOf(GraphNetworkError);
    expect(error).toMatchObject({ timedOut: true, notSent: false });
  });

  test("connection refused: GraphNetworkError, not timed out, with the cause", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = closed.port;
    closed.stop(true);
    const error = await thrown(() => client({ url: `http://127.0.0.1:${port}` }).send(page, textBody()));
    expect(error).toBeInstanceOf(GraphNetworkError);
    expect(error).toMatchObject({ timedOut: false, name: "GraphNetworkError", notSent: true });
    expect((error as Error).message).toContain(`POST /${PAGE}/messages`);
    expect((error as Error).cause).toBeDefined();
  });

  test("toJSON of both errors never carries the access token", async () => {
    answer = () =>
      Response.json({ error: { message: "(#190) Invalid OAuth access token.", type: "OAuthException", code: 190, fbtrace_id: "T" } }, { status: 401 });
    const apiError = (await thrown(() => odd().send(pageWithSecret, textBody()))) as GraphApiError;
    expect(apiError.toJSON()).toEqual({
      kind: "graph",
      status: 401,
      code: 190,
      subcode: undefined,
      type: "OAuthException",
      fbtrace_id: "T",
      message: "(#190) Invalid OAuth access token.",
    });

    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = closed.port;
    closed.stop(true);
    const refused = (await thrown(() => client({ url: `http://127.0.0.1:${port}` }).send(pageWithSecret, textBody()))) as GraphNetworkError;
    answer = (request) => new Promise((resolve) => request.signal.addEventListener("abort", () => resolve(new Response("late"))));
    const timedOut = (await thrown(() => odd(100).send(pageWithSecret, textBody()))) as GraphNetworkError;

    for (const error of [apiError, refused, timedOut]) {
      const json = JSON.stringify(error.toJSON());
      expect(json).not.toContain(TOKEN);
      expect(json).not.toContain(VECTOR);
      expect(json).not.toContain(SECRET);
      expect(error.message).not.toContain(TOKEN);
    }
    expect(refused.toJSON()).toMatchObject({ kind: "network", timed_out: false });
    expect(timedOut.toJSON()).toMatchObject({ kind: "network", timed_out: true });
  });
});
