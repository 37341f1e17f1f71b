import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { FlowError } from "../../../src/flows/flow.ts";
import { HTTP_FLOW_TIMEOUT_MS, httpFlow } from "../../../src/flows/http.ts";
import { closedUrl, flowContext, never, sampleInput, startAgentServer, thrown, type AgentServer } from "./support.ts";

let agent: AgentServer;
beforeAll(() => {
  agent = startAgentServer();
});
afterAll(() => agent.stop());
afterEach(() => {
  agent.seen.splice(0);
  agent.answer = () => Response.json({});
});

const flow = (extra: { headers?: Record<string, string>; timeout_ms?: number; url?: string } = {}) =>
  httpFlow("agent", {
    kind: "http",
    url: extra.url ?? `${agent.url}/turn`,
    ...(extra.headers ? { headers: extra.headers } : {}),
    ...(extra.timeout_ms ? { timeout_ms: extra.timeout_ms } : {}),
  });

describe("http flow", () => {
  test("name, kind and the default timeout", () => {
    const f = flow();
    expect(f.name).toBe("agent");
    expect(f.kind).toBe("http");
    expect(f.timeoutMs).toBe(HTTP_FLOW_TIMEOUT_MS);
    expect(flow({ timeout_ms: 2500 }).timeoutMs).toBe(2500);
  });

  test("POSTs the input as JSON with the configured headers; the parsed body is the result", async () => {
    const result = { outputs: [{ text: "Hi!", quick_replies: [{ title: "Yes" }] }], context: { step: 2 } };
    agent.answer = () => Response.json(result);
    const input = sampleInput({ text: "héllo 😀", context: { step: 1 } });
    const got = await flow({ headers: { authorization: "Bearer agent-key-123", "x-tenant": "acme" } }).run(input, flowContext());
    expect(got).toEqual(result);
    expect(agent.seen).toHaveLength(1);
    const request = agent.seen[0]!;
    expect(request.method).toBe("POST");
    expect(request.path).toBe("/turn");
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.headers.accept).toBe("application/json");
    expect(request.headers.authorization).toBe("Bearer agent-key-123");
    expect(request.headers["x-tenant"]).toBe("acme");
    expect(JSON.parse(request.body)).toEqual(input);
  });

  test("configured headers may override the defaults", async () => {
    await flow({ headers: { accept: "application/vnd.agent+json" } }).run(sampleInput(), flowContext());
    expect(agent.seen[0]!.headers.accept).toBe("application/vnd.agent+json");
  });

  test("an empty body (or only whitespace) is an empty result", async () => {
    agent.answer = () => new Response(null, { status: 204 });
    expect(await flow().run(sampleInput(), flowContext())).toEqual({});
    agent.answer = () => new Response(" \n", { status: 200 });
    expect(await flow().run(sampleInput(), flowContext())).toEqual({});
  });

  test("whatever JSON comes back is returned as is (the engine validates it)", async () => {
    agent.answer = () => new Response("[1,2]");
    expect(await flow().run(sampleInput(), flowContext())).toEqual([1, 2]);
  });

  test("a non-2xx answer is a FlowError naming the URL and the status, with the start of the body", async () => {
    agent.answer = () => new Response(`upstream exploded: ${"x".repeat(500)}`, { status: 500 });
    const error = await thrown(() => flow().run(sampleInput(), flowContext()));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.name).toBe("FlowError");
    expect(error.message).toContain(`${agent.url}/turn`);
    expect(error.message).toContain("HTTP 500");
    expect(error.message).toContain("upstream exploded");
    expect(error.message.length).toBeLessThan(400);
    agent.answer = () => Response.json({ outputs: [] }, { status: 404 });
    expect((await thrown(() => flow().run(sampleInput(), flowContext()))).message).toContain("HTTP 404");
  });

  test("a body that is not JSON is a FlowError naming the URL", async () => {
    agent.answer = () => new Response("<html>Hello</html>", { status: 200, headers: { "content-type": "text/html" } });
    const error = await thrown(() => flow().run(sampleInput(), flowContext()));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`${agent.url}/turn`);
    expect(error.message).toContain("not JSON");
    expect(error.message).toContain("<html>Hello</html>");
  });

  test("an unreachable agent is a FlowError naming the URL", async () => {
    const url = `${closedUrl()}/turn`;
    const error = await thrown(() => flow({ url }).run(sampleInput(), flowContext()));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`cannot reach the agent at ${url}`);
    expect(error.cause).toBeDefined();
  });

  test("aborting the turn's signal ends the call with a FlowError naming the URL and the timeout", async () => {
    agent.answer = never;
    const controller = new AbortController();
    const running = thrown(() => flow({ timeout_ms: 4000 }).run(sampleInput(), flowContext(controller.signal)));
    await agent.nextRequest();
    controller.abort();
    const error = await running;
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain(`${agent.url}/turn`);
    expect(error.message).toContain("did not answer within 4000 ms");
  });

  test("a URL with a password or a key is named in its display form; the agent's answer is quoted without the flow's secrets", async () => {
    const withSecrets = (base: string) => `${base.replace("://", "://bot:s3cretpass@")}/turn?code=AzFuncKey12345&tenant=acme`;
    const shown = (base: string) => `${base}/turn?code=…&tenant=…`;
    const secrets = ["s3cretpass", "AzFuncKey12345", "agent-key-123456"];
    const settings = { headers: { authorization: "Bearer agent-key-123456" } };
    // An error page that quotes the request: the key, the password, the Authorization header.
    agent.answer = () => new Response("invalid code AzFuncKey12345 for bot:s3cretpass (Bearer agent-key-123456)", { status: 401 });
    const answered = await thrown(() => flow({ ...settings, url: withSecrets(agent.url) }).run(sampleInput(), flowContext()));
    expect(answered.message).toStartWith(`the agent at ${shown(agent.url)} answered HTTP 401: invalid code [redacted] for bot:[redacted]`);
    agent.answer = () => new Response("<p>code AzFuncKey12345</p>", { status: 200 });
    const notJson = await thrown(() => flow({ ...settings, url: withSecrets(agent.url) }).run(sampleInput(), flowContext()));
    expect(notJson.message).toContain(`the agent at ${shown(agent.url)} answered with a body that is not JSON`);
    const closed = closedUrl();
    const unreachable = await thrown(() => flow({ ...settings, url: withSecrets(closed) }).run(sampleInput(), flowContext()));
    expect(unreachable.message).toStartWith(`cannot reach the agent at ${shown(closed)}: `);
    agent.answer = never;
    const controller = new AbortController();
    const running = thrown(() => flow({ ...settings, url: withSecrets(agent.url) }).run(sampleInput(), flowContext(controller.signal)));
    await agent.nextRequest();
    controller.abort();
    const timedOut = await running;
    expect(timedOut.message).toStartWith(`the agent at ${shown(agent.url)} did not answer`);
    for (const error of [answered, notJson, unreachable, timedOut]) for (const secret of secrets) expect(error.message).not.toContain(secret);
  });

  test("an already aborted signal fails at once", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await thrown(() => flow().run(sampleInput(), flowContext(controller.signal)));
    expect(error).toBeInstanceOf(FlowError);
    expect(error.message).toContain("did not answer");
  });
});
